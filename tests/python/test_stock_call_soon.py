"""On a stock asyncio loop, the monitored `call_soon` does asyncio's own steps itself (closed
check, `events.Handle`, append to `_ready`) instead of calling the Python method; what the
caller and the loop see is the same as with the stock method, and anything else (debug mode, a
closed loop, a loop class or instance with its own `call_soon`, `_call_soon` or
`_check_closed`) goes through the loop's own method."""

from __future__ import annotations

import asyncio
import asyncio.events
import contextvars
import os
import sys
import threading
from typing import Any, Callable

import pytest

import aiocop
from conftest import run_monitored

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="default")


def on_patched_loop(body: Callable[[asyncio.AbstractEventLoop], Any], loop=None) -> Any:
    """Runs `body(loop)` inside a running asyncio loop patched by `aiocop.activate()`."""

    async def main() -> Any:
        running = asyncio.get_running_loop()
        aiocop.activate()
        return body(running)

    loop = loop or asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        aiocop.deactivate()
        loop.close()


def test_returns_a_stock_handle_appended_to_ready():
    calls = []

    def body(loop):
        before = len(loop._ready)
        handle = loop.call_soon(calls.append, "x")
        assert type(handle) is asyncio.events.Handle
        assert handle._loop is loop
        assert handle._args == ()  # the arguments travel in the monitored callback
        assert len(loop._ready) == before + 1
        assert loop._ready[-1] is handle
        assert handle._source_traceback is None
        assert not handle.cancelled()
        return handle

    handle = on_patched_loop(body)
    assert calls == ["x"]
    assert "calls.append" in repr(handle) or "append" in repr(handle)


def test_context_is_the_given_one_or_a_copy_of_the_current():
    seen = []

    def body(loop):
        ctx = contextvars.copy_context()
        ctx.run(var.set, "given")
        given = loop.call_soon(lambda: seen.append(var.get()), context=ctx)
        assert given._context is ctx
        var.set("current")
        copied = loop.call_soon(lambda: seen.append(var.get()))
        assert isinstance(copied._context, contextvars.Context)
        assert copied._context is not ctx

    on_patched_loop(body)
    assert seen == ["given", "current"]


def test_cancelled_handle_does_not_run():
    calls = []

    def body(loop):
        loop.call_soon(calls.append, "cancelled").cancel()
        loop.call_soon(calls.append, "ran")

    on_patched_loop(body)
    assert calls == ["ran"]


def caller_line_of(handle) -> tuple[str, int]:
    frame = handle._source_traceback[-1]
    return frame.name, frame.lineno


def schedule_here(loop):
    return loop.call_soon(lambda: None), sys._getframe().f_lineno


def test_debug_mode_runs_asyncios_own_checks():
    """In debug mode the loop's own `call_soon` runs: its checks apply and the handle's
    traceback ends at the line that called `call_soon`, as without a monitor."""

    def body(loop):
        loop.set_debug(True)
        handle, line = schedule_here(loop)
        assert caller_line_of(handle) == ("schedule_here", line)
        errors = []

        def from_another_thread():
            try:
                loop.call_soon(lambda: None)
            except RuntimeError as exc:
                errors.append(str(exc))

        thread = threading.Thread(target=from_another_thread)
        thread.start()
        thread.join()
        assert len(errors) == 1 and "Non-thread-safe operation" in errors[0]
        loop.set_debug(False)
        assert loop.call_soon(lambda: None)._source_traceback is None

    on_patched_loop(body)

    unpatched = asyncio.new_event_loop()
    try:
        unpatched.set_debug(True)
        handle, line = schedule_here(unpatched)
        assert caller_line_of(handle) == ("schedule_here", line)
    finally:
        unpatched.close()


def test_closed_loop_raises_the_stock_error():
    loop = asyncio.new_event_loop()
    patched = []

    async def main():
        aiocop.activate()
        patched.append(loop.call_soon)

    try:
        loop.run_until_complete(main())
    finally:
        aiocop.deactivate()
        loop.close()
    assert loop.call_soon is patched[0]  # still the monitored replacement
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon(lambda: None)


class OwnCallSoonLoop(asyncio.SelectorEventLoop):
    seen: list[str] = []  # class-level: `__init__` already calls `_check_closed`

    def _call_soon(self, callback, args, context):
        self.seen.append("_call_soon")
        return super()._call_soon(callback, args, context)

    def _check_closed(self):
        self.seen.append("_check_closed")
        super()._check_closed()


def test_a_loop_class_with_its_own_steps_gets_them_called():
    loop = OwnCallSoonLoop()

    def body(running):
        running.seen.clear()
        running.call_soon(lambda: None)
        return list(running.seen)

    assert on_patched_loop(body, loop) == ["_check_closed", "_call_soon"]


def test_an_instance_with_its_own_step_gets_it_called():
    loop = asyncio.new_event_loop()
    seen = []
    stock = loop._call_soon

    def own(callback, args, context):
        seen.append(callback)
        return stock(callback, args, context)

    loop._call_soon = own

    def body(running):
        seen.clear()
        running.call_soon(lambda: None)
        return len(seen)

    assert on_patched_loop(body, loop) == 1


def test_callbacks_scheduled_by_tasks_are_still_monitored(tmp_path):
    """Tasks schedule their steps through the loop's `call_soon`: an IO call in a task step
    scheduled this way is still recorded."""

    async def body():
        await asyncio.sleep(0)
        os.stat(tmp_path)
        await asyncio.sleep(0)

    result = run_monitored(body, "asyncio")
    assert len(result.records("os.stat")) == 1
