"""Issue 16, item 12: the development server's own refusals are problem+json too."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from fixtures.registry import serve_app


@pytest.fixture
def served(app: Any) -> Iterator[int]:
    server = serve_app(app)  # the handler `opacgw serve` uses (gateway.devserver)
    yield server.port
    server.stop()


def _raw(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def _problem(status: int, headers: dict[str, str], body: bytes, want: int) -> None:
    assert status == want, body[:200]
    assert headers["content-type"].startswith("application/problem+json")
    doc = json.loads(body)
    assert doc["status"] == want and doc["code"] in {"invalid_request", "not_found"}


def test_request_line_over_64k_is_414_problem_json(served: int) -> None:
    line = b"GET /v1/libraries?x=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    _problem(*_raw(served, line), want=414)


def test_header_over_64k_is_431_problem_json(served: int) -> None:
    req = b"GET /v1/libraries HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    _problem(*_raw(served, req), want=431)


def test_more_than_100_headers_is_431_problem_json(served: int) -> None:
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(120))
    _problem(*_raw(served, b"GET /v1/libraries HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n"), want=431)


def test_malformed_request_line_is_400_problem_json(served: int) -> None:
    _problem(*_raw(served, b"GARBAGE\r\n\r\n"), want=400)


def test_doubled_slash_is_404_problem_json_not_a_308(served: int) -> None:
    status, headers, body = _raw(served, b"GET //v1//libraries HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    _problem(status, headers, body, want=404)
    assert "location" not in headers
