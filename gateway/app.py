"""The Flask application: one unified patron API in front of many library systems.

``create_app(config)`` builds the app; every blueprint module ``gateway/api_*.py``
is registered automatically.  One error handler renders every error as
``application/problem+json``; Flask's own 404/405 and unexpected exceptions too —
no request can produce an HTML error page or a bare trace.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import pkgutil
import time

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

import gateway
from core.errors import (
    ClientUnauthorized,
    Conflict,
    GatewayError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    RateLimited,
)
from gateway.config import GatewayConfig, load_config
from gateway.runtime import Gateway

log = logging.getLogger("opacgw")

PROBLEM_JSON = "application/problem+json"
OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs",
              "/v1/calendar/")  # a subscription's calendar URL: its secret is the credential


def problem_response(err: GatewayError) -> Response:
    text = json.dumps(err.to_problem(), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate quoted from the request: escape it
        text = json.dumps(err.to_problem())
    resp = Response(text, status=err.status, mimetype=PROBLEM_JSON)
    if err.retry_after is not None:
        resp.headers["Retry-After"] = str(int(err.retry_after))
    allow = err.extra.get("allow")
    if allow:
        resp.headers["Allow"] = ", ".join(allow)
    return resp


def _http_error(exc: HTTPException) -> GatewayError:
    code = exc.code or 500
    if code == 404:
        return NotFound(f"no such path: {request.path}")
    if code == 405:
        allow = sorted(getattr(exc, "valid_methods", None) or [])
        return MethodNotAllowed(f"{request.method} is not allowed on {request.path}", allow=allow or None)
    if code == 413:
        return InvalidRequest("the request body is too large")
    if 400 <= code < 500:
        return InvalidRequest(exc.description or "bad request")
    return InternalError()


class _RateLimiter:
    """Requests per client key and minute, on the ``limits`` library (Flask-Limiter's engine):
    a moving window in this process, or in Redis when ``redis_url`` is set, so that N
    processes share one quota instead of N.  Every answer carries ``RateLimit-Limit``,
    ``RateLimit-Remaining`` and ``RateLimit-Reset`` (seconds); a refusal is 429
    ``rate_limited`` with ``Retry-After``."""

    def __init__(self, per_minute: int, redis_url: str | None) -> None:
        from limits import RateLimitItemPerMinute, storage, strategies

        self.per_minute = per_minute
        self.item = RateLimitItemPerMinute(per_minute)
        self.storage = storage.storage_from_string(redis_url or "memory://")
        self.limiter = strategies.MovingWindowRateLimiter(self.storage)

    def check(self, client: str) -> dict[str, str]:
        allowed = self.limiter.hit(self.item, "opacgw", client)
        stats = self.limiter.get_window_stats(self.item, "opacgw", client)
        reset = max(1, int(stats.reset_time - time.time() + 0.999))
        headers = {"RateLimit-Limit": str(self.per_minute), "RateLimit-Remaining": str(stats.remaining),
                   "RateLimit-Reset": str(reset)}
        if not allowed:
            g.ratelimit_headers = headers
            raise RateLimited(f"more than {self.per_minute} requests a minute", retry_after=reset)
        return headers


def create_app(config: GatewayConfig | None = None, *, secret_key: str | None = None) -> Flask:
    config = config or load_config()
    app = Flask("opacgw")
    app.config["MAX_CONTENT_LENGTH"] = 1 * 1024 * 1024
    # "//v1//libraries" is no path of the API: a 404 problem, not werkzeug's HTML 308
    app.url_map.merge_slashes = False
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    gw = Gateway(config, secret_key=secret_key)
    app.extensions["opacgw"] = gw
    limiter = None
    if config.gateway.rate_limit_per_minute:
        from gateway.config import redis_target

        limiter = _RateLimiter(config.gateway.rate_limit_per_minute, redis_target(config.gateway)[0])

    from gateway import idempotency, metrics

    metrics.install(app)
    install_request_log(app)

    @app.errorhandler(GatewayError)
    def _gateway_error(err: GatewayError) -> Response:
        if err.status >= 500:
            log.info("%s %s -> %s %s library=%s", request.method, request.path, err.status, err.code, err.library)
        return problem_response(err)

    @app.errorhandler(HTTPException)
    def _flask_error(exc: HTTPException) -> Response:
        return problem_response(_http_error(exc))

    @app.errorhandler(Exception)
    def _bug(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(InternalError("an unexpected error occurred; it has been logged"))

    @app.before_request
    def _client_key() -> None:
        g.t0 = time.perf_counter()
        _refuse_control_characters_in_url()
        if request.path.startswith(OPEN_PATHS):
            return
        keys = config.gateway.api_keys
        client = "anonymous"
        if keys:
            key = request.headers.get("X-API-Key", "")
            if not key or not any(_consteq(key, k) for k in keys):
                raise ClientUnauthorized("send a valid X-API-Key")
            client = hashlib.sha256(key.encode()).hexdigest()[:16]
        if limiter is not None:
            g.ratelimit_headers = limiter.check(client)
        g.client = client

    idempotency.install(app, gw)

    @app.after_request
    def _headers(resp: Response) -> Response:
        # the request's log line is gateway.logs' (JSON, request id, upstream calls)
        resp.headers.setdefault("Cache-Control", "no-store")
        for name, value in g.get("ratelimit_headers", {}).items():
            resp.headers[name] = value
        if resp.status_code == 204:
            resp.headers.pop("Content-Type", None)
        return resp

    for info in pkgutil.iter_modules(gateway.__path__):
        if info.name.startswith("api_"):
            module = importlib.import_module(f"gateway.{info.name}")
            bp = getattr(module, "bp", None)
            if bp is not None:
                app.register_blueprint(bp)
    return app


def install_request_log(app: Flask) -> None:
    """Request ids, the secrets of each request remembered for redaction, and one JSON
    `request` line per answer (gateway.logs). Registered first: runs before the client
    key check, so even a refused request has its id and its line."""
    from adapters.base import UPSTREAM_OBSERVERS, UPSTREAM_SECRETS
    from gateway import logs

    if logs.observe_upstream not in UPSTREAM_OBSERVERS:
        UPSTREAM_OBSERVERS.append(logs.observe_upstream)
    if logs.remember_cookie not in UPSTREAM_SECRETS:
        UPSTREAM_SECRETS.append(logs.remember_cookie)

    @app.before_request
    def _request_id() -> None:
        g.t0 = time.perf_counter()
        current = logs.RequestLog(logs.request_id_from(request.headers.get(logs.REQUEST_ID_HEADER)))
        g.request_log = current
        g.request_log_token = logs.CURRENT.set(current)
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer " and auth[7:].strip():
            logs.remember(auth[7:].strip(), "token")
        if request.headers.get("X-API-Key"):
            logs.remember(request.headers["X-API-Key"], "token")
        if request.content_length and request.content_length <= app.config["MAX_CONTENT_LENGTH"]:
            try:
                logs.remember_body(json.loads(request.get_data(cache=True)))
            except (ValueError, RecursionError):
                pass  # not JSON (or nested too deep): the view answers the problem

    @app.after_request
    def _request_line(resp: Response) -> Response:
        current = g.get("request_log")
        if resp.mimetype == "application/json" and resp.status_code == 201:
            try:
                logs.remember_body(json.loads(resp.get_data()))  # a new session token
            except ValueError:
                pass
        logs.request_line(log, method=request.method, path=request.path,
                          route=request.url_rule.rule if request.url_rule is not None else None,
                          status=resp.status_code, duration_ms=(time.perf_counter() - g.get("t0", 0)) * 1000,
                          library=(request.view_args or {}).get("library"), client=g.get("client"),
                          current=current)
        if current is not None:
            resp.headers[logs.REQUEST_ID_HEADER] = current.request_id
        return resp

    @app.teardown_request
    def _reset(_exc: BaseException | None) -> None:
        token = g.pop("request_log_token", None)
        if token is not None:
            try:
                logs.CURRENT.reset(token)
            except ValueError:  # reset from another context (streamed answers)
                logs.CURRENT.set(None)


#: no library id, loan, hold, record, shelf or alert id is this long: refused, not sent upstream
MAX_PATH_SEGMENT = 256


def _refuse_control_characters_in_url() -> None:
    """Path segments and query values go upstream too (ids, search terms): 400, never a 500."""
    from gateway.http import has_control_characters

    if any(len(segment) > MAX_PATH_SEGMENT for segment in request.path.split("/")):
        raise InvalidRequest(f"a path segment is longer than {MAX_PATH_SEGMENT} characters",
                             errors=[{"field": "(path)", "message": "too long"}])
    if has_control_characters(request.path):
        raise InvalidRequest("the path holds a control character",
                             errors=[{"field": "(path)", "message": "control characters are not allowed"}])
    for name, value in request.args.items(multi=True):
        if has_control_characters(name) or has_control_characters(value):
            raise InvalidRequest(f"the query parameter {name[:40]!r} holds a control character",
                                 errors=[{"field": name[:80], "message": "control characters are not allowed"}])


def _consteq(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


__all__ = ["Conflict", "create_app", "problem_response"]
