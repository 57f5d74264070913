"""Per-handle record cap and reset_blocking_events()."""

from __future__ import annotations

import os

import aiocop

from conftest import check_event_invariants, run_monitored


def test_at_most_50_records_per_handle(loop_kind, tmp_path):
    def many_stats():
        for _ in range(80):
            os.stat(tmp_path)

    async def body():
        many_stats()

    before = aiocop.stats()["dropped_records"]
    result = run_monitored(body, loop_kind)
    (evt,) = result.io_events
    check_event_invariants(evt)
    assert aiocop.stats()["dropped_records"] - before == 30  # counted, and reported by stats()
    assert len(evt.blocking_events) == 50
    assert evt.severity_score == 50
    assert evt.severity_level == "high"


def test_cap_is_per_handle(loop_kind, tmp_path):
    import asyncio

    async def body():
        for _ in range(2):
            for _ in range(30):
                os.stat(tmp_path)
            await asyncio.sleep(0)

    result = run_monitored(body, loop_kind)
    assert [len(e.blocking_events) for e in result.io_events] == [30, 30]


def test_reset_blocking_events_drops_earlier_records(loop_kind, tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("x")

    async def body():
        with open(path) as f:
            f.read()
        aiocop.reset_blocking_events()
        os.listdir(tmp_path)

    result = run_monitored(body, loop_kind)
    (evt,) = result.io_events
    assert [r["event"].split("(", 1)[0] for r in evt.blocking_events] == ["os.listdir"]
    assert evt.severity_score == 10


def test_reset_blocking_events_outside_a_handle_is_harmless():
    aiocop.reset_blocking_events()
