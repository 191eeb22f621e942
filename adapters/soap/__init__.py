"""SOAP circulation adapter family (``adapter = "soap"``): see ``adapters.soap.adapter``."""

from adapters.soap.adapter import SoapAdapter

__all__ = ["SoapAdapter"]
