"""Where a blocking call is reported, and the one allow rule aiocop suggests for it.

The reported site is the user's own line (not the standard library's frame the call went
through); messages show the trace up to the user's outermost frame of the call (not the loop,
not pytest); and every place that suggests a rule — the blocking event, ``BlockingCallError``,
warn mode — suggests the same one, which allows that call and no broader, on any checkout.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.request

import pytest

import aiocop

from conftest import closed_port, describe, raising_at_call, run_monitored, run_python


def fetch(port: int) -> None:
    """The user's call: the blocking work happens inside urllib, several frames down."""
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)  # SITE:fetch
    except OSError:
        pass


def site_line() -> str:
    with open(__file__) as f:
        for number, line in enumerate(f, 1):
            if "# SITE:fetch" in line and "def " not in line:
                return f"{__file__}:{number}:fetch"
    raise AssertionError("no SITE marker")


@pytest.fixture(autouse=True)
def no_allow_rules():
    aiocop.clear_allow_rules()
    yield
    aiocop.clear_allow_rules()


def test_the_site_is_the_users_line_not_the_standard_librarys(loop_kind):
    port = closed_port()

    async def body():
        fetch(port)

    result = run_monitored(body, loop_kind)
    (record,) = result.records("urllib.Request")
    assert record["entry_point"].startswith("request.py:")  # aiocop 1.2.1's field, unchanged
    assert record["site"] == site_line()
    assert record["event_name"] == "urllib.Request"
    assert record["suggested_rule"] == f"event=urllib.Request,function={__name__}.fetch"
    # every record of the call names the same site, whatever stdlib frame raised it
    connects = result.records("socket.socket.connect")
    assert connects and all(r["site"] == site_line() for r in connects)


def test_every_place_suggests_the_same_rule_and_it_allows_the_call(loop_kind):
    port = closed_port()
    caught: list[aiocop.BlockingCallError] = []

    async def reported():
        fetch(port)

    (record,) = run_monitored(reported, loop_kind).records("urllib.Request")
    run_monitored(raising_at_call(lambda: fetch(port), caught), loop_kind)
    (exc,) = caught
    suggestion = aiocop.suggest_allow_rule(record)
    assert exc.suggested_rule == suggestion == aiocop.suggest_allow_rule(exc)
    assert exc.site == record["site"]
    # the rule allows this call, and the call only
    rule = aiocop.allow(suggestion)
    assert run_monitored(reported, loop_kind).records("urllib.Request") == []
    assert rule.hits == 1

    async def elsewhere():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        except OSError:
            pass

    assert len(run_monitored(elsewhere, loop_kind).records("urllib.Request")) == 1


def fetch_once(port: int) -> None:
    """A call site of its own: warn mode logs a site once per process."""
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
    except OSError:
        pass


def test_warn_mode_suggests_the_same_rule(caplog):
    port = closed_port()

    async def reported():
        fetch_once(port)

    async def warned():
        with aiocop.raise_on_violations(at_call=True, mode="warn"):
            fetch_once(port)

    (record,) = run_monitored(reported, "asyncio").records("urllib.Request")
    with caplog.at_level(logging.WARNING, logger="aiocop"):
        run_monitored(warned, "asyncio")
    warned_calls = [m for m in caplog.messages if m.startswith("blocking call urllib.Request(")]
    assert len(warned_calls) == 1, caplog.messages
    assert f'aiocop.allow("{record["suggested_rule"]}")' in warned_calls[0]
    assert record["suggested_rule"] == f"event=urllib.Request,function={__name__}.fetch_once"
    assert f"at {record['site']}" in warned_calls[0]


def test_messages_show_the_trace_up_to_the_users_outermost_frame():
    """Raised inside this test (pytest runs it): the message stops at the test's own frames;
    the exception keeps the whole trace."""
    port = closed_port()
    caught: list[aiocop.BlockingCallError] = []

    run_monitored(raising_at_call(lambda: fetch(port), caught), "asyncio")
    (exc,) = caught
    message = str(exc)
    assert f"at {site_line()}" in message
    assert exc.user_trace in message
    assert "_pytest" in exc.trace and "pluggy" in exc.trace  # the whole trace is kept
    for runner_frame in ("_pytest", "pluggy", "base_events.py", "events.py:"):
        assert runner_frame not in message, message
    # it ends with the user's outermost frame of the call: the next one is the loop's
    shown = exc.user_trace.split(" <- ")
    assert exc.trace.startswith(exc.user_trace)
    assert exc.trace.split(" <- ")[len(shown)].startswith("events.py:")


def test_code_without_a_module_is_suggested_by_its_path_under_the_project_root(tmp_path):
    """A script run by path (not importable as a module): the rule names its file relative to
    the project root (the working directory when detection started), so it works on any
    checkout."""
    project = tmp_path / "checkout"
    (project / "tools").mkdir(parents=True)
    (project / "tools" / "job.py").write_text(
        "import asyncio, os\n"
        "async def main():\n"
        "    os.listdir('.')\n"
    )
    proc = run_python(
        """
        import asyncio, json, runpy
        import aiocop
        aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection()
        aiocop.detect_slow_tasks(threshold_ms=10, cpu_sampling=False)
        seen = []
        aiocop.register_slow_task_callback(lambda e: seen.extend(e.blocking_events))
        job = runpy.run_path("tools/job.py")
        async def main():
            aiocop.activate()
            await asyncio.sleep(0)
            await job["main"]()
            await asyncio.sleep(0)
            aiocop.flush()
        asyncio.run(main())
        (record,) = [r for r in seen if r["event_name"] == "os.listdir"]
        print(json.dumps([record["suggested_rule"], record["site"]]))
        """,
        cwd=project,
    )
    assert proc.returncode == 0, describe(proc)
    rule, site = __import__("json").loads(proc.stdout.strip().splitlines()[-1])
    assert rule == "event=os.listdir,path=*/tools/job.py", describe(proc)
    assert site.endswith("tools/job.py:3:main")


def test_a_call_without_frames_gets_no_rule():
    raw = {"event_name": "time.sleep", "raw_args": (1,), "raw_stack": [], "timestamp": 0.0,
           "severity": 50}
    info = aiocop.format_blocking_event(raw)
    assert info["site"] == "unknown"
    assert info["suggested_rule"] is None
    assert aiocop.suggest_allow_rule(info) is None
