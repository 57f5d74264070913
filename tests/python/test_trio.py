"""trio and anyio: real ``trio.run`` loops monitored through aiocop's trio instrument.

Each step of a trio task is one monitored handle: the same slow-task events, severity, allow
rules and raising at the call as on asyncio.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

import aiocop

from conftest import THRESHOLD_MS

trio = pytest.importorskip("trio")
anyio = pytest.importorskip("anyio")

from aiocop.trio import AiocopInstrument  # noqa: E402


@pytest.fixture(autouse=True)
def no_allow_rules():
    aiocop.clear_allow_rules()
    yield
    aiocop.clear_allow_rules()


def collecting() -> list[Any]:
    events: list[Any] = []
    aiocop.register_slow_task_callback(events.append)
    return events


def blocking_events(events: list[Any]) -> list[dict[str, Any]]:
    return [b for e in events for b in e.blocking_events]


def event_names(events: list[Any]) -> list[str]:
    return [b["event"].split("(")[0] for b in blocking_events(events)]


# --------------------------------------------------------------------------- slow task events


def test_time_sleep_in_a_trio_task_is_a_high_severity_event() -> None:
    events = collecting()
    aiocop.activate()

    async def main() -> None:
        await trio.lowlevel.checkpoint()
        time.sleep(0.02)  # a blocking call inside a task step

    trio.run(main, instruments=[AiocopInstrument()])
    sleeps = [e for e in events if "time.sleep" in event_names([e])]
    assert len(sleeps) == 1, [(e.reason, e.blocking_events) for e in events]
    event = sleeps[0]
    assert event.reason == "io_blocking"
    assert event.severity_score == 50
    assert event.severity_level == "high"
    assert event.elapsed_ms >= 20
    assert event.threshold_ms == THRESHOLD_MS
    assert event.exceeded_threshold is True
    record = event.blocking_events[0]
    assert record["event"] == "time.sleep(0.02)"
    assert record["severity"] == 50
    assert "test_trio.py" in record["entry_point"]
    assert ":main" in record["entry_point"]
    assert event.task_name is not None and "main" in event.task_name
    assert event.coroutine is not None and event.coroutine.endswith("main")


def test_file_read_in_a_trio_task_is_a_moderate_event(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 100)
    events = collecting()
    aiocop.activate()

    async def reader() -> bytes:
        await trio.lowlevel.checkpoint()
        with open(data, "rb") as f:
            return f.read()

    assert trio.run(reader, instruments=[AiocopInstrument()]) == b"x" * 100
    opens = [e for e in events if "open" in event_names([e])]
    assert len(opens) == 1, [e.blocking_events for e in events]
    event = opens[0]
    assert event.reason == "io_blocking"
    assert event.severity_score == 10
    assert event.severity_level == "medium"
    assert str(data) in event.blocking_events[0]["event"]
    assert event.elapsed_ms >= 0


def test_cpu_bound_step_is_a_cpu_blocking_event() -> None:
    events = collecting()
    aiocop.activate()

    async def busy() -> None:
        await trio.lowlevel.checkpoint()
        end = time.perf_counter() + 2 * THRESHOLD_MS / 1000
        while time.perf_counter() < end:
            pass

    trio.run(busy, instruments=[AiocopInstrument()])
    cpu = [e for e in events if e.reason == "cpu_blocking"]
    assert cpu, [(e.reason, e.elapsed_ms) for e in events]
    assert max(e.elapsed_ms for e in cpu) >= 2 * THRESHOLD_MS
    assert all(e.severity_score == 0 and e.severity_level == "low" for e in cpu)


def test_a_quick_non_blocking_run_makes_no_event() -> None:
    events = collecting()
    aiocop.activate()

    async def main() -> int:
        total = 0
        for i in range(100):
            await trio.sleep(0)
            total += i
        return total

    assert trio.run(main, instruments=[AiocopInstrument()]) == 4950
    assert [e for e in events if e.reason == "io_blocking"] == []


def test_events_are_delivered_on_the_trio_thread_during_the_run() -> None:
    import threading

    seen: list[tuple[int, bool]] = []
    aiocop.register_slow_task_callback(
        lambda e: seen.append((threading.get_ident(), trio.lowlevel.in_trio_run()))
    )
    aiocop.activate()

    async def main() -> None:
        await trio.lowlevel.checkpoint()
        time.sleep(0.001)
        # Later steps: the delivery is scheduled with run_sync_soon and runs in the run.
        for _ in range(50):
            if seen:
                break
            await trio.sleep(0.01)

    trio.run(main, instruments=[AiocopInstrument()])
    assert seen, "no event delivered"
    assert seen[0] == (threading.get_ident(), True)


# --------------------------------------------------------------------------- activation


def test_activate_inside_trio_run_adds_the_instrument() -> None:
    events = collecting()
    added: list[Any] = []

    async def main() -> None:
        aiocop.activate()
        added.append(aiocop.trio._INSTRUMENT.get())
        aiocop.activate()  # once per run
        added.append(aiocop.trio._INSTRUMENT.get())
        await trio.lowlevel.checkpoint()
        time.sleep(0.001)

    trio.run(main)
    assert isinstance(added[0], AiocopInstrument)
    assert added[0] is added[1]
    assert "time.sleep" in event_names(events)


def test_detect_slow_tasks_inside_trio_run_adds_the_instrument() -> None:
    # Detection is configured already (a repeat call logs and does nothing else), but the
    # run is followed all the same.
    events = collecting()
    aiocop.activate()

    async def main() -> None:
        aiocop.detect_slow_tasks(threshold_ms=THRESHOLD_MS)
        await trio.lowlevel.checkpoint()
        time.sleep(0.001)

    trio.run(main)
    assert "time.sleep" in event_names(events)


def test_no_events_after_deactivation() -> None:
    events = collecting()

    async def main() -> None:
        aiocop.activate()
        await trio.lowlevel.checkpoint()
        time.sleep(0.001)
        aiocop.deactivate()
        await trio.lowlevel.checkpoint()
        time.sleep(0.002)
        os.stat(".")

    trio.run(main)
    assert [b["event"] for b in blocking_events(events)] == ["time.sleep(0.001)"]


def test_the_instrument_is_a_trio_instrument() -> None:
    assert isinstance(AiocopInstrument(), trio.abc.Instrument)


def test_without_activation_nothing_is_monitored() -> None:
    events = collecting()

    async def main() -> None:
        await trio.lowlevel.checkpoint()
        time.sleep(0.001)

    trio.run(main, instruments=[AiocopInstrument()])
    assert events == []


# --------------------------------------------------------------------------- enforcement


def test_raise_at_call_inside_a_trio_task() -> None:
    aiocop.activate()
    caught: list[BaseException] = []
    took: list[float] = []

    async def main() -> None:
        await trio.lowlevel.checkpoint()
        with aiocop.raise_on_violations(at_call=True):
            started = time.perf_counter()
            try:
                time.sleep(1.0)  # at-call:trio
            except aiocop.BlockingCallError as exc:
                caught.append(exc)
            took.append(time.perf_counter() - started)

    trio.run(main, instruments=[AiocopInstrument()])
    assert len(caught) == 1
    assert took[0] < 0.5, "the call was made"
    exc = caught[0]
    assert exc.event_name == "time.sleep"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == __file__]
    source = Path(__file__).read_text().splitlines()
    assert source[frames[-1].lineno - 1].rstrip().endswith("# at-call:trio")


def test_allow_rule_keeps_a_call_out_of_trio_events() -> None:
    events = collecting()
    aiocop.activate()

    async def main() -> None:
        await trio.lowlevel.checkpoint()
        with aiocop.allowing(event="time.sleep"):
            time.sleep(0.001)
        await trio.lowlevel.checkpoint()
        os.listdir(".")

    trio.run(main, instruments=[AiocopInstrument()])
    names = event_names(events)
    assert "time.sleep" not in names
    assert "os.listdir" in names


def test_allowed_call_is_not_raised_at_call() -> None:
    aiocop.activate()

    async def main() -> str:
        await trio.lowlevel.checkpoint()
        with aiocop.raise_on_violations(at_call=True), aiocop.allowing(event="time.sleep"):
            time.sleep(0.001)
        return "ran"

    assert trio.run(main, instruments=[AiocopInstrument()]) == "ran"


# --------------------------------------------------------------------------- anyio


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_anyio_code_reports_the_same_blocking_calls_on_both_backends(backend: str) -> None:
    events = collecting()

    async def main() -> None:
        aiocop.activate()
        await anyio.sleep(0)
        time.sleep(0.001)
        await anyio.sleep(0)
        os.listdir(".")
        await anyio.sleep(0)
        aiocop.flush()

    anyio.run(main, backend=backend)
    aiocop.flush()
    assert sorted(set(event_names(events))) == ["os.listdir", "time.sleep"]


# --------------------------------------------------------------------------- context, threads


def test_context_providers_read_the_task_context() -> None:
    import contextvars

    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
    aiocop.register_context_provider(lambda: {"request_id": request_id.get()})
    events = collecting()
    aiocop.activate()

    async def handler(rid: str) -> None:
        request_id.set(rid)
        await trio.lowlevel.checkpoint()
        end = time.perf_counter() + 2 * THRESHOLD_MS / 1000  # a CPU-bound step: no record
        while time.perf_counter() < end:
            pass

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(handler, "r-1")
            nursery.start_soon(handler, "r-2")

    trio.run(main, instruments=[AiocopInstrument()])
    seen = sorted(e.context.get("request_id") for e in events if e.reason == "cpu_blocking")
    assert seen == ["r-1", "r-2"], [(e.reason, e.context) for e in events]


def test_a_trio_run_in_a_worker_thread_is_monitored_there() -> None:
    import threading

    events: list[tuple[Any, int]] = []
    aiocop.register_slow_task_callback(lambda e: events.append((e, threading.get_ident())))
    aiocop.activate()
    worker: list[int] = []

    async def main() -> None:
        worker.append(threading.get_ident())
        await trio.lowlevel.checkpoint()
        time.sleep(0.001)

    thread = threading.Thread(target=trio.run, args=(main,), kwargs={"instruments": [AiocopInstrument()]})
    thread.start()
    thread.join(10)
    names = [b["event"] for e, _ in events for b in e.blocking_events]
    assert names == ["time.sleep(0.001)"], names
    assert {tid for _, tid in events} == set(worker)


# --------------------------------------------------------------------------- delivery


def test_blocking_calls_in_callbacks_are_not_reported_back() -> None:
    """The delivery runs inside trio's own run_sync_soon step: what callbacks do there is not
    the run's (no event feeding the next)."""
    events: list[Any] = []

    def callback(event: Any) -> None:
        events.append(event)
        os.stat(".")
        with open(__file__, "rb") as f:
            f.read(10)

    aiocop.register_slow_task_callback(callback)
    aiocop.activate()

    async def main() -> None:
        await trio.lowlevel.checkpoint()
        time.sleep(0.001)
        for _ in range(20):
            await trio.sleep(0.005)

    trio.run(main, instruments=[AiocopInstrument()])
    assert [b["event"] for e in events for b in e.blocking_events] == ["time.sleep(0.001)"]


def test_raise_at_the_end_of_a_step_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.WARNING, logger="aiocop")
    aiocop.activate()

    async def main() -> str:
        await trio.lowlevel.checkpoint()
        aiocop.enable_raise_on_violations()
        time.sleep(2 * THRESHOLD_MS / 1000)  # high severity, over the threshold
        await trio.lowlevel.checkpoint()
        return "ran on"

    assert trio.run(main, instruments=[AiocopInstrument()]) == "ran on"
    logged = [r.getMessage() for r in caplog.records if r.name == "aiocop"]
    assert any("trio task step" in m and "at_call=True" in m for m in logged), logged


def test_events_of_the_last_steps_reach_the_end_of_the_run() -> None:
    """Trio refuses run_sync_soon from the moment its system tasks end, before the instruments'
    after_run: a delivery the background thread tries then is not lost, after_run makes it."""
    events = collecting()
    aiocop.activate()
    undelivered = aiocop.stats()["undelivered_events"]

    class SlowEnd(trio.abc.Instrument):
        def after_run(self) -> None:
            time.sleep(0.05)  # the background thread's idle wake-up (2 ms) comes meanwhile

    async def main() -> None:
        await trio.lowlevel.checkpoint()
        os.listdir("/")  # a call site never seen before: formatted on the background thread

    trio.run(main, instruments=[SlowEnd(), AiocopInstrument()])
    assert "os.listdir" in event_names(events)
    assert aiocop.stats()["undelivered_events"] == undelivered


def test_inline_dispatch_delivers_right_after_the_step() -> None:
    from conftest import describe, run_python

    proc = run_python(
        """
        import time, trio, aiocop
        from aiocop.trio import AiocopInstrument

        aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection()
        aiocop.detect_slow_tasks(threshold_ms=10, dispatch="inline")
        seen = []
        aiocop.register_slow_task_callback(
            lambda e: seen.append((e.blocking_events[0]["event"], trio.lowlevel.in_trio_run()))
        )

        async def main():
            aiocop.activate()
            await trio.lowlevel.checkpoint()
            time.sleep(0.001)
            await trio.lowlevel.checkpoint()
            print("next step", seen)

        trio.run(main)
        """
    )
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.strip() == "next step [('time.sleep(0.001)', True)]", describe(proc)


def test_the_instrument_takes_no_arguments() -> None:
    with pytest.raises(TypeError):
        AiocopInstrument(5)  # type: ignore[call-arg]


def test_activate_inside_a_run_with_the_instrument_adds_no_second_one() -> None:
    events = collecting()
    given = AiocopInstrument()
    attached: list[Any] = []

    async def main() -> None:
        aiocop.activate()
        attached.append(aiocop.trio.attach_to_current_run())
        await trio.lowlevel.checkpoint()
        time.sleep(0.001)

    trio.run(main, instruments=[given])
    assert attached == [given]
    assert event_names(events).count("time.sleep") == 1
