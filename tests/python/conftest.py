"""Shared fixtures and helpers for the aiocop end-to-end suite.

The setup functions of aiocop are global and once-per-process, so a session
fixture configures the library once (threshold 10 ms, CPU sampling on) and
every test gets a clean slate of callbacks, context providers, activation and
raise-on-violations.

Tests that need a fresh process (bad input before setup, repeat-call
warnings, fork, environment variables, dispatch modes, stdout/stderr
silence) use :func:`run_python`, which runs a real ``python -c`` subprocess.

Events are delivered asynchronously (a background thread assembles them and
schedules the callbacks on the loop thread): the library's default, which
this suite asks for explicitly (``dispatch="background"``), since in a pytest
process aiocop's plugin makes inline delivery the default. So
:func:`run_monitored` calls ``aiocop.flush()`` inside the loop before the
loop ends.  The incumbent pure-Python aiocop has no ``flush`` (it delivers
inline), which lets the shared tests run against it unchanged.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

import aiocop
from aiocop._rules import make_rule

# Modules the stdlib imports lazily on first use (host-name encoding in
# getaddrinfo / uvloop's sock_connect, the default executor): import them now
# so no test sees an unrelated "import" record.
import concurrent.futures.thread  # noqa: E402,F401  isort: skip
import encodings.idna  # noqa: E402,F401  isort: skip

THRESHOLD_MS = 10

#: How inner pytest sessions get the plugin: through its entry point when aiocop is installed,
#: else by name.
PLUGIN_ARGS: tuple[str, ...] = (
    ()
    if any(
        ep.value == "aiocop.pytest_plugin"
        for ep in importlib.metadata.entry_points(group="pytest11")
    )
    else ("-p", "aiocop.pytest_plugin")
)

#: Part of a subprocess script (``str.format``-ed with ``loop_kind``; needs ``asyncio``, ``re``
#: and ``time``): ``backtrack(n)``, a regex that holds the GIL while it backtracks, with ``n``
#: tuned so that one call takes over 120 ms on this machine, and ``new_loop()`` of that kind.
TUNED_REGEX = """
PATTERN = re.compile(r"(a+)+$")

def backtrack(n):
    return PATTERN.match("a" * n + "b")

def tune():
    n = 18
    while True:
        started = time.perf_counter()
        backtrack(n)
        if time.perf_counter() - started > 0.12:
            return n
        n += 1

n = tune()

def new_loop():
    if {loop_kind!r} == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()
"""
LOOP_KINDS = ["asyncio", "uvloop"]


# --------------------------------------------------------------------------- setup


@pytest.fixture(scope="session", autouse=True)
def aiocop_configured() -> None:
    """Configure aiocop once for the whole test process."""
    aiocop.patch_audit_functions()
    aiocop.start_blocking_io_detection(trace_depth=20)
    aiocop.detect_slow_tasks(threshold_ms=THRESHOLD_MS, cpu_sampling=True, dispatch="background")


def reset_aiocop_state() -> None:
    aiocop.clear_slow_task_callbacks()
    aiocop.clear_context_providers()
    aiocop.deactivate()
    aiocop.disable_raise_on_violations()


@pytest.fixture(autouse=True)
def clean_aiocop_state() -> Iterable[None]:
    reset_aiocop_state()
    yield
    reset_aiocop_state()


# --------------------------------------------------------------------------- loops


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "asyncio":
        return asyncio.new_event_loop()
    if kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.new_event_loop()
    raise ValueError(f"unknown loop kind {kind!r}")


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    return request.param


def flush() -> None:
    """Deliver pending events on this loop's thread (no-op on the incumbent)."""
    getattr(aiocop, "flush", lambda: None)()


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on ``loop`` and close it (best effort)."""
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    except BaseException:  # noqa: BLE001 - cleanup must never mask the test's outcome
        pass
    finally:
        loop.close()


# --------------------------------------------------------------------------- events


@dataclass
class Monitored:
    """What a monitored run produced."""

    events: list[Any]
    value: Any = None
    loop_thread: int = 0
    callback_threads: list[int] = field(default_factory=list)

    @property
    def io_events(self) -> list[Any]:
        return [e for e in self.events if e.reason == "io_blocking"]

    @property
    def cpu_events(self) -> list[Any]:
        return [e for e in self.events if e.reason == "cpu_blocking"]

    def records(self, name: str | None = None) -> list[dict[str, Any]]:
        return records_of(self.events, name)

    def events_with(self, name: str) -> list[Any]:
        return [e for e in self.events if any(record_name(r) == name for r in e.blocking_events)]


def record_name(record: dict[str, Any]) -> str:
    """The event name of a formatted record: ``open(/x, r)`` -> ``open``."""
    return record["event"].split("(", 1)[0]


def records_of(events: Iterable[Any], name: str | None = None) -> list[dict[str, Any]]:
    out = []
    for evt in events:
        for rec in evt.blocking_events:
            if name is None or record_name(rec) == name:
                out.append(rec)
    return out


def frame_functions(trace: str) -> list[str]:
    """Function names of the frames of a ``file:line:func <- ...`` trace."""
    return [frame.rsplit(":", 1)[-1] for frame in trace.split(" <- ") if frame]


def entry_function(record: dict[str, Any]) -> str:
    return record["entry_point"].rsplit(":", 1)[-1]


def expected_level(score: int) -> str:
    if score >= 50:
        return "high"
    if score >= 10:
        return "medium"
    return "low"


def check_event_invariants(evt: Any) -> None:
    """Structural rules every SlowTaskEvent must satisfy."""
    assert isinstance(evt, aiocop.SlowTaskEvent)
    assert evt.threshold_ms == pytest.approx(float(THRESHOLD_MS))
    assert evt.elapsed_ms >= 0
    assert evt.exceeded_threshold == (evt.elapsed_ms >= evt.threshold_ms)
    assert isinstance(evt.context, dict)
    assert isinstance(evt.cpu_stack_samples, list)
    for sample in evt.cpu_stack_samples:
        assert set(sample) == {"trace", "entry_point", "count", "on_cpu", "native_frames"}
        assert sample["count"] >= 1
        assert sample["on_cpu"] in (True, False, None)
        # native frames lead the trace, marked, under the entry point (a Python frame)
        natives = sample["native_frames"]
        parts = sample["trace"].split(" <- ")
        assert [p[len("[native] "):] for p in parts[: len(natives)]] == natives, sample
        assert not any(p.startswith("[native] ") for p in parts[len(natives):]), sample
        if len(parts) > len(natives):
            assert sample["entry_point"] == parts[len(natives)], sample
    # where the time went: measured or None, and consistent when measured
    if evt.cpu_ms is not None:
        assert 0 <= evt.cpu_ms <= evt.elapsed_ms
        assert evt.wait_ms == pytest.approx(evt.elapsed_ms - evt.cpu_ms, abs=1e-6)
    else:
        assert evt.wait_ms is None
    assert evt.blocked_in is None or (isinstance(evt.blocked_in, str) and evt.blocked_in)
    assert evt.gc_ms is None or 0 <= evt.gc_ms <= evt.elapsed_ms
    if evt.reason == "io_blocking":
        assert 1 <= len(evt.blocking_events) <= 50
        for rec in evt.blocking_events:
            # aiocop 1.2.1's keys, plus the task identity, the event's name, the user's call
            # site, the trace shown to users, the suggested allow rule, the attribution and
            # the site's key ours adds: the fields the Rust side declares.
            assert tuple(rec) == aiocop._aiocop.BLOCKING_EVENT_FIELDS
            assert rec["origin"] in ("first-party", "third-party", "stdlib")
            assert (rec["distribution"] is None) == (rec["distribution_version"] is None)
            assert rec["distribution"] is None or rec["origin"] == "third-party"
            assert rec["event"].startswith(rec["event_name"] + "(")
            assert rec["event"].endswith(")")
            frames = rec["trace"].split(" <- ") if rec["trace"] else []
            assert (rec["site_key"] is None) == (not frames)
            assert rec["entry_point"] == (frames[0] if frames else "unknown")
            assert rec["site"] in frames or (rec["site"] == "unknown" and not frames)
            assert rec["trace"].startswith(rec["user_trace"])
            assert rec["site"] in rec["user_trace"].split(" <- ") or not frames
            if frames:  # the suggestion is a well-formed rule for this event
                assert rec["suggested_rule"].startswith(f"event={rec['event_name']},"), rec
                make_rule(rec["suggested_rule"])
            else:
                assert rec["suggested_rule"] is None
        score = sum(10 if r["severity"] is None else r["severity"] for r in evt.blocking_events)
        assert evt.severity_score == score
        assert evt.severity_level == expected_level(score)
    else:
        assert evt.reason == "cpu_blocking"
        assert evt.blocking_events == []
        assert evt.severity_score == 0
        assert evt.severity_level == "low"
        assert evt.exceeded_threshold is True


def assert_record(
    result: Monitored,
    name: str,
    weight: int,
    func: str,
    *,
    entry: bool = False,
) -> dict[str, Any]:
    """Assert that a record ``name`` with ``weight`` was reported from ``func``.

    With ``entry=True`` the record's entry point (innermost frame) must be in
    ``func`` (for blocking calls made directly from test code); otherwise
    ``func`` must appear somewhere in the trace (calls that go through
    stdlib Python code, whose frames come first).
    """
    for evt in result.events:
        check_event_invariants(evt)
    recs = result.records(name)
    seen = sorted({record_name(r) for r in result.records()})
    assert recs, f"no {name!r} record; records seen: {seen}"
    for rec in recs:
        assert rec["severity"] == weight, rec
    if entry:
        matching = [r for r in recs if entry_function(r) == func]
        assert matching, f"no {name!r} record with entry point in {func}: {[r['entry_point'] for r in recs]}"
    else:
        matching = [r for r in recs if func in frame_functions(r["trace"])]
        assert matching, f"no {name!r} record with {func} in trace: {[r['trace'] for r in recs]}"
    # the event carrying the record has the right score and level
    evt = next(e for e in result.events if any(r is matching[0] for r in e.blocking_events))
    assert evt.reason == "io_blocking"
    assert evt.severity_score >= weight
    return matching[0]


# --------------------------------------------------------------------------- running


def run_monitored(
    body: Callable[[], Awaitable[Any]],
    loop_kind: str,
    *,
    activate: bool = True,
) -> Monitored:
    """Run ``await body()`` on a fresh loop of ``loop_kind`` with monitoring on.

    Inside the loop: ``aiocop.activate()`` (which wraps the running loop), a
    ``sleep(0)`` so the body starts in a monitored handle, the body, another
    ``sleep(0)`` so the body's last handle ends, then ``aiocop.flush()``.
    Events reach a registered callback; all of them must be delivered on the
    loop's thread.
    """
    result = Monitored(events=[])

    def collect(evt: Any) -> None:
        result.callback_threads.append(threading.get_ident())
        result.events.append(evt)

    async def main() -> Any:
        result.loop_thread = threading.get_ident()
        if activate:
            aiocop.activate()
        await asyncio.sleep(0)
        value = await body()
        await asyncio.sleep(0)
        flush()
        return value

    aiocop.register_slow_task_callback(collect)
    loop = new_loop(loop_kind)
    try:
        result.value = loop.run_until_complete(main())
    finally:
        aiocop.unregister_slow_task_callback(collect)
        close_loop(loop)
    assert all(t == result.loop_thread for t in result.callback_threads), "callback ran off the loop thread"
    return result


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (a connection is refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raising_at_call(call: Callable[[], Any], caught: list[Any]) -> Callable[[], Awaitable[None]]:
    """A body that runs ``call()`` with raise-at-call on, keeping the BlockingCallError."""

    async def body() -> None:
        with aiocop.raise_on_violations(at_call=True):
            try:
                call()
            except aiocop.BlockingCallError as exc:
                caught.append(exc)

    return body


def busy_wait(seconds: float) -> None:
    """Burn CPU (no IO, no sleep) for ``seconds``."""
    import time

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def run_python(
    code: str,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 30,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) in a fresh ``python -c`` and capture its output."""
    full_env = dict(os.environ)
    full_env.pop("AIOCOP_DISPATCH", None)
    full_env["PYTHONDONTWRITEBYTECODE"] = "1"
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
    )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit={proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"


# --------------------------------------------------------------------------- servers


class EchoServer:
    """A blocking TCP echo server on 127.0.0.1, served by a plain thread.

    The listening socket is created by the test (outside any monitored
    handle), so its bind/listen/accept never show up in events.
    """

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = self.sock.getsockname()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, name="echo-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def close(self) -> None:
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(timeout=5)


@pytest.fixture
def echo_server() -> Iterable[EchoServer]:
    server = EchoServer()
    yield server
    server.close()
