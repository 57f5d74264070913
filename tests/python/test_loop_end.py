"""No event is lost when its loop ends.

An event assembled on the background thread waits for its loop to run its delivery. When the
loop ends first — ``asyncio.run`` ending normally or by the task's exception, a loop closed by
hand, ``deactivate()``, the interpreter exiting — the events still pending are delivered on
the loop's thread before it goes away, or, where no thread can run them any more, logged at
WARNING with their content. Each case runs in a fresh interpreter (background dispatch, the
default), so that nothing else flushes for it.
"""

from __future__ import annotations

import pytest

from conftest import describe, run_python

pytest.importorskip("uvloop")

#: Sets aiocop up; ``record`` keeps each blocking-call event's calls, the thread it was
#: delivered on and whether the loop was closed by then.
PRELUDE = """
import asyncio, json, logging, sys, threading, time
import uvloop
import aiocop

logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
aiocop.patch_audit_functions()
aiocop.start_blocking_io_detection()
aiocop.detect_slow_tasks(threshold_ms=10, cpu_sampling=False)
seen = []
LOOP = None

def record(event):
    calls = [e["event"] for e in event.blocking_events]
    if not calls:
        return  # a handle a busy machine stretched past the threshold: not what is tested
    seen.append({
        "calls": calls,
        "thread": threading.get_ident(),
        "closed": LOOP.is_closed() if LOOP is not None else None,
    })
    print("DELIVERED", json.dumps(calls), flush=True)

aiocop.register_slow_task_callback(record)

def new_loop(kind):
    global LOOP
    LOOP = asyncio.new_event_loop() if kind == "asyncio" else uvloop.new_event_loop()
    return LOOP

async def blocks_then(outcome):
    aiocop.activate()
    await asyncio.sleep(0)
    time.sleep(0.05)  # the last step blocks
    if outcome == "raise":
        raise RuntimeError("boom")
    return "done"

def report():
    stats = aiocop.stats()
    print("STATS", json.dumps({k: stats[k] for k in ("undelivered_events", "dropped_events")}))
"""


def delivered(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("DELIVERED")]


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
@pytest.mark.parametrize("outcome", ["raise", "return"])
def test_asyncio_run_delivers_the_last_steps_event(loop_kind: str, outcome: str) -> None:
    """The task blocks in its last step and then raises (or returns): the loop ends at once,
    and the event still reaches the callback, on the loop's thread, before the loop closes."""
    proc = run_python(
        PRELUDE
        + f"""
runner = asyncio.Runner(loop_factory=lambda: new_loop({loop_kind!r})) if sys.version_info >= (3, 11) else None
try:
    if runner is not None:
        with runner:
            runner.run(blocks_then({outcome!r}))
    else:
        loop = new_loop({loop_kind!r})
        try:
            loop.run_until_complete(blocks_then({outcome!r}))
        finally:
            loop.close()
except RuntimeError:
    print("RAISED")
assert seen, "no event"
assert all(s["thread"] == threading.get_ident() and s["closed"] is False for s in seen), seen
report()
"""
    )
    assert proc.returncode == 0, describe(proc)
    assert ("RAISED" in proc.stdout) == (outcome == "raise"), describe(proc)
    lines = delivered(proc.stdout)
    assert len(lines) == 1 and "time.sleep(0.05)" in lines[0], describe(proc)
    assert 'STATS {"undelivered_events": 0, "dropped_events": 0}' in proc.stdout, describe(proc)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_deactivate_delivers_what_is_pending(loop_kind: str) -> None:
    """``deactivate()`` delivers the events pending for its thread's loops before it returns."""
    proc = run_python(
        PRELUDE
        + f"""
async def main():
    aiocop.activate()
    await asyncio.sleep(0)
    time.sleep(0.05)
    await asyncio.sleep(0)  # a new step: the blocking one has ended
    before = len(seen)
    aiocop.deactivate()
    print("BEFORE", before, "AFTER", len(seen))

loop = new_loop({loop_kind!r})
loop.run_until_complete(main())
loop.close()
report()
"""
    )
    assert proc.returncode == 0, describe(proc)
    assert "AFTER 1" in proc.stdout, describe(proc)
    assert len(delivered(proc.stdout)) == 1, describe(proc)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_loop_never_closed_delivers_at_interpreter_exit(loop_kind: str) -> None:
    """A script that runs its loop and ends without closing it still gets its events, on the
    main thread (the loop's), when the interpreter exits."""
    proc = run_python(
        PRELUDE
        + f"""
loop = new_loop({loop_kind!r})
loop.run_until_complete(blocks_then("return"))
print("RUN DONE", flush=True)
import atexit
atexit.register(report)  # runs after aiocop's exit handler (registered earlier)
"""
    )
    assert proc.returncode == 0, describe(proc)
    lines = delivered(proc.stdout)
    assert len(lines) == 1 and "time.sleep(0.05)" in lines[0], describe(proc)
    assert 'STATS {"undelivered_events": 0, "dropped_events": 0}' in proc.stdout, describe(proc)
    assert "could not deliver" not in proc.stderr, describe(proc)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_events_of_a_finished_thread_are_logged_at_exit(loop_kind: str) -> None:
    """A loop that ran in a thread which ended without closing it: nobody can run its
    callbacks any more, so at exit its events are logged at WARNING with their content."""
    proc = run_python(
        PRELUDE
        + f"""
def worker():
    loop = new_loop({loop_kind!r})

    async def activate():
        aiocop.activate()

    def blocks_then_stops():
        time.sleep(0.05)
        loop.stop()  # no handle runs after this one: the event cannot be delivered here

    loop.run_until_complete(activate())
    loop.call_soon(blocks_then_stops)
    loop.run_forever()

thread = threading.Thread(target=worker)
thread.start()
thread.join()
import atexit
atexit.register(report)
"""
    )
    assert proc.returncode == 0, describe(proc)
    assert delivered(proc.stdout) == [], describe(proc)
    warnings = [line for line in proc.stderr.splitlines() if "could not deliver" in line]
    assert len(warnings) == 1, describe(proc)
    assert warnings[0].startswith("WARNING aiocop "), describe(proc)
    assert "io_blocking" in warnings[0] and "time.sleep(0.05)" in warnings[0], describe(proc)
    assert 'STATS {"undelivered_events": 0, "dropped_events": 0}' in proc.stdout, describe(proc)


def test_the_close_of_an_asyncio_loop_class_is_wrapped_once() -> None:
    """Ours only: an asyncio loop keeps its instance attributes (the five scheduling methods);
    its class's ``close`` delivers first, and wraps the class's own ``close``."""
    proc = run_python(
        PRELUDE
        + """
loop = new_loop("asyncio")
original = type(loop).close
async def main():
    aiocop.activate()
assert "close" not in vars(loop)
loop.run_until_complete(main())
other = new_loop("asyncio")
other.run_until_complete(main())
assert "close" not in vars(loop)
wrapped = type(loop).__dict__["close"]
assert wrapped.__wrapped__ is original, (wrapped.__wrapped__, original)
loop.close(); other.close()
assert loop.is_closed() and other.is_closed()
plain = asyncio.new_event_loop()  # never monitored: its close just closes it
plain.close()
assert plain.is_closed()
print("OK")
"""
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, describe(proc)
