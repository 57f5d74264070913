"""A process that forks right after aiocop's threads started (the watchdog, the stuck-loop
reporter) gets a child that monitors its loops and exits: the child never waits on something
a thread of the parent's was in the middle of at the fork (the clock's first choice and
calibration, the stuck-loop detection's lock). Each run is a fresh process, the fork at its
first moments (one at a time: run in parallel they leave the windows to chance)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, time
    import aiocop

    aiocop.start_blocking_io_detection()
    aiocop.detect_slow_tasks(threshold_ms=30)
    aiocop.detect_stuck_loops(after_ms=50)

    pid = os.fork()
    if pid == 0:
        async def main():
            aiocop.activate()
            await asyncio.sleep(0)
            time.sleep(0.3)

        asyncio.run(main())
        os._exit(0 if aiocop.stats()["stuck_loop_reports"] >= 1 else 3)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status))
    """
)

RUNS = 12


def test_children_forked_right_after_start_finish() -> None:
    outcomes = []
    for _ in range(RUNS):
        try:
            proc = subprocess.run(
                [sys.executable, "-W", "ignore::DeprecationWarning", "-c", SCRIPT],
                capture_output=True,
                text=True,
                timeout=30,
            )
            outcomes.append((proc.returncode, proc.stdout.strip(), proc.stderr.strip()[-300:]))
        except subprocess.TimeoutExpired:
            outcomes.append(("hung", "", ""))
    # parent and child exit 0; the child's report is logged (stderr), not checked here
    assert [o[:2] for o in outcomes] == [(0, "0")] * RUNS, outcomes
