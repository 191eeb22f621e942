"""The threaded werkzeug server used by `opacgw serve` (sandbox) and the simulators.

Werkzeug's development server decodes a request line as ISO-8859-1 and then applies
the WSGI "encoding dance" once more, so a raw (not percent-encoded) UTF-8 query such as
`?title=サンタクロース` — which curl sends as typed — arrives double-encoded and matches
nothing.  This handler undoes the second encoding.  Production servers (gunicorn) do
not have the problem and do not use this module.

Errors the server itself answers before the application runs (a request line over
64 KiB: 414; a header line over 64 KiB or more than 100 headers: 431; a malformed
request line: 400) are problem+json like every other answer, not http.server's HTML page.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from werkzeug.serving import WSGIRequestHandler

#: the server's own refusals, as the API's codes (API.md): all are malformed requests
_TITLES = {414: "Request-URI too long", 431: "Request header fields too large"}

_KEYS = ("QUERY_STRING", "PATH_INFO", "REQUEST_URI", "RAW_URI")


def undo_double_encoding(value: str) -> str:
    """'Ã£Â\\x82Âµ' (UTF-8 bytes seen as Latin-1, twice) → 'ã\\x82µ' (WSGI's Latin-1 form)."""
    if value.isascii():
        return value
    try:
        once = value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value
    # Only a double encoding gives back a string that is still all Latin-1 (WSGI's form);
    # a correctly encoded value decodes to characters above U+00FF.
    return once if all(ord(ch) < 256 for ch in once) else value


class RequestHandler(WSGIRequestHandler):
    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's error page as problem+json (code ``invalid_request``)."""
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # garbage is no HTTP/0.9 request: send headers
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        status = code if 400 <= code < 500 else 400
        body = json.dumps({
            "type": "https://opac-gateway.dev/problems/invalid_request",
            "title": _TITLES.get(code, phrase),
            "status": status,
            "code": "invalid_request",
            "detail": message or phrase,
        }).encode()
        self.log_error("code %d, message %s", code, message)
        self.send_response(status, message)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD":
            self.wfile.write(body)

    def make_environ(self) -> Any:
        environ = super().make_environ()
        for key in _KEYS:
            if isinstance(environ.get(key), str):
                environ[key] = undo_double_encoding(environ[key])
        return environ


class QuietRequestHandler(RequestHandler):
    """No access-log line per request (the gateway logs its own)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass
