"""The subscriptions' own key: ``gateway.subscription_keys`` (Fernet keys, newest first,
read as a MultiFernet so old credentials still open after a rotation), never the session
key.  The sandbox generates one beside its database (``<database>.subkey``, mode 600)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway.config import ConfigError, GatewayConfig


def subscription_cipher(config: GatewayConfig) -> MultiFernet | None:
    """The MultiFernet of the configured keys; None when none is configured (outside the
    sandbox, subscriptions are then refused with 501)."""
    keys = list(config.gateway.subscription_keys)
    if not keys and (config.gateway.sandbox or config.gateway.database == ":memory:"):
        path = Path(config.gateway.database + ".subkey")
        try:
            keys = [path.read_text().strip()]
        except OSError:
            keys = [Fernet.generate_key().decode()]
            if config.gateway.database != ":memory:":
                path.write_text(keys[0])
                os.chmod(path, 0o600)
    if not keys:
        return None
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except (ValueError, TypeError):
        raise ConfigError(f"{config.source}: key 'gateway.subscription_keys': not Fernet keys") from None


def seal(cipher: MultiFernet, data: Any) -> bytes:
    return cipher.encrypt(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())


def unseal(cipher: MultiFernet, token: bytes | None) -> Any:
    if token is None:
        return None
    try:
        return json.loads(cipher.decrypt(token))
    except (InvalidToken, ValueError):
        return None
