"""Prometheus metrics: requests by route and status, latency, upstream calls."""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)


class UpstreamCollector:
    """Per-library upstream state, read at scrape time from the gateway."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self):  # type: ignore[no-untyped-def]
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        gw = self.app.extensions.get("opacgw")
        if gw is None:
            return
        requests = CounterMetricFamily("opacgw_upstream_requests", "upstream HTTP requests", labels=["library"])
        in_flight = GaugeMetricFamily("opacgw_upstream_in_flight", "upstream calls under way", labels=["library"])
        circuit = GaugeMetricFamily("opacgw_circuit_open", "1 when the library's circuit is not closed",
                                    labels=["library"])
        for lib in gw.config.libraries:
            guard = gw.guard(lib)
            in_flight.add_metric([lib], guard.in_flight)
            circuit.add_metric([lib], 0 if guard.state == "closed" else 1)
            adapter = gw._adapters.get(lib)
            requests.add_metric([lib], adapter.request_count if adapter else 0)
        yield requests
        yield in_flight
        yield circuit
        from gateway.canary import snapshot

        last = snapshot()
        if last:
            canary = GaugeMetricFamily("opacgw_canary_ok", "1 when the library's last canary journey "
                                       "(opacgw canary) went through", labels=["library"])
            for lib, ok in sorted(last.items()):
                canary.add_metric([lib], ok)
            yield canary


BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
ENV_MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"


def install(app: Flask) -> None:
    """Metrics of this app; under gunicorn with ``PROMETHEUS_MULTIPROC_DIR`` set, /metrics
    answers for all worker processes together (prometheus_client's multiprocess mode:
    each process writes its samples to files in that directory; ``gateway.gunicorn_conf``
    removes a dead worker's)."""
    registry = CollectorRegistry()
    requests = Counter("opacgw_requests_total", "API requests", ["method", "route", "status"], registry=registry)
    latency = Histogram("opacgw_request_seconds", "API request latency", ["route"], registry=registry,
                        buckets=BUCKETS)
    upstream = Histogram("opacgw_upstream_seconds", "upstream call latency by library and operation",
                         ["library", "operation", "outcome"], registry=registry, buckets=BUCKETS)
    if os.environ.get(ENV_MULTIPROC):
        from prometheus_client import multiprocess

        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)  # type: ignore[no-untyped-call]
    else:
        scrape = registry
    scrape.register(UpstreamCollector(app))  # type: ignore[arg-type]
    app.extensions["opacgw_metrics"] = scrape
    gw = app.extensions.get("opacgw")
    if gw is not None:
        def observe(library: str, operation: str, outcome: str, seconds: float) -> None:
            upstream.labels(library, operation, outcome).observe(seconds)

        for lib in gw.config.libraries:
            gw.guard(lib).observe = observe

    @app.before_request
    def _start() -> None:
        g.metrics_t0 = time.perf_counter()

    @app.after_request
    def _count(resp: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        requests.labels(request.method, route, str(resp.status_code)).inc()
        latency.labels(route).observe(time.perf_counter() - g.get("metrics_t0", time.perf_counter()))
        return resp

    from gateway.http import spec

    @app.get("/metrics")
    @spec(auth="none", summary="Prometheus metrics", content_type="text/plain")
    def metrics() -> Response:
        return Response(generate_latest(scrape), content_type=CONTENT_TYPE_LATEST)
