"""Side-by-side micro-scenarios: the cost per unit of work on a loop with no monitor, ours, or
the incumbent (aiocop 1.2.1), one process per measurement.

    python benches/python/scenarios.py --scenario stat --loop uvloop --mode ours --n 20000

prints one JSON line: ``{"scenario", "loop", "mode", "n", "ns_per_unit", "samples", ...}``.
``ns_per_unit`` is the fastest of ``--repeat`` timed runs after a warm-up run (on a shared
machine the noise only ever adds time). The timed region ends with ``flush()`` where the
monitor has it, so delivering every event is charged. ``cargo xtask bench`` runs the modes
alternately, several rounds, and compares the medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable

import monitor

Scenario = Callable[[int], Awaitable[None]]

# The file the `read` scenario reads: 100 bytes, created before the monitor is active.
_DATA_FILE = os.path.join(tempfile.gettempdir(), f"aiocop-bench-{os.getpid()}.bin")
# How many call_soon chains run side by side, so the loop's own work per iteration (a select
# on asyncio) is shared by many callbacks, as in a busy server.
_CHAINS = 64


async def call_soon(n: int) -> None:
    """`n` trivial callbacks through ``loop.call_soon``: each one schedules the next."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    scheduled = min(n, _CHAINS)
    executed = 0

    def tick() -> None:
        nonlocal scheduled, executed
        executed += 1
        if scheduled < n:
            scheduled += 1
            loop.call_soon(tick)
        elif executed == n:
            done.set_result(None)

    for _ in range(scheduled):
        loop.call_soon(tick)
    await done


async def _sleep0() -> None:
    await asyncio.sleep(0)


async def _stat() -> None:
    os.stat(".")
    await asyncio.sleep(0)


async def _read() -> None:
    with open(_DATA_FILE, "rb") as file:
        file.read(100)
    await asyncio.sleep(0)


async def _http_handler() -> None:
    """aiocop 1.2.1's "realistic HTTP handler": two awaited queries around two cheap checks."""
    await asyncio.sleep(0.001)
    os.path.exists(_DATA_FILE)
    os.getcwd()
    await asyncio.sleep(0.001)


def tasks(body: Callable[[], Awaitable[None]]) -> Scenario:
    """`n` tasks running `body`, gathered."""

    async def run(n: int) -> None:
        await asyncio.gather(*(body() for _ in range(n)))

    return run


def off_handle(call: Callable[[], object]) -> Scenario:
    """`n` calls of `call` in a plain loop on a worker thread, which runs no monitored handle."""

    async def run(n: int) -> None:
        def work() -> None:
            for _ in range(n):
                call()

        await asyncio.get_running_loop().run_in_executor(None, work)

    return run


def _audit() -> None:
    sys.audit("aiocop.bench")


def _stat_call() -> None:
    os.stat(".")


SCENARIOS: dict[str, Scenario] = {
    "call_soon": call_soon,
    "sleep0": tasks(_sleep0),
    "stat": tasks(_stat),
    "read": tasks(_read),
    "http_handler": tasks(_http_handler),
    "audit_off_handle": off_handle(_audit),
    "stat_off_handle": off_handle(_stat_call),
}


async def measure(scenario: Scenario, n: int, repeat: int) -> list[float]:
    """Activates the monitor, warms up, then times `repeat` runs: ns per unit for each."""
    monitor.activate()
    await scenario(max(1, n // 10))
    monitor.flush()
    samples = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter_ns()
        await scenario(n)
        monitor.flush()
        samples.append((time.perf_counter_ns() - start) / n)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument("--loop", required=True, choices=monitor.LOOPS)
    parser.add_argument("--mode", required=True, choices=monitor.MODES)
    parser.add_argument("--n", type=int, required=True, help="units of work per timed run")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (default: 5)")
    args = parser.parse_args()

    with open(_DATA_FILE, "wb") as file:
        file.write(bytes(range(100)))
    try:
        monitor.setup(args.mode)
        loop = monitor.new_loop(args.loop)
        try:
            samples = loop.run_until_complete(
                measure(SCENARIOS[args.scenario], args.n, args.repeat)
            )
        finally:
            loop.close()
    finally:
        os.remove(_DATA_FILE)

    result = {
        "scenario": args.scenario,
        "loop": args.loop,
        "mode": args.mode,
        "n": args.n,
        "ns_per_unit": min(samples),
        "samples": samples,
        **monitor.versions(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
