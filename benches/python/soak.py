"""The soak run: the bench's Starlette app on uvicorn (uvloop, httptools) monitored by ours
with the per-call-site totals only (no callback), ``/stat`` under the load generator for
``--minutes``, and a Prometheus scrape of the totals every second.

    python benches/python/soak.py --minutes 10

Prints, then one JSON line: the server's RSS after the first minute (after a tenth of the run
when it is shorter) and at the end, failed requests and scrapes, and the totals' count of
``os.stat`` calls against the ``/stat`` requests the server answered. Exits 1 when RSS grew by
16 MiB or more, a request or scrape failed, or the counts differ.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_GROWTH_MIB = 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def stat_calls(metrics_port: int) -> float:
    """``aiocop_blocking_calls_total`` of ``os.stat``, all sites, from a real scrape."""
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "aiocop_blocking_calls":
            total += sum(s.value for s in family.samples if s.labels.get("event") == "os.stat")
    return total


def wait_ready(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/async", timeout=2).read()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not args.minutes > 0:
        parser.error(f"--minutes must be above 0, got {args.minutes}")
    seconds = args.minutes * 60
    settle = min(60.0, seconds / 10)
    port, metrics_port = free_port(), free_port()
    env = dict(os.environ, AIOCOP_BENCH_MODE="ours_totals",
               AIOCOP_BENCH_METRICS_PORT=str(metrics_port), PYTHONDONTWRITEBYTECODE="1")
    env.pop("AIOCOP_DISPATCH", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "server:app", "--app-dir", HERE, "--host",
         "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
         "--log-level", "warning"],
        env=env,
    )
    scrape_errors = 0
    try:
        wait_ready(port, server)
        load = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "loadgen.py"), "--port", str(port), "--path",
             "/stat", "--connections", str(args.connections), "--duration", str(seconds),
             "--warmup", "0", "--max-requests", "1000000000"],
            stdout=subprocess.PIPE, text=True,
        )
        started = time.monotonic()
        rss_start = None
        scrapes = 0
        while load.poll() is None:
            time.sleep(1)
            try:
                stat_calls(metrics_port)
                scrapes += 1
            except OSError:
                scrape_errors += 1
            if rss_start is None and time.monotonic() - started >= settle:
                rss_start = rss_kib(server.pid)
        out, _ = load.communicate()
        result = json.loads(out.strip().splitlines()[-1])
        counted = stat_calls(metrics_port)
        rss_end = rss_kib(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    answered = result["completed"]
    rss_start = rss_start if rss_start is not None else rss_end
    growth_mib = (rss_end - rss_start) / 1024
    summary = {
        "minutes": args.minutes,
        "rss_start_mib": round(rss_start / 1024, 1),
        "rss_end_mib": round(rss_end / 1024, 1),
        "rss_growth_mib": round(growth_mib, 1),
        "requests": answered,
        "request_errors": result["errors"],
        "scrapes": scrapes,
        "scrape_errors": scrape_errors,
        "counted_stat_calls": int(counted),
        "rps": round(result["rps"], 1),
    }
    ok = (growth_mib < MAX_GROWTH_MIB and result["errors"] == 0 and scrape_errors == 0
          and int(counted) == answered)
    print(f"RSS after {settle:.0f} s {summary['rss_start_mib']} MiB, at the end "
          f"{summary['rss_end_mib']} MiB (growth {summary['rss_growth_mib']} MiB, limit "
          f"{MAX_GROWTH_MIB}); {answered} /stat requests answered, {int(counted)} os.stat calls "
          f"counted; {result['errors']} failed requests, {scrape_errors} failed of "
          f"{scrapes + scrape_errors} scrapes: {'ok' if ok else 'FAILED'}")
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
