"""WSGI entry point for production servers: `gunicorn 'gateway.wsgi:app'`.

Reads the configuration from $OPACGW_CONFIG (required: production never runs the sandbox).
Several worker processes (``--workers`` > 1) need shared state (``redis_url`` or
``OPACGW_REDIS_URL``): without it each worker would keep its own write locks,
concurrency caps, circuit breakers, credentials and cache, and the gateway refuses to
start rather than run incorrectly.
"""

from __future__ import annotations

import inspect
import os
import sys

from gateway.config import ENV_CONFIG, ENV_REDIS, ConfigError, load_config, redis_target


def gunicorn_workers() -> int:
    """The --workers of the gunicorn importing this module (1 outside gunicorn)."""
    frame = inspect.currentframe()
    while frame is not None:
        owner = frame.f_locals.get("self")
        cfg = getattr(owner, "cfg", None)
        if type(owner).__module__.startswith("gunicorn") and hasattr(cfg, "workers"):
            return int(cfg.workers)
        frame = frame.f_back
    return 1


def _fail(message: str) -> None:
    print(f"opacgw: {message}", file=sys.stderr, flush=True)
    raise SystemExit(3)  # gunicorn: a worker that cannot boot stops the server


if not os.environ.get(ENV_CONFIG):
    _fail(f"set {ENV_CONFIG} to the gateway's TOML configuration")
try:
    _config = load_config()
    _workers = gunicorn_workers()
    if _workers > 1 and not redis_target(_config.gateway)[0]:
        _fail(f"{_config.source}: gunicorn runs {_workers} worker processes but key 'gateway.redis_url' "
              f"(or {ENV_REDIS}) is not set: per-patron write locks, concurrency caps, circuit "
              "breakers, the credential vault and the read cache would differ per process. "
              "Set redis_url, or run --workers 1")
    from gateway import logs
    from gateway.app import create_app

    logs.setup(_config.gateway.log_level)  # JSON lines on stderr, scrubbed of secrets
    app = create_app(_config)
except ConfigError as exc:
    _fail(str(exc))
