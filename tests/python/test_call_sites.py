"""Call sites (fresh processes, ours only): the stack of a blocking call is captured and
resolved once per call site; a call site seen before is known again by its frames alone, on
every loop, whatever the depth, and only the same frames make the same site."""

from __future__ import annotations

import textwrap

import pytest

from conftest import describe, run_python

LOOPS = ["asyncio", "uvloop"]


def run_monitored(loop: str, body: str):
    """Runs ``body`` (which defines ``async def main()``) in a fresh process on ``loop``,
    monitored, every event appended to ``events``."""
    prologue = textwrap.dedent(
        f"""
        import asyncio, os, time
        import aiocop
        {"import uvloop" if loop == "uvloop" else ""}

        events = []
        aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection()
        aiocop.detect_slow_tasks(threshold_ms=1000, on_slow_task=events.append)
        """
    )
    run = "uvloop.run(main())" if loop == "uvloop" else "asyncio.run(main())"
    return run_python(prologue + textwrap.dedent(body) + run + "\n")


@pytest.mark.parametrize("loop", LOOPS)
def test_a_known_call_site_gives_the_same_event_as_a_new_one(loop):
    """The first event of a call site is assembled from the handle's slice (its stack still
    to be formatted); at a site seen before, the event is made on the loop thread straight
    from the records. Both carry the same fields: every blocking call in order, with its text,
    trace, entry point and weight, the scores added, the level and the reason."""
    proc = run_monitored(
        loop,
        """
        def blocking(i):
            os.stat(".")
            time.sleep(0)

        async def step(i):
            blocking(i)

        def fields(e):
            calls = [(b["event"], b["trace"], b["entry_point"], b["severity"]) for b in e.blocking_events]
            return (e.reason, e.severity_score, e.severity_level, e.exceeded_threshold,
                    e.threshold_ms, calls, e.cpu_stack_samples, e.context)

        async def main():
            aiocop.activate()
            await asyncio.sleep(0)
            for i in range(5):
                await asyncio.create_task(step(i))
                aiocop.flush()
            assert len(events) == 5, events
            first = fields(events[0])
            assert first[0] == "io_blocking", first
            assert [c[0].split("(")[0] for c in first[5]] == ["os.stat", "time.sleep"], first
            assert first[1] == sum(c[3] for c in first[5]), first
            assert all("blocking" in c[1] and "step" in c[1] for c in first[5]), first
            for later in events[1:]:
                assert fields(later) == first, (later, first)
            print("SAME")
        """,
    )
    assert proc.returncode == 0, describe(proc)
    assert "SAME" in proc.stdout


@pytest.mark.parametrize("loop", LOOPS)
def test_the_same_line_reached_from_other_callers_is_another_site(loop):
    """One blocking line reached from two callers and at two depths, interleaved: each event
    names the path it was reached by, every time (the call-site cache never mixes them up)."""
    proc = run_monitored(
        loop,
        """
        def blocking():
            os.stat(".")

        def via_alpha():
            blocking()

        def via_beta():
            blocking()

        def deeper(n):
            return deeper(n - 1) if n else via_alpha()

        async def step(kind):
            {"alpha": via_alpha, "beta": via_beta, "deep": lambda: deeper(3)}[kind]()

        async def main():
            aiocop.activate()
            await asyncio.sleep(0)
            kinds = ["alpha", "beta", "deep"] * 4
            for kind in kinds:
                await asyncio.create_task(step(kind))
            aiocop.flush()
            traces = [e.blocking_events[0]["trace"] for e in events]
            assert len(traces) == len(kinds), traces
            for kind, trace in zip(kinds, traces):
                frames = trace.split(" <- ")
                assert frames[0].endswith(":blocking"), trace
                caller = {"alpha": "via_alpha", "beta": "via_beta", "deep": "via_alpha"}[kind]
                assert frames[1].endswith(":" + caller), (kind, trace)
                assert sum(f.endswith(":deeper") for f in frames) == (4 if kind == "deep" else 0), (kind, trace)
            assert len(set(traces)) == 3, set(traces)
            print("DISTINCT")
        """,
    )
    assert proc.returncode == 0, describe(proc)
    assert "DISTINCT" in proc.stdout
