"""Exceptions raised by aiocop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from aiocop.types.events import BlockingEventInfo

_RULE = "=" * 80


class HighSeverityBlockingIoException(Exception):
    """Raised out of the loop run when a handle, with raise-on-violations enabled, exceeded the
    threshold with a severity score of at least ``THRESHOLD_HIGH``."""

    def __init__(
        self,
        severity_score: int,
        severity_level: str,
        elapsed_ms: float,
        threshold_ms: float,
        events: Optional[list[BlockingEventInfo]],
    ) -> None:
        self.severity_score = severity_score
        self.severity_level = severity_level
        self.elapsed_ms = elapsed_ms
        self.threshold_ms = threshold_ms
        self.events = events
        super().__init__(self._format_message())

    def _format_message(self) -> str:
        lines = "".join(
            f"\n  - {e['event']}\n    at {e.get('user_trace') or e['trace']}"
            for e in (self.events or [])
        )
        return (
            f"\n{_RULE}\n"
            "HIGH SEVERITY BLOCKING I/O DETECTED\n"
            f"{_RULE}\n"
            "Async task exceeded threshold:\n"
            f"  - Severity Score: {self.severity_score}\n"
            f"  - Severity Level: {self.severity_level}\n"
            f"  - Elapsed Time: {self.elapsed_ms:.2f}ms\n"
            f"  - Threshold: {self.threshold_ms:.2f}ms\n"
            f"\nBlocking I/O Events:{lines}\n"
            f"{_RULE}\n"
        )

    def __reduce__(self):  # keeps the exception picklable (e.g. across pytest-xdist)
        return (
            type(self),
            (self.severity_score, self.severity_level, self.elapsed_ms, self.threshold_ms, self.events),
        )


class BlockingCallError(HighSeverityBlockingIoException):
    """Raised at the blocking call itself, inside the coroutine that made it, when
    ``raise_on_violations(at_call=True)`` is in force and the call weighs at least
    ``min_weight``. The call did not happen.

    ``trace`` is the whole captured stack; ``site`` is the user's call site (the innermost
    frame of the project's own code) and ``user_trace`` the trace up to the project's
    outermost frame, which the message shows; ``suggested_rule`` is the allow rule for this
    call (the same one every report of aiocop suggests). ``origin``, ``distribution``,
    ``distribution_version`` and ``site_key`` attribute the call as ``BlockingEventInfo``
    does (who made it, which installed package, the site's key in a baseline)."""

    def __init__(
        self,
        event_name: str,
        event: str,
        severity: int,
        trace: str,
        entry_point: str,
        task_name: Optional[str] = None,
        coroutine: Optional[str] = None,
        suggested_rule: Optional[str] = None,
        site: Optional[str] = None,
        user_trace: Optional[str] = None,
        origin: Optional[str] = None,
        distribution: Optional[str] = None,
        distribution_version: Optional[str] = None,
        site_key: Optional[str] = None,
    ) -> None:
        self.event_name = event_name
        self.event = event
        self.severity = severity
        self.trace = trace
        self.entry_point = entry_point
        self.task_name = task_name
        self.coroutine = coroutine
        self.suggested_rule = suggested_rule
        self.site = site if site is not None else entry_point
        self.user_trace = user_trace if user_trace is not None else trace
        self.origin = origin
        self.distribution = distribution
        self.distribution_version = distribution_version
        self.site_key = site_key
        info = {"event": event, "trace": trace, "entry_point": entry_point, "severity": severity,
                "task_name": task_name, "coroutine": coroutine, "event_name": event_name,
                "site": self.site, "user_trace": self.user_trace,
                "suggested_rule": suggested_rule, "origin": origin,
                "distribution": distribution, "distribution_version": distribution_version,
                "site_key": site_key}
        super().__init__(severity, _level(severity), 0.0, 0.0, [info])  # type: ignore[list-item]

    def _format_message(self) -> str:
        where = f" in task {self.task_name!r} ({self.coroutine})" if self.task_name else ""
        hint = f"\n  allow it with: aiocop.allow({self.suggested_rule!r})" if self.suggested_rule else ""
        return (
            f"blocking call {self.event} (weight {self.severity}){where}\n"
            f"  at {self.site}\n"
            f"  trace: {self.user_trace}{hint}"
        )

    def __reduce__(self):
        return (
            type(self),
            (self.event_name, self.event, self.severity, self.trace, self.entry_point,
             self.task_name, self.coroutine, self.suggested_rule, self.site, self.user_trace,
             self.origin, self.distribution, self.distribution_version, self.site_key),
        )


def _level(severity: int) -> str:
    """The severity level of a call's weight (aiocop-severity's mapping, exported natively)."""
    from aiocop._aiocop import get_severity_level_from_score

    return get_severity_level_from_score(severity)


__all__ = ["HighSeverityBlockingIoException", "BlockingCallError"]
