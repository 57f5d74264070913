"""``benches/python/inprocess.py`` (the server bench's app called in-process, for instruction
counts): runs the requests asked for in each mode and prints one JSON line; bad input is a
usage message and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benches" / "python" / "inprocess.py"


def run(mode: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIOCOP_BENCH_MODE": mode}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("mode", "path", "flags"),
    [
        ("none", "/stat", ()),
        ("ours_totals", "/stat", ("--no-cpu-sampling",)),
        ("ours", "/read", ()),
    ],
)
def test_it_runs_the_requests_asked_for(mode: str, path: str, flags: tuple[str, ...]) -> None:
    done = run(mode, "--path", path, "--requests", "20", "--warmup", "5", *flags)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert line["mode"] == mode
    assert line["path"] == path
    assert line["requests"] == 20
    assert line["cpu_ns_per_request"] > 0


def test_bad_input_is_a_usage_message() -> None:
    done = run("none", "--requests", "0")
    assert done.returncode == 2
    assert "--requests must be at least 1" in done.stderr
    assert "Traceback" not in done.stderr
