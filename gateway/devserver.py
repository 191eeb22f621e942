"""The threaded werkzeug server used by `opacgw serve` (sandbox) and the simulators.

Werkzeug's development server decodes a request line as ISO-8859-1 and then applies
the WSGI "encoding dance" once more, so a raw (not percent-encoded) UTF-8 query such as
`?title=サンタクロース` — which curl sends as typed — arrives double-encoded and matches
nothing.  This handler undoes the second encoding.  Production servers (gunicorn) do
not have the problem and do not use this module.
"""

from __future__ import annotations

from typing import Any

from werkzeug.serving import WSGIRequestHandler

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
