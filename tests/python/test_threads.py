"""Loops running in worker threads get their IO attributed (ours only: the
incumbent records on the main thread only)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import aiocop

from conftest import (
    LOOP_KINDS,
    assert_record,
    check_event_invariants,
    close_loop,
    flush,
    new_loop,
    records_of,
    run_monitored,
)


def run_in_thread(fn) -> Any:
    box: dict[str, Any] = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    t = threading.Thread(target=target, name="loop-worker")
    t.start()
    t.join(timeout=30)
    assert not t.is_alive(), "worker loop did not finish"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def open_in_worker(path) -> None:
    with open(path) as f:
        f.read()


def test_loop_in_worker_thread_is_monitored(loop_kind, tmp_path):
    path = tmp_path / "worker.txt"
    path.write_text("x")

    async def body():
        open_in_worker(path)

    result = run_in_thread(lambda: (run_monitored(body, loop_kind), threading.get_ident()))
    monitored, worker_ident = result
    assert monitored.loop_thread == worker_ident
    assert monitored.loop_thread != threading.main_thread().ident
    rec = assert_record(monitored, "open", 10, "open_in_worker", entry=True)
    assert str(path) in rec["event"]
    # run_monitored already checked that callbacks ran on the worker's loop thread
    assert set(monitored.callback_threads) == {worker_ident}


def test_asyncio_run_in_worker_thread(tmp_path):
    """Plain ``asyncio.run`` in a thread, as a user would write it."""
    path = tmp_path / "plain.txt"
    path.write_text("x")
    seen: list[tuple[int, Any]] = []

    def cb(evt):
        seen.append((threading.get_ident(), evt))

    aiocop.register_slow_task_callback(cb)

    async def main():
        aiocop.activate()
        await asyncio.sleep(0)
        open_in_worker(path)
        await asyncio.sleep(0)
        flush()
        return threading.get_ident()

    loop_thread = run_in_thread(lambda: asyncio.run(main()))
    assert seen, "no event from a loop in a worker thread"
    assert {t for t, _ in seen} == {loop_thread}
    recs = records_of([e for _, e in seen], "open")
    assert any(str(path) in r["event"] for r in recs)


def test_two_loops_in_two_threads_do_not_mix(tmp_path):
    """Two loops (asyncio + uvloop when available) in two threads at the same
    time, each opening its own file repeatedly: each loop's events carry only
    its own records."""
    file_a = tmp_path / "file_a.txt"
    file_b = tmp_path / "file_b.txt"
    file_a.write_text("a")
    file_b.write_text("b")
    rounds = 30
    barrier = threading.Barrier(2, timeout=10)
    collected: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def cb(evt):
        with lock:
            collected.append((threading.get_ident(), evt))

    aiocop.register_slow_task_callback(cb)

    def open_a():
        with open(file_a) as f:
            f.read()

    def open_b():
        with open(file_b) as f:
            f.read()

    kinds = {}
    errors: list[BaseException] = []

    def worker(kind: str, opener) -> None:
        try:
            loop = new_loop(kind)

            async def main():
                aiocop.activate()
                await asyncio.sleep(0)
                barrier.wait()
                for _ in range(rounds):
                    opener()
                    await asyncio.sleep(0)
                await asyncio.sleep(0)
                flush()

            kinds[threading.get_ident()] = opener.__name__
            try:
                loop.run_until_complete(main())
            finally:
                close_loop(loop)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    kind_b = "uvloop" if "uvloop" in LOOP_KINDS and _has_uvloop() else "asyncio"
    ta = threading.Thread(target=worker, args=("asyncio", open_a))
    tb = threading.Thread(target=worker, args=(kind_b, open_b))
    ta.start()
    tb.start()
    ta.join(30)
    tb.join(30)
    assert not errors, errors
    by_thread: dict[int, list[Any]] = {}
    for ident, evt in collected:
        check_event_invariants(evt)
        by_thread.setdefault(ident, []).append(evt)
    assert set(by_thread) == set(kinds), "each loop's callbacks run on its own thread"
    for ident, events in by_thread.items():
        mine, other = (file_a, file_b) if kinds[ident] == "open_a" else (file_b, file_a)
        recs = records_of(events, "open")
        assert len(recs) >= rounds
        for rec in recs:
            assert str(mine) in rec["event"], rec
            assert str(other) not in rec["event"], rec
            assert rec["entry_point"].endswith(":" + kinds[ident])


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def test_loop_thread_events_do_not_leak_to_main_thread_loop(tmp_path):
    """A main-thread loop that does nothing blocking sees no IO records while a
    worker loop is busy opening files; the worker's events are delivered on
    the worker's thread."""
    path = tmp_path / "busy.txt"
    path.write_text("x")
    stop = threading.Event()
    started = threading.Event()
    delivered: list[tuple[int, Any]] = []
    lock = threading.Lock()
    worker_ident: list[int] = []

    def cb(evt):
        with lock:
            delivered.append((threading.get_ident(), evt))

    aiocop.register_slow_task_callback(cb)

    def worker():
        async def main():
            worker_ident.append(threading.get_ident())
            aiocop.activate()
            await asyncio.sleep(0)
            started.set()
            while not stop.is_set():
                open_in_worker(path)
                await asyncio.sleep(0.001)
            await asyncio.sleep(0)
            flush()

        asyncio.run(main())

    t = threading.Thread(target=worker)
    t.start()
    try:
        assert started.wait(10)

        async def idle_main():
            aiocop.activate()
            await asyncio.sleep(0)
            for _ in range(20):
                await asyncio.sleep(0.001)
            await asyncio.sleep(0)
            flush()

        for kind in ["asyncio"] + (["uvloop"] if _has_uvloop() else []):
            loop = new_loop(kind)
            try:
                loop.run_until_complete(idle_main())
            finally:
                close_loop(loop)
    finally:
        stop.set()
        t.join(10)
    main_ident = threading.get_ident()
    on_main = [e for ident, e in delivered if ident == main_ident]
    assert records_of(on_main) == [], [e.blocking_events for e in on_main]
    on_worker = [e for ident, e in delivered if ident == worker_ident[0]]
    assert records_of(on_worker, "open"), "the worker loop's own events are reported on its thread"
    assert {ident for ident, _ in delivered} <= {main_ident, worker_ident[0]}
