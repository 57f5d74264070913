"""Dispatch modes (fresh processes).

Default ``background``: callbacks are delivered asynchronously on the loop
thread (eventually, or at ``aiocop.flush()``).  ``inline`` (env var
``AIOCOP_DISPATCH=inline`` or ``detect_slow_tasks(dispatch="inline")``): the
callbacks run right after the blocking handle, before the next handle.
Everything here except the default-mode test is ours only.
"""

from __future__ import annotations

import pytest

from conftest import describe, run_python

INLINE_PROGRAM = """
import asyncio, os, sys, threading
import aiocop

events = []
threads = []

def on_slow(evt):
    events.append(evt)
    threads.append(threading.get_ident())

aiocop.patch_audit_functions()
aiocop.start_blocking_io_detection()
aiocop.detect_slow_tasks(threshold_ms=10, on_slow_task=on_slow{dispatch_arg})

def touch():
    open("/dev/null").close()

async def main():
    aiocop.activate()
    await asyncio.sleep(0)
    touch()
    await asyncio.sleep(0)  # the blocking handle has ended: its event is already delivered
    assert len(events) == 1, events
    assert threads == [threading.get_ident()]
    (rec,) = events[0].blocking_events
    assert rec["event"].startswith("open(/dev/null"), rec
    assert rec["entry_point"].endswith(":touch"), rec
    import time
    time.sleep(0.02)
    await asyncio.sleep(0)
    assert len(events) == 2, events
    assert events[1].exceeded_threshold is True
    print("INLINE OK")

for loop_kind in ("asyncio", "uvloop"):
    events.clear(); threads.clear()
    if loop_kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            continue
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
"""


def test_inline_dispatch_from_env_var():
    proc = run_python(INLINE_PROGRAM.format(dispatch_arg=""), env={"AIOCOP_DISPATCH": "inline"})
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.count("INLINE OK") >= 1, describe(proc)


def test_inline_dispatch_from_argument():
    proc = run_python(INLINE_PROGRAM.format(dispatch_arg=', dispatch="inline"'))
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.count("INLINE OK") >= 1, describe(proc)


def test_explicit_background_dispatch_delivers_at_flush():
    proc = run_python(
        """
        import asyncio, threading
        import aiocop

        events = []
        aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection()
        aiocop.detect_slow_tasks(threshold_ms=10, on_slow_task=events.append, dispatch="background")

        async def main():
            aiocop.activate()
            await asyncio.sleep(0)
            open("/dev/null").close()
            await asyncio.sleep(0)
            aiocop.flush()
            assert len(events) == 1, events
            print("FLUSH OK")

        asyncio.run(main())
        """
    )
    assert proc.returncode == 0, describe(proc)
    assert "FLUSH OK" in proc.stdout


def test_default_dispatch_delivers_on_the_loop_thread_without_flush():
    """Shared: without flush, the event still arrives while the loop runs."""
    proc = run_python(
        """
        import asyncio, threading
        import aiocop

        events = []
        threads = []
        def on_slow(evt):
            events.append(evt)
            threads.append(threading.get_ident())

        aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection()
        aiocop.detect_slow_tasks(threshold_ms=10, on_slow_task=on_slow)

        async def main():
            aiocop.activate()
            await asyncio.sleep(0)
            open("/dev/null").close()
            for _ in range(1000):
                await asyncio.sleep(0.005)
                if events:
                    break
            assert len(events) == 1, events
            assert threads == [threading.get_ident()]
            print("DELIVERED")

        asyncio.run(main())
        """
    )
    assert proc.returncode == 0, describe(proc)
    assert "DELIVERED" in proc.stdout


@pytest.mark.parametrize("value", ["bogus", "INLINE!", ""])
def test_bogus_dispatch_argument(value):
    proc = run_python(
        f"""
        import aiocop
        aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection()
        try:
            aiocop.detect_slow_tasks(threshold_ms=10, dispatch={value!r})
        except ValueError as exc:
            assert "dispatch" in str(exc), exc
            print("VALUE ERROR")
        """
    )
    assert proc.returncode == 0, describe(proc)
    assert "VALUE ERROR" in proc.stdout


def test_flush_and_dispatch_parameter_exist():
    """Ours only: the additions to the incumbent's API."""
    import asyncio
    import inspect

    import aiocop

    assert callable(getattr(aiocop, "flush", None))
    param = inspect.signature(aiocop.detect_slow_tasks).parameters["dispatch"]
    assert param.default is None

    async def main():
        aiocop.flush()  # nothing pending: a no-op
        return "ok"

    assert asyncio.run(main()) == "ok"


def test_stats_reports_the_background_thread_failures():
    """Ours only: the counters of a background thread given up (dead or stalled), the events
    lost with it, and the rest of what stats() reports; a healthy run loses nothing (the faults
    themselves are injected by the Rust tests of aiocop-loop)."""
    import aiocop

    stats = aiocop.stats()
    assert set(stats) == {
        "dropped_events",
        "undelivered_events",
        "dropped_records",
        "lost_events",
        "dispatch_thread_failures",
        "deliveries_picked_up",
        "deliveries_woken",
        "dispatch",
        "clock",
        "gil_free_sampling",
        "native_frames",
        "stuck_loop_reports",
    }
    assert stats["lost_events"] == 0
    assert stats["dispatch_thread_failures"] == 0


def test_a_busy_loop_picks_its_deliveries_up_itself():
    """Ours only: while the loop keeps running monitored handles, it schedules the delivery of
    its events itself (`deliveries_picked_up`); the background thread steps in (taking the GIL,
    `deliveries_woken`) only for a loop that stays idle. Batch after batch, a busy loop is never
    mistaken for an idle one."""
    proc = run_python(
        """
        import asyncio, os
        import aiocop

        events = []
        aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection()
        aiocop.detect_slow_tasks(threshold_ms=1000, on_slow_task=events.append)

        async def main():
            aiocop.activate()
            await asyncio.sleep(0)
            before = aiocop.stats()
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            count = 0

            def step():
                nonlocal count
                count += 1
                if count % 50 == 0:
                    os.stat(".")  # one event every 50 handles, batch after batch
                if count >= 60_000:
                    done.set_result(None)
                else:
                    loop.call_soon(step)

            loop.call_soon(step)
            await done
            aiocop.flush()
            after = aiocop.stats()
            picked = after["deliveries_picked_up"] - before["deliveries_picked_up"]
            woken = after["deliveries_woken"] - before["deliveries_woken"]
            assert len(events) == 1200, len(events)
            assert picked >= 1, after
            # A loop thread descheduled for 2 ms on a loaded machine may let the background
            # thread step in now and then, not batch after batch.
            assert woken <= max(3, picked // 40), (picked, woken)
            print("PICKED UP", picked, woken)

        asyncio.run(main())
        """
    )
    assert proc.returncode == 0, describe(proc)
    assert "PICKED UP" in proc.stdout


def test_an_idle_loop_is_woken_for_its_delivery():
    """Ours only: an event whose loop then only waits is delivered all the same, scheduled by the
    background thread (`deliveries_woken`)."""
    proc = run_python(
        """
        import asyncio, os
        import aiocop

        events = []
        aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection()
        aiocop.detect_slow_tasks(threshold_ms=1000, on_slow_task=events.append)

        async def main():
            aiocop.activate()
            await asyncio.sleep(0)  # from here on, this task's steps are monitored handles
            fut = asyncio.get_running_loop().create_future()
            aiocop.register_slow_task_callback(lambda e: fut.done() or fut.set_result(e))
            before = aiocop.stats()["deliveries_woken"]
            os.stat(".")
            # No monitored handle runs until the delivery itself wakes the loop.
            event = await asyncio.wait_for(fut, timeout=20)
            assert event.blocking_events[0]["event"].startswith("os.stat("), event
            assert aiocop.stats()["deliveries_woken"] - before >= 1
            print("WOKEN")

        asyncio.run(main())
        """
    )
    assert proc.returncode == 0, describe(proc)
    assert "WOKEN" in proc.stdout


def test_events_keep_their_order_across_new_and_known_call_sites():
    """Ours only: a call site seen before is assembled on the loop thread, a new one (whose
    stack must be formatted) on the background thread; delivery keeps the order in which the
    handles ran either way."""
    proc = run_python(
        """
        import asyncio, os
        import aiocop

        events = []
        aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection()
        aiocop.detect_slow_tasks(threshold_ms=1000, on_slow_task=events.append)

        def known(i):
            try:
                os.stat(f"/nonexistent-aiocop/{i}")
            except OSError:
                pass

        async def step(i):
            if i % 3:
                known(i)
            else:
                ns = {"os": os}
                # a new function, so a new call site, every third step
                exec(f"def fresh(i):\\n    try:\\n        os.stat(f'/nonexistent-aiocop/{{i}}')\\n    except OSError:\\n        pass\\n", ns)
                ns["fresh"](i)

        async def main():
            aiocop.activate()
            await asyncio.sleep(0)
            for i in range(300):
                await asyncio.create_task(step(i))
            aiocop.flush()
            seen = [int(e.blocking_events[0]["event"].rsplit("/", 1)[1].rstrip(")")) for e in events]
            assert seen == list(range(300)), seen
            print("IN ORDER")

        asyncio.run(main())
        """
    )
    assert proc.returncode == 0, describe(proc)
    assert "IN ORDER" in proc.stdout
