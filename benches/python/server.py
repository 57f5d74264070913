"""The real-server bench's app: Starlette, served by uvicorn, monitored as the README shows.

    AIOCOP_BENCH_MODE=ours python -m uvicorn server:app --app-dir benches/python \\
        --host 127.0.0.1 --port 8000 --loop uvloop --http httptools --log-level warning

The monitor is set up at import and activated in the lifespan handler, aiocop 1.2.1's ASGI
recipe (``AIOCOP_BENCH_MODE=none`` imports no monitor). ``AIOCOP_BENCH_CPU=<n>`` keeps the
server (every thread it starts) on the n-th of the CPUs it may use. Endpoints:

- ``/async``: all async, a small JSON response;
- ``/stat``: ``os.stat('.')`` (one blocking event per request);
- ``/read``: reads a 100-byte file (open/read/close: one blocking event per request).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import monitor

DATA_FILE = os.path.join(tempfile.gettempdir(), f"aiocop-bench-server-{os.getpid()}.bin")

# Before the monitor's and the loop's threads start: they inherit the affinity.
monitor.pin_to_cpu(os.environ.get("AIOCOP_BENCH_CPU"))
monitor.setup(monitor.mode_from_env())
monitor.serve_metrics()


async def all_async(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def stat(request: Request) -> JSONResponse:
    return JSONResponse({"size": os.stat(".").st_size})


async def read(request: Request) -> JSONResponse:
    with open(DATA_FILE, "rb") as file:
        data = file.read(100)
    return JSONResponse({"read": len(data)})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    with open(DATA_FILE, "wb") as file:
        file.write(bytes(range(100)))
    monitor.activate()
    try:
        yield
    finally:
        os.remove(DATA_FILE)


app = Starlette(
    routes=[
        Route("/async", all_async),
        Route("/stat", stat),
        Route("/read", read),
    ],
    lifespan=lifespan,
)
