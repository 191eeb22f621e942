"""Pure mappers from the text library systems print to the gateway's values.

Every function here is total: it maps text to a value, to ``None`` (for documented
blanks), or raises :class:`MappingError`.  Nothing reads the clock, the network or the
configuration; callers pass what they know (digits, padding, today).
"""

from __future__ import annotations

__all__ = ["MappingError"]


class MappingError(ValueError):
    """Text that does not map to a value (an adapter turns it into UpstreamChanged or 400)."""
