"""Collecting a test's blocking calls: the collector, the marker's allow rules in force, raising
at the call, and the wrapper that runs an async test's body monitored on its own loop."""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Optional, TypeVar

import pytest

import aiocop
from aiocop import _aiocop
from aiocop.pytest_plugin._loops import exiting_hard, next_step, note_not_checked, running_kind
from aiocop.pytest_plugin._report import _warn, format_report
from aiocop.pytest_plugin._sites import observe
from aiocop.pytest_plugin._settings import (
    _STATE_KEY,
    _MarkerRuleUse,
    _PluginState,
    _Settings,
    _state,
)
from aiocop.pytest_plugin._violation import Violation

_T = TypeVar("_T")


class _Collector:
    """Monitoring of the running loop, and the blocking calls of the handles it delivers.

    ``start()`` (inside the loop) activates aiocop, which wraps the running loop (or adds its
    instrument to the running trio run); after the
    current loop step has ended, ``collect()`` registers a slow-task callback that keeps the
    ``io_blocking`` records of weight ``min_weight`` or more reaching this loop's thread (in
    warn mode it logs them instead). ``stop()`` delivers what is pending (``aiocop.flush()``),
    unregisters the callback and turns monitoring back off unless it was on before.
    """

    def __init__(self, settings: _Settings, where: str, state: _PluginState) -> None:
        self.settings = settings
        self.where = where
        self.state = state
        self.violations: list[Violation] = []
        self._thread: Optional[int] = None
        self._was_active = False
        self._collecting = False
        #: The running loop's kind (``"asyncio"`` or ``"trio"``), once started.
        self.kind: Optional[str] = None

    def start(self) -> bool:
        """Start on the running asyncio loop or trio run; False on any other (or none)."""
        self.kind = running_kind()
        if self.kind is None:
            return False
        self._thread = threading.get_ident()
        self._was_active = aiocop.is_monitoring_active()
        aiocop.activate()
        return True

    def collect(self) -> None:
        """Collect from now on; what was delivered before (earlier loop steps) is not ours."""
        aiocop.flush()
        aiocop.register_slow_task_callback(self._on_event)
        self._collecting = True

    def stop(self) -> None:
        """Deliver pending events, stop collecting, restore the activation state."""
        if self._thread is None:
            return
        try:
            if self._collecting:
                aiocop.flush()
        finally:
            if self._collecting:
                aiocop.unregister_slow_task_callback(self._on_event)
                self._collecting = False
            if not self._was_active:
                aiocop.deactivate()
            self._thread = None

    def _on_event(self, event: Any) -> None:
        if threading.get_ident() != self._thread:
            return
        found: list[Violation] = []
        for record in event.blocking_events:  # empty for a CPU-bound step
            severity = record.get("severity")
            weight = _aiocop.DEFAULT_WEIGHT if severity is None else severity
            if weight >= self.settings.min_weight:
                found.append(Violation.from_record(record, float(event.elapsed_ms)))
        slow = self.state.slow_step_ms
        if not found and slow is not None and event.elapsed_ms >= slow:
            found.append(Violation.slow_step(event, slow))
        sites = self.state.sites
        for violation in found:
            if sites is not None and not observe(sites, violation, self.where):
                continue  # listed in the baseline (or being written to it)
            if self.settings.mode == "warn":
                _warn(violation, self.where, self.state)
            else:
                self.violations.append(violation)

    def report(self) -> Optional[str]:
        """The failure message, if anything was collected (raise mode)."""
        if not self.violations:
            return None
        return format_report(self.violations, self.where, self.settings)


@contextlib.contextmanager
def _allowing(settings: _Settings, state: _PluginState, where: str) -> Generator[None, None, None]:
    """Enter the marker's allow rules (scoped to the current context), and count their hits."""
    with contextlib.ExitStack() as stack:
        entered: list[tuple[str, Any]] = []
        for spec in settings.allow:
            rule = stack.enter_context(aiocop.allowing(spec, source="marker"))
            entered.append((str(rule.spec), rule))
        try:
            yield
        finally:
            for spec, rule in entered:
                use = state.marker_rules.setdefault(spec, _MarkerRuleUse())
                use.tests.append(where)
                hits = getattr(rule, "hits", None)
                if isinstance(hits, int):
                    use.tracked = True
                    use.hits += hits


def _at_call(settings: _Settings, default: bool) -> contextlib.AbstractContextManager[Any]:
    """``raise_on_violations(at_call=True)`` when on (raise mode only), else nothing.

    Warn mode never raises: its collector logs the calls once the loop delivers them.
    """
    at_call = default if settings.at_call is None else settings.at_call
    if at_call and settings.mode == "raise":
        return aiocop.raise_on_violations(
            at_call=True, min_weight=settings.min_weight, mode="raise"
        )
    return contextlib.nullcontext()


def _monitored(
    original: Callable[..., Awaitable[_T]],
    item: pytest.Function,
    settings: _Settings,
    *,
    check: bool,
) -> Callable[..., Awaitable[_T]]:
    """``original`` wrapped so that its body runs monitored on the test's own loop.

    With ``check`` the blocking calls of the body fail the test (raise mode) or are logged
    (warn mode); without it the body only runs monitored (the ``aiocop_strict`` blocks of the
    test do the checking).
    """
    state = _state(item.config)
    where = item.nodeid

    @functools.wraps(original)
    async def _aiocop_monitored_test(*args: Any, **kwargs: Any) -> _T:
        __tracebackhide__ = True
        collector = _Collector(settings, where, state)
        if not collector.start():
            if check:
                note_not_checked(item)
            return await original(*args, **kwargs)
        raised: Optional[BaseException] = None
        try:
            await next_step(collector.kind)  # the body starts in a monitored handle
            if not check:  # its aiocop_strict blocks do the checking
                return await original(*args, **kwargs)
            collector.collect()
            with _allowing(settings, state, where), _at_call(settings, default=False):
                return await original(*args, **kwargs)
        except BaseException as exc:
            raised = exc
            raise
        finally:
            try:
                if not exiting_hard(raised):
                    await next_step(collector.kind)  # the body's last step ends, events sent
            finally:
                collector.stop()
            report = collector.report()
            if report is not None:
                if raised is not None:
                    item.add_report_section("call", "aiocop", report)
                else:
                    pytest.fail(report, pytrace=False)

    return _aiocop_monitored_test


async def _next_handle() -> None:
    """End the current asyncio loop step (``aiocop_strict``'s blocks run on asyncio only)."""
    await next_step("asyncio")


#: Whether an exception forbids awaiting on the way out (``aiocop_strict``'s too).
_exiting_hard = exiting_hard


def _monitoring_target(item: pytest.Item) -> Optional[Callable[..., Awaitable[Any]]]:
    """The test's coroutine function, if the plugin has something to do for this test."""
    if not isinstance(item, pytest.Function) or _STATE_KEY not in item.config.stash:
        return None
    state = _state(item.config)
    uses_strict = "aiocop_strict" in item.fixturenames
    if not state.enabled and not uses_strict:
        return None
    if item.get_closest_marker("no_aiocop") is not None and not uses_strict:
        return None
    obj = item.obj
    if not inspect.iscoroutinefunction(obj):
        return None
    return obj  # type: ignore[no-any-return]
