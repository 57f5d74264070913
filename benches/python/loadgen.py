"""A small HTTP/1.1 load generator: keep-alive connections to 127.0.0.1, fixed duration.

    python benches/python/loadgen.py --port 8000 --path /async --connections 32 --duration 10

Each connection sends a GET, reads the whole response (``Content-Length`` bodies only), and
sends the next. Requests in the warm-up are not counted. The run is bounded in time and in
requests, and only ever connects to 127.0.0.1. Prints one JSON line: requests/s, p50 and p99
latency in milliseconds, the count of failed requests, and ``completed``: every request
answered, warm-up included (what the server did while the run lasted). ``--cpu N`` keeps the
load generator on the N-th of the CPUs it may use (counting from 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field

from monitor import pin_to_cpu

HOST = "127.0.0.1"


@dataclass
class Stats:
    latencies_ns: list[int] = field(default_factory=list)
    started: int = 0
    completed: int = 0
    errors: int = 0


def content_length(head: bytes) -> int:
    """The status must be 200 and the body length given; raises ValueError otherwise."""
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 200"):
        raise ValueError(f"unexpected status line {lines[0]!r}")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError("response without Content-Length")


async def connection(
    port: int, request: bytes, measure_from: int, until: int, limit: int, stats: Stats
) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while stats.started < limit:
            start = time.perf_counter_ns()
            if start >= until:
                break
            stats.started += 1
            writer.write(request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(content_length(head))
            except (ValueError, asyncio.IncompleteReadError):
                stats.errors += 1
                break
            end = time.perf_counter_ns()
            stats.completed += 1
            if start >= measure_from and end <= until:
                stats.latencies_ns.append(end - start)
    finally:
        writer.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    request = (
        f"GET {args.path} HTTP/1.1\r\nHost: {HOST}:{args.port}\r\n"
        "User-Agent: aiocop-bench\r\n\r\n"
    ).encode()
    stats = Stats()
    measure_from = time.perf_counter_ns() + int(args.warmup * 1e9)
    until = measure_from + int(args.duration * 1e9)
    workers = (
        connection(args.port, request, measure_from, until, args.max_requests, stats)
        for _ in range(args.connections)
    )
    timeout = args.warmup + args.duration + 10
    results = await asyncio.wait_for(
        asyncio.gather(*workers, return_exceptions=True), timeout
    )
    failures = [repr(result) for result in results if isinstance(result, BaseException)]
    latencies = sorted(stats.latencies_ns)
    if not latencies:
        raise SystemExit(f"no request completed; failures: {failures[:3]}")
    return {
        "path": args.path,
        "connections": args.connections,
        "duration_s": args.duration,
        "requests": len(latencies),
        "completed": stats.completed,
        "rps": len(latencies) / args.duration,
        "p50_ms": statistics.median(latencies) / 1e6,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1e6,
        "errors": stats.errors + len(failures),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="uncounted seconds first")
    parser.add_argument("--max-requests", type=int, default=10_000_000)
    parser.add_argument(
        "--cpu", type=int, help="run on the N-th of the CPUs this process may use only"
    )
    args = parser.parse_args()
    pin_to_cpu(args.cpu)
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    try:
        print(json.dumps(loop.run_until_complete(run(args))))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
