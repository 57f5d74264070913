"""Prometheus: ``register(registry=None)`` adds a collector of aiocop's per-call-site totals to
a ``prometheus_client`` registry (the default one when ``None``).

Metrics (read from ``aiocop.report()`` on every scrape):

- ``aiocop_blocking_calls_total{event, site}``: blocking calls made on monitored loops;
- ``aiocop_blocking_seconds_total{event, site}``: the summed durations of the handles they
  blocked (a handle counted once per site);
- ``aiocop_slow_tasks_total{severity, reason}``: slow handles;
- ``aiocop_events_dropped_total``: events dropped because a bounded queue was full;
- ``aiocop_slow_handle_seconds``: a histogram of every slow handle's duration.

Calls at sites beyond the report's bound are labelled ``event="other", site="other"``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Optional

from prometheus_client.core import (
    REGISTRY,
    CollectorRegistry,
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

import aiocop

__all__ = ["AiocopCollector", "register", "unregister"]


def _families() -> tuple[CounterMetricFamily, ...]:
    return (
        CounterMetricFamily(
            "aiocop_blocking_calls",
            "Blocking calls made on monitored event loops, by audit event and call site.",
            labels=["event", "site"],
        ),
        CounterMetricFamily(
            "aiocop_blocking_seconds",
            "Summed durations of the loop handles the blocking calls were made in.",
            labels=["event", "site"],
        ),
        CounterMetricFamily(
            "aiocop_slow_tasks",
            "Slow event-loop handles, by severity level and reason.",
            labels=["severity", "reason"],
        ),
        CounterMetricFamily(
            "aiocop_events_dropped",
            "Slow-task events dropped because a bounded queue was full.",
        ),
    )


def _histogram(durations: Optional[aiocop.Durations]) -> HistogramMetricFamily:
    name = "aiocop_slow_handle_seconds"
    doc = "Durations of slow event-loop handles."
    if durations is None:
        return HistogramMetricFamily(name, doc)
    buckets: list[tuple[str, float]] = []
    cumulative = 0
    for bound, count in zip(durations.bounds, durations.counts):
        cumulative += count
        buckets.append((repr(bound), cumulative))
    buckets.append(("+Inf", durations.count))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=durations.sum_seconds)


class AiocopCollector(Collector):
    """A ``prometheus_client`` collector of aiocop's per-call-site totals."""

    def describe(self) -> Iterator[Metric]:
        yield from _families()
        yield _histogram(None)

    def collect(self) -> Iterator[Metric]:
        report = aiocop.report()
        calls, seconds, slow_tasks, dropped = _families()
        for site in report.sites_and_other():
            calls.add_metric([site.event, site.site], site.count)
            seconds.add_metric([site.event, site.site], site.total_ms / 1000)
        for c in report.slow_task_counts:
            slow_tasks.add_metric([c.severity, c.reason], c.count)
        dropped.add_metric([], report.dropped)
        yield from (calls, seconds, slow_tasks, dropped)
        yield _histogram(report.durations)


_lock = threading.Lock()
_registered: dict[int, tuple[CollectorRegistry, AiocopCollector]] = {}


def register(registry: Optional[CollectorRegistry] = None) -> AiocopCollector:
    """Adds aiocop's collector to ``registry`` (``prometheus_client``'s default registry when
    ``None``) and returns it; a second call for the same registry returns the first collector."""
    if registry is None:
        registry = REGISTRY
    if not isinstance(registry, CollectorRegistry):
        raise TypeError(
            f"registry must be a prometheus_client CollectorRegistry or None, "
            f"got {type(registry).__name__}"
        )
    with _lock:
        known = _registered.get(id(registry))
        if known is not None and known[0] is registry:
            return known[1]
        collector = AiocopCollector()
        registry.register(collector)
        _registered[id(registry)] = (registry, collector)
        return collector


def unregister(registry: Optional[CollectorRegistry] = None) -> None:
    """Removes aiocop's collector from ``registry`` (the default one when ``None``), if added."""
    if registry is None:
        registry = REGISTRY
    with _lock:
        known = _registered.pop(id(registry), None)
    if known is not None and known[0] is registry:
        registry.unregister(known[1])
