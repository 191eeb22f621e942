"""The gateway's secret key: from the environment, the configuration, or (sandbox only) generated."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet

from gateway.config import ConfigError, GatewayConfig

ENV_SECRET = "OPACGW_SECRET_KEY"
ENV_CARD_HASH_KEY = "OPACGW_CARD_HASH_KEY"


def _check(config: GatewayConfig, key: str, where: str) -> str:
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise ConfigError(f"{config.source}: key {where!r}: not a Fernet key "
                          "(32 url-safe base64-encoded bytes)") from None
    return key


def resolve_keys(config: GatewayConfig) -> tuple[list[str], str | None]:
    """([encryption keys, newest first], the card-hash key or None).

    ``OPACGW_SECRET_KEY`` (one key, or "new,old,...") overrides ``secret_keys`` and
    ``secret_key``; ``OPACGW_CARD_HASH_KEY`` overrides ``card_hash_key``."""
    env = os.environ.get(ENV_SECRET)
    if env:
        keys = [_check(config, k.strip(), ENV_SECRET) for k in env.split(",") if k.strip()]
    elif config.gateway.secret_keys:
        keys = [_check(config, k, f"gateway.secret_keys.{i}") for i, k in enumerate(config.gateway.secret_keys)]
    else:
        keys = [resolve_secret(config)]
    hash_key = os.environ.get(ENV_CARD_HASH_KEY) or config.gateway.card_hash_key
    return keys, hash_key


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
