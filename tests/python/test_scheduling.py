"""Monitoring wraps call_soon/call_later/call_at/call_soon_threadsafe without
changing callbacks' results, exceptions or contextvars."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading

import pytest

import aiocop
from conftest import assert_record, new_loop, run_monitored

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="default")


def stat_in_callback(path, done):
    os.stat(path)
    done.set_result(None)


def run_on_new_asyncio_loop(main):
    """Runs ``main()`` on a new asyncio loop, then deactivates monitoring and closes the loop."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        aiocop.deactivate()
        loop.close()


def test_call_soon_callback_is_monitored(loop_kind, tmp_path):
    async def body():
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.call_soon(stat_in_callback, tmp_path, done)
        await done

    result = run_monitored(body, loop_kind)
    assert_record(result, "os.stat", 1, "stat_in_callback", entry=True)


def test_call_later_and_call_at_callbacks_are_monitored(loop_kind, tmp_path):
    async def body():
        loop = asyncio.get_running_loop()
        f1, f2 = loop.create_future(), loop.create_future()
        loop.call_later(0.001, stat_in_callback, tmp_path, f1)
        loop.call_at(loop.time() + 0.002, stat_in_callback, tmp_path, f2)
        await asyncio.gather(f1, f2)

    result = run_monitored(body, loop_kind)
    recs = result.records("os.stat")
    assert len(recs) == 2
    assert all(r["entry_point"].endswith(":stat_in_callback") for r in recs)


def test_call_soon_threadsafe_callback_is_monitored(loop_kind, tmp_path):
    async def body():
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        t = threading.Thread(target=lambda: loop.call_soon_threadsafe(stat_in_callback, tmp_path, done))
        t.start()
        await done
        t.join()

    result = run_monitored(body, loop_kind)
    assert_record(result, "os.stat", 1, "stat_in_callback", entry=True)


def test_callback_exception_reaches_loop_exception_handler(loop_kind):
    class Boom(Exception):
        pass

    def failing_callback():
        raise Boom("from callback")

    async def body():
        loop = asyncio.get_running_loop()
        seen = []
        loop.set_exception_handler(lambda lp, ctx: seen.append(ctx))
        loop.call_soon(failing_callback)
        for _ in range(3):
            await asyncio.sleep(0)
        loop.set_exception_handler(None)
        return seen

    result = run_monitored(body, loop_kind)
    (ctx,) = result.value
    assert isinstance(ctx["exception"], Boom)
    assert str(ctx["exception"]) == "from callback"


def test_task_exception_is_unchanged(loop_kind, tmp_path):
    class Oops(Exception):
        pass

    async def failing():
        os.stat(tmp_path)
        raise Oops("in task")

    async def body():
        try:
            await asyncio.create_task(failing())
        except Oops as exc:
            return exc

    result = run_monitored(body, loop_kind)
    assert isinstance(result.value, Oops) and str(result.value) == "in task"
    assert result.records("os.stat")


def test_call_soon_with_context_runs_in_that_context(loop_kind):
    async def body():
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        ctx.run(var.set, "in-ctx")
        seen: list[str] = []
        done = loop.create_future()

        def read_then_write():
            seen.append(var.get())
            var.set("changed-by-callback")  # must land in ctx, not in the task
            done.set_result(None)

        loop.call_soon(read_then_write, context=ctx)
        await done
        return seen[0], ctx[var], var.get()

    result = run_monitored(body, loop_kind)
    in_cb, ctx_after, task_after = result.value
    assert in_cb == "in-ctx"
    assert ctx_after == "changed-by-callback"
    assert task_after == "default"


def test_task_contextvars_untouched(loop_kind, tmp_path):
    async def child():
        assert var.get() == "parent"
        var.set("child")
        os.stat(tmp_path)
        await asyncio.sleep(0)
        return var.get()

    async def body():
        var.set("parent")
        child_value = await asyncio.create_task(child())
        return child_value, var.get()

    result = run_monitored(body, loop_kind)
    assert result.value == ("child", "parent")


def test_future_result_arrives_unchanged(loop_kind):
    payload = object()

    async def body():
        loop = asyncio.get_running_loop()
        f1, f2, f3 = loop.create_future(), loop.create_future(), loop.create_future()
        loop.call_soon(f1.set_result, payload)
        loop.call_later(0.001, f2.set_result, [1, 2])
        err = ValueError("kept")
        loop.call_soon(f3.set_exception, err)
        r1 = await f1
        r2 = await f2
        try:
            await f3
        except ValueError as exc:
            r3 = exc
        return r1, r2, r3 is err

    result = run_monitored(body, loop_kind)
    assert result.value[0] is payload
    assert result.value[1] == [1, 2]
    assert result.value[2] is True


def test_handles_can_be_cancelled(loop_kind):
    async def body():
        loop = asyncio.get_running_loop()
        ran = []
        h1 = loop.call_soon(ran.append, "soon")
        h2 = loop.call_later(0.001, ran.append, "later")
        h1.cancel()
        h2.cancel()
        await asyncio.sleep(0.01)
        return ran, h1.cancelled(), h2.cancelled()

    result = run_monitored(body, loop_kind)
    assert result.value == ([], True, True)


def test_timer_handle_when_is_kept(loop_kind):
    async def body():
        loop = asyncio.get_running_loop()
        when = loop.time() + 10
        h = loop.call_at(when, lambda: None)
        try:
            return h.when(), when
        finally:
            h.cancel()

    got, wanted = run_monitored(body, loop_kind).value
    assert got == pytest.approx(wanted, abs=0.01)  # uvloop rounds timers to 1 ms


def test_reference_cycles_through_a_monitored_callback_are_collected(loop_kind):
    """holder -> timer handle -> aiocop's wrapper -> bound method -> holder: the collector
    must see through the wrapper, or the whole cycle leaks."""
    import gc
    import weakref

    class Holder:
        def fire(self) -> None:  # pragma: no cover - never runs
            pass

    loop = new_loop(loop_kind)
    try:

        async def body() -> weakref.ref:
            aiocop.activate()
            holder = Holder()
            holder.timer = asyncio.get_running_loop().call_later(3600, holder.fire)
            return weakref.ref(holder)

        ref = loop.run_until_complete(body())
    finally:
        aiocop.deactivate()
        loop.close()  # drops the scheduled timer: only the cycle keeps the holder alive
    del loop
    gc.collect()
    assert ref() is None


def test_reused_wrappers_carry_only_their_own_callback(loop_kind, tmp_path):
    """Freed wrappers are reused: each callback still gets exactly its own arguments, and the
    events of a second loop (wrappers freed by the first one reused) belong to that loop."""
    for round_ in range(2):
        calls = []
        stats = []

        def note(i, text):
            calls.append((i, text))
            if i % 100 == 0:
                os.stat(tmp_path)
                stats.append(i)

        async def body():
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            # More at once than the free list keeps, then a second wave reusing them.
            for wave in range(2):
                for i in range(wave * 600, wave * 600 + 600):
                    loop.call_soon(note, i, f"{round_}-{i}")
                await asyncio.sleep(0)
                await asyncio.sleep(0)
            loop.call_soon(done.set_result, None)
            await done

        result = run_monitored(body, loop_kind)
        assert calls == [(i, f"{round_}-{i}") for i in range(1200)]
        assert len(result.events_with("os.stat")) == len(stats) == 12


def test_patching_adds_only_the_five_methods_to_an_asyncio_loop():
    """Ours only: the loop gets its five replaced methods as instance attributes and nothing
    else. (An asyncio loop keeps its attributes in its class's compact shared-key layout only
    while they fit; one attribute more and CPython can no longer specialise `self.method()`
    lookups in asyncio's own code, which made every scheduled callback slower.)"""

    async def main():
        loop = asyncio.get_running_loop()
        before = set(vars(loop))
        aiocop.activate()
        added = set(vars(loop)) - before
        assert added == {
            "call_soon",
            "call_later",
            "call_at",
            "call_soon_threadsafe",
            "call_exception_handler",
        }, added
        # Activating again finds the patch through the replaced `call_soon`.
        aiocop.activate()
        assert set(vars(loop)) - before == added
        assert loop.call_soon.__self__ is loop.call_later.__self__

    run_on_new_asyncio_loop(main)


def test_patching_gives_a_uvloop_loop_a_class_of_its_own_and_no_attributes():
    """Ours only: a loop that is not one of asyncio's gets the five methods on a subclass of
    its class made for it (same name, module and docstring), not as instance attributes: an
    instance dict would cost CPython's specialised lookup of every other method of the loop."""
    uvloop = pytest.importorskip("uvloop")
    seen = {}

    async def main():
        loop = asyncio.get_running_loop()
        aiocop.activate()
        seen["class"] = type(loop)
        aiocop.activate()  # activating again keeps the class
        assert type(loop) is seen["class"]
        assert vars(loop) == {}
        events = []
        aiocop.register_slow_task_callback(events.append)
        try:
            done = loop.create_future()
            loop.call_soon(stat_in_callback, ".", done)
            await done
            aiocop.flush()
        finally:
            aiocop.unregister_slow_task_callback(events.append)
        assert any(e.reason == "io_blocking" for e in events)

    loops = [uvloop.new_event_loop(), uvloop.new_event_loop()]
    classes = []
    try:
        for loop in loops:
            loop.run_until_complete(main())
            classes.append(seen.pop("class"))
    finally:
        aiocop.deactivate()
        for loop in loops:
            loop.close()
    first, second = classes
    assert first is not uvloop.Loop and first is not second  # one class per loop
    for loop, cls in zip(loops, classes):
        assert type(loop) is cls and isinstance(loop, uvloop.Loop)
        assert cls.__bases__ == (uvloop.Loop,)
        assert (cls.__name__, cls.__qualname__, cls.__module__, cls.__doc__) == (
            "Loop",
            uvloop.Loop.__qualname__,
            "uvloop",
            uvloop.Loop.__doc__,
        )
        assert repr(loop).startswith("<uvloop.Loop ")
    # Each loop's methods are bound to its own patch.
    assert loops[0].call_soon.__self__ is not loops[1].call_soon.__self__


def test_a_loop_class_that_refuses_a_subclass_gets_instance_attributes():
    """Where no class can be made for the loop, the five methods (and the protocol-factory
    methods and add_reader/add_writer a uvloop loop's class of its own would hold) become
    instance attributes and the loop is monitored all the same."""
    uvloop = pytest.importorskip("uvloop")

    class Final(uvloop.Loop):
        def __init_subclass__(cls, **kwargs):
            raise TypeError("Final cannot be subclassed")

    async def main():
        loop = asyncio.get_running_loop()
        aiocop.activate()
        assert type(loop) is Final
        assert set(vars(loop)) == {
            "call_soon",
            "call_later",
            "call_at",
            "call_soon_threadsafe",
            "call_exception_handler",
            "create_server",
            "create_connection",
            "create_unix_server",
            "create_unix_connection",
            "create_datagram_endpoint",
            "connect_accepted_socket",
            "subprocess_exec",
            "subprocess_shell",
            "connect_read_pipe",
            "connect_write_pipe",
            "add_reader",
            "add_writer",
        }
        done = loop.create_future()
        loop.call_soon(stat_in_callback, ".", done)
        await done

    loop = Final()
    events = []
    aiocop.register_slow_task_callback(events.append)
    try:
        loop.run_until_complete(main())
        aiocop.flush()
    finally:
        aiocop.unregister_slow_task_callback(events.append)
        aiocop.deactivate()
        loop.close()
    assert any(e.reason == "io_blocking" for e in events)


@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_stored_arguments_reach_the_callback_in_order(loop_kind, count):
    """None, one (kept inline, as a future's done-callbacks are), or several arguments: each
    reaches the callback once and in order, and a handle's callback called by hand with more
    arguments gets the stored ones first."""
    calls = []

    def note(*args, **kwargs):
        calls.append((args, kwargs))

    stored = tuple(object() for _ in range(count))

    async def body():
        loop = asyncio.get_running_loop()
        handle = loop.call_soon(note, *stored)
        await asyncio.sleep(0)
        wrapped = getattr(handle, "_callback", None)  # asyncio's handles expose it
        if wrapped is not None:
            assert wrapped.__wrapped__ is note
            wrapped("extra", key="value")

    run_monitored(body, loop_kind)
    expected = [(stored, {})]
    if loop_kind == "asyncio":
        expected.append(((*stored, "extra"), {"key": "value"}))
    assert calls == expected


def test_a_single_stored_argument_in_a_cycle_is_collected(loop_kind):
    """A callback's only argument (held inline by the monitored callback) is visited by the
    collector: a cycle through it is freed once the handle has run."""
    import gc
    import weakref

    class Node:
        pass

    refs = []

    async def body():
        loop = asyncio.get_running_loop()
        node = Node()
        node.handle = loop.call_soon(lambda n: None, node)
        refs.append(weakref.ref(node))
        del node
        await asyncio.sleep(0)

    run_monitored(body, loop_kind)
    gc.collect()
    assert refs[0]() is None


def test_a_task_steps_wrapper_is_left_to_the_ready_queue_and_a_callbacks_is_tracked():
    """Ours only: the wrapper of a task's own step (only the loop's ready queue refers to it,
    so no cycle can run through it) is not tracked by the cycle collector, whether newly made
    or reused from the wrappers' free list; the wrapper of any other callback is tracked."""
    import gc

    async def noop() -> None:
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        aiocop.activate()
        for _ in range(3):  # new wrappers first, then ones the free list kept
            task = loop.create_task(noop())
            step = loop._ready[-1]._callback
            plain = loop.call_soon(lambda: None)._callback
            assert type(step).__name__ == type(plain).__name__ == "MonitoredCallback"
            assert not gc.is_tracked(step)
            assert gc.is_tracked(plain)
            del step, plain
            await task
            await asyncio.sleep(0)

    run_on_new_asyncio_loop(main)
