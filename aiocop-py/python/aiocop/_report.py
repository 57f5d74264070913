"""``aiocop.report()``: the per-call-site totals kept natively, as typed, immutable objects.

The totals are counted on the loop thread at the end of every slow handle (natively, in
``aiocop-aggregate``), whether or not a slow-task callback is registered; reading them merges
every thread's table. Nothing here is computed per request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from aiocop import _aiocop

_NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class SiteStats:
    """One call site's totals: the entry point ``path:line:function`` of the blocking calls'
    stack and their audit event; how many calls; the summed and the longest duration of the
    handles they blocked (a handle counts once per site); the median and 99th percentile of
    those durations (read from log buckets: at most a quarter above the true value, never above
    ``max_ms``)."""

    site: str
    event: str
    count: int
    total_ms: float
    max_ms: float
    p50_ms: float
    p99_ms: float

    @classmethod
    def _from_native(cls, row: tuple[str, str, int, int, int, int, int]) -> "SiteStats":
        site, event, count, total_ns, max_ns, p50_ns, p99_ns = row
        return cls(
            site=site,
            event=event,
            count=count,
            total_ms=total_ns / _NS_PER_MS,
            max_ms=max_ns / _NS_PER_MS,
            p50_ms=p50_ns / _NS_PER_MS,
            p99_ms=p99_ns / _NS_PER_MS,
        )


@dataclass(frozen=True)
class SlowTaskCount:
    """Slow handles of one severity level and reason."""

    severity: str
    reason: str
    count: int


@dataclass(frozen=True)
class Durations:
    """Every slow handle's duration in fixed buckets: ``bounds`` are the upper bounds in
    seconds (inclusive), ``counts`` the count of each bucket (not cumulative), with one more
    for the unbounded bucket; ``sum_seconds`` their sum."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum_seconds: float

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Report:
    """A snapshot of the per-call-site totals, from ``aiocop.report()``.

    ``sites``: by total blocking time, longest first; ``other``: the calls at sites beyond the
    bound (``configure_report(max_sites=...)``, default 500), or ``None``; ``slow_tasks``:
    slow handles by severity level; ``slow_task_counts``: by level and reason; ``durations``:
    every slow handle's duration in fixed buckets; ``dropped``: events dropped because a
    bounded queue was full; ``site_count``: the sites known (``sites`` may show fewer)."""

    sites: list[SiteStats]
    other: Optional[SiteStats]
    slow_tasks: dict[str, int]
    slow_task_counts: list[SlowTaskCount]
    durations: Durations
    dropped: int
    site_count: int

    @property
    def blocking_calls(self) -> int:
        """Every blocking call counted, ``other`` included."""
        return sum(s.count for s in self.sites_and_other())

    def sites_and_other(self) -> list[SiteStats]:
        """``sites`` followed by ``other`` when there is one."""
        return self.sites + ([self.other] if self.other is not None else [])

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (for JSON)."""
        data = asdict(self)
        data["sites"] = [asdict(s) for s in self.sites]
        data["slow_task_counts"] = [asdict(c) for c in self.slow_task_counts]
        data["durations"] = {
            "bounds": list(self.durations.bounds),
            "counts": list(self.durations.counts),
            "sum_seconds": self.durations.sum_seconds,
        }
        return data

    def __str__(self) -> str:
        return _format_table(self)


def _format_table(report: Report) -> str:
    levels = ", ".join(f"{level} {n}" for level, n in report.slow_tasks.items())
    header = (
        f"aiocop report: {report.site_count} call site(s), {report.blocking_calls} blocking "
        f"call(s), {sum(report.slow_tasks.values())} slow task(s) ({levels}), "
        f"{report.dropped} dropped"
    )
    rows = report.sites_and_other()
    if not rows:
        return header + "\n(no blocking calls)"
    event_width = min(max(len("event"), *(len(s.event) for s in rows)), 32)
    lines = [
        header,
        f"{'total ms':>10} {'calls':>8} {'max ms':>9} {'p50 ms':>9} {'p99 ms':>9}  "
        f"{'event':<{event_width}}  site",
    ]
    for s in rows:
        lines.append(
            f"{s.total_ms:>10.2f} {s.count:>8} {s.max_ms:>9.2f} {s.p50_ms:>9.2f} "
            f"{s.p99_ms:>9.2f}  {s.event[:event_width]:<{event_width}}  {s.site}"
        )
    return "\n".join(lines)


def report(top: Optional[int] = None) -> Report:
    """A snapshot of the per-call-site totals: every loop thread's merged, the ``top`` sites
    with the longest total blocking time (all of them when ``None``)."""
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int):
            raise TypeError(f"top must be an int or None, got {type(top).__name__}")
        if top < 1:
            raise ValueError(f"top must be at least 1, got {top}")
    raw = _aiocop._report_snapshot(top)
    slow_task_counts = [
        SlowTaskCount(severity=level, reason=reason, count=count)
        for level, reason, count in raw["slow_tasks"]
    ]
    slow_tasks: dict[str, int] = {}
    for c in slow_task_counts:
        slow_tasks[c.severity] = slow_tasks.get(c.severity, 0) + c.count
    durations = raw["durations"]
    other = raw["other"]
    return Report(
        sites=[SiteStats._from_native(row) for row in raw["sites"]],
        other=SiteStats._from_native(other) if other is not None else None,
        slow_tasks=slow_tasks,
        slow_task_counts=slow_task_counts,
        durations=Durations(
            bounds=tuple(durations["bounds"]),
            counts=tuple(durations["counts"]),
            sum_seconds=durations["sum_ns"] / 1e9,
        ),
        dropped=raw["dropped"],
        site_count=raw["site_count"],
    )


def reset_report() -> None:
    """Forgets every per-call-site total (every thread's)."""
    _aiocop.reset_report()


def configure_report(*, max_sites: Optional[int] = None) -> None:
    """Sets the bound on the call sites kept per loop thread and reported (default 500): calls
    at further sites count in the report's ``other`` row. Sites kept already stay."""
    if max_sites is not None:
        if isinstance(max_sites, bool) or not isinstance(max_sites, int):
            raise TypeError(f"max_sites must be an int, got {type(max_sites).__name__}")
        if max_sites < 1:
            raise ValueError(f"max_sites must be at least 1, got {max_sites}")
        _aiocop._set_report_max_sites(max_sites)
