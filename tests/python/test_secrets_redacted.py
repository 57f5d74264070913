"""Secrets in a blocking call's arguments never reach an event, a log line, an exception or a
pytest report: URL passwords, ``api_key=``/``token=``/``password=`` values, ``--token=``
flags and secret-named mapping values read ``***`` (one redactor, in aiocop-events, for every
place an argument is shown). ``AIOCOP_REDACT=0`` shows them, for debugging."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import urllib.request

import pytest

import aiocop

from conftest import (
    PLUGIN_ARGS,
    closed_port,
    describe,
    raising_at_call,
    run_monitored,
    run_python,
)

SECRETS = ("hunter2", "abc123", "s3cr3t", "tok-999")


def leaky_calls(port: int) -> None:
    """Blocking calls whose arguments carry secrets."""
    url = f"http://user:hunter2@127.0.0.1:{port}/v1?api_key=abc123&page=2"
    try:
        urllib.request.urlopen(url, timeout=1)
    except OSError:
        pass
    subprocess.run(
        [sys.executable, "-c", "pass", "--token=tok-999", "--password", "s3cr3t"],
        env={"DB_PASSWORD": "s3cr3t", "PATH": "/usr/bin"},
        check=True,
    )


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (secret, text)


def test_events_show_no_secret(loop_kind):
    port = closed_port()

    async def body():
        leaky_calls(port)

    result = run_monitored(body, loop_kind)
    shown = [r["event"] for r in result.records()]
    assert any("urllib.Request(http://user:***@127.0.0.1" in e for e in shown), shown
    assert any("api_key=***&page=2" in e for e in shown), shown
    assert any("'--token=***'" in e and "'--password', '***'" in e for e in shown), shown
    assert any("'DB_PASSWORD': '***'" in e for e in shown), shown
    assert_clean("\n".join(shown))


def test_exceptions_and_logs_show_no_secret(loop_kind, caplog):
    port = closed_port()
    caught = []

    async def after_the_handle():
        with aiocop.raise_on_violations():
            leaky_calls(port)
            time.sleep(0.02)  # over the threshold: the handle raises at its end

    run_monitored(raising_at_call(lambda: leaky_calls(port), caught), loop_kind)
    (exc,) = caught
    assert "user:***@" in exc.event
    assert_clean(str(exc))
    assert_clean(exc.event)
    with pytest.raises(aiocop.HighSeverityBlockingIoException) as high:
        run_monitored(after_the_handle, loop_kind)
    assert_clean(str(high.value))
    with caplog.at_level(logging.WARNING, logger="aiocop"):

        async def warned():
            with aiocop.raise_on_violations(at_call=True, mode="warn"):
                leaky_calls(port)

        run_monitored(warned, loop_kind)
    assert_clean("\n".join(caplog.messages))


def test_redaction_can_be_turned_off_for_debugging():
    proc = run_python(
        """
        import asyncio, aiocop
        aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection()
        aiocop.detect_slow_tasks(threshold_ms=10, cpu_sampling=False)
        seen = []
        aiocop.register_slow_task_callback(lambda e: seen.extend(r["event"] for r in e.blocking_events))
        async def main():
            aiocop.activate()
            await asyncio.sleep(0)
            open("/dev/null?password=hunter2", "r") if False else None
            try:
                open("/nonexistent/x?token=hunter2")
            except OSError:
                pass
            await asyncio.sleep(0)
            aiocop.flush()
        asyncio.run(main())
        print(seen)
        """,
        env={"AIOCOP_REDACT": "0"},
    )
    assert proc.returncode == 0, describe(proc)
    assert "token=hunter2" in proc.stdout, describe(proc)


pytest_plugins = ["pytester"]


def test_the_pytest_report_shows_no_secret(pytester, monkeypatch):
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    monkeypatch.delenv("AIOCOP_ALLOW", raising=False)
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        test_leaky=f"""
        import pytest, subprocess, sys

        @pytest.mark.asyncio
        async def test_deploy():
            subprocess.run([sys.executable, "-c", "pass", "--token=tok-999",
                            "https://user:hunter2@example.invalid/?api_key=abc123"], check=True)
        """
    )
    result = pytester.runpytest_subprocess(*PLUGIN_ARGS, "-p", "no:cacheprovider", "--aiocop")
    result.assert_outcomes(failed=1)
    text = "\n".join(result.outlines + result.errlines)
    assert "subprocess.Popen(" in text and "--token=***" in text, text
    assert_clean(text)
