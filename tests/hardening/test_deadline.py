"""Issue 16, item 8: every upstream request has a total deadline (connect + whole body).

A server that sends its page a byte at a time never trips a per-read timeout; the shared
transport of every adapter cuts each read to what is left of the request's deadline.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from adapters.base import Adapter
from core.config import LibraryConfig


def _drip_server(headers_slowly: bool) -> Iterator[int]:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 400\r\n\r\n"
            payload = head + b"x" * 400
            if not headers_slowly:
                conn.sendall(head)
                payload = payload[len(head):]
            for i in range(len(payload)):
                if stop.is_set():
                    return
                conn.sendall(payload[i:i + 1])
                time.sleep(0.05)  # 400 bytes take 20 s; each read gets a byte within 0.05 s
        except OSError:
            pass
        finally:
            conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        srv.close()


@pytest.fixture(params=[False, True], ids=["body-drips", "headers-drip"])
def drip_port(request: pytest.FixtureRequest) -> Iterator[int]:
    yield from _drip_server(request.param)


def test_a_slow_drip_cannot_hold_a_request_past_its_deadline(drip_port: int) -> None:
    lib = LibraryConfig(id="drip", name="Drip", adapter="x", base_url=f"http://127.0.0.1:{drip_port}",
                        timeout=0.5)
    adapter = Adapter(lib)
    t0 = time.monotonic()
    with pytest.raises(httpx.TimeoutException), adapter.client() as c:
        c.get("/page")
    elapsed = time.monotonic() - t0
    adapter.close()
    assert elapsed < 1.5, elapsed


def test_the_deadline_is_per_request(drip_port: int) -> None:
    """A fast request after a timed-out one in the same thread has its own full deadline."""
    from fixtures.registry import serve_app
    from flask import Flask

    app = Flask("fast")
    app.add_url_rule("/ok", "ok", lambda: "ok")
    fast = serve_app(app)
    try:
        lib = LibraryConfig(id="f", name="F", adapter="x", base_url=fast.url, timeout=0.5)
        adapter = Adapter(lib)
        slow = Adapter(LibraryConfig(id="d", name="D", adapter="x",
                                     base_url=f"http://127.0.0.1:{drip_port}", timeout=0.5))
        with pytest.raises(httpx.TimeoutException), slow.client() as c:
            c.get("/page")
        time.sleep(0.6)  # the old deadline has passed
        with adapter.client() as c:
            assert c.get("/ok").text == "ok"
        adapter.close()
        slow.close()
    finally:
        fast.stop()
