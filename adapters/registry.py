"""Discovers adapter families under ``adapters/`` so the gateway never names one.

Each family is a sub-package ``adapters/<family>/`` whose ``__init__`` exposes an
``Adapter`` subclass with ``family`` set.  Discovery imports each sub-package once.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import threading

import adapters
from adapters.base import Adapter

log = logging.getLogger(__name__)

_lock = threading.Lock()
_families: dict[str, type[Adapter]] | None = None
#: family package name → the error that kept it from loading (shown by `opacgw config --check`)
broken: dict[str, str] = {}


def _discover() -> dict[str, type[Adapter]]:
    found: dict[str, type[Adapter]] = {}
    for info in pkgutil.iter_modules(adapters.__path__):
        if not info.ispkg:
            continue
        try:
            module = importlib.import_module(f"adapters.{info.name}")
        except Exception as exc:  # noqa: BLE001 - one broken family must not take the others down
            broken[info.name] = f"{type(exc).__name__}: {exc}"
            log.error("adapter family %s failed to load: %s", info.name, broken[info.name])
            continue
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Adapter) and value is not Adapter and value.family:
                if value.family in found and found[value.family] is not value:
                    raise RuntimeError(f"two adapters claim family {value.family!r}")
                found[value.family] = value
    return found


def families() -> dict[str, type[Adapter]]:
    global _families
    with _lock:
        if _families is None:
            _families = _discover()
        return dict(_families)


def adapter_class(family: str) -> type[Adapter] | None:
    return families().get(family)


def register(cls: type[Adapter]) -> None:
    """Add an adapter family by hand (tests, out-of-tree plugins)."""
    families()
    with _lock:
        assert _families is not None
        _families[cls.family] = cls


def unregister(family: str) -> None:
    families()
    with _lock:
        assert _families is not None
        _families.pop(family, None)
