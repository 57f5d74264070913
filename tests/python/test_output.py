"""The library never writes to stdout/stderr itself."""

from __future__ import annotations

from conftest import describe, run_python


def test_monitored_program_is_silent():
    proc = run_python(
        """
        import asyncio, os, sys, time
        import aiocop

        events = []
        aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection()
        aiocop.detect_slow_tasks(threshold_ms=10, on_slow_task=events.append)

        def spin_for_a_while():
            end = time.perf_counter() + 0.05
            while time.perf_counter() < end:
                pass

        async def main():
            aiocop.activate()
            await asyncio.sleep(0)
            for _ in range(5):
                open("/dev/null").close()
                os.stat("/")
                time.sleep(0.001)
                await asyncio.sleep(0)
            spin_for_a_while()
            await asyncio.sleep(0)
            aiocop.deactivate()
            await asyncio.sleep(0)
            getattr(aiocop, "flush", lambda: None)()
            await asyncio.sleep(0.05)

        asyncio.run(main())
        io = [e for e in events if e.reason == "io_blocking"]
        cpu = [e for e in events if e.reason == "cpu_blocking"]
        sys.exit(0 if len(io) >= 5 and len(cpu) >= 1 else 3)
        """
    )
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout == "", describe(proc)
    assert proc.stderr == "", describe(proc)


def test_uvloop_monitored_program_is_silent():
    proc = run_python(
        """
        import asyncio, sys
        try:
            import uvloop
        except ImportError:
            sys.exit(0)
        import aiocop

        events = []
        aiocop.patch_audit_functions()
        aiocop.start_blocking_io_detection()
        aiocop.detect_slow_tasks(threshold_ms=10, on_slow_task=events.append)

        async def main():
            aiocop.activate()
            await asyncio.sleep(0)
            for _ in range(3):
                open("/dev/null").close()
                await asyncio.sleep(0)
            getattr(aiocop, "flush", lambda: None)()

        loop = uvloop.new_event_loop()
        loop.run_until_complete(main())
        loop.close()
        sys.exit(0 if len(events) >= 3 else 3)
        """
    )
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout == "", describe(proc)
    assert proc.stderr == "", describe(proc)
