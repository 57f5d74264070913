"""Memory growth under load: RSS before and after many monitored callbacks, some doing IO.

    python benches/python/memory.py --loop uvloop --mode ours --callbacks 10000000 --io-every 10

runs `--callbacks` callbacks through ``loop.call_soon`` (64 chains side by side), every
`--io-every`-th of which calls ``os.stat('.')`` (a blocking event for the monitor, so an
``io_blocking`` event is assembled and delivered). RSS is ``VmRSS`` from ``/proc/self/status``,
read after a warm-up and again after the run (after ``flush()`` and a full collection).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import time

import monitor

_CHAINS = 64


def rss_kib() -> int:
    """The resident set size of this process, in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def callbacks(n: int, io_every: int) -> None:
    """`n` callbacks through ``loop.call_soon``; every `io_every`-th one calls ``os.stat``."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    scheduled = min(n, _CHAINS)
    executed = 0

    def tick() -> None:
        nonlocal scheduled, executed
        executed += 1
        if executed % io_every == 0:
            os.stat(".")
        if scheduled < n:
            scheduled += 1
            loop.call_soon(tick)
        elif executed == n:
            done.set_result(None)

    for _ in range(scheduled):
        loop.call_soon(tick)
    await done


async def measure(n: int, io_every: int) -> dict[str, float]:
    monitor.activate()
    await callbacks(max(1, n // 100), io_every)
    monitor.flush()
    gc.collect()
    before = rss_kib()
    start = time.perf_counter()
    await callbacks(n, io_every)
    monitor.flush()
    await asyncio.sleep(0.05)  # let deliveries already scheduled by a background thread run
    monitor.flush()
    seconds = time.perf_counter() - start
    gc.collect()
    after = rss_kib()
    return {
        "rss_before_kib": before,
        "rss_after_kib": after,
        "growth_mib": (after - before) / 1024,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loop", required=True, choices=monitor.LOOPS)
    parser.add_argument("--mode", required=True, choices=monitor.MODES)
    parser.add_argument("--callbacks", type=int, required=True)
    parser.add_argument("--io-every", type=int, default=10)
    args = parser.parse_args()

    monitor.setup(args.mode)
    loop = monitor.new_loop(args.loop)
    try:
        measured = loop.run_until_complete(measure(args.callbacks, args.io_every))
    finally:
        loop.close()
    result = {
        "scenario": "memory",
        "loop": args.loop,
        "mode": args.mode,
        "callbacks": args.callbacks,
        "io_callbacks": args.callbacks // args.io_every,
        **measured,
        **monitor.versions(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
