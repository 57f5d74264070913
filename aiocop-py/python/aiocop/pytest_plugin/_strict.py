"""The ``aiocop_strict`` fixture's context manager: checks only its block."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Optional, Union

import pytest

from aiocop.pytest_plugin._collect import (
    _allowing,
    _at_call,
    _Collector,
    _exiting_hard,
    _next_handle,
)
from aiocop.pytest_plugin._settings import (
    _allow_specs,
    _at_call_value,
    _min_weight_value,
    _mode_value,
    _PluginState,
    _Settings,
)


class AiocopStrict:
    """Checks only the code inside its block for blocking calls on the running loop.

    Use it inside the test's running loop, preferably as ``async with``::

        async def test_view(client, aiocop_strict):
            async with aiocop_strict:
                response = await client.get("/items")

    In raise mode a blocking call made by the block's own code (its task and the tasks it
    starts) raises :class:`aiocop.BlockingCallError` where it happens (unless ``at_call=False``),
    and at the end of the block the blocking calls of every loop step that ended inside it (a
    server task's too) fail the test with the report. In warn mode they are logged once per
    call site. The test's ``@pytest.mark.aiocop`` settings apply; ``aiocop_strict(allow=[...],
    mode=..., at_call=..., min_weight=...)`` returns a copy with other settings.

    ``async with`` ends the loop step on entry and on exit, so the block is exactly what is
    checked. With a plain ``with`` the step running at entry is checked whole, and the one
    still running at exit only through ``at_call`` (its events come after the block).
    """

    def __init__(self, item: pytest.Item, settings: _Settings, state: _PluginState) -> None:
        self._item = item
        self._settings = settings
        self._state = state
        self._collector: Optional[_Collector] = None
        self._stack: Optional[contextlib.ExitStack] = None
        self._where = item.nodeid

    def __call__(
        self,
        *,
        allow: Union[str, Mapping[str, Any], Iterable[Union[str, Mapping[str, Any]]], None] = None,
        mode: Optional[str] = None,
        at_call: Optional[bool] = None,
        min_weight: Optional[int] = None,
    ) -> AiocopStrict:
        """A strict block with these settings over the test's (``allow`` is added)."""
        where = f"aiocop_strict() in {self._item.nodeid}"
        extra = _allow_specs(list(allow) if isinstance(allow, (set, frozenset)) else allow, where)
        base = self._settings
        settings = _Settings(
            mode=base.mode if mode is None else _mode_value(mode, f"{where}: mode"),
            at_call=base.at_call if at_call is None else _at_call_value(at_call, where),
            min_weight=(
                base.min_weight if min_weight is None else _min_weight_value(min_weight, where)
            ),
            allow=base.allow + tuple(extra),
        )
        return AiocopStrict(self._item, settings, self._state)

    # -- the block

    def _enter(self, caller: str) -> None:
        if self._collector is not None:
            raise RuntimeError("aiocop_strict blocks do not nest; use one block at a time")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "aiocop_strict must be entered inside the running asyncio loop "
                "(in an async test, or a coroutine the test runs)"
            ) from None
        self._where = f"the aiocop_strict block at {caller} ({self._item.nodeid})"
        collector = _Collector(self._settings, self._where, self._state)
        collector.start()
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(_allowing(self._settings, self._state, self._item.nodeid))
            stack.enter_context(_at_call(self._settings, default=True))
        except BaseException:
            stack.close()
            collector.stop()
            raise
        self._collector, self._stack = collector, stack

    def _exit(self, exc: Optional[BaseException]) -> None:
        __tracebackhide__ = True
        collector, stack = self._collector, self._stack
        self._collector = self._stack = None
        assert collector is not None and stack is not None
        try:
            stack.close()
        finally:
            collector.stop()
        report = collector.report()
        if report is None:
            return
        if exc is not None:
            self._item.add_report_section("call", "aiocop", report)
        else:
            pytest.fail(report, pytrace=False)

    def __enter__(self) -> AiocopStrict:
        self._enter(_caller(2))
        assert self._collector is not None
        self._collector.collect()
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        __tracebackhide__ = True
        self._exit(exc)

    async def __aenter__(self) -> AiocopStrict:
        self._enter(_caller(2))
        await _next_handle()  # the block starts in a new handle
        assert self._collector is not None
        self._collector.collect()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        __tracebackhide__ = True
        if not _exiting_hard(exc):
            await _next_handle()  # the block's last handle ends before the check
        self._exit(exc)


def _caller(depth: int) -> str:
    """``file:line`` of the frame ``depth`` levels up (where the block is entered)."""
    frame = sys._getframe(depth)
    return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
