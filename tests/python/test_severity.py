"""Scores and levels of real events; under-threshold IO is still reported."""

from __future__ import annotations

import os
import time

import pytest

from conftest import check_event_invariants, run_monitored


def test_io_under_threshold_is_still_reported(loop_kind, tmp_path):
    async def body():
        for _ in range(3):  # three separate handles: at least one is fast
            os.stat(tmp_path)
            await asyncio_sleep0()

    result = run_monitored(body, loop_kind)
    events = result.events_with("os.stat")
    assert len(events) == 3
    for evt in events:
        check_event_invariants(evt)
        assert evt.reason == "io_blocking"
        assert evt.severity_score == 1
        assert evt.severity_level == "low"
    assert any(evt.exceeded_threshold is False for evt in events)


async def asyncio_sleep0():
    import asyncio

    await asyncio.sleep(0)


@pytest.mark.parametrize(
    "stats,opens,sleeps,score,level",
    [
        (3, 0, 0, 3, "low"),
        (9, 0, 0, 9, "low"),
        (0, 1, 0, 10, "medium"),
        (2, 1, 0, 12, "medium"),
        (0, 4, 0, 40, "medium"),
        (0, 5, 0, 50, "high"),
        (0, 0, 1, 50, "high"),
        (1, 1, 1, 61, "high"),
    ],
)
def test_score_is_sum_of_weights(loop_kind, tmp_path, stats, opens, sleeps, score, level):
    path = tmp_path / "w.txt"
    path.write_text("x")

    def mixed():
        for _ in range(stats):
            os.stat(path)
        for _ in range(opens):
            with open(path) as f:
                f.read()
        for _ in range(sleeps):
            time.sleep(0)

    async def body():
        mixed()

    result = run_monitored(body, loop_kind)
    assert len(result.io_events) == 1, result.events
    evt = result.io_events[0]
    check_event_invariants(evt)
    assert len(evt.blocking_events) == stats + opens + sleeps
    assert evt.severity_score == score
    assert evt.severity_level == level


def test_records_are_in_call_order(loop_kind, tmp_path):
    path = tmp_path / "order.txt"
    path.write_text("x")

    def ordered():
        os.stat(path)
        with open(path) as f:
            f.read()
        os.listdir(tmp_path)
        time.sleep(0)

    async def body():
        ordered()

    result = run_monitored(body, loop_kind)
    (evt,) = result.io_events
    names = [r["event"].split("(", 1)[0] for r in evt.blocking_events]
    assert names == ["os.stat", "open", "os.listdir", "time.sleep"]
    assert [r["severity"] for r in evt.blocking_events] == [1, 10, 10, 50]
