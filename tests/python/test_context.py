"""Context providers: captured in the task's contextvars context."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os

import aiocop

from conftest import busy_wait, run_monitored

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
phase: contextvars.ContextVar[str] = contextvars.ContextVar("phase", default="unset")


def test_no_provider_gives_empty_context(loop_kind, tmp_path):
    async def body():
        os.stat(tmp_path)

    result = run_monitored(body, loop_kind)
    assert result.io_events[0].context == {}


def test_provider_value_appears_in_context(loop_kind, tmp_path):
    aiocop.register_context_provider(lambda: {"service": "billing", "n": 3})

    async def body():
        os.stat(tmp_path)

    result = run_monitored(body, loop_kind)
    assert result.io_events[0].context == {"service": "billing", "n": 3}


def test_provider_runs_in_the_task_context(loop_kind, tmp_path):
    aiocop.register_context_provider(lambda: {"request_id": request_id.get()})

    async def body():
        request_id.set("req-42")
        await asyncio.sleep(0)  # next handle: the provider sees the task's var
        os.stat(tmp_path)

    result = run_monitored(body, loop_kind)
    assert request_id.get() is None  # the test's own context is untouched
    (evt,) = result.io_events
    assert evt.context["request_id"] == "req-42"


def test_concurrent_tasks_each_get_their_own_context(loop_kind, tmp_path):
    aiocop.register_context_provider(lambda: {"request_id": request_id.get()})
    paths = {name: tmp_path / f"{name}.txt" for name in ("alpha", "beta", "gamma")}
    for p in paths.values():
        p.write_text("x")

    async def handler(name):
        request_id.set(name)
        await asyncio.sleep(0)
        with open(paths[name]) as f:
            f.read()
        await asyncio.sleep(0)

    async def body():
        await asyncio.gather(*(handler(n) for n in paths))

    result = run_monitored(body, loop_kind)
    opens = result.events_with("open")
    assert len(opens) == 3
    for evt in opens:
        (rec,) = evt.blocking_events
        owner = next(n for n, p in paths.items() if str(p) in rec["event"])
        assert evt.context["request_id"] == owner


def test_end_values_win_over_start_values_cpu(loop_kind):
    """Start and end captures are merged; non-None end values win, None end
    values leave the start value in place (shown on a cpu_blocking slice)."""

    def provider():
        p = phase.get()
        ctx = {"phase": p, "start_only": "S" if p == "start" else None}
        ctx[f"seen_{p}"] = True
        return ctx

    aiocop.register_context_provider(provider)

    async def body():
        phase.set("start")
        await asyncio.sleep(0)
        phase.set("end")  # during the handle
        busy_wait(0.04)

    result = run_monitored(body, loop_kind)
    evt = max(result.cpu_events, key=lambda e: e.elapsed_ms)
    assert evt.context["phase"] == "end"
    assert evt.context["start_only"] == "S"
    assert evt.context["seen_start"] is True
    assert evt.context["seen_end"] is True


def test_io_event_reports_the_context_at_the_first_blocking_call(loop_kind, tmp_path):
    """For an io_blocking slice the context is the one captured at the first blocking record
    (as aiocop 1.2.1 does), not the start/end merge used for cpu_blocking slices."""
    aiocop.register_context_provider(lambda: {"phase": phase.get()})

    async def body():
        phase.set("before")
        await asyncio.sleep(0)
        phase.set("at-first-call")
        os.stat(tmp_path)
        phase.set("after")
        os.stat(tmp_path)
        phase.set("end")

    result = run_monitored(body, loop_kind)
    (evt,) = result.io_events
    assert evt.context["phase"] == "at-first-call"


def test_none_end_value_keeps_start_value(loop_kind, tmp_path):
    aiocop.register_context_provider(lambda: {"request_id": request_id.get()})

    async def body():
        request_id.set("req-7")
        await asyncio.sleep(0)
        os.stat(tmp_path)
        request_id.set(None)

    result = run_monitored(body, loop_kind)
    (evt,) = result.io_events
    assert evt.context["request_id"] == "req-7"


def test_failing_provider_is_logged_and_skipped(loop_kind, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)

    def broken_provider():
        raise RuntimeError("provider went boom")

    aiocop.register_context_provider(lambda: {"a": 1})
    aiocop.register_context_provider(broken_provider)
    aiocop.register_context_provider(lambda: {"b": 2})

    async def body():
        os.stat(tmp_path)

    result = run_monitored(body, loop_kind)
    (evt,) = result.io_events
    assert evt.context == {"a": 1, "b": 2}
    logged = [r for r in caplog.records if r.name.startswith("aiocop") and r.levelno >= logging.WARNING]
    assert logged
    assert any("broken_provider" in r.getMessage() or "provider went boom" in r.getMessage() for r in logged)


def test_provider_returning_none_is_ignored(loop_kind, tmp_path):
    aiocop.register_context_provider(lambda: None)
    aiocop.register_context_provider(lambda: {"x": 1})

    async def body():
        os.stat(tmp_path)

    result = run_monitored(body, loop_kind)
    assert result.io_events[0].context == {"x": 1}


def test_unregister_and_clear_providers(loop_kind, tmp_path):
    def p1():
        return {"p1": True}

    def p2():
        return {"p2": True}

    aiocop.register_context_provider(p1)
    aiocop.register_context_provider(p1)  # twice: no-op
    aiocop.register_context_provider(p2)
    aiocop.unregister_context_provider(p2)
    aiocop.unregister_context_provider(p2)  # unknown: no error

    async def body():
        os.stat(tmp_path)

    result = run_monitored(body, loop_kind)
    assert result.io_events[0].context == {"p1": True}

    aiocop.clear_context_providers()
    result = run_monitored(body, loop_kind)
    assert result.io_events[0].context == {}


def test_provider_is_called_once_per_capture(loop_kind, tmp_path):
    calls = []

    def counting():
        calls.append(1)
        return {"n": len(calls)}

    aiocop.register_context_provider(counting)

    async def body():
        os.stat(tmp_path)

    result = run_monitored(body, loop_kind)
    assert result.io_events[0].context["n"] >= 1
    assert calls
