"""Diagnostics of aiocop's own threads reach the ``aiocop`` logger.

The watchdog that writes stuck-loop reports never takes the GIL; when it cannot write a report
(here: ``/dev/full``, where every write fails with "No space left on device") its warning is
forwarded to the ``aiocop`` logger by a thread of aiocop's, while the loop is still stuck.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

import pytest

import aiocop

from conftest import run_monitored

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


def test_a_report_that_cannot_be_written_is_logged_while_the_loop_is_stuck(caplog):
    logged_at: dict[str, float] = {}
    stall: dict[str, float] = {}

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "could not write a stuck-loop report" in record.getMessage():
                logged_at.setdefault("first", time.monotonic())
                logged_at["thread"] = threading.get_ident()

    async def stuck_handler() -> None:
        stall["start"] = time.monotonic()
        time.sleep(1.0)
        stall["end"] = time.monotonic()

    async def body() -> None:
        stall["thread"] = threading.get_ident()
        await asyncio.create_task(stuck_handler())

    watch = Watch()
    logger = logging.getLogger("aiocop")
    logger.addHandler(watch)
    aiocop.detect_stuck_loops(after_ms=100, report_path="/dev/full")
    try:
        with caplog.at_level(logging.WARNING, logger="aiocop"):
            run_monitored(body, "asyncio")
            deadline = time.monotonic() + 5
            while "first" not in logged_at and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        aiocop.stop_detecting_stuck_loops()
        logger.removeHandler(watch)

    failed = [r for r in caplog.records if "could not write a stuck-loop report" in r.getMessage()]
    assert failed, [r.getMessage() for r in caplog.records]
    assert all(r.levelno == logging.WARNING and r.name == "aiocop" for r in failed)
    assert "No space left on device" in failed[0].getMessage()
    # Logged while the loop thread still slept, from a thread of aiocop's.
    assert logged_at["first"] < stall["end"]
    assert logged_at["thread"] != stall["thread"]
