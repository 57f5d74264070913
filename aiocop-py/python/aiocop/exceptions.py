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
        lines = "".join(f"\n  - {e['event']}\n    at {e['trace']}" for e in (self.events or []))
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


__all__ = ["HighSeverityBlockingIoException"]
