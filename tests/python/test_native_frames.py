"""Native frames under the Python frames of CPU samples: during a regex that holds the GIL for
well over 100 ms, the sampler's samples name the Python function that called it and, under
it, the C functions of ``_sre`` running it (``[native] sre_ucs1_match (libpython3.11.so.1.0)``), in
``trace`` and in ``native_frames``. A thread waiting in ``time.sleep`` is not signalled: its
samples have no native frames. A signal already handled by someone else leaves native frames
off, with one warning, and sampling as before.

Native frames are asked for (``start_cpu_sampling(native_frames=True)`` or
``AIOCOP_NATIVE_FRAMES=1``): by default there are none, and nothing is loaded for them.

Each run is a fresh process: the sampler's settings (interval 10 ms, armed after 5 ms) are once
per process.
"""

from __future__ import annotations

import json

import pytest

from conftest import LOOP_KINDS, TUNED_REGEX, describe, run_python

PROGRAM = (
    """
import asyncio, json, logging, re, signal, time
import aiocop

warnings = []

class Collect(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            warnings.append(record.getMessage())

logging.getLogger("aiocop").addHandler(Collect())

if {taken!r}:
    signal.signal(signal.SIGRTMIN + 4, lambda *_: None)

events = []
aiocop.detect_slow_tasks(threshold_ms=30, on_slow_task=events.append, cpu_sampling=False)
aiocop.start_cpu_sampling(interval_ms=10, arm_after_ms=5, native_frames={native!r})

"""
    + TUNED_REGEX
    + """
def nap():
    time.sleep(0.15)


async def main():
    aiocop.activate()
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    async def run(call):
        done = loop.create_future()
        loop.call_soon(call)
        loop.call_soon(done.set_result, None)
        await done
        await asyncio.sleep(0)
        aiocop.flush()

    # Regexes until one has native frames (at most 30), not measured: CPython's debug
    # information, which names them, is read on a thread of aiocop's once they are asked for
    # (on a loaded machine that takes a while; the samples meanwhile go without them).
    warming = aiocop.stats()["native_frames"] is True
    for _ in range(30 if warming else 1):
        await run(lambda: backtrack(n))
        if not warming or (events and any(s["native_frames"] for s in events[-1].cpu_stack_samples)):
            break
    global measured_from
    measured_from = len(events)
    await run(lambda: backtrack(n))
    await run(nap)

loop = new_loop()
loop.run_until_complete(main())
loop.close()

slow = [e for e in events[measured_from:] if e.elapsed_ms >= 60]
print(json.dumps({{
    "elapsed_ms": [e.elapsed_ms for e in slow],
    "samples": [e.cpu_stack_samples for e in slow],
    "warnings": warnings,
    "gil_free_sampling": aiocop.stats()["gil_free_sampling"],
    "native_frames": aiocop.stats()["native_frames"],
}}))
"""
)


def run(loop_kind: str, *, taken: bool = False, native: bool = True, env=None) -> dict:
    proc = run_python(
        PROGRAM.format(loop_kind=loop_kind, taken=taken, native=native), timeout=60, env=env
    )
    assert proc.returncode == 0, describe(proc)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["gil_free_sampling"] is True, result
    assert len(result["elapsed_ms"]) == 2, result  # the regex, then the sleep
    return result


def names_sre(native: str) -> bool:
    return "sre" in native.lower()



@pytest.mark.parametrize("loop_kind", LOOP_KINDS)
def test_a_regex_is_sampled_with_the_sre_frames_under_its_caller(loop_kind):
    result = run(loop_kind)
    assert result["warnings"] == [], result["warnings"]
    assert result["native_frames"] is True, result
    elapsed = result["elapsed_ms"][0]
    samples = result["samples"][0]
    intervals = int((elapsed - 5) // 10)
    naming = [s for s in samples if s["entry_point"].endswith(":backtrack")]
    count = sum(s["count"] for s in naming)
    assert count >= 0.8 * intervals, (count, intervals, elapsed, samples)
    with_sre = sum(
        s["count"] for s in naming if s["native_frames"] and any(map(names_sre, s["native_frames"]))
    )
    assert with_sre * 2 > count, (with_sre, count, [(s["count"], s["native_frames"]) for s in naming])
    for sample in naming:
        natives = sample["native_frames"]
        parts = sample["trace"].split(" <- ")
        # native frames first (innermost), marked, then the caller: the entry point
        assert parts[: len(natives)] == [f"[native] {n}" for n in natives], sample
        assert parts[len(natives)] == sample["entry_point"], sample
        # cut at the eval loop: CPython's interpreter frames are not shown
        assert not any("_PyEval_EvalFrame" in n for n in natives), sample
        assert len(natives) <= 16, sample


@pytest.mark.parametrize("loop_kind", LOOP_KINDS)
def test_a_sleeping_thread_gets_no_native_frames(loop_kind):
    result = run(loop_kind)
    samples = result["samples"][1]
    assert samples, result
    assert any(s["entry_point"].endswith(":nap") for s in samples), samples
    assert all(s["native_frames"] == [] for s in samples), samples
    assert not any("[native]" in s["trace"] for s in samples), samples


def test_a_signal_handled_by_someone_else_turns_native_frames_off():
    result = run("asyncio", taken=True)
    assert len(result["warnings"]) == 1, result["warnings"]
    assert "native frames" in result["warnings"][0], result["warnings"]
    assert result["native_frames"] is False, result
    samples = result["samples"][0]
    assert any(s["entry_point"].endswith(":backtrack") for s in samples), samples
    assert all(s["native_frames"] == [] for s in samples), samples


def test_native_frames_are_off_unless_asked_for():
    result = run("asyncio", native=False)
    assert result["warnings"] == [], result["warnings"]
    samples = result["samples"][0]
    assert any(s["entry_point"].endswith(":backtrack") for s in samples), samples
    assert all(s["native_frames"] == [] for s in samples), samples
    assert result["native_frames"] is None, result  # not asked for: nothing installed


def test_the_environment_asks_for_them_too():
    result = run("asyncio", native=False, env={"AIOCOP_NATIVE_FRAMES": "1"})
    samples = result["samples"][0]
    naming = [s for s in samples if s["entry_point"].endswith(":backtrack")]
    assert any(any(map(names_sre, s["native_frames"])) for s in naming), samples


def test_native_frames_must_be_a_bool():
    proc = run_python(
        """
        import aiocop
        try:
            aiocop.start_cpu_sampling(native_frames="yes")
        except TypeError as err:
            print("TypeError", err)
        print(aiocop.is_cpu_sampling_started())
        """
    )
    assert proc.stdout.splitlines()[0].startswith("TypeError native_frames must be a bool"), (
        describe(proc)
    )
    assert proc.stdout.splitlines()[1] == "False", describe(proc)
