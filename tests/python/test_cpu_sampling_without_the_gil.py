"""A C call that holds the GIL (here a regex backtracking for 100-200 ms) is sampled at
most intervals of the CPU sampler, which reads the loop thread's stack without the
GIL; each sample names the Python function that made the call, and ``stats()`` says the
sampler reads stacks without the GIL. Under the GIL (aiocop 1.2.1,
or an interpreter the reader does not support) such a call yields one sample at most.

Each run is a fresh process: the sampler's settings (interval 10 ms, armed after 5 ms) are
once per process.
"""

from __future__ import annotations

import json

import pytest

from conftest import LOOP_KINDS, TUNED_REGEX, describe, run_python

PROGRAM = (
    """
import asyncio, json, logging, re, time
import aiocop

warnings = []

class Collect(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())

logging.getLogger("aiocop").addHandler(Collect())

events = []
aiocop.detect_slow_tasks(threshold_ms=30, on_slow_task=events.append, cpu_sampling=False)
aiocop.start_cpu_sampling(interval_ms=10, arm_after_ms=5)
decided_before = aiocop.stats()["gil_free_sampling"]

"""
    + TUNED_REGEX
    + """

async def main():
    aiocop.activate()
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(backtrack, n)
    loop.call_soon(done.set_result, None)
    await done
    await asyncio.sleep(0)
    aiocop.flush()

loop = new_loop()
loop.run_until_complete(main())
loop.close()

slow = [e for e in events if e.elapsed_ms >= 60]
print(json.dumps({{
    "elapsed_ms": [e.elapsed_ms for e in slow],
    "samples": [e.cpu_stack_samples for e in slow],
    "warnings": warnings,
    "gil_free_sampling": [decided_before, aiocop.stats()["gil_free_sampling"]],
}}))
"""
)


@pytest.mark.parametrize("loop_kind", LOOP_KINDS)
def test_a_regex_holding_the_gil_is_sampled_every_interval(loop_kind):
    proc = run_python(PROGRAM.format(loop_kind=loop_kind), timeout=60)
    assert proc.returncode == 0, describe(proc)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["warnings"] == [], result["warnings"]
    # stats() says the sampler reads stacks without the GIL (this interpreter is supported),
    # decided when sampling started.
    assert result["gil_free_sampling"] == [True, True], result
    assert len(result["elapsed_ms"]) == 1, result
    elapsed = result["elapsed_ms"][0]
    samples = result["samples"][0]
    intervals = int((elapsed - 5) // 10)
    naming = sum(s["count"] for s in samples if ":backtrack" in s["trace"])
    # Under the GIL it would be one sample at most; a busy machine may delay some of the
    # sampler's wake-ups by more than an interval (each such one skips a point of the grid).
    assert naming >= intervals // 2, (naming, intervals, elapsed, samples)
    # The samples are the usual ones: file:line:function frames, innermost first (under any
    # native frames, see test_native_frames.py).
    python = [s["trace"].split(" <- ")[len(s["native_frames"])] for s in samples]
    assert all(s["entry_point"] == p for s, p in zip(samples, python))
    assert all(p.endswith(":backtrack") for p in python), samples
