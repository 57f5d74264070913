"""Differential test: the same program, run once on aiocop 1.2.1 (from PyPI, in its own venv)
and once on ours, reports the same events — names, arguments, traces, entry points, weights,
scores, levels and reasons.

The incumbent's interpreter comes from ``AIOCOP_INCUMBENT_PYTHON`` (``cargo xtask test`` sets
it up); without it the test is skipped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

INCUMBENT = os.environ.get("AIOCOP_INCUMBENT_PYTHON")

PROGRAM = r'''
import asyncio
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

import aiocop

# Imported now so no scenario records an unrelated, lazily-triggered "import".
import encodings.idna  # noqa: F401

WORK = sys.argv[2]
EVENTS = []


def on_slow_task(event):
    EVENTS.append(event)


def spin_for_a_while():
    end = time.perf_counter() + 0.06
    while time.perf_counter() < end:
        pass


async def files():
    path = os.path.join(WORK, "data.txt")
    with open(path, "w") as f:
        f.write("x" * 100)
    os.stat(path)
    os.listdir(WORK)
    os.mkdir(os.path.join(WORK, "d"))
    os.rmdir(os.path.join(WORK, "d"))
    shutil.copyfile(path, path + ".bak")
    os.remove(path + ".bak")


async def network(port):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"ping")
    sock.close()
    socket.getaddrinfo("localhost", 80)


async def processes():
    subprocess.run(["true"], check=True)
    os.system("true")
    os.kill(os.getpid(), 0)


async def storage():
    sqlite3.connect(os.path.join(WORK, "db.sqlite")).close()
    time.sleep(0.001)


async def cpu():
    spin_for_a_while()


async def main(port):
    aiocop.patch_audit_functions()
    aiocop.start_blocking_io_detection(trace_depth=20)
    aiocop.detect_slow_tasks(threshold_ms=30, on_slow_task=on_slow_task)
    aiocop.activate()
    for step in (files(), network(port), processes(), storage(), cpu()):
        await asyncio.sleep(0)
        await step
        await asyncio.sleep(0)
    flush = getattr(aiocop, "flush", None)
    if flush is not None:
        flush()


listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(8)
port = listener.getsockname()[1]

if sys.argv[1] == "uvloop":
    import uvloop
    loop = uvloop.new_event_loop()
else:
    loop = asyncio.new_event_loop()
loop.run_until_complete(main(port))
loop.close()

out = []
for e in EVENTS:
    out.append({
        "reason": e.reason,
        "severity_score": e.severity_score,
        "severity_level": e.severity_level,
        # aiocop 1.2.1's keys (ours adds the task identity).
        "blocking_events": [
            {k: b[k] for k in ("event", "trace", "entry_point", "severity")}
            for b in e.blocking_events
        ],
        "hottest": e.cpu_stack_samples[0]["entry_point"] if e.cpu_stack_samples else None,
    })
print(json.dumps({"port": port, "pid": os.getpid(), "events": out}))
'''


def normalise(run: dict, work: Path) -> list[dict]:
    """Takes out what differs between two runs: the work directory, the listener's port, the
    process id and object addresses."""
    text = json.dumps(run["events"]).replace(str(work), "<work>")
    text = re.sub(rf"\b{run['port']}\b", "<port>", text)
    text = re.sub(rf"\b{run['pid']}\b", "<pid>", text)
    return json.loads(re.sub(r"0x[0-9a-f]+", "0x?", text))


def run(python: str, loop_kind: str, work: Path, script: Path) -> dict:
    proc = subprocess.run(
        [python, str(script), loop_kind, str(work)],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "AIOCOP_DISPATCH"},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not INCUMBENT, reason="AIOCOP_INCUMBENT_PYTHON is not set")
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_same_events_as_the_incumbent(loop_kind: str, tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(PROGRAM))
    ours_dir, theirs_dir = tmp_path / "ours", tmp_path / "theirs"
    ours_dir.mkdir()
    theirs_dir.mkdir()
    ours = run(sys.executable, loop_kind, ours_dir, script)
    theirs = run(str(INCUMBENT), loop_kind, theirs_dir, script)
    ours, theirs = normalise(ours, ours_dir), normalise(theirs, theirs_dir)
    # A blocking-call handle is sampled only when it runs past the sampler's arming delay,
    # which a busy machine decides: its samples are compared only for the CPU-bound handle.
    for event in ours + theirs:
        if event["reason"] == "io_blocking":
            del event["hottest"]
    assert len(ours) == len(theirs)
    for mine, incumbent in zip(ours, theirs):
        assert mine == incumbent
    reasons = [e["reason"] for e in ours]
    assert reasons.count("cpu_blocking") == 1 and reasons.count("io_blocking") == 4
