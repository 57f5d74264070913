"""OpenTelemetry: ``instrument(meter_provider=None)`` registers aiocop's per-call-site totals as
observable instruments of a meter named ``aiocop`` (on the global meter provider when
``None``), read from ``aiocop.report()`` when the SDK collects.

Instruments:

- ``aiocop.blocking.calls`` (counter, ``{call}``; attributes ``event``, ``site``);
- ``aiocop.blocking.duration`` (counter, ``s``; ``event``, ``site``): the summed durations of
  the handles the calls blocked;
- ``aiocop.blocking.duration.p99`` (gauge, ``s``; ``event``, ``site``): the 99th percentile of
  those durations (the OpenTelemetry API has no observable histogram);
- ``aiocop.slow_tasks`` (counter, ``{task}``; ``severity``, ``reason``);
- ``aiocop.events.dropped`` (counter, ``{event}``).

One report is read per collection (the instruments' callbacks share it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any, Optional

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

import aiocop

__all__ = ["instrument"]

# Callbacks of one collection run within this many seconds of each other: they share a report.
_SHARED_FOR_S = 0.5


class _Reports:
    """The last report, shared by the instruments' callbacks of one collection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken = 0.0
        self._report: Optional[aiocop.Report] = None

    def get(self) -> aiocop.Report:
        with self._lock:
            now = time.monotonic()
            if self._report is None or now - self._taken > _SHARED_FOR_S:
                self._report = aiocop.report()
                self._taken = now
            return self._report


def _site_attributes(site: aiocop.SiteStats) -> dict[str, Any]:
    return {"event": site.event, "site": site.site}


def instrument(meter_provider: Optional[MeterProvider] = None) -> Meter:
    """Creates aiocop's observable instruments on a meter of ``meter_provider`` (the global one
    when ``None``) and returns the meter."""
    if meter_provider is not None and not isinstance(meter_provider, MeterProvider):
        raise TypeError(
            f"meter_provider must be an OpenTelemetry MeterProvider or None, "
            f"got {type(meter_provider).__name__}"
        )
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    meter = provider.get_meter("aiocop", aiocop.__version__)
    reports = _Reports()

    def calls(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(s.count, _site_attributes(s)) for s in reports.get().sites_and_other()]

    def duration(_: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(s.total_ms / 1000, _site_attributes(s))
            for s in reports.get().sites_and_other()
        ]

    def p99(_: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(s.p99_ms / 1000, _site_attributes(s))
            for s in reports.get().sites_and_other()
        ]

    def slow_tasks(_: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(c.count, {"severity": c.severity, "reason": c.reason})
            for c in reports.get().slow_task_counts
        ]

    def dropped(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(reports.get().dropped)]

    meter.create_observable_counter(
        "aiocop.blocking.calls",
        [calls],
        unit="{call}",
        description="Blocking calls made on monitored event loops, by audit event and call site.",
    )
    meter.create_observable_counter(
        "aiocop.blocking.duration",
        [duration],
        unit="s",
        description="Summed durations of the loop handles the blocking calls were made in.",
    )
    meter.create_observable_gauge(
        "aiocop.blocking.duration.p99",
        [p99],
        unit="s",
        description="99th percentile of the durations of the handles a call site blocked.",
    )
    meter.create_observable_counter(
        "aiocop.slow_tasks",
        [slow_tasks],
        unit="{task}",
        description="Slow event-loop handles, by severity level and reason.",
    )
    meter.create_observable_counter(
        "aiocop.events.dropped",
        [dropped],
        unit="{event}",
        description="Slow-task events dropped because a bounded queue was full.",
    )
    return meter
