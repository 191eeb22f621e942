"""The ``winj`` family: a Japanese vendor's WebOPAC (paths under ``/winj/opac/``).

Serves 熊本市立, 鹿児島県立, 鹿児島県立奄美 and 新潟市立図書館.  See
``adapters.winj.adapter`` for the flows and ``adapters.winj.pages`` for the parsers.
"""

from adapters.winj.adapter import WinjAdapter

__all__ = ["WinjAdapter"]
