"""WSGI entry point for production servers: `gunicorn 'gateway.wsgi:app'`.

Reads the configuration from $OPACGW_CONFIG (required: production never runs the sandbox).
"""

from __future__ import annotations

import os

from gateway import logs
from gateway.app import create_app
from gateway.config import ENV_CONFIG, load_config

if not os.environ.get(ENV_CONFIG):
    raise SystemExit(f"set {ENV_CONFIG} to the gateway's TOML configuration")
_config = load_config()
logs.setup(_config.gateway.log_level)  # JSON lines on stderr, scrubbed of secrets
app = create_app(_config)
