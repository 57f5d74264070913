"""The exporters against the real libraries: ``prometheus_client`` served over HTTP on
127.0.0.1 and parsed with its own text parser; the OpenTelemetry SDK with its in-memory metric
reader. The exported counts equal the blocking calls made; labels carry no arguments."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request

import pytest

import aiocop
from conftest import close_loop, flush, new_loop

prometheus_client = pytest.importorskip("prometheus_client")
pytest.importorskip("opentelemetry.sdk")

SECRET_PATH = os.path.join(os.path.dirname(__file__), "token=hunter2")


@pytest.fixture(autouse=True)
def fresh_report():
    aiocop.reset_report()
    yield
    aiocop.reset_report()


def stat_here() -> None:
    try:
        os.stat(SECRET_PATH)
    except FileNotFoundError:
        pass


def run_handlers(kind: str, stats: int) -> None:
    loop = new_loop(kind)

    async def one() -> None:
        stat_here()

    async def main() -> None:
        aiocop.activate()
        for _ in range(stats):
            await asyncio.ensure_future(one())
        flush()

    try:
        loop.run_until_complete(main())
    finally:
        close_loop(loop)


def scrape(port: int) -> dict[str, list]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert "hunter2" not in text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_prometheus_scrape_counts_the_calls(loop_kind: str) -> None:
    from aiocop.exporters import prometheus

    registry = prometheus_client.CollectorRegistry()
    collector = prometheus.register(registry)
    assert prometheus.register(registry) is collector
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        run_handlers(loop_kind, stats=25)
        families = scrape(server.server_port)
    finally:
        server.shutdown()
        thread.join()
    calls = [s for s in families["aiocop_blocking_calls"] if s.labels["event"] == "os.stat"]
    assert len(calls) == 1 and calls[0].name == "aiocop_blocking_calls_total"
    assert calls[0].value == 25
    assert calls[0].labels["site"].endswith(":stat_here")
    assert set(calls[0].labels) == {"event", "site"}
    seconds = {s.labels["event"]: s.value for s in families["aiocop_blocking_seconds"]}
    assert seconds["os.stat"] > 0
    slow = {(s.labels["severity"], s.labels["reason"]): s.value for s in families["aiocop_slow_tasks"]}
    assert len(slow) == 6 and sum(slow.values()) >= 25
    assert families["aiocop_events_dropped"][0].value == aiocop.stats()["dropped_events"]
    histogram = families["aiocop_slow_handle_seconds"]
    count = [s.value for s in histogram if s.name.endswith("_count")]
    inf = [s.value for s in histogram if s.labels.get("le") == "+Inf"]
    assert count == inf == [sum(slow.values())]


def test_prometheus_register_checks_its_argument() -> None:
    from aiocop.exporters import prometheus

    with pytest.raises(TypeError, match="registry"):
        prometheus.register("default")  # type: ignore[arg-type]


def test_otel_in_memory_reader_counts_the_calls(loop_kind: str) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from aiocop.exporters import otel

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    otel.instrument(provider)
    run_handlers(loop_kind, stats=12)
    data = reader.get_metrics_data()
    metrics = {
        m.name: m
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        if sm.scope.name == "aiocop"
        for m in sm.metrics
    }
    assert set(metrics) >= {
        "aiocop.blocking.calls",
        "aiocop.blocking.duration",
        "aiocop.blocking.duration.p99",
        "aiocop.slow_tasks",
        "aiocop.events.dropped",
    }
    calls = [p for p in metrics["aiocop.blocking.calls"].data.data_points if p.attributes["event"] == "os.stat"]
    assert [p.value for p in calls] == [12]
    assert str(calls[0].attributes["site"]).endswith(":stat_here")
    slow = sum(p.value for p in metrics["aiocop.slow_tasks"].data.data_points)
    assert slow >= 12
    provider.shutdown()


def test_otel_instrument_checks_its_argument() -> None:
    from aiocop.exporters import otel

    with pytest.raises(TypeError, match="meter_provider"):
        otel.instrument(object())  # type: ignore[arg-type]


def test_importing_aiocop_imports_no_exporter_library() -> None:
    code = (
        "import sys, aiocop; "
        "print(any(m.split('.')[0] in ('prometheus_client', 'opentelemetry') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
