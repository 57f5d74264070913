"""Warn mode: a violation is logged once per call site (logger ``aiocop``, WARNING), not raised.

"Once per call site" holds for the whole process, so every test makes its blocking calls from a
module of its own, written to its ``tmp_path`` and imported under a unique name: the call
sites are new in every test (and every loop kind, and every rerun in the same process).
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import logging
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import aiocop

from conftest import describe, entry_function, run_monitored, run_python

SITES_SOURCE = '''\
import os
import time


def open_for_write(path, text):
    with open(path, "w") as f:  # line 6
        f.write(text)


def nap(seconds):
    time.sleep(seconds)  # line 11


def other_nap(seconds):
    time.sleep(seconds)  # line 15


def stat(path):
    return os.stat(path)  # line 19
'''
OPEN_LINE, NAP_LINE, OTHER_NAP_LINE, STAT_LINE = 6, 11, 15, 19

_counter = itertools.count()


def fresh_sites(tmp_path: Path) -> ModuleType:
    """A new module (new file, new name) with the blocking call sites above."""
    name = f"warn_sites_{next(_counter)}"
    path = tmp_path / f"{name}.py"
    path.write_text(SITES_SOURCE)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sites(tmp_path):
    # Left in sys.modules on purpose: see test_module_rule_after_a_module_swap in
    # test_allow_rules.py (a module replacing another one is not resolved).
    return fresh_sites(tmp_path)


@pytest.fixture(autouse=True)
def raise_mode_and_no_rules():
    aiocop.clear_allow_rules()
    aiocop.set_mode("raise")
    yield
    aiocop.set_mode("raise")
    aiocop.clear_allow_rules()


@pytest.fixture
def warnings_(caplog):
    """The WARNING records of logger ``aiocop`` (as a live list)."""
    caplog.set_level(logging.WARNING, logger="aiocop")

    class Warnings:
        @property
        def records(self):
            return [r for r in caplog.records if r.name == "aiocop" and r.levelno == logging.WARNING]

        @property
        def messages(self):
            return [r.getMessage() for r in self.records]

    return Warnings()


def site(module: ModuleType, line: int, function: str) -> str:
    return f"{module.__file__}:{line}:{function}"


# --------------------------------------------------------------------------- at the call


def test_at_call_warns_once_per_call_site_and_the_call_happens(loop_kind, sites, tmp_path, warnings_):
    paths = [tmp_path / f"out-{i}.txt" for i in range(3)]

    async def body():
        with aiocop.raise_on_violations(at_call=True, mode="warn"):
            for i, path in enumerate(paths):
                sites.open_for_write(path, f"written {i}")  # no BlockingCallError
                if i:
                    await asyncio.sleep(0)  # the next ones in other handles
        return "ok"

    result = run_monitored(body, loop_kind)
    assert result.value == "ok"
    assert [p.read_text() for p in paths] == ["written 0", "written 1", "written 2"]
    # one warning for the three calls from the same line (with different arguments)
    assert len(warnings_.messages) == 1, warnings_.messages
    message = warnings_.messages[0]
    assert f"open({paths[0]}, w, " in message
    assert "weight 10" in message
    trace_start = f"{site(sites, OPEN_LINE, 'open_for_write')} <- {__file__}:"
    assert trace_start in message, message
    # the calls happened and are reported as usual
    assert len([r for r in result.records("open") if entry_function(r) == "open_for_write"]) == 3
    # the suggestion is a rule that allows the call (function=<module>.open_for_write, or
    # path=<the sites file> when the module is not resolved: see test_allow_rules.py)
    suggested = re.search(r'aiocop\.allow\("([^"]+)"\)', message)
    assert suggested, message
    assert suggested.group(1) in {
        f"event=open,function={sites.__name__}.open_for_write",
        f"event=open,path={sites.__file__}",
    }
    rule = aiocop.allow(suggested.group(1))
    again = run_monitored(body, loop_kind)
    assert [r for r in again.records("open") if entry_function(r) == "open_for_write"] == []
    assert rule.hits == 3


def test_warn_at_the_call_warns_once_not_again_at_the_end_of_the_handle(loop_kind, sites, warnings_):
    """A heavy call over the threshold, in warn mode with raise-at-call on: one warning, at
    the call; the end of its handle (which would warn for a high-severity handle) does not
    warn for it again."""

    async def body():
        with aiocop.raise_on_violations(at_call=True, mode="warn"):
            sites.nap(0.03)  # weight 50, over the threshold
            await asyncio.sleep(0)
        return "ok"

    assert run_monitored(body, loop_kind).value == "ok"
    assert len(warnings_.messages) == 1, warnings_.messages
    assert warnings_.messages[0].startswith("blocking call time.sleep(0.03)")


def test_at_call_warns_per_call_site(loop_kind, sites, tmp_path, warnings_):
    async def body():
        with aiocop.raise_on_violations(at_call=True, mode="warn"):
            for _ in range(2):
                # time.sleep(0) is the same blocking call site and keeps this one handle far
                # below the threshold on a loaded machine (no after-the-handle violation).
                sites.nap(0)
                sites.other_nap(0)
                sites.open_for_write(tmp_path / "x.txt", "x")
                sites.stat(tmp_path)  # weight 1 < min_weight 10: no warning
        return "ok"

    assert run_monitored(body, loop_kind).value == "ok"
    messages = warnings_.messages
    assert len(messages) == 3, messages
    assert site(sites, NAP_LINE, "nap") in messages[0]
    assert site(sites, OTHER_NAP_LINE, "other_nap") in messages[1]
    assert site(sites, OPEN_LINE, "open_for_write") in messages[2]
    assert all("aiocop.allow(" in m for m in messages)
    assert not any("os.stat" in m for m in messages)


def test_enable_raise_on_violations_with_warn_mode(loop_kind, sites, tmp_path, warnings_):
    target = tmp_path / "enabled.txt"

    async def body():
        aiocop.enable_raise_on_violations(at_call=True, mode="warn")
        sites.open_for_write(target, "enabled")
        aiocop.disable_raise_on_violations()
        return "ok"

    assert run_monitored(body, loop_kind).value == "ok"
    assert target.read_text() == "enabled"
    assert len(warnings_.messages) == 1


def test_warn_mode_is_scoped_to_the_task(loop_kind, sites, tmp_path, warnings_):
    async def body():
        async def warned():
            with aiocop.raise_on_violations(at_call=True, mode="warn"):
                sites.open_for_write(tmp_path / "warned.txt", "w")

        async def raised():
            with aiocop.raise_on_violations(at_call=True):
                try:
                    sites.nap(0.001)
                except aiocop.BlockingCallError as exc:
                    return exc

        return await asyncio.gather(warned(), raised())

    _, exc = run_monitored(body, loop_kind).value
    assert isinstance(exc, aiocop.BlockingCallError)
    assert (tmp_path / "warned.txt").exists()
    assert len(warnings_.messages) == 1
    assert "open(" in warnings_.messages[0]


def test_allowed_calls_are_not_warned(loop_kind, sites, tmp_path, warnings_):
    aiocop.allow(path=sites.__file__, event="open")

    async def body():
        with aiocop.raise_on_violations(at_call=True, mode="warn"):
            sites.open_for_write(tmp_path / "allowed.txt", "a")
        return "ok"

    assert run_monitored(body, loop_kind).value == "ok"
    assert warnings_.messages == []


# --------------------------------------------------------------------------- process-wide mode


def test_process_wide_mode(loop_kind, sites, tmp_path, warnings_):
    assert aiocop.get_mode() == "raise"
    aiocop.set_mode("warn")
    assert aiocop.get_mode() == "warn"
    target = tmp_path / "process-wide.txt"

    async def body():
        with aiocop.raise_on_violations(at_call=True):  # mode=None: the process-wide one
            sites.open_for_write(target, "warned")
        with aiocop.raise_on_violations(at_call=True, mode="raise"):  # the scope's mode wins
            with pytest.raises(aiocop.BlockingCallError):
                sites.nap(0.001)
        return "ok"

    assert run_monitored(body, loop_kind).value == "ok"
    assert target.read_text() == "warned"
    assert len(warnings_.messages) == 1
    aiocop.set_mode("raise")
    assert aiocop.get_mode() == "raise"


@pytest.mark.parametrize(("mode", "error"), [("loud", ValueError), ("WARN", ValueError), ("", ValueError)])
def test_set_mode_rejects_bad_modes(mode, error):
    with pytest.raises(error, match="mode"):
        aiocop.set_mode(mode)
    assert aiocop.get_mode() == "raise"


def test_detect_slow_tasks_mode_in_a_fresh_process(tmp_path):
    (tmp_path / "proc_sites.py").write_text(SITES_SOURCE)
    proc = run_python(
        f"""
        import asyncio, logging, sys
        sys.path.insert(0, {str(tmp_path)!r})
        logging.basicConfig(stream=sys.stdout, level=logging.WARNING,
                            format="%(name)s|%(levelname)s|%(message)s")
        import aiocop
        import proc_sites

        aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection()
        aiocop.detect_slow_tasks(threshold_ms=10, mode="warn")
        print("mode", aiocop.get_mode())

        async def main():
            aiocop.activate()
            await asyncio.sleep(0)
            with aiocop.raise_on_violations(at_call=True):
                for _ in range(3):
                    proc_sites.nap(0.001)
            with aiocop.raise_on_violations():
                proc_sites.other_nap(0.03)
                await asyncio.sleep(0)
            return "done"

        print(asyncio.run(main()))
        """
    )
    assert proc.returncode == 0, describe(proc)
    lines = proc.stdout.splitlines()
    assert lines[0] == "mode warn"
    assert lines[-1] == "done"
    warned = [line for line in lines if line.startswith("aiocop|WARNING|")]
    assert len(warned) == 2, describe(proc)
    assert "time.sleep(0.001)" in warned[0] and "proc_sites.py:11:nap" in warned[0]
    assert "time.sleep(0.03)" in warned[1] and "proc_sites.py:15:other_nap" in warned[1]


def test_detect_slow_tasks_rejects_a_bad_mode():
    proc = run_python(
        """
        import aiocop
        try:
            aiocop.detect_slow_tasks(threshold_ms=10, mode="loud")
        except ValueError as exc:
            assert "loud" in str(exc), str(exc)
            print("ValueError")
        print(aiocop.get_mode())
        """
    )
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.split() == ["ValueError", "raise"]


# --------------------------------------------------------------------------- after the handle


def test_after_the_handle_warns_instead_of_raising(loop_kind, sites, warnings_):
    async def body():
        with aiocop.raise_on_violations(mode="warn"):
            for _ in range(3):
                sites.nap(0.03)  # over the threshold, score 50, in three handles
                await asyncio.sleep(0)
        return "not raised"

    result = run_monitored(body, loop_kind)
    assert result.value == "not raised"
    assert len(result.records("time.sleep")) == 3  # still reported
    messages = warnings_.messages
    assert len(messages) == 1, messages
    assert "time.sleep(0.03)" in messages[0]
    assert f"{site(sites, NAP_LINE, 'nap')} <- {__file__}:" in messages[0]


def test_a_warn_block_that_ends_inside_the_handle_still_warns(loop_kind, sites, warnings_):
    """The mode is the one in force at the blocking call: the ``raise_on_violations(mode=
    "warn")`` block has ended by the time its handle ends, and the handle warns, not raises."""

    async def body():
        with aiocop.raise_on_violations(mode="warn"):
            sites.nap(0.03)
        return "not raised"  # same handle: the block ended before it

    result = run_monitored(body, loop_kind)
    assert result.value == "not raised"
    assert len(warnings_.messages) == 1 and "time.sleep(0.03)" in warnings_.messages[0]


def test_after_the_handle_still_raises_in_raise_mode(loop_kind, sites, warnings_):
    """The control for the test above: same handle, raise mode."""

    async def body():
        with aiocop.raise_on_violations():
            sites.nap(0.03)
            await asyncio.sleep(0)

    with pytest.raises(aiocop.HighSeverityBlockingIoException):
        run_monitored(body, loop_kind)
    assert warnings_.messages == []


def test_after_the_handle_warning_suggests_an_allow_rule(loop_kind, sites, warnings_):
    async def body():
        with aiocop.raise_on_violations(mode="warn"):
            sites.nap(0.03)
            await asyncio.sleep(0)

    run_monitored(body, loop_kind)
    assert len(warnings_.messages) == 1
    assert "aiocop.allow(" in warnings_.messages[0], warnings_.messages[0]


def test_after_the_handle_warns_once_per_call_site_whatever_the_arguments(loop_kind, sites, warnings_):
    async def body():
        with aiocop.raise_on_violations(mode="warn"):
            for seconds in (0.03, 0.031, 0.032):
                sites.nap(seconds)  # the same call site, other arguments
                await asyncio.sleep(0)

    run_monitored(body, loop_kind)
    assert len(warnings_.messages) == 1, warnings_.messages


def test_after_the_handle_no_warning_under_the_threshold(loop_kind, sites, warnings_):
    async def body():
        with aiocop.raise_on_violations(mode="warn"):
            sites.nap(0)  # score 50 but a short handle: no violation
            await asyncio.sleep(0)
        return "ok"

    assert run_monitored(body, loop_kind).value == "ok"
    assert warnings_.messages == []


def test_warn_mode_without_raise_on_violations_logs_nothing(loop_kind, sites, tmp_path, warnings_):
    aiocop.set_mode("warn")

    async def body():
        sites.nap(0.03)
        sites.open_for_write(tmp_path / "plain.txt", "plain")
        await asyncio.sleep(0)
        return "ok"

    result = run_monitored(body, loop_kind)
    assert result.value == "ok"
    assert warnings_.messages == []
    assert len(result.records("time.sleep")) == 1


def test_module_source_is_what_we_think(sites):
    """Guards the line constants above."""
    lines = Path(sites.__file__).read_text().splitlines()
    assert "open(path" in lines[OPEN_LINE - 1]
    assert "time.sleep" in lines[NAP_LINE - 1] and "time.sleep" in lines[OTHER_NAP_LINE - 1]
    assert "os.stat" in lines[STAT_LINE - 1]
    assert textwrap.dedent(SITES_SOURCE) == SITES_SOURCE
