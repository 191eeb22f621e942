"""Building the libraries' adapters from the configuration (the gateway never names a family)."""

from __future__ import annotations

from adapters.base import Adapter
from adapters.registry import adapter_class, families
from gateway.config import ConfigError, GatewayConfig, LibraryConfig


def make_adapter(config: GatewayConfig, lib: LibraryConfig) -> Adapter:
    """The library's adapter; a ConfigError naming file, library and key if it cannot be built."""
    cls = adapter_class(lib.adapter)
    if cls is None:
        raise ConfigError(
            f"{config.source}: library {lib.id!r}: key 'adapter': unknown adapter "
            f"{lib.adapter!r} (known: {', '.join(sorted(families()))})"
        )
    try:
        return cls(lib)
    except ConfigError as exc:
        msg = str(exc)
        raise ConfigError(msg if msg.startswith(config.source) else f"{config.source}: {msg}") from None
    except Exception as exc:  # noqa: BLE001 - adapters raise pydantic or their own errors
        text = str(exc).replace("\n", "; ")
        raise ConfigError(f"{config.source}: library {lib.id!r}: key 'options': {text}") from None


def build_adapters(config: GatewayConfig) -> dict[str, Adapter]:
    """Every library's adapter (checks families and each adapter's own options)."""
    return {lib.id: make_adapter(config, lib) for lib in config.libraries.values()}
