"""The gateway's secret key: from the environment, the configuration, or (sandbox only) generated."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet

from gateway.config import ConfigError, GatewayConfig

ENV_SECRET = "OPACGW_SECRET_KEY"


def resolve_secret(config: GatewayConfig) -> str:
    key = os.environ.get(ENV_SECRET) or config.gateway.secret_key
    if key:
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(f"{config.source}: key 'gateway.secret_key': not a Fernet key "
                              "(32 url-safe base64-encoded bytes)") from None
        return key
    if config.gateway.sandbox or config.gateway.database == ":memory:":
        # The sandbox keeps its generated key beside its database so that gateway
        # alerts and lending requests keyed by card hash survive a restart.
        path = Path(config.gateway.database + ".key")
        if config.gateway.database != ":memory:":
            try:
                return path.read_text().strip()
            except OSError:
                key = Fernet.generate_key().decode()
                path.write_text(key)
                os.chmod(path, 0o600)
                return key
        return Fernet.generate_key().decode()
    raise ConfigError(f"{config.source}: key 'gateway.secret_key': required outside the sandbox "
                      f"(or set {ENV_SECRET}); generate one with: opacgw keygen")
