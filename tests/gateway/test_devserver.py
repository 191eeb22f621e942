"""Raw UTF-8 in a query (curl sends it as typed) reaches the views intact."""

from __future__ import annotations

import socket
import time

from flask import Flask, request

from fixtures.registry import serve_app
from gateway.devserver import undo_double_encoding


def test_undo_double_encoding_table() -> None:
    raw = "サンタ".encode().decode("latin-1")          # what WSGI should see
    double = raw.encode("utf-8").decode("latin-1")     # what werkzeug's dev server gives
    assert undo_double_encoding(double) == raw
    assert undo_double_encoding(raw) == raw            # a correct value is left alone
    assert undo_double_encoding("title=%E3%82%B5") == "title=%E3%82%B5"
    assert undo_double_encoding("café") == "café"      # not valid UTF-8 underneath: unchanged


def test_raw_utf8_query_through_the_server() -> None:
    app = Flask("t")

    @app.get("/x")
    def x():  # noqa: ANN202
        return {"t": request.args.get("t")}

    server = serve_app(app)
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall("GET /x?t=サンタクロース HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            time.sleep(0.3)
            data = sock.recv(4096).decode("utf-8")
        assert '"t":"\\u30b5\\u30f3\\u30bf\\u30af\\u30ed\\u30fc\\u30b9"' in data.replace(" ", "") or "サンタクロース" in data
    finally:
        server.stop()
