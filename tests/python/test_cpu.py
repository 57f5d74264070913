"""CPU-bound slices over the threshold: ``cpu_blocking`` events with stack samples."""

from __future__ import annotations

import asyncio

import aiocop

from conftest import busy_wait, check_event_invariants, frame_functions, run_monitored


def spin_for_a_while(seconds: float) -> int:
    """Pure CPU: no IO, no sleep, no GIL release on purpose."""
    import time

    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        n += 1
    return n


def test_busy_loop_gives_cpu_blocking_event(loop_kind):
    async def body():
        spin_for_a_while(0.1)

    result = run_monitored(body, loop_kind)
    cpu = result.cpu_events
    assert cpu, result.events
    evt = max(cpu, key=lambda e: e.elapsed_ms)
    check_event_invariants(evt)
    assert evt.reason == "cpu_blocking"
    assert evt.severity_score == 0
    assert evt.severity_level == "low"
    assert evt.exceeded_threshold is True
    assert evt.elapsed_ms >= 3 * evt.threshold_ms
    assert evt.blocking_events == []
    assert result.io_events == []


def test_cpu_samples_point_at_the_hot_function(loop_kind):
    async def body():
        spin_for_a_while(0.1)

    result = run_monitored(body, loop_kind)
    evt = max(result.cpu_events, key=lambda e: e.elapsed_ms)
    samples = evt.cpu_stack_samples
    assert samples, "cpu sampling is on: a 100 ms busy slice must carry samples"
    counts = [s["count"] for s in samples]
    assert counts == sorted(counts, reverse=True), "samples are ordered hottest first"
    hottest = max(samples, key=lambda s: s["count"])
    assert "spin_for_a_while" in hottest["trace"]
    assert "spin_for_a_while" in frame_functions(hottest["trace"])
    assert hottest["entry_point"] == hottest["trace"].split(" <- ")[0]
    # the caller (the coroutine) is further out in the same stack
    assert "body" in frame_functions(hottest["trace"])


def test_cpu_event_per_slow_handle(loop_kind):
    async def body():
        busy_wait(0.04)
        await asyncio.sleep(0)
        busy_wait(0.04)

    result = run_monitored(body, loop_kind)
    slow = [e for e in result.cpu_events if e.elapsed_ms >= 30]
    assert len(slow) == 2, result.events
    for evt in result.cpu_events:
        check_event_invariants(evt)


def test_fast_handles_give_no_event(loop_kind):
    async def body():
        for _ in range(20):
            await asyncio.sleep(0)

    result = run_monitored(body, loop_kind)
    assert result.io_events == []
    # a cpu_blocking event only ever comes from a handle over the threshold
    for evt in result.cpu_events:
        check_event_invariants(evt)


def test_io_event_over_threshold_is_io_not_cpu(loop_kind, tmp_path):
    path = tmp_path / "slow.txt"
    path.write_text("x")

    async def body():
        with open(path) as f:
            f.read()
        spin_for_a_while(0.05)

    result = run_monitored(body, loop_kind)
    (evt,) = result.io_events  # the slow handle did IO: io_blocking, not cpu_blocking
    assert not [e for e in result.cpu_events if e.elapsed_ms >= 40]
    check_event_invariants(evt)
    assert evt.exceeded_threshold is True
    assert evt.severity_score == 10
    assert evt.severity_level == "medium"


def test_cpu_sampling_started():
    assert aiocop.is_cpu_sampling_started() is True
