"""The ``wo`` adapter family: 山口県立山口図書館's WebOPAC (see ``adapters.wo.adapter``)."""

from adapters.wo.adapter import WoAdapter

__all__ = ["WoAdapter"]
