"""aiocop 1.2.1's README recipe for ASGI apps runs unchanged on a real Starlette app served by a
real uvicorn over 127.0.0.1, on asyncio and on uvloop, and reports the blocking endpoint."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

# The recipe from aiocop 1.2.1's README, verbatim, between the app's own lines. `metrics` is the
# user's metrics client there; here it records what it is given.
APP = '''
import os
import time
from typing import Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


class Metrics:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def increment(self, name, tags=None):
        self.calls.append(["increment", name, tags])

    def gauge(self, name, value):
        self.calls.append(["gauge", name, value])


metrics = Metrics()
EVENTS: list[Any] = []

# --- recipe start ---------------------------------------------------------------------------
# In your ASGI application setup (e.g., main.py or asgi.py)
from contextlib import asynccontextmanager

import aiocop

def setup_monitoring() -> None:
    aiocop.patch_audit_functions()
    aiocop.start_blocking_io_detection(trace_depth=20)
    aiocop.detect_slow_tasks(threshold_ms=30, on_slow_task=log_to_monitoring)

def log_to_monitoring(event: aiocop.SlowTaskEvent) -> None:
    # Send to your monitoring system (Datadog, Prometheus, etc.)
    EVENTS.append(event)
    if event.exceeded_threshold:
        metrics.increment("async.slow_task", tags={
            "severity": event.severity_level,
            "reason": event.reason,
        })
        metrics.gauge("async.slow_task.elapsed_ms", event.elapsed_ms)

# Call setup early in your application lifecycle
setup_monitoring()

# Activate after startup (e.g., in a lifespan handler)
@asynccontextmanager
async def lifespan(app):
    aiocop.activate()  # Start monitoring after startup
    yield
    aiocop.deactivate()
# --- recipe end -----------------------------------------------------------------------------


async def fast(request):
    return JSONResponse({"ok": True})


async def slow_view(request):
    time.sleep(0.05)
    return JSONResponse({"ok": True})


async def report(request):
    flush = getattr(aiocop, "flush", None)
    if flush is not None:
        flush()
    return JSONResponse({
        "metrics": metrics.calls,
        "events": [
            {
                "reason": e.reason,
                "exceeded_threshold": e.exceeded_threshold,
                "severity_level": e.severity_level,
                "severity_score": e.severity_score,
                "blocking_events": e.blocking_events,
            }
            for e in EVENTS
        ],
    })


app = Starlette(
    routes=[Route("/fast", fast), Route("/slow", slow_view), Route("/report", report)],
    lifespan=lifespan,
)
'''


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def wait_until_up(url: str, proc: subprocess.Popen, deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"uvicorn exited early: {proc.communicate()}")
        try:
            get(url)
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("uvicorn did not start")


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_recipe_reports_the_blocking_endpoint(loop_kind: str, tmp_path: Path) -> None:
    (tmp_path / "recipe_app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "recipe_app:app", "--host", "127.0.0.1",
         "--port", str(port), "--loop", loop_kind, "--log-level", "warning", "--lifespan", "on"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/fast", proc)
        for _ in range(3):
            get(f"{base}/fast")
        get(f"{base}/slow")
        report = json.loads(get(f"{base}/report"))
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()

    # The requests' events: the server's own start-up, monitored from the lifespan handler on,
    # may block too (an import when it binds its socket; over the threshold on a busy machine).
    views = (":fast", ":slow_view", ":report")
    slow = [
        e
        for e in report["events"]
        if e["exceeded_threshold"]
        and e["reason"] == "io_blocking"
        and any(b["entry_point"].endswith(views) for b in e["blocking_events"])
    ]
    assert len(slow) == 1, report
    (event,) = slow
    assert event["severity_level"] == "high"
    assert event["severity_score"] == 50
    (blocking,) = event["blocking_events"]
    assert blocking["event"] == "time.sleep(0.05)"
    assert blocking["entry_point"].endswith(":slow_view")
    assert blocking["severity"] == 50
    assert ["increment", "async.slow_task", {"severity": "high", "reason": "io_blocking"}] in report[
        "metrics"
    ]
    assert any(call[0] == "gauge" and call[1] == "async.slow_task.elapsed_ms" for call in report["metrics"])
