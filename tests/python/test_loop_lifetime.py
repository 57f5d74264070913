"""A monitored loop is freed once it is closed and dropped: what the monitor installs on it
(the replaced scheduling methods, their state, the per-loop delivery callable) keeps it alive
only through cycles the collector can see, even after events were delivered."""

from __future__ import annotations

import asyncio
import gc
import os
import weakref

import aiocop
from conftest import new_loop


def test_a_closed_loop_that_delivered_events_is_freed(loop_kind, tmp_path):
    events = []

    async def body() -> None:
        aiocop.activate()
        aiocop.register_slow_task_callback(events.append)
        try:

            async def blocking() -> None:
                os.stat(tmp_path)
                await asyncio.sleep(0)

            for _ in range(3):  # a new call site, then known ones (assembled in place)
                await asyncio.get_running_loop().create_task(blocking())
            aiocop.flush()
        finally:
            aiocop.unregister_slow_task_callback(events.append)

    loop = new_loop(loop_kind)
    try:
        loop.run_until_complete(body())
    finally:
        aiocop.deactivate()
        loop.close()
    assert len([e for e in events if e.reason == "io_blocking"]) == 3
    events.clear()
    ref = weakref.ref(loop)
    del loop
    gc.collect()
    assert ref() is None, gc.get_referrers(ref())
