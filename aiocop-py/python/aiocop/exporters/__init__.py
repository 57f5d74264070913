"""Exporters of the per-call-site totals (``aiocop.report()``) to the metrics systems services
already run: ``aiocop.exporters.prometheus`` (``prometheus_client``) and
``aiocop.exporters.otel`` (the OpenTelemetry API). Each imports its library only when it is
imported itself, and reads the totals on scrape or collection: nothing per request.

Metric labels are the audit event and the call site (``path:line:function``), or the severity
and reason: never a call's arguments.
"""
