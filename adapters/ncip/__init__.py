"""NCIP 2.02 family: the ``ncip`` adapter (``adapter.py``), its message builders
(``messages.py``), pure response parsers (``parsers.py``), Problem mapping
(``problems.py``), opaque ids (``ids.py``) and XML plumbing (``xml.py``)."""

from adapters.ncip.adapter import NcipAdapter, NcipAuth, NcipOptions

__all__ = ["NcipAdapter", "NcipAuth", "NcipOptions"]
