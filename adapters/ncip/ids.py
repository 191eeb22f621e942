"""Opaque, URL-safe, stable API ids of NCIP (agency, identifier) pairs, and hold ids
(RequestId-keyed, or ItemId-keyed with an ``i-`` marker so a cancel sends the ItemId)."""

from __future__ import annotations

import base64
import re

__all__ = ["decode_id", "encode_id", "hold_id", "parse_hold_id"]

_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def encode_id(value: str, agency: str | None = None) -> str:
    """Opaque, URL-safe, stable id of an upstream (agency, identifier) pair."""
    if _SAFE.match(value) and (agency is None or _SAFE.match(agency)):
        return f"{agency}.{value}" if agency else value
    raw = f"{agency or ''}\x1f{value}".encode()
    return "x." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_id(opaque: str) -> tuple[str | None, str]:
    """Inverse of ``encode_id`` → (agency or None, identifier); ValueError if malformed."""
    if opaque.startswith("x."):
        b = opaque[2:]
        raw = base64.urlsafe_b64decode(b + "=" * (-len(b) % 4)).decode()
        agency, _, value = raw.partition("\x1f")
        if not value:
            raise ValueError(opaque)
        return agency or None, value
    agency, dot, value = opaque.partition(".")
    if not dot:
        agency, value = "", opaque
    if not value or not _SAFE.match(value) or (agency and not _SAFE.match(agency)):
        raise ValueError(opaque)
    return agency or None, value


def hold_id(value: str, agency: str | None, kind: str) -> str:
    # Item-keyed holds (no RequestId) get an "i" marker so cancel sends ItemId, not RequestId.
    return encode_id(value, agency) if kind == "request" else "i-" + encode_id(value, agency)


def parse_hold_id(opaque: str) -> tuple[str | None, str, str]:
    if opaque.startswith("i-"):
        agency, value = decode_id(opaque[2:])
        return agency, value, "item"
    agency, value = decode_id(opaque)
    return agency, value, "request"
