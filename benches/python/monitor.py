"""The monitor under test, shared by every bench script.

A bench process runs in one of three modes:

- ``none``: no monitor, ``aiocop`` is never imported (the floor);
- ``ours``: this repository's aiocop (the Rust extension), from ``.venv``;
- ``incumbent``: the pure-Python aiocop 1.2.1 from PyPI, from ``.venvs/incumbent``.

Both monitors are set up with the same code, exactly as their READMEs show: the three setup
calls (``setup``), then ``activate()`` inside the running loop (``activate``). Only the
callback is a no-op, so what is measured is the monitor, not the user's reporting.
"""

from __future__ import annotations

import os
import sys
import time
from types import ModuleType
from typing import Any

# `ours_totals`: ours without a slow-task callback (the per-call-site totals only).
MODES = ("none", "ours", "ours_totals", "incumbent")
LOOPS = ("asyncio", "uvloop")

_aiocop: ModuleType | None = None


def _on_slow_task(event: Any) -> None:
    """The user's callback: receives every event and does nothing with it."""


def setup(mode: str) -> None:
    """Imports and configures the monitor of `mode` (nothing for ``none``)."""
    global _aiocop
    if mode not in MODES:
        raise SystemExit(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "none":
        return
    import aiocop

    is_ours = hasattr(aiocop, "_aiocop")
    if is_ours != (mode in ("ours", "ours_totals")):
        found = "this repository's aiocop" if is_ours else "aiocop from PyPI"
        raise SystemExit(f"mode {mode!r} but `import aiocop` found {found} ({aiocop.__file__})")
    aiocop.patch_audit_functions()
    aiocop.start_blocking_io_detection()
    callback = None if mode == "ours_totals" else _on_slow_task
    # Ours without the CPU sampler (benches/python/inprocess.py --no-cpu-sampling).
    no_sampler = is_ours and os.environ.get("AIOCOP_BENCH_CPU_SAMPLING") == "0"
    extra = {"cpu_sampling": False} if no_sampler else {}
    aiocop.detect_slow_tasks(threshold_ms=30, on_slow_task=callback, **extra)
    _aiocop = aiocop


def serve_metrics() -> None:
    """Serves ours' Prometheus metrics on 127.0.0.1 at ``AIOCOP_BENCH_METRICS_PORT``, if set
    (the soak run scrapes them)."""
    port = os.environ.get("AIOCOP_BENCH_METRICS_PORT")
    if _aiocop is None or not port:
        return
    import prometheus_client

    from aiocop.exporters import prometheus

    registry = prometheus_client.CollectorRegistry()
    prometheus.register(registry)
    prometheus_client.start_http_server(int(port), addr="127.0.0.1", registry=registry)


def activate() -> None:
    """``aiocop.activate()``: call it inside the running loop, after ``setup``."""
    if _aiocop is not None:
        _aiocop.activate()


def flush() -> None:
    """Delivers pending events where the monitor has ``flush()`` (ours); else nothing."""
    flush_fn = getattr(_aiocop, "flush", None)
    if flush_fn is not None:
        flush_fn()


def pin_to_cpu(cpu: str | int | None) -> None:
    """Keeps the calling thread, and the threads it starts from now on, on one CPU: the one at
    index `cpu` among the CPUs this process may run on (no-op for ``None``)."""
    if cpu is None:
        return
    allowed = sorted(os.sched_getaffinity(0))
    try:
        index = int(cpu)
        chosen = allowed[index]
    except (ValueError, IndexError):
        raise SystemExit(
            f"CPU {cpu!r}: expected an index below {len(allowed)} (the CPUs this process may use)"
        ) from None
    os.sched_setaffinity(0, {chosen})


def mode_from_env() -> str:
    """The mode named by ``AIOCOP_BENCH_MODE`` (default ``none``)."""
    return os.environ.get("AIOCOP_BENCH_MODE", "none")


def new_loop(kind: str) -> Any:
    """A new event loop of `kind` (``asyncio`` or ``uvloop``)."""
    import asyncio

    if kind == "asyncio":
        return asyncio.new_event_loop()
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    raise SystemExit(f"unknown loop {kind!r}: expected one of {', '.join(LOOPS)}")


def versions() -> dict[str, str]:
    """What ran: the interpreter, uvloop, the monitor, the build of ours and the clock it timed
    handles with (for the report)."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "-"

    result = {
        "python": ".".join(str(part) for part in sys.version_info[:3]),
        "uvloop": installed("uvloop"),
        "aiocop": "-" if _aiocop is None else installed("aiocop"),
    }
    native = getattr(_aiocop, "_aiocop", None)
    if native is not None:
        # Which build of the extension ran: a rebuild during a bench run shows up as two.
        result["build"] = time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.stat(native.__file__).st_mtime)
        )
        # The clock that timed the handles ("tsc" or "monotonic").
        result["clock"] = str(native.stats().get("clock", "-"))
    return result
