"""Stuck loops: a handle still running ``after_ms`` after it began is reported while it runs.

Real asyncio and uvloop loops stall in ``time.sleep`` (the GIL released) and in a
catastrophic-backtracking regex (the GIL held for the whole stall). The reports reach the
``on_stuck_loop`` callback on a thread of aiocop's, the ``aiocop`` logger, and, with
``report_path``, a file that another process reads while the stall still lasts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import aiocop

from conftest import run_monitored

AFTER_MS = 200
SLEEP_CALLS = {"clock_nanosleep", "nanosleep", "select", "pselect6", "restart_syscall"}


def regex_stall(n: int) -> None:
    """Holds the GIL in one C call (catastrophic backtracking in ``_sre``)."""
    re.match(r"(a+)+$", "a" * n + "b")


class Reports:
    """What ``on_stuck_loop`` received, with the thread it ran on and when."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.threads: list[int] = []
        self.received_at: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self.lock:
            self.events.append(event)
            self.threads.append(threading.get_ident())
            self.received_at.append(time.monotonic())

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.events) >= count:
                    return list(self.events)
            time.sleep(0.01)
        with self.lock:
            return list(self.events)


@pytest.fixture
def stuck() -> Iterable[Reports]:
    reports = Reports()
    aiocop.detect_stuck_loops(after_ms=AFTER_MS, on_stuck_loop=reports)
    try:
        yield reports
    finally:
        aiocop.stop_detecting_stuck_loops()


def frame_names(event: Any) -> list[str]:
    return [frame.function for frame in event.stack]


def test_a_sleeping_loop_is_reported_while_it_sleeps_at_growing_intervals(stuck, loop_kind, caplog):
    stall: dict[str, float] = {}

    async def sleepy_handler() -> None:
        stall["start"] = time.monotonic()
        time.sleep(1.0)
        stall["end"] = time.monotonic()

    async def body() -> None:
        stall["thread"] = threading.get_ident()
        await asyncio.create_task(sleepy_handler(), name="sleepy-task")

    with caplog.at_level(logging.WARNING, logger="aiocop"):
        monitored = run_monitored(body, loop_kind)
        events = stuck.wait_for(3)

    # Reports at 200, 400 and 800 ms into the one-second sleep, each while it still slept.
    assert [e.report_number for e in events] == [1, 2, 3], events
    first = events[0]
    assert first.detected_at - stall["start"] < 2 * AFTER_MS / 1000
    for number, event in enumerate(events):
        assert event.stuck_ms >= AFTER_MS * 2**number - 1
        assert event.stuck_ms < AFTER_MS * 2**number + AFTER_MS
    assert all(at < stall["end"] for at in stuck.received_at), "delivered while the loop slept"
    assert all(e.detected_at < stall["end"] for e in events)
    # On a thread of aiocop's, never the stuck loop's.
    assert stall["thread"] not in stuck.threads
    assert {e.thread_id for e in events} == {stall["thread"]}
    # What the loop thread was doing, read without the GIL.
    assert first.task_name == "sleepy-task"
    assert first.coroutine == "test_a_sleeping_loop_is_reported_while_it_sleeps_at_growing_intervals.<locals>.sleepy_handler"
    assert "sleepy_handler" in frame_names(first)
    assert all(frame.native is False for frame in first.stack)
    assert first.on_cpu is False
    assert first.blocked_in in SLEEP_CALLS, first.blocked_in
    logged = [r for r in caplog.records if "stuck for" in r.getMessage()]
    assert len(logged) >= 3 and all(r.levelno == logging.WARNING for r in logged)
    assert "sleepy_handler" in logged[0].getMessage()
    # The slow-task event at the end of the handle says it was reported.
    reported = [e for e in monitored.events if e.stuck_reports]
    assert [e.stuck_reports for e in reported] == [3], [(e.elapsed_ms, e.stuck_reports) for e in monitored.events]
    assert reported[0].elapsed_ms >= 1000


def test_a_regex_holding_the_gil_is_reported_within_twice_after_ms(stuck, loop_kind):
    stall: dict[str, float] = {}

    async def crunch() -> None:
        stall["start"] = time.monotonic()
        regex_stall(25)
        stall["end"] = time.monotonic()

    async def body() -> None:
        await asyncio.create_task(crunch(), name="cruncher")

    run_monitored(body, loop_kind)
    assert stall["end"] - stall["start"] > 2 * AFTER_MS / 1000, "the regex was too quick to test"
    events = stuck.wait_for(1)
    assert events, "no report"
    first = events[0]
    # Detected (by the watchdog, without the GIL) within 2 x after_ms of the stall's start;
    # the callback itself had to wait for the GIL.
    assert first.detected_at - stall["start"] < 2 * AFTER_MS / 1000
    assert first.detected_at < stall["end"]
    names = frame_names(first)
    assert "regex_stall" in names and "crunch" in names, names
    assert names.index("regex_stall") < names.index("crunch")  # innermost first
    assert first.coroutine and first.coroutine.endswith("crunch")
    # Named only if the task is still the one on the stack once the GIL was free.
    assert first.task_name in (None, "cruncher")
    assert first.on_cpu is not False


CHILD = """
import asyncio, re, sys, time
import aiocop

def crunch():
    re.match(r"(a+)+$", "a" * {regex_n} + "b")

async def handler():
    print("stalling", flush=True)
    crunch()

async def main():
    aiocop.activate()
    await asyncio.sleep(0)
    await asyncio.create_task(handler())

aiocop.start_blocking_io_detection()
aiocop.detect_slow_tasks(threshold_ms=30)
aiocop.detect_stuck_loops(after_ms={after_ms}, report_path=sys.argv[1])
{run}
"""


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_another_process_reads_the_report_while_the_gil_is_held(tmp_path, loop_kind):
    if loop_kind == "uvloop":
        pytest.importorskip("uvloop")
        run = "import uvloop; uvloop.run(main())"
    else:
        run = "asyncio.run(main())"
    path = tmp_path / "stuck.jsonl"
    code = textwrap.dedent(CHILD).format(after_ms=AFTER_MS, run=run, regex_n=27)
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "stalling", child.stderr and child.stderr.read()
        started = time.monotonic()
        line = ""
        while time.monotonic() - started < 10:
            text = path.read_text() if path.exists() else ""
            if text.endswith("\n"):
                line = text.splitlines()[0]
                break
            time.sleep(0.01)
        seen_after = time.monotonic() - started
        still_stuck = child.poll() is None
    finally:
        child.kill()
        child.communicate()
    assert line, "no report written"
    assert still_stuck, "the child's stall was over before its report was read"
    assert seen_after < 2 * AFTER_MS / 1000 + 0.2
    report = json.loads(line)
    assert report["pid"] == child.pid
    assert report["report_number"] == 1
    assert report["stuck_ms"] >= AFTER_MS
    functions = [frame["function"] for frame in report["stack"]]
    assert "crunch" in functions and "handler" in functions, functions
    assert all(frame["native"] is False for frame in report["stack"])
    assert report["coroutine"] == "handler"
    assert isinstance(report["thread_id"], int)
    assert report["on_cpu"] is not False


def test_with_native_frames_a_stuck_regex_shows_the_sre_frames_under_it(tmp_path):
    """With native frames asked for (``AIOCOP_NATIVE_FRAMES=1``), a report of a loop stuck in
    a regex (on CPU, the GIL held) has the C functions of ``_sre`` under the Python frame that
    called it, marked ``native``; the coroutine is still the Python one."""
    path = tmp_path / "stuck.jsonl"
    # A stall long enough to outlast the native frames' warm-up (seconds on a cold machine,
    # loading CPython's debug information); the child is killed at the first report with them.
    code = textwrap.dedent(CHILD).format(after_ms=AFTER_MS, run="asyncio.run(main())", regex_n=31)
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "AIOCOP_NATIVE_FRAMES": "1"},
    )
    reports: list = []
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "stalling", child.stderr and child.stderr.read()
        started = time.monotonic()
        # The first report may come before the native-frame warm-up is over: wait for one with.
        while time.monotonic() - started < 60 and child.poll() is None:
            text = path.read_text() if path.exists() else ""
            reports = [json.loads(line) for line in text.splitlines() if line.endswith("}")]
            if any(frame["native"] for report in reports for frame in report["stack"]):
                break
            time.sleep(0.02)
    finally:
        child.kill()
        child.communicate()
    with_native = [r for r in reports if any(frame["native"] for frame in r["stack"])]
    assert with_native, reports
    stack = with_native[0]["stack"]
    natives = [frame for frame in stack if frame["native"]]
    assert stack[: len(natives)] == natives, stack  # innermost first, under the Python frames
    assert any("sre" in frame["function"].lower() for frame in natives), natives
    python = [frame["function"] for frame in stack[len(natives) :]]
    assert python[:2] == ["match", "crunch"], python  # re.match, called by crunch
    assert with_native[0]["coroutine"] == "handler"


def test_report_path_gets_one_json_line_per_report(tmp_path, loop_kind):
    path = tmp_path / "reports.jsonl"
    aiocop.detect_stuck_loops(after_ms=AFTER_MS, report_path=path)
    try:
        before = aiocop.stats()["stuck_loop_reports"]

        async def body() -> None:
            time.sleep(0.5)

        run_monitored(body, loop_kind)
        lines = path.read_text().splitlines()
    finally:
        aiocop.stop_detecting_stuck_loops()
    reports = [json.loads(line) for line in lines]
    assert [r["report_number"] for r in reports] == [1, 2]
    assert aiocop.stats()["stuck_loop_reports"] - before == 2
    assert reports[0]["blocked_in"] in SLEEP_CALLS


def test_stop_detecting_stops_reports(loop_kind):
    reports = Reports()
    aiocop.detect_stuck_loops(after_ms=100, on_stuck_loop=reports)
    aiocop.stop_detecting_stuck_loops()
    before = aiocop.stats()["stuck_loop_reports"]

    async def body() -> None:
        time.sleep(0.3)  # reports due at 100 and 200 ms (the next at 400)

    monitored = run_monitored(body, loop_kind)
    time.sleep(0.1)
    assert reports.events == []
    assert aiocop.stats()["stuck_loop_reports"] == before
    assert all(e.stuck_reports == 0 for e in monitored.events)
    # And it can be started again.
    aiocop.detect_stuck_loops(after_ms=100, on_stuck_loop=reports)
    try:
        run_monitored(body, loop_kind)
        assert [e.report_number for e in reports.wait_for(2)] == [1, 2]
    finally:
        aiocop.stop_detecting_stuck_loops()


def test_a_loop_on_another_thread_is_reported(stuck, loop_kind):
    seen: dict[str, int] = {}

    async def body() -> None:
        seen["thread"] = threading.get_ident()
        time.sleep(0.3)

    thread = threading.Thread(target=run_monitored, args=(body, loop_kind))
    thread.start()
    thread.join()
    events = stuck.wait_for(1)
    assert events and events[0].thread_id == seen["thread"] != threading.get_ident()


def test_a_failing_callback_is_logged_and_detection_goes_on(loop_kind, caplog):
    calls: list[Any] = []

    def broken(event: Any) -> None:
        calls.append(event)
        raise RuntimeError("boom")

    aiocop.detect_stuck_loops(after_ms=100, on_stuck_loop=broken)
    try:

        async def body() -> None:
            time.sleep(0.3)

        with caplog.at_level(logging.WARNING, logger="aiocop"):
            run_monitored(body, loop_kind)
            deadline = time.monotonic() + 3
            while len(calls) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        aiocop.stop_detecting_stuck_loops()
    assert [e.report_number for e in calls] == [1, 2]
    assert any("boom" in r.getMessage() for r in caplog.records)


def test_a_repeat_call_warns_and_keeps_the_first(caplog):
    aiocop.detect_stuck_loops(after_ms=500)
    try:
        with caplog.at_level(logging.WARNING, logger="aiocop"):
            aiocop.detect_stuck_loops(after_ms=100)
        assert any("detect_stuck_loops called more than once" in r.getMessage() for r in caplog.records)
    finally:
        aiocop.stop_detecting_stuck_loops()


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"after_ms": 0}, ValueError, "after_ms"),
        ({"after_ms": -5}, ValueError, "after_ms"),
        ({"after_ms": float("nan")}, ValueError, "after_ms"),
        ({"after_ms": "100"}, TypeError, "after_ms"),
        ({"after_ms": True}, TypeError, "after_ms"),
        ({"after_ms": None}, TypeError, "after_ms"),
        ({"on_stuck_loop": 42}, TypeError, "on_stuck_loop"),
        ({"on_stuck_loop": "print"}, TypeError, "on_stuck_loop"),
        ({"report_path": "/nonexistent-aiocop-dir/stuck.jsonl"}, ValueError, "report_path"),
        ({"report_path": 3.5}, TypeError, "report_path"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        aiocop.detect_stuck_loops(**kwargs)
    # Nothing was started: a good call works (and is stopped).
    aiocop.detect_stuck_loops(after_ms=1000)
    aiocop.stop_detecting_stuck_loops()


def test_a_directory_is_not_a_report_path(tmp_path: Path):
    with pytest.raises(ValueError, match="report_path"):
        aiocop.detect_stuck_loops(report_path=tmp_path)


def test_the_types_and_defaults():
    import inspect

    params = inspect.signature(aiocop.detect_stuck_loops).parameters
    assert {k: p.default for k, p in params.items()} == {
        "after_ms": 1000,
        "on_stuck_loop": None,
        "report_path": None,
    }
    frame = aiocop.StuckFrame("/app/a.py", 3, "f")
    assert (frame.file, frame.line, frame.function, frame.qualname, frame.native) == ("/app/a.py", 3, "f", "f", False)
    assert "stuck_loop_reports" in aiocop.stats()
    assert "stuck_reports" in [f.name for f in __import__("dataclasses").fields(aiocop.SlowTaskEvent)]


def test_a_busy_python_loop_is_reported_with_its_function(stuck, loop_kind):
    from conftest import busy_wait

    async def spinning() -> None:
        busy_wait(0.6)

    async def body() -> None:
        await asyncio.create_task(spinning(), name="spinner")

    run_monitored(body, loop_kind)
    events = stuck.wait_for(2)
    assert [e.report_number for e in events[:2]] == [1, 2]
    # Python code runs, so the stack moves under the GIL-free reader: read again, or the
    # sampler's last sample of the handle.
    assert "busy_wait" in frame_names(events[0]), frame_names(events[0])
    assert events[0].task_name == "spinner"


def test_a_plain_callback_is_named_by_its_qualname(stuck, loop_kind):
    """A callback that is no task's step is named from the stack: the frame just inside the
    loop's code (asyncio's ``Handle._run``; on uvloop, which runs handles from C, the runner that
    called the loop: ``asyncio.run``/``asyncio.Runner`` or ``uvloop.run``)."""
    factory = new_loop_factory(loop_kind)

    async def main() -> None:
        aiocop.activate()
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def stalling_callback() -> None:
            time.sleep(0.3)
            done.set_result(None)

        loop.call_soon(stalling_callback)
        await done

    run_in_runner(factory, main())
    events = stuck.wait_for(1)
    assert events
    assert events[0].task_name is None
    # The qualified name where the interpreter has one (co_qualname, 3.11+).
    expected = "main.<locals>.stalling_callback" if sys.version_info >= (3, 11) else "stalling_callback"
    assert events[0].coroutine and events[0].coroutine.endswith(expected)
    assert "stalling_callback" in frame_names(events[0])


def run_in_runner(factory: Any, coro: Any) -> None:
    """Runs `coro` the way applications do: ``asyncio.Runner`` (3.11+), else ``asyncio.run``
    with a policy whose new loops come from `factory` (3.10)."""
    if hasattr(asyncio, "Runner"):
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(coro)
        return

    if factory is asyncio.new_event_loop:
        asyncio.run(coro)
        return

    class Policy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return factory()

    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(Policy())
    try:
        asyncio.run(coro)
    finally:
        asyncio.set_event_loop_policy(previous)


def new_loop_factory(loop_kind: str) -> Any:
    if loop_kind == "uvloop":
        return pytest.importorskip("uvloop").new_event_loop
    return asyncio.new_event_loop


def test_a_forked_child_goes_on_detecting(tmp_path):
    from conftest import describe, run_python

    path = tmp_path / "stuck.jsonl"
    proc = run_python(
        f"""
        import asyncio, json, os, threading, time
        import aiocop

        got = []
        aiocop.start_blocking_io_detection()
        aiocop.detect_slow_tasks(threshold_ms=30)
        aiocop.detect_stuck_loops(after_ms=100, on_stuck_loop=got.append, report_path={str(path)!r})

        async def main():
            aiocop.activate()
            await asyncio.sleep(0)
            time.sleep(0.3)

        pid = os.fork()
        if pid == 0:
            asyncio.run(main())
            deadline = time.monotonic() + 3
            while len(got) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            print(json.dumps([e.report_number for e in got]), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        print(pid)
        """
    )
    assert proc.returncode == 0, describe(proc)
    numbers, child = proc.stdout.splitlines()
    assert json.loads(numbers) == [1, 2], describe(proc)
    reports = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["pid"], r["report_number"]) for r in reports] == [(int(child), 1), (int(child), 2)]


def test_without_cpu_sampling_the_watchdog_reports_but_takes_no_samples():
    from conftest import describe, run_python

    proc = run_python(
        """
        import asyncio, json, re, time
        import aiocop

        got, slow = [], []
        aiocop.start_blocking_io_detection()
        aiocop.detect_slow_tasks(threshold_ms=30, on_slow_task=slow.append, cpu_sampling=False)
        aiocop.detect_stuck_loops(after_ms=100, on_stuck_loop=got.append)

        def crunch():
            re.match(r"(a+)+$", "a" * 24 + "b")

        async def main():
            aiocop.activate()
            await asyncio.sleep(0)
            start = time.monotonic()
            crunch()
            await asyncio.sleep(0)
            aiocop.flush()
            return start

        start = asyncio.run(main())
        deadline = time.monotonic() + 3
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        cpu = [e for e in slow if e.reason == "cpu_blocking" and e.stuck_reports]
        print(json.dumps({
            "sampling": aiocop.is_cpu_sampling_started(),
            "within": got[0].detected_at - start,
            "stack": [f.function for f in got[0].stack],
            "samples": [len(e.cpu_stack_samples) for e in cpu],
            "cpu_ms": [e.cpu_ms for e in cpu],
        }))
        """
    )
    assert proc.returncode == 0, describe(proc)
    seen = json.loads(proc.stdout)
    assert seen["sampling"] is False
    assert seen["within"] < 0.2
    assert "crunch" in seen["stack"], seen
    assert seen["samples"] == [0] and seen["cpu_ms"] == [None], seen
