"""Webhook delivery: signatures, retry policy, redirects, SSRF, exactly-once across workers."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
import respx
from standardwebhooks import Webhook

from gateway.watch import webhooks

EVENT = {"id": "evt_1", "type": "hold.ready", "library": "x", "occurred_at": "2026-12-04T00:00:00+00:00",
         "subject": {"kind": "hold", "id": "H1"}, "data": {}}


def test_signature_verifies_with_the_standard_library() -> None:
    secret = webhooks.new_secret()
    body, headers = webhooks.signed_request(secret, EVENT)
    assert Webhook(secret).verify(body, headers) == EVENT
    with pytest.raises(Exception):
        Webhook(webhooks.new_secret()).verify(body, headers)


@pytest.mark.parametrize(("status", "outcome"), [(200, "delivered"), (204, "delivered"), (500, "retry"),
                                                 (503, "retry"), (429, "retry"), (400, "failed"), (410, "failed"),
                                                 (302, "failed")])
def test_outcomes(status: int, outcome: str) -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.post("http://127.0.0.1:9/hook").mock(return_value=httpx.Response(
            status, headers={"Location": "http://127.0.0.1:9/elsewhere"} if status == 302 else {}))
        with httpx.Client() as client:
            got, code, _ = webhooks.send(client, "http://127.0.0.1:9/hook", webhooks.new_secret(), EVENT,
                                         allow_loopback=True)
    assert (got, code) == (outcome, status)


def test_timeouts_and_connection_failures_are_retried() -> None:
    with respx.mock() as mock:
        mock.post("http://127.0.0.1:9/a").mock(side_effect=httpx.ReadTimeout("slow"))
        mock.post("http://127.0.0.1:9/b").mock(side_effect=httpx.ConnectError("refused"))
        with httpx.Client() as client:
            assert webhooks.send(client, "http://127.0.0.1:9/a", webhooks.new_secret(), EVENT,
                                 allow_loopback=True)[0] == "retry"
            assert webhooks.send(client, "http://127.0.0.1:9/b", webhooks.new_secret(), EVENT,
                                 allow_loopback=True)[0] == "retry"


def test_backoff_grows_and_covers_about_a_day() -> None:
    waits = [webhooks.backoff(n) for n in range(1, 40)]
    assert waits[0] == 5 and waits[1] == 10 and max(waits) == webhooks.MAX_BACKOFF_SECONDS
    total, n = 0.0, 0
    while total < webhooks.RETRY_WINDOW_SECONDS:
        n += 1
        total += webhooks.backoff(n)
    assert 20 < n < 40  # about 30 attempts over 24 h


@pytest.mark.parametrize("addr", ["127.0.0.1", "10.0.0.5", "192.168.1.1", "169.254.169.254", "::1", "fc00::1",
                                  "0.0.0.0", "::ffff:127.0.0.1"])
def test_ssrf_refused_outside_the_sandbox(monkeypatch: pytest.MonkeyPatch, addr: str) -> None:
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(fam, socket.SOCK_STREAM, 6, "", (addr, 443))])
    with pytest.raises(webhooks.UnsafeURL):
        webhooks.check_url("https://hooks.example.com/x", allow_loopback=False)


def test_public_https_allowed_and_sandbox_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))])
    webhooks.check_url("https://hooks.example.com/x", allow_loopback=False)
    with pytest.raises(webhooks.UnsafeURL):
        webhooks.check_url("http://hooks.example.com/x", allow_loopback=False)  # https only
    with pytest.raises(webhooks.UnsafeURL):
        webhooks.check_url("https://u:p@hooks.example.com/x", allow_loopback=False)
    monkeypatch.undo()
    webhooks.check_url("http://127.0.0.1:8999/hook", allow_loopback=True)
    with pytest.raises(webhooks.UnsafeURL):
        webhooks.check_url("http://10.1.2.3/hook", allow_loopback=True)  # the sandbox allows loopback only


def test_unsafe_url_is_not_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post("http://127.0.0.1:9/hook").mock(return_value=httpx.Response(200))
        with httpx.Client() as client:
            got: Any = webhooks.send(client, "http://127.0.0.1:9/hook", webhooks.new_secret(), EVENT,
                                     allow_loopback=False)
    assert got[0] == "failed" and not route.called
