"""Prometheus metrics: requests by route and status, latency, upstream calls."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest


def install(app: Flask) -> None:
    registry = CollectorRegistry()
    requests = Counter("opacgw_requests_total", "API requests", ["method", "route", "status"], registry=registry)
    latency = Histogram("opacgw_request_seconds", "API request latency", ["route"], registry=registry,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
    app.extensions["opacgw_metrics"] = registry

    @app.before_request
    def _start() -> None:
        g.metrics_t0 = time.perf_counter()

    @app.after_request
    def _count(resp: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        requests.labels(request.method, route, str(resp.status_code)).inc()
        latency.labels(route).observe(time.perf_counter() - g.get("metrics_t0", time.perf_counter()))
        return resp

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
