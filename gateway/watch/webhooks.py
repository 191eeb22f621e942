"""Webhook delivery in the Standard Webhooks format (the ``standardwebhooks`` package):
``webhook-id`` (the event id), ``webhook-timestamp``, ``webhook-signature`` (HMAC-SHA256
with the subscription's ``whsec_`` secret); the body is the event as JSON.

A 5 s timeout, redirects never followed; 2xx is delivered, 5xx / 429 / timeouts /
connection failures are retried with exponential backoff for about 24 h, any other answer
fails at once.  Outside the sandbox a URL whose host resolves to a loopback, private,
link-local, multicast or reserved address is refused (SSRF), when it is registered and
again at each attempt (DNS may change).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
import socket
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

TIMEOUT_SECONDS = 5.0
RETRY_WINDOW_SECONDS = 24 * 3600.0
FIRST_BACKOFF_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 3600.0


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class UnsafeURL(ValueError):
    pass


def check_url(url: str, *, allow_loopback: bool) -> None:
    """Refuse what a webhook may not point at; ``allow_loopback``: the sandbox's rule."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise UnsafeURL("webhook_url must be an http(s) URL")
    if not parts.hostname:
        raise UnsafeURL("webhook_url has no host")
    if parts.username or parts.password:
        raise UnsafeURL("webhook_url may not carry credentials")
    if not allow_loopback and parts.scheme != "https":
        raise UnsafeURL("webhook_url must be https")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise UnsafeURL(f"webhook_url's host {parts.hostname!r} does not resolve") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if allow_loopback and ip.is_loopback:
            continue
        if ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved \
                or ip.is_unspecified:
            raise UnsafeURL(f"webhook_url's host resolves to a non-public address ({ip})")


def signed_request(secret: str, event: dict[str, Any], now: datetime | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    ts = now or datetime.now(UTC)
    signature = Webhook(secret).sign(event["id"], ts, body)
    return body, {"webhook-id": event["id"], "webhook-timestamp": str(int(ts.timestamp())),
                  "webhook-signature": signature, "content-type": "application/json",
                  "user-agent": "opac-gateway-webhooks/1"}


def backoff(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1`` (1-based attempts): 5 s, 10 s, 20 s, ... ≤ 1 h."""
    return float(min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** max(0, attempt - 1)))


def send(client: httpx.Client, url: str, secret: str, event: dict[str, Any], *,
         allow_loopback: bool) -> tuple[str, int | None, str | None]:
    """One attempt: (outcome, status code, error) with outcome delivered | retry | failed."""
    try:
        check_url(url, allow_loopback=allow_loopback)
    except UnsafeURL as exc:
        return "failed", None, str(exc)
    body, headers = signed_request(secret, event)
    try:
        resp = client.post(url, content=body, headers=headers, timeout=TIMEOUT_SECONDS, follow_redirects=False)
    except httpx.TimeoutException:
        return "retry", None, "timeout"
    except httpx.HTTPError as exc:
        return "retry", None, type(exc).__name__
    if 200 <= resp.status_code < 300:
        return "delivered", resp.status_code, None
    if resp.status_code >= 500 or resp.status_code == 429:
        return "retry", resp.status_code, f"HTTP {resp.status_code}"
    return "failed", resp.status_code, f"HTTP {resp.status_code}" + (" (redirects are not followed)"
                                                                       if 300 <= resp.status_code < 400 else "")
