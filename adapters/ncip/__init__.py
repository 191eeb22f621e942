"""NCIP 2.02 family: the ``ncip`` adapter (``adapter.py``), its message builders
(``messages.py``), pure response parsers (``parse.py``) and XML plumbing (``xml.py``)."""

from adapters.ncip.adapter import NcipAdapter, NcipAuth, NcipOptions

__all__ = ["NcipAdapter", "NcipAuth", "NcipOptions"]
