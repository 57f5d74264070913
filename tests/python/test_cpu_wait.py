"""On CPU or waiting: every slow-task event says how much of the handle was the loop thread's
CPU time (``cpu_ms``), how much it waited (``wait_ms``), in which system call it was seen
waiting most (``blocked_in``), how long the garbage collector ran (``gc_ms``), and each CPU
sample whether the thread was on CPU when it was taken (``on_cpu``).

Measured on Linux by the CPU sampler's watchdog (on in this session) and a ``gc.callbacks``
entry; the bounds are generous, and compared with what the handle measures of itself
(``time.thread_time()``), not with a speed.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time

import pytest

from conftest import run_monitored, run_python

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="thread times are read from /proc (Linux)"
)

#: Where CPython's ``time.sleep`` waits: ``clock_nanosleep`` since 3.11, ``select`` before
#: (``pselect6`` on aarch64, which has no ``select``).
SLEEP_CALLS = {"clock_nanosleep"} if sys.version_info >= (3, 11) else {"select", "pselect6"}


def longest(result):
    """The event of the handle that did the work (the longest one)."""
    assert result.events, "a 150 ms handle must give an event"
    return max(result.events, key=lambda e: e.elapsed_ms)


def test_a_busy_handle_is_on_cpu(loop_kind):
    truth = {}

    async def body():
        cpu0 = time.thread_time()
        end = time.perf_counter() + 0.15
        n = 0
        while time.perf_counter() < end:
            n += 1
        truth["cpu_ms"] = (time.thread_time() - cpu0) * 1000

    evt = longest(run_monitored(body, loop_kind))
    assert evt.reason == "cpu_blocking"
    assert evt.cpu_ms is not None, "the watchdog saw a 150 ms handle run"
    assert evt.cpu_ms == pytest.approx(truth["cpu_ms"], rel=0.2)
    assert evt.cpu_ms <= evt.elapsed_ms
    if truth["cpu_ms"] >= 0.95 * evt.elapsed_ms:  # the machine left the thread its CPU
        assert evt.cpu_ms >= 0.8 * evt.elapsed_ms
    assert evt.wait_ms == pytest.approx(evt.elapsed_ms - evt.cpu_ms, abs=1e-6)
    assert evt.blocked_in in (None, "futex")  # at most a moment waiting for the GIL
    on_cpu = [s for s in evt.cpu_stack_samples if s["on_cpu"]]
    assert on_cpu, evt.cpu_stack_samples
    assert sum(s["count"] for s in on_cpu) * 2 >= sum(s["count"] for s in evt.cpu_stack_samples)


def test_a_sleeping_handle_waits_in_the_sleep(loop_kind):
    async def body():
        time.sleep(0.15)

    evt = longest(run_monitored(body, loop_kind))
    assert evt.reason == "io_blocking"  # time.sleep is a blocking call, and it is reported
    assert evt.cpu_ms is not None
    assert evt.cpu_ms < 0.1 * evt.elapsed_ms, (evt.cpu_ms, evt.elapsed_ms)
    assert evt.wait_ms > 0.9 * evt.elapsed_ms
    assert evt.blocked_in in SLEEP_CALLS, evt.blocked_in
    assert evt.cpu_stack_samples
    # Off CPU in its sleep; on a loaded machine a sample may catch the thread runnable again
    # (just woken, waiting for a CPU), never most of them.
    counts = [(s["on_cpu"], s["count"]) for s in evt.cpu_stack_samples]
    off = sum(count for on_cpu, count in counts if on_cpu is False)
    total = sum(count for _, count in counts)
    assert off * 2 > total or total < 3, evt.cpu_stack_samples


def test_a_handle_waiting_for_a_lock_waits_in_futex(loop_kind):
    lock = threading.Lock()
    lock.acquire()

    async def body():
        assert not lock.acquire(timeout=0.15)

    try:
        evt = longest(run_monitored(body, loop_kind))
    finally:
        lock.release()
    assert evt.reason == "cpu_blocking"
    assert evt.cpu_ms is not None
    assert evt.cpu_ms < 0.1 * evt.elapsed_ms, (evt.cpu_ms, evt.elapsed_ms)
    assert evt.blocked_in == "futex"


def test_a_handle_that_collects_a_big_cyclic_graph_reports_gc_time(loop_kind):
    spent = {}

    async def body():
        nodes = [[] for _ in range(200_000)]
        for i, node in enumerate(nodes):
            node.append(nodes[i - 1])  # a ring: only the collector frees it
        del nodes, node
        t0 = time.perf_counter()
        gc.collect()
        spent["collect_ms"] = (time.perf_counter() - t0) * 1000

    evt = longest(run_monitored(body, loop_kind))
    assert evt.gc_ms is not None
    assert evt.gc_ms > 0
    assert evt.gc_ms >= 0.5 * spent["collect_ms"], (evt.gc_ms, spent)
    assert evt.gc_ms <= evt.elapsed_ms


def test_gc_time_belongs_to_the_handle_it_ran_in(loop_kind):
    spent = {}

    async def body():
        nodes = [[] for _ in range(200_000)]
        for i, node in enumerate(nodes):
            node.append(nodes[i - 1])
        del nodes, node
        t0 = time.perf_counter()
        gc.collect()
        spent["collect_ms"] = (time.perf_counter() - t0) * 1000
        await asyncio.sleep(0)  # the sleep below runs in the next handle
        time.sleep(0.05)

    result = run_monitored(body, loop_kind)
    (sleeping,) = result.events_with("time.sleep")
    collecting = max(result.cpu_events, key=lambda e: e.elapsed_ms)
    assert collecting.gc_ms >= 0.5 * spent["collect_ms"], (collecting.gc_ms, spent)
    assert sleeping.gc_ms is not None
    assert sleeping.gc_ms <= 0.1 * spent["collect_ms"], (sleeping.gc_ms, spent)


def test_without_cpu_sampling_only_gc_time_is_measured():
    proc = run_python(
        """
        import asyncio, gc, time
        import aiocop

        aiocop.detect_slow_tasks(threshold_ms=10, cpu_sampling=False)
        events = []
        aiocop.register_slow_task_callback(events.append)

        async def main():
            aiocop.activate()
            await asyncio.sleep(0)
            time.sleep(0.05)
            gc.collect()
            await asyncio.sleep(0)
            aiocop.flush()

        asyncio.run(main())
        evt = max(events, key=lambda e: e.elapsed_ms)
        print(evt.cpu_ms, evt.wait_ms, evt.blocked_in, evt.gc_ms is not None and evt.gc_ms > 0)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["None", "None", "None", "True"], proc.stdout


def test_fields_are_in_the_event_and_default_to_none():
    import dataclasses

    import aiocop

    names = [f.name for f in dataclasses.fields(aiocop.SlowTaskEvent)]
    assert names[-5:-1] == ["cpu_ms", "wait_ms", "blocked_in", "gc_ms"]
    evt = aiocop.SlowTaskEvent(40.0, 10.0, True, 0, "low", "cpu_blocking", [])
    assert (evt.cpu_ms, evt.wait_ms, evt.blocked_in, evt.gc_ms) == (None, None, None, None)
    given = dataclasses.replace(evt, cpu_ms=1.5, wait_ms=38.5, blocked_in="read", gc_ms=0.0)
    assert (given.cpu_ms, given.wait_ms, given.blocked_in, given.gc_ms) == (1.5, 38.5, "read", 0.0)


def test_a_lock_wait_resumed_by_the_kernel_is_still_futex():
    """A thread that ran a uvloop loop has used io_uring; the kernel then interrupts its timed
    waits to run queued work, and the wait goes on as ``restart_syscall``: it is still named
    after the call it resumes."""
    uvloop = pytest.importorskip("uvloop")
    from conftest import close_loop

    warm = uvloop.new_event_loop()
    warm.run_until_complete(__import__("asyncio").sleep(0))
    close_loop(warm)
    lock = threading.Lock()
    lock.acquire()

    async def body():
        assert not lock.acquire(timeout=0.15)

    try:
        evt = longest(run_monitored(body, "asyncio"))
    finally:
        lock.release()
    assert evt.blocked_in == "futex"
