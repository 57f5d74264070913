"""Slow-task callback registry: dedupe, unregister, clear, failures, thread."""

from __future__ import annotations

import logging
import os
import threading

import aiocop

from conftest import flush, run_monitored


def stat_body(path):
    async def body():
        os.stat(path)

    return body


def test_registering_twice_delivers_once(loop_kind, tmp_path):
    calls = []

    def cb(evt):
        calls.append(evt)

    aiocop.register_slow_task_callback(cb)
    aiocop.register_slow_task_callback(cb)
    result = run_monitored(stat_body(tmp_path), loop_kind)
    assert len(result.io_events) == 1
    io_calls = [e for e in calls if e.reason == "io_blocking"]
    assert len(io_calls) == 1
    assert io_calls[0] == result.io_events[0]


def test_unregister(loop_kind, tmp_path):
    calls = []

    def cb(evt):
        calls.append(evt)

    aiocop.register_slow_task_callback(cb)
    aiocop.unregister_slow_task_callback(cb)
    aiocop.unregister_slow_task_callback(cb)  # unknown: no error
    result = run_monitored(stat_body(tmp_path), loop_kind)
    assert len(result.io_events) == 1
    assert calls == []


def test_clear(loop_kind, tmp_path):
    calls = []
    aiocop.register_slow_task_callback(lambda e: calls.append(("a", e)))
    aiocop.register_slow_task_callback(lambda e: calls.append(("b", e)))
    aiocop.clear_slow_task_callbacks()
    result = run_monitored(stat_body(tmp_path), loop_kind)
    assert len(result.io_events) == 1
    assert calls == []


def test_callbacks_run_in_registration_order(loop_kind, tmp_path):
    order = []
    aiocop.register_slow_task_callback(lambda e: order.append(("first", e.reason)))
    aiocop.register_slow_task_callback(lambda e: order.append(("second", e.reason)))
    run_monitored(stat_body(tmp_path), loop_kind)
    assert [n for n, reason in order if reason == "io_blocking"] == ["first", "second"]


def test_failing_callback_is_logged_and_others_still_run(loop_kind, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    before, after = [], []

    def good_before(evt):
        before.append(evt)

    def exploding_callback(evt):
        raise RuntimeError("callback went boom")

    def good_after(evt):
        after.append(evt)

    aiocop.register_slow_task_callback(good_before)
    aiocop.register_slow_task_callback(exploding_callback)
    aiocop.register_slow_task_callback(good_after)
    result = run_monitored(stat_body(tmp_path), loop_kind)
    assert len(result.io_events) == 1
    assert len([e for e in before if e.reason == "io_blocking"]) == 1
    assert len([e for e in after if e.reason == "io_blocking"]) == 1
    logged = [r for r in caplog.records if r.name.startswith("aiocop") and r.levelno >= logging.WARNING]
    assert logged, [(r.name, r.getMessage()) for r in caplog.records]
    assert any(
        "exploding_callback" in r.getMessage() or "callback went boom" in r.getMessage() for r in logged
    ), [r.getMessage() for r in logged]


def test_callbacks_run_on_the_loop_thread(loop_kind, tmp_path):
    threads = []
    aiocop.register_slow_task_callback(lambda e: threads.append(threading.get_ident()))
    result = run_monitored(stat_body(tmp_path), loop_kind)
    assert threads and set(threads) == {result.loop_thread}
    assert result.loop_thread == threading.get_ident()  # run_monitored runs its loop here


def test_callback_may_use_the_loop(loop_kind, tmp_path):
    """A callback runs on the loop thread, so it may schedule work on the loop."""
    import asyncio

    scheduled = []

    def cb(evt):
        loop = asyncio.get_running_loop()
        loop.call_soon(scheduled.append, evt.reason)

    aiocop.register_slow_task_callback(cb)

    async def body():
        os.stat(tmp_path)
        await asyncio.sleep(0)
        flush()
        for _ in range(5):
            await asyncio.sleep(0)

    run_monitored(body, loop_kind)
    assert scheduled and scheduled[0] == "io_blocking"


def test_callback_registered_during_run_receives_later_events(loop_kind, tmp_path):
    import asyncio

    late = []

    async def body():
        aiocop.register_slow_task_callback(late.append)
        await asyncio.sleep(0)
        os.stat(tmp_path)

    result = run_monitored(body, loop_kind)
    late_io = [e for e in late if e.reason == "io_blocking"]
    assert len(late_io) == 1
    assert late_io[0].blocking_events == result.io_events[-1].blocking_events


def test_delivered_events_are_ordinary_slow_task_events(loop_kind, tmp_path):
    """The event a callback receives is what the dataclass's own constructor would build:
    equal to one built from its fields, fields in declaration order, frozen, each blocking
    event a plain dict of its own."""
    import dataclasses

    from aiocop.types.events import SlowTaskEvent

    result = run_monitored(stat_body(tmp_path), loop_kind)
    (evt,) = result.io_events
    assert type(evt) is SlowTaskEvent
    names = [f.name for f in dataclasses.fields(SlowTaskEvent)]
    assert list(vars(evt)) == names
    rebuilt = SlowTaskEvent(**{name: getattr(evt, name) for name in names})
    assert rebuilt == evt
    assert repr(rebuilt) == repr(evt)
    assert dataclasses.asdict(evt)["blocking_events"] == evt.blocking_events
    try:
        evt.reason = "changed"
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("SlowTaskEvent must stay frozen")
    (info,) = evt.blocking_events
    assert type(info) is dict
    assert list(info) == [
        "event", "trace", "entry_point", "severity", "task_name", "coroutine",
        "event_name", "site", "user_trace", "suggested_rule",
        "origin", "distribution", "distribution_version", "site_key",
    ]
    info["event"] = "mutated"  # a user's change stays in this event
    again = run_monitored(stat_body(tmp_path), loop_kind)
    assert again.io_events[0].blocking_events[0]["event"].startswith("os.stat(")
