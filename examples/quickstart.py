"""aiocop quick start, on asyncio or on uvloop.

The Quick Start of aiocop's README, extended to show the three kinds of report:
a file opened on the loop (io_blocking, medium), a ``time.sleep`` on the loop
(io_blocking, high) and a CPU-bound slice (cpu_blocking, with the hottest
sampled stack).

    python examples/quickstart.py --loop asyncio
    python examples/quickstart.py --loop uvloop
    cargo xtask demo            # builds aiocop into .venv, runs both

Only the public API is used, so the same script runs on the pure-Python
aiocop 1.2.1 too.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiocop


def on_slow_task(event: aiocop.SlowTaskEvent) -> None:
    print(f"SLOW TASK DETECTED: {event.elapsed_ms:.1f}ms")
    print(f"  Reason: {event.reason}")
    print(f"  Severity: {event.severity_level} (score {event.severity_score})")
    for evt in event.blocking_events:
        print(f"  - {evt['event']} at {evt['entry_point']}")
    if event.reason == "cpu_blocking":
        if event.cpu_stack_samples:
            hottest = max(event.cpu_stack_samples, key=lambda sample: sample["count"])
            print(f"  Hottest stack ({hottest['count']} samples) at {hottest['entry_point']}")
        else:
            print("  (no CPU stack samples)")


async def blocking_task() -> None:
    # This synchronous open() will block the loop - aiocop will catch it!
    with open("/dev/null", "w") as f:
        f.write("data")
    await asyncio.sleep(0.1)


async def sleeping_task() -> None:
    # time.sleep() freezes the whole loop, not just this coroutine.
    time.sleep(0.02)
    await asyncio.sleep(0)


def crunch_numbers(duration_s: float = 0.05) -> int:
    """Pure CPU work, no IO: reported as cpu_blocking, and sampled."""
    deadline = time.perf_counter() + duration_s
    total = 0
    while time.perf_counter() < deadline:
        for i in range(1000):
            total += i * i
    return total


async def cpu_task() -> None:
    crunch_numbers()
    await asyncio.sleep(0)


async def main() -> None:
    aiocop.patch_audit_functions()
    aiocop.start_blocking_io_detection()
    aiocop.detect_slow_tasks(threshold_ms=10, on_slow_task=on_slow_task)
    aiocop.activate()

    await asyncio.gather(blocking_task(), sleeping_task(), cpu_task())

    # By default aiocop delivers events shortly after the slow handle, on this
    # loop's thread; flush() delivers whatever is still pending, now. (aiocop
    # 1.2.1 has no flush(): its callbacks have already run at this point.)
    flush = getattr(aiocop, "flush", None)
    if flush is not None:
        flush()
    aiocop.deactivate()


def run(kind: str) -> None:
    if kind == "asyncio":
        asyncio.run(main())
        return

    import uvloop

    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    else:
        uvloop.run(main())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()

    # Stream the output line by line, also through a pipe (cargo xtask demo, CI).
    sys.stdout.reconfigure(line_buffering=True)
    print(f"== loop: {args.loop} ==")
    run(args.loop)
