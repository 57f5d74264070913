"""The loop kinds the plugin checks — asyncio (and uvloop), and trio (``trio.run``, anyio's trio
backend) through aiocop's trio instrument — and the tests it cannot check: those run on any
other loop are listed in the terminal summary ("aiocop: tests not checked") and logged at INFO,
never failed or warned about (suites run with ``-W error``)."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any, Optional

import pytest

#: The plugin's logger (under aiocop's).
_LOG = logging.getLogger("aiocop.pytest_plugin")

#: The node ids of the tests that ran on a loop the plugin cannot check.
_NOT_CHECKED_KEY = pytest.StashKey[list[str]]()


def running_kind() -> Optional[str]:
    """``"asyncio"`` inside a running asyncio loop, ``"trio"`` inside a trio run, else None."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return "asyncio"
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            if trio.lowlevel.in_trio_run():
                return "trio"
        except AttributeError:  # an old trio
            return None
    return None


async def next_step(kind: Optional[str]) -> None:
    """End the current loop step (asyncio handle, trio task step): what follows runs in a new,
    monitored one."""
    if kind == "trio":
        import trio

        await trio.lowlevel.checkpoint()
    else:
        await asyncio.sleep(0)


def exiting_hard(exc: Optional[BaseException]) -> bool:
    """Whether ``exc`` forbids awaiting on the way out (cancellation, interpreter exit)."""
    if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)):
        return True
    trio = sys.modules.get("trio")
    return trio is not None and isinstance(exc, trio.Cancelled)


def note_not_checked(item: pytest.Item) -> None:
    """``item`` ran on a loop the plugin cannot check: listed at the end, logged at INFO."""
    _LOG.info(
        "aiocop checks asyncio, uvloop and trio loops only: %s ran on another and was not "
        "checked",
        item.nodeid,
    )
    item.config.stash.setdefault(_NOT_CHECKED_KEY, []).append(item.nodeid)


def not_checked_section(config: pytest.Config) -> Optional[tuple[str, list[str]]]:
    """The terminal summary's "aiocop: tests not checked" section, when there are any."""
    tests = config.stash.get(_NOT_CHECKED_KEY, [])
    if not tests:
        return None
    lines = [
        f"{len(tests)} async test(s) ran on a loop aiocop cannot check "
        "(it checks asyncio, uvloop and trio):"
    ]
    lines.extend(f"  {nodeid}" for nodeid in tests)
    return "aiocop: tests not checked", lines


def write_section(terminalreporter: Any, config: pytest.Config) -> None:
    """Write :func:`not_checked_section` to the terminal, if any."""
    section = not_checked_section(config)
    if section is None:
        return
    title, lines = section
    terminalreporter.write_sep("-", title)
    for line in lines:
        terminalreporter.write_line(line)
