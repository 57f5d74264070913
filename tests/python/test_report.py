"""``aiocop.report()``: the per-call-site totals equal the blocking calls made, on asyncio and
uvloop, with or without a slow-task callback; sites are the events' entry points; the bound,
``reset_report``, the table and the JSON form; bad input names the argument."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import warnings

import pytest

import aiocop
from conftest import close_loop, flush, new_loop


@pytest.fixture(autouse=True)
def fresh_report():
    aiocop.reset_report()
    yield
    aiocop.configure_report(max_sites=500)
    aiocop.reset_report()


def stat_here() -> None:
    os.stat(".")


def open_here() -> None:
    with open(os.devnull):
        pass


def run_handlers(kind: str, stats: int, opens: int) -> None:
    loop = new_loop(kind)

    async def one(fn) -> None:
        fn()

    async def main() -> None:
        aiocop.activate()
        for _ in range(stats):
            await asyncio.ensure_future(one(stat_here))
        for _ in range(opens):
            await asyncio.ensure_future(one(open_here))
        flush()

    try:
        loop.run_until_complete(main())
    finally:
        close_loop(loop)


def site_of(report: aiocop.Report, event: str) -> aiocop.SiteStats:
    (site,) = [s for s in report.sites if s.event == event]
    return site


def test_counts_equal_the_calls_made(loop_kind: str) -> None:
    run_handlers(loop_kind, stats=40, opens=7)
    report = aiocop.report()
    stat, opened = site_of(report, "os.stat"), site_of(report, "open")
    assert (stat.count, opened.count) == (40, 7)
    assert stat.site.endswith(":stat_here") and opened.site.endswith(":open_here")
    assert report.blocking_calls == 47 and report.other is None
    assert report.slow_tasks["low"] + report.slow_tasks["medium"] == 47
    assert report.durations.count == sum(report.slow_tasks.values())
    for s in report.sites:
        assert 0 < s.p50_ms <= s.p99_ms <= s.max_ms <= s.total_ms


def test_sites_are_the_events_entry_points(loop_kind: str) -> None:
    events: list[aiocop.SlowTaskEvent] = []
    aiocop.register_slow_task_callback(events.append)
    run_handlers(loop_kind, stats=3, opens=0)
    entry_points = {r["entry_point"] for e in events for r in e.blocking_events}
    assert [s.site for s in aiocop.report().sites] == sorted(entry_points)
    assert sum(len(e.blocking_events) for e in events) == 3


def test_without_a_callback_no_event_is_delivered() -> None:
    before = aiocop.stats()
    run_handlers("asyncio", stats=20, opens=0)
    after = aiocop.stats()
    assert site_of(aiocop.report(), "os.stat").count == 20
    for key in ("deliveries_picked_up", "deliveries_woken"):
        assert after[key] == before[key], key


def test_a_loop_on_another_thread_is_merged() -> None:
    worker = threading.Thread(target=run_handlers, args=("asyncio", 5, 0))
    worker.start()
    worker.join()
    run_handlers("asyncio", stats=6, opens=0)
    assert site_of(aiocop.report(), "os.stat").count == 11


def test_a_forked_child_counts_its_own_calls() -> None:
    run_handlers("asyncio", stats=3, opens=0)
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            run_handlers("asyncio", stats=5, opens=0)
            os.write(write_end, str(site_of(aiocop.report(), "os.stat").count).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the child did not finish")
        time.sleep(0.01)
    child_count = os.read(read_end, 100).decode()
    os.close(read_end)
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert child_count == "5"  # its own calls, not the parent's 3 as well
    assert site_of(aiocop.report(), "os.stat").count == 3


def test_top_sorts_by_total_and_keeps_the_count_of_sites() -> None:
    run_handlers("asyncio", stats=30, opens=2)
    full = aiocop.report()
    top = aiocop.report(top=1)
    assert [s.total_ms for s in full.sites] == sorted((s.total_ms for s in full.sites), reverse=True)
    assert top.sites == full.sites[:1] and top.site_count == full.site_count == 2


def test_sites_beyond_the_bound_count_as_other() -> None:
    aiocop.configure_report(max_sites=1)
    run_handlers("asyncio", stats=4, opens=3)
    report = aiocop.report()
    assert len(report.sites) == 1 and report.other is not None
    assert (report.other.site, report.other.event) == ("other", "other")
    assert report.blocking_calls == 7


def test_reset_report_forgets_everything() -> None:
    run_handlers("asyncio", stats=2, opens=1)
    aiocop.reset_report()
    report = aiocop.report()
    assert report.sites == [] and report.other is None and report.durations.count == 0
    assert "(no blocking calls)" in str(report)


def test_table_and_json() -> None:
    run_handlers("asyncio", stats=3, opens=1)
    report = aiocop.report()
    lines = str(report).splitlines()
    assert lines[0].startswith("aiocop report: 2 call site(s), 4 blocking call(s)")
    assert lines[1].split()[:2] == ["total", "ms"] and lines[1].rstrip().endswith("site")
    assert [line.split()[-1] for line in lines[2:]] == [s.site for s in report.sites]
    data = json.loads(json.dumps(report.to_dict()))
    assert [s["count"] for s in data["sites"]] == [s.count for s in report.sites]
    assert len(data["durations"]["counts"]) == len(data["durations"]["bounds"]) + 1


@pytest.mark.parametrize(
    ("call", "error", "names"),
    [
        (lambda: aiocop.report(top=0), ValueError, "top"),
        (lambda: aiocop.report(top="3"), TypeError, "top"),
        (lambda: aiocop.report(top=True), TypeError, "top"),
        (lambda: aiocop.configure_report(max_sites=0), ValueError, "max_sites"),
        (lambda: aiocop.configure_report(max_sites=2.5), TypeError, "max_sites"),
    ],
)
def test_bad_input_names_the_argument(call, error, names) -> None:
    with pytest.raises(error, match=names):
        call()
