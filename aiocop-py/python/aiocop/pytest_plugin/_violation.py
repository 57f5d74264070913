"""One blocking call (or slow loop step) found on a test's loop, read from aiocop's events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from aiocop import _aiocop
from aiocop.types.events import BlockingEventInfo


@dataclass(frozen=True)
class Violation:
    """One blocking call found on the loop: the report's line and the allow rule for it."""

    event: str
    event_name: str
    weight: int
    #: The user's call site (the innermost frame of the project's own code).
    site: str
    #: The trace up to the project's outermost frame (the test), as aiocop reports it.
    trace: str
    task_name: Optional[str]
    elapsed_ms: float
    suggested_rule: Optional[str]
    #: A loop step over the threshold (``slow_step``), not a blocking call (``call``).
    kind: str = "call"
    #: The call site's key, stable across edits that move lines (``app.config:load``): see
    #: ``BlockingEventInfo["site_key"]``.
    site_key: Optional[str] = None
    #: ``"first-party"``, ``"third-party"`` or ``"stdlib"``: who the call is attributed to.
    origin: Optional[str] = None
    #: The installed distribution the call is attributed to, and its version.
    distribution: Optional[str] = None
    distribution_version: Optional[str] = None

    @property
    def baseline_key(self) -> tuple[str, str]:
        """The site as a baseline knows it: the audit event's name and the site's key (no line
        numbers, no arguments, no absolute paths)."""
        return (self.event_name, self.site_key or "unknown")

    @property
    def key(self) -> tuple[str, str]:
        """What makes a call site: the event name and the (user's) stack that made it."""
        return (self.event_name, self.trace or self.site)

    @classmethod
    def from_record(cls, record: BlockingEventInfo, elapsed_ms: float) -> Violation:
        """The violation of one ``blocking_events`` record of a ``SlowTaskEvent``: the fields
        aiocop reports, read as they are (never parsed out of the displayed text)."""
        severity = record.get("severity")
        return cls(
            event=str(record.get("event", "?")),
            event_name=str(record.get("event_name", "?")),
            weight=_aiocop.DEFAULT_WEIGHT if severity is None else int(severity),
            site=str(record.get("site") or record.get("entry_point") or "unknown"),
            trace=str(record.get("user_trace") or record.get("trace") or ""),
            task_name=record.get("task_name"),
            elapsed_ms=elapsed_ms,
            suggested_rule=record.get("suggested_rule"),
            site_key=record.get("site_key"),
            origin=record.get("origin"),
            distribution=record.get("distribution"),
            distribution_version=record.get("distribution_version"),
        )

    @classmethod
    def slow_step(cls, event: Any, threshold_ms: float) -> Violation:
        """A loop step of ``threshold_ms`` or longer that no reported blocking call explains:
        where the CPU sampler saw it most, else which task ran it."""
        samples = list(event.cpu_stack_samples)
        owner = event.coroutine or "a callback"
        site = samples[0]["entry_point"] if samples else f"{owner} (no stack sample)"
        return cls(
            event=f"a loop step of {float(event.elapsed_ms):.1f} ms, over the "
            f"{threshold_ms:g} ms threshold",
            event_name="slow loop step",
            weight=0,
            site=site,
            trace=samples[0]["trace"] if samples else "",
            task_name=event.task_name,
            elapsed_ms=float(event.elapsed_ms),
            suggested_rule=None,
            kind="slow_step",
        )
