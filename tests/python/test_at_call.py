"""raise_on_violations(at_call=True): BlockingCallError at the blocking call, which does not happen.

Each blocking call under test carries a ``# at-call:<name>`` marker comment; the test checks that
the traceback's last frame in this file is that very line. Tracebacks are read after the loop
has finished (reading a traceback opens the source file: inside the scope that would be a
blocking call too).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import subprocess
import threading
import time
import traceback
from pathlib import Path

import pytest

import aiocop

from conftest import close_loop, entry_function, new_loop, run_monitored

_SOURCE_LINES = Path(__file__).read_text().splitlines()


def line_of(marker: str) -> int:
    """The line number of the line ending with ``# at-call:<marker>``."""
    tag = f"# at-call:{marker}"
    found = [n for n, text in enumerate(_SOURCE_LINES, start=1) if text.rstrip().endswith(tag)]
    assert len(found) == 1, f"marker {tag!r} found {len(found)} times"
    return found[0]


def last_frame_here(exc: BaseException) -> traceback.FrameSummary:
    """The innermost traceback frame of ``exc`` that is in this file."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == __file__]
    assert frames, traceback.format_exception(exc)
    return frames[-1]


def assert_raised_at(exc: BaseException, marker: str, function: str) -> None:
    frame = last_frame_here(exc)
    assert (frame.lineno, frame.name) == (line_of(marker), function), (
        "".join(traceback.format_exception(exc))
    )


@pytest.fixture(autouse=True)
def no_allow_rules():
    aiocop.clear_allow_rules()
    yield
    aiocop.clear_allow_rules()


# --------------------------------------------------------------------------- the call is stopped


def test_open_for_writing_raises_at_the_call_and_creates_nothing(loop_kind, tmp_path):
    target = tmp_path / "must-not-exist.txt"

    async def body():
        with aiocop.raise_on_violations(at_call=True):
            with open(target, "w") as f:  # at-call:open-w
                f.write("never")
        return "not reached"

    with pytest.raises(aiocop.BlockingCallError) as info:
        run_monitored(body, loop_kind)
    exc = info.value
    assert_raised_at(exc, "open-w", "body")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    assert exc.event_name == "open"
    assert exc.event.startswith(f"open({target}, w, ")
    assert exc.severity == 10


def test_time_sleep_raises_at_the_call(loop_kind):
    async def body():
        with aiocop.raise_on_violations(at_call=True):
            time.sleep(0.001)  # at-call:sleep
        return "not reached"

    with pytest.raises(aiocop.BlockingCallError) as info:
        run_monitored(body, loop_kind)
    exc = info.value
    assert_raised_at(exc, "sleep", "body")
    assert exc.event_name == "time.sleep"
    assert exc.event == "time.sleep(0.001)"
    assert exc.severity == 50
    assert exc.severity_level == "high"


@pytest.fixture
def listener():
    """A listening TCP socket nobody accepts on (made outside any monitored handle)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock
    sock.close()


def assert_nobody_connected(listener: socket.socket) -> None:
    listener.settimeout(0.2)
    with pytest.raises(TimeoutError):
        conn, _ = listener.accept()
        conn.close()


def test_create_connection_raises_and_connects_nothing(loop_kind, listener):
    address = listener.getsockname()
    made = []

    async def body():
        with aiocop.raise_on_violations(at_call=True):
            made.append(socket.create_connection(address, timeout=1))  # at-call:create-connection
        return "not reached"

    with pytest.raises(aiocop.BlockingCallError) as info:
        run_monitored(body, loop_kind)
    exc = info.value
    assert made == []
    assert_raised_at(exc, "create-connection", "body")
    # create_connection resolves the address first (getaddrinfo) and then connects: whichever
    # comes first is stopped, both weigh 50.
    assert exc.event_name in {"socket.getaddrinfo", "socket.socket.connect"}
    assert exc.severity == 50
    assert_nobody_connected(listener)


def test_socket_connect_raises_and_connects_nothing(loop_kind, listener):
    address = listener.getsockname()
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    async def body():
        with aiocop.raise_on_violations(at_call=True):
            client.connect(address)  # at-call:connect
        return "not reached"

    try:
        with pytest.raises(aiocop.BlockingCallError) as info:
            run_monitored(body, loop_kind)
        exc = info.value
        assert_raised_at(exc, "connect", "body")
        assert exc.event_name == "socket.socket.connect"
        assert exc.severity == 50
        with pytest.raises(OSError):
            client.getpeername()  # not connected
        assert_nobody_connected(listener)
    finally:
        client.close()


def test_subprocess_raises_and_the_process_never_starts(loop_kind, tmp_path):
    touched = tmp_path / "touched"

    async def body():
        with aiocop.raise_on_violations(at_call=True):
            subprocess.run(["touch", str(touched)], check=True)  # at-call:subprocess
        return "not reached"

    with pytest.raises(aiocop.BlockingCallError) as info:
        run_monitored(body, loop_kind)
    exc = info.value
    assert_raised_at(exc, "subprocess", "body")
    assert exc.event_name == "subprocess.Popen"
    assert exc.severity == 50
    # the command works (it is the call that was stopped, not a broken command)
    assert not touched.exists()
    subprocess.run(["touch", str(touched)], check=True)
    assert touched.exists()


def test_call_in_a_helper_function_raises_in_the_helper(loop_kind, tmp_path):
    target = tmp_path / "helper.txt"

    def write_it():
        with open(target, "w") as f:  # at-call:helper
            f.write("x")

    async def body():
        with aiocop.raise_on_violations(at_call=True):
            write_it()

    with pytest.raises(aiocop.BlockingCallError) as info:
        run_monitored(body, loop_kind)
    exc = info.value
    assert_raised_at(exc, "helper", "write_it")
    assert entry_function(exc.events[0]) == "write_it"
    assert exc.entry_point == f"{__file__}:{line_of('helper')}:write_it"
    assert not target.exists()


# --------------------------------------------------------------------------- the exception


def test_exception_attributes(loop_kind, tmp_path):
    target = tmp_path / "attrs.txt"
    caught = []

    async def opener():
        with aiocop.raise_on_violations(at_call=True):
            try:
                open(target, "w")  # at-call:attrs
            except aiocop.BlockingCallError as exc:
                caught.append(exc)

    async def body():
        await asyncio.create_task(opener(), name="attr-task")

    run_monitored(body, loop_kind)
    assert len(caught) == 1
    exc = caught[0]
    line = line_of("attrs")
    assert isinstance(exc, aiocop.BlockingCallError)
    assert isinstance(exc, aiocop.HighSeverityBlockingIoException)
    assert isinstance(exc, Exception)
    assert exc.event_name == "open"
    assert exc.event.startswith(f"open({target}, w, ") and exc.event.endswith(")")
    assert exc.severity == aiocop.WEIGHT_MODERATE
    assert exc.entry_point == f"{__file__}:{line}:opener"
    frames = exc.trace.split(" <- ")
    assert frames[0] == exc.entry_point
    assert exc.task_name == "attr-task"
    assert exc.coroutine == opener.__qualname__
    assert exc.suggested_rule == f"event=open,function={__name__}.{opener.__qualname__}"
    # the user's call site, and the trace the message shows: it ends at the user's outermost
    # frame of the call (asyncio's loop and whoever runs it are left out; uvloop's loop has no
    # frames of its own, so there the trace goes on to this test's call of the loop)
    assert exc.site == exc.entry_point
    assert exc.trace.startswith(exc.user_trace)
    if loop_kind == "asyncio":
        assert exc.user_trace == exc.entry_point
        assert "run_monitored" in exc.trace and "run_monitored" not in str(exc)
    # the HighSeverityBlockingIoException side
    assert exc.severity_score == 10
    assert exc.severity_level == "medium"
    assert exc.events == [
        {
            "event": exc.event,
            "trace": exc.trace,
            "entry_point": exc.entry_point,
            "severity": 10,
            "task_name": "attr-task",
            "coroutine": opener.__qualname__,
            "event_name": "open",
            "site": exc.site,
            "user_trace": exc.user_trace,
            "suggested_rule": exc.suggested_rule,
            "origin": "first-party",
            "distribution": None,
            "distribution_version": None,
            "site_key": exc.site_key,
        }
    ]
    assert exc.site_key == f"{__name__}:{opener.__qualname__}"
    message = str(exc)
    assert exc.event in message
    assert exc.entry_point in message
    assert "attr-task" in message
    assert exc.suggested_rule in message
    # and it survives pickling (pytest-xdist, multiprocessing)
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is aiocop.BlockingCallError
    for attr in ("event_name", "event", "severity", "trace", "entry_point", "task_name",
                 "coroutine", "suggested_rule", "site", "user_trace"):
        assert getattr(clone, attr) == getattr(exc, attr), attr
    assert str(clone) == message


def test_caught_error_lets_the_coroutine_go_on(loop_kind, tmp_path):
    target = tmp_path / "later.txt"

    async def body():
        with aiocop.raise_on_violations(at_call=True):
            for _ in range(3):
                try:
                    open(target, "w")  # at-call:repeat
                except aiocop.BlockingCallError:
                    pass
                await asyncio.sleep(0)
        await asyncio.sleep(0)
        target.write_text("after")
        return "went on"

    result = run_monitored(body, loop_kind)
    assert result.value == "went on"
    assert target.read_text() == "after"


def test_uncaught_error_fails_the_task_only(loop_kind, tmp_path):
    target = tmp_path / "task.txt"

    async def child():
        with aiocop.raise_on_violations(at_call=True):
            open(target, "w")  # at-call:task

    async def body():
        task = asyncio.create_task(child(), name="failing-child")
        await asyncio.gather(task, return_exceptions=True)
        return task.exception()

    result = run_monitored(body, loop_kind)
    exc = result.value
    assert isinstance(exc, aiocop.BlockingCallError)
    assert exc.task_name == "failing-child"
    assert_raised_at(exc, "task", "child")
    assert not target.exists()


# --------------------------------------------------------------------------- scope


def test_a_concurrent_task_is_not_affected(loop_kind, tmp_path):
    strict_path = tmp_path / "strict.txt"
    relaxed_path = tmp_path / "relaxed.txt"

    async def body():
        scope_entered = asyncio.Event()
        relaxed_done = asyncio.Event()

        async def strict():
            with aiocop.raise_on_violations(at_call=True):
                scope_entered.set()
                await relaxed_done.wait()
                try:
                    open(strict_path, "w")  # at-call:strict
                except aiocop.BlockingCallError as exc:
                    return exc
            return None

        async def relaxed():
            await scope_entered.wait()  # strict's scope is open while this runs
            with open(relaxed_path, "w") as f:
                f.write("relaxed")
            relaxed_done.set()
            return "relaxed done"

        return await asyncio.gather(
            asyncio.create_task(strict(), name="strict"),
            asyncio.create_task(relaxed(), name="relaxed"),
        )

    result = run_monitored(body, loop_kind)
    strict_exc, relaxed_value = result.value
    assert isinstance(strict_exc, aiocop.BlockingCallError)
    assert strict_exc.task_name == "strict"
    assert not strict_path.exists()
    assert relaxed_value == "relaxed done"
    assert relaxed_path.read_text() == "relaxed"
    relaxed_records = [r for r in result.records("open") if entry_function(r) == "relaxed"]
    assert len(relaxed_records) == 1, result.records()
    assert relaxed_records[0]["event"].startswith(f"open({relaxed_path}, w, ")
    assert relaxed_records[0]["task_name"] == "relaxed"


def test_a_task_created_inside_the_scope_inherits_it(loop_kind, tmp_path):
    target = tmp_path / "child.txt"

    async def child():
        open(target, "w")  # at-call:inherited

    async def body():
        with aiocop.raise_on_violations(at_call=True):
            task = asyncio.create_task(child(), name="inheriting-child")
        # the scope is closed here, but the task copied the context when it was created
        await asyncio.gather(task, return_exceptions=True)
        return task.exception()

    result = run_monitored(body, loop_kind)
    assert isinstance(result.value, aiocop.BlockingCallError)
    assert_raised_at(result.value, "inherited", "child")
    assert not target.exists()


def test_nothing_raises_outside_the_scope(loop_kind, tmp_path):
    before = tmp_path / "before.txt"
    inside = tmp_path / "inside.txt"
    after = tmp_path / "after.txt"

    async def body():
        with open(before, "w") as f:
            f.write("before")
        with aiocop.raise_on_violations(at_call=True):
            with pytest.raises(aiocop.BlockingCallError):
                open(inside, "w")
        with open(after, "w") as f:
            f.write("after")
        time.sleep(0.001)
        await asyncio.sleep(0)
        return "ok"

    result = run_monitored(body, loop_kind)
    assert result.value == "ok"
    assert before.read_text() == "before"
    assert not inside.exists()
    assert after.read_text() == "after"
    opened = [r["event"] for r in result.records("open")]
    assert any(e.startswith(f"open({before}, w, ") for e in opened), opened
    assert any(e.startswith(f"open({after}, w, ") for e in opened), opened
    assert [r["event"] for r in result.records("time.sleep")] == ["time.sleep(0.001)"]


def test_enable_and_disable_functions(loop_kind, tmp_path):
    first = tmp_path / "first.txt"
    second = tmp_path / "second.txt"

    async def body():
        aiocop.enable_raise_on_violations(at_call=True)
        assert aiocop.is_raise_on_violations_enabled() is True
        with pytest.raises(aiocop.BlockingCallError):
            open(first, "w")
        aiocop.disable_raise_on_violations()
        assert aiocop.is_raise_on_violations_enabled() is False
        open(second, "w").close()
        return "ok"

    assert run_monitored(body, loop_kind).value == "ok"
    assert not first.exists()
    assert second.exists()


def test_inner_scope_without_at_call_suspends_it(loop_kind, tmp_path):
    inner = tmp_path / "inner.txt"
    outer = tmp_path / "outer.txt"

    async def body():
        with aiocop.raise_on_violations(at_call=True):
            with aiocop.raise_on_violations():  # after-the-handle only
                open(inner, "w").close()
            with pytest.raises(aiocop.BlockingCallError):
                open(outer, "w")  # the outer scope is back
        return "ok"

    assert run_monitored(body, loop_kind).value == "ok"
    assert inner.exists()
    assert not outer.exists()


def test_not_raised_without_a_monitored_handle(loop_kind, tmp_path):
    target = tmp_path / "deactivated.txt"

    async def body():
        aiocop.deactivate()
        await asyncio.sleep(0)
        with aiocop.raise_on_violations(at_call=True):
            with open(target, "w") as f:
                f.write("fine")
        return "ok"

    assert run_monitored(body, loop_kind).value == "ok"
    assert target.read_text() == "fine"


def test_not_raised_in_plain_synchronous_code(tmp_path):
    target = tmp_path / "sync.txt"
    with aiocop.raise_on_violations(at_call=True):
        with open(target, "w") as f:
            f.write("sync")
        time.sleep(0.001)
    assert target.read_text() == "sync"


def test_not_raised_in_a_worker_thread(loop_kind, tmp_path):
    """asyncio.to_thread copies the context (the scope is set there) but the worker thread is
    not a monitored handle: offloading is the fix, so it must not raise."""
    target = tmp_path / "thread.txt"

    def write_it():
        with open(target, "w") as f:
            f.write("thread")
        time.sleep(0.001)
        return "written"

    async def body():
        with aiocop.raise_on_violations(at_call=True):
            return await asyncio.to_thread(write_it)

    assert run_monitored(body, loop_kind).value == "written"
    assert target.read_text() == "thread"


def test_raises_on_a_loop_in_another_thread(loop_kind, tmp_path):
    target = tmp_path / "threaded-loop.txt"
    outcome = []

    async def main():
        aiocop.activate()
        await asyncio.sleep(0)
        with aiocop.raise_on_violations(at_call=True):
            try:
                open(target, "w")  # at-call:thread-loop
            except aiocop.BlockingCallError as exc:
                outcome.append(exc)
        await asyncio.sleep(0)

    def run():
        loop = new_loop(loop_kind)
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome.append(exc)
        finally:
            close_loop(loop)

    thread = threading.Thread(target=run, name="loop-thread")
    thread.start()
    thread.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], aiocop.BlockingCallError), outcome
    assert_raised_at(outcome[0], "thread-loop", "main")
    assert not target.exists()


# --------------------------------------------------------------------------- min_weight


def test_calls_below_min_weight_are_not_raised_but_reported(loop_kind, tmp_path):
    target = tmp_path / "stat.txt"
    target.write_text("x")

    async def body():
        with aiocop.raise_on_violations(at_call=True):  # min_weight=10
            size = os.stat(target).st_size  # weight 1
        return size

    result = run_monitored(body, loop_kind)
    assert result.value == 1
    stats = [r for r in result.records("os.stat") if entry_function(r) == "body"]
    assert len(stats) == 1
    assert stats[0]["severity"] == 1


@pytest.mark.parametrize(
    ("min_weight", "raised"),
    [(0, {"os.stat", "open", "time.sleep"}),
     (1, {"os.stat", "open", "time.sleep"}),
     (2, {"open", "time.sleep"}),
     (10, {"open", "time.sleep"}),
     (11, {"time.sleep"}),
     (50, {"time.sleep"}),
     (51, set())],
)
def test_min_weight(loop_kind, tmp_path, min_weight, raised):
    target = tmp_path / "weights.txt"
    target.write_text("x")

    async def body():
        stopped = set()
        with aiocop.raise_on_violations(at_call=True, min_weight=min_weight):
            for name, call in (
                ("os.stat", lambda: os.stat(target)),
                ("open", lambda: open(target).close()),
                ("time.sleep", lambda: time.sleep(0.001)),
            ):
                try:
                    call()
                except aiocop.BlockingCallError as exc:
                    assert exc.event_name == name
                    stopped.add(name)
        return stopped

    assert run_monitored(body, loop_kind).value == raised


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("kwargs", "error", "word"),
    [
        ({"at_call": "yes"}, TypeError, "at_call"),
        ({"at_call": 1}, TypeError, "at_call"),
        ({"min_weight": -1}, ValueError, "min_weight"),
        ({"min_weight": 1.5}, TypeError, "min_weight"),
        ({"min_weight": True}, TypeError, "min_weight"),
        ({"mode": "loud"}, ValueError, "loud"),
    ],
)
@pytest.mark.parametrize("api", ["context_manager", "enable"])
def test_bad_arguments(api, kwargs, error, word):
    with pytest.raises(error, match=word):
        if api == "context_manager":
            aiocop.raise_on_violations(**kwargs)
        else:
            aiocop.enable_raise_on_violations(**kwargs)
    # a rejected call changed nothing
    assert aiocop.is_raise_on_violations_enabled() is False
