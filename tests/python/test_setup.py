"""Once-per-process setup: repeat calls warn and do nothing; fresh processes
(worker-thread setup, fork) behave."""

from __future__ import annotations

import logging
import sys

import pytest

import aiocop

from conftest import THRESHOLD_MS, describe, run_python


@pytest.mark.parametrize(
    "call",
    [
        lambda: aiocop.patch_audit_functions(),
        lambda: aiocop.start_blocking_io_detection(),
        lambda: aiocop.detect_slow_tasks(threshold_ms=500),
        lambda: aiocop.start_cpu_sampling(),
    ],
    ids=["patch_audit_functions", "start_blocking_io_detection", "detect_slow_tasks", "start_cpu_sampling"],
)
def test_repeat_setup_call_warns(call, caplog):
    caplog.set_level(logging.DEBUG)
    call()
    warnings = [r for r in caplog.records if r.name.startswith("aiocop") and r.levelno == logging.WARNING]
    assert warnings, [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert aiocop.get_slow_task_threshold_ms() == pytest.approx(float(THRESHOLD_MS))


SETUP_TWICE = """
import asyncio, logging, sys
import aiocop

logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="LOG %(name)s %(levelname)s %(message)s")
first, second = [], []

aiocop.patch_audit_functions()
aiocop.start_blocking_io_detection(trace_depth=20)
aiocop.detect_slow_tasks(threshold_ms=20, on_slow_task=first.append)
print("AFTER_FIRST")
aiocop.patch_audit_functions()
aiocop.start_blocking_io_detection(trace_depth=3)
aiocop.detect_slow_tasks(threshold_ms=999, on_slow_task=second.append)
print("THRESHOLD", aiocop.get_slow_task_threshold_ms())

async def main():
    aiocop.activate()
    await asyncio.sleep(0)
    open("/dev/null").close()
    await asyncio.sleep(0)
    getattr(aiocop, "flush", lambda: None)()

asyncio.run(main())
print("FIRST", len(first), "SECOND", len(second))
"""


def test_repeat_setup_in_fresh_process_does_nothing():
    proc = run_python(SETUP_TWICE)
    assert proc.returncode == 0, describe(proc)
    before, _, after = proc.stdout.partition("AFTER_FIRST")
    assert "LOG" not in before, describe(proc)
    warnings = [line for line in after.splitlines() if line.startswith("LOG aiocop") and " WARNING " in line]
    assert len(warnings) == 3, describe(proc)
    assert "THRESHOLD 20.0" in proc.stdout
    # the second on_slow_task was ignored along with the rest of the call
    assert "FIRST 1 SECOND 0" in proc.stdout, describe(proc)


def test_setup_and_loop_in_a_worker_thread():
    """Ours only: configure aiocop from a non-main thread and run the loop there."""
    proc = run_python(
        """
        import asyncio, threading
        import aiocop

        result = {}

        def worker():
            events = []
            aiocop.patch_audit_functions()
            aiocop.start_blocking_io_detection()
            aiocop.detect_slow_tasks(threshold_ms=10, on_slow_task=lambda e: events.append((threading.get_ident(), e)))

            def touch():
                open("/dev/null").close()

            async def main():
                aiocop.activate()
                await asyncio.sleep(0)
                touch()
                await asyncio.sleep(0)
                getattr(aiocop, "flush", lambda: None)()

            asyncio.run(main())
            result["events"] = events
            result["me"] = threading.get_ident()

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        events = result["events"]
        assert events, "no event from a loop in the thread that set aiocop up"
        assert all(tid == result["me"] for tid, _ in events)
        recs = [r for _, e in events for r in e.blocking_events]
        assert any(r["event"].startswith("open(/dev/null") and r["entry_point"].endswith(":touch") for r in recs), recs
        print("OK")
        """
    )
    assert proc.returncode == 0, describe(proc)
    assert "OK" in proc.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_monitoring_works_in_forked_child():
    proc = run_python(
        """
        import asyncio, os, sys
        import aiocop

        aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection()
        aiocop.detect_slow_tasks(threshold_ms=10)

        def touch():
            open("/dev/null").close()

        def spin_for_a_while():
            import time
            end = time.perf_counter() + 0.1
            while time.perf_counter() < end:
                pass

        async def main(events):
            aiocop.activate()
            await asyncio.sleep(0)
            touch()
            await asyncio.sleep(0)
            spin_for_a_while()
            await asyncio.sleep(0)
            getattr(aiocop, "flush", lambda: None)()

        def run_once(tag):
            events = []
            aiocop.register_slow_task_callback(events.append)
            asyncio.run(main(events))
            aiocop.unregister_slow_task_callback(events.append)
            io = [r for e in events for r in e.blocking_events if r["entry_point"].endswith(":touch")]
            cpu = [e for e in events if e.reason == "cpu_blocking"]
            print(tag, "io", len(io), "cpu", len(cpu), "samples", sum(len(e.cpu_stack_samples) for e in cpu), flush=True)
            return bool(io) and bool(cpu)

        ok = run_once("parent")
        pid = os.fork()
        if pid == 0:
            ok = run_once("child")
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status), flush=True)
        """
    )
    assert proc.returncode == 0, describe(proc)
    assert "parent io 1 cpu 1" in proc.stdout, describe(proc)
    assert "child io 1 cpu 1" in proc.stdout, describe(proc)
    assert "child exit 0" in proc.stdout, describe(proc)
    # the CPU sampler is restarted in the child
    child_line = next(line for line in proc.stdout.splitlines() if line.startswith("child"))
    assert not child_line.endswith("samples 0"), describe(proc)
