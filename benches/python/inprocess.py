"""The server bench's Starlette app called in-process: one request per loop iteration, no
sockets, no HTTP, no load generator, so that an instruction counter sees the app and the
monitor alone.

    AIOCOP_BENCH_MODE=ours_totals python benches/python/inprocess.py --path /stat --requests 4000

prints one JSON line: ``{"mode", "path", "requests", "cpu_ns_per_request"}``. The requests run
on a uvloop loop, each one ``await app(scope, receive, send)`` then ``await asyncio.sleep(0)``
in one task (one handle per request; the server runs a few more). ``--no-cpu-sampling`` sets
ours up without the CPU sampler (whose watchdog thread counts in an instruction count).

Its use is callgrind, whose counts do not drift with the machine: the difference between a
run of N and of 2N requests is the cost of N requests, start-up cancelled, e.g.

    valgrind --tool=callgrind --cache-sim=yes python benches/python/inprocess.py --requests 4000
    valgrind --tool=callgrind --cache-sim=yes python benches/python/inprocess.py --requests 8000

with ``PYTHONHASHSEED=0``, per mode (``AIOCOP_BENCH_MODE``: ``none``, ``ours``,
``ours_totals``; ``PYTHONPATH`` may point at another build's package, as for
``cargo xtask bench --against``). Its timing is not a measurement (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import monitor

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--path", default="/stat", choices=("/async", "/stat", "/read"))
parser.add_argument("--requests", type=int, default=4000)
parser.add_argument("--warmup", type=int, default=2000)
parser.add_argument("--no-cpu-sampling", action="store_true")
options = parser.parse_args()
if options.requests < 1 or options.warmup < 0:
    parser.error("--requests must be at least 1 and --warmup at least 0")
if options.no_cpu_sampling:
    os.environ["AIOCOP_BENCH_CPU_SAMPLING"] = "0"

import server  # noqa: E402  (sets the monitor up at import, as under uvicorn)
import uvloop  # noqa: E402

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": options.path,
    "raw_path": options.path.encode(),
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"127.0.0.1")],
    "client": ("127.0.0.1", 1),
    "server": ("127.0.0.1", 8000),
}


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: dict[str, Any]) -> None:
    pass


async def main() -> float:
    async with server.app.router.lifespan_context(server.app):
        for _ in range(options.warmup):
            await server.app(SCOPE, receive, send)
            await asyncio.sleep(0)
        started = time.process_time_ns()
        for _ in range(options.requests):
            await server.app(SCOPE, receive, send)
            await asyncio.sleep(0)
        return (time.process_time_ns() - started) / options.requests


loop = uvloop.new_event_loop()
try:
    cpu_ns = loop.run_until_complete(main())
finally:
    loop.close()
print(
    json.dumps(
        {
            "mode": monitor.mode_from_env(),
            "path": options.path,
            "requests": options.requests,
            "cpu_ns_per_request": round(cpu_ns),
        }
    )
)
