"""The incumbent README's Quick Start program, verbatim, in a subprocess."""

from __future__ import annotations

import subprocess
import sys

from conftest import describe

QUICKSTART = '''# test_aiocop.py
import asyncio
import aiocop


def on_slow_task(event):
    print(f"SLOW TASK DETECTED: {event.elapsed_ms:.1f}ms")
    print(f"  Severity: {event.severity_level}")
    for evt in event.blocking_events:
        print(f"  - {evt['event']} at {evt['entry_point']}")


async def blocking_task():
    # This synchronous open() will block the loop - aiocop will catch it!
    with open("/dev/null", "w") as f:
        f.write("data")
    await asyncio.sleep(0.1)


async def main():
    aiocop.patch_audit_functions()
    aiocop.start_blocking_io_detection()
    aiocop.detect_slow_tasks(threshold_ms=10, on_slow_task=on_slow_task)
    aiocop.activate()

    await asyncio.gather(blocking_task(), blocking_task())


if __name__ == "__main__":
    asyncio.run(main())
'''

OPEN_LINE = next(i for i, line in enumerate(QUICKSTART.splitlines(), 1) if 'open("/dev/null"' in line)


def run_script(path):
    path.write_text(QUICKSTART)
    return subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=30, cwd=path.parent
    )


def check_output(proc, filename):
    assert proc.returncode == 0, describe(proc)
    out = proc.stdout
    assert out.count("SLOW TASK DETECTED") == 2, describe(proc)
    assert out.count("  Severity: medium") == 2, describe(proc)
    lines = [line for line in out.splitlines() if line.startswith("  - open(/dev/null, w")]
    assert len(lines) == 2, describe(proc)
    for line in lines:
        assert line.endswith(f"{filename}:{OPEN_LINE}:blocking_task"), line
    assert proc.stderr == "", describe(proc)


def test_quickstart_runs_unchanged(tmp_path):
    proc = run_script(tmp_path / "quickstart.py")
    check_output(proc, "quickstart.py")


def test_quickstart_under_its_readme_file_name(tmp_path):
    """Ours only: the incumbent drops every frame whose path contains
    "aiocop" (so ``test_aiocop.py`` itself); we drop only our own frames."""
    proc = run_script(tmp_path / "test_aiocop.py")
    check_output(proc, "test_aiocop.py")
