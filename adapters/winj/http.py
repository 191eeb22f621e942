"""Request helpers of the winj adapter (shared with the account screens' mixin).

The portal keeps its state in a ``JSESSIONID`` cookie plus a hidden
``hid_session`` field that every form must echo; both live in the patron's
``UpstreamSession`` (cookies / ``data["hid"]``).  Pages are decoded by their
declared charset (Content-Type, else ``<meta charset>``), and forms are encoded
in the same charset (a Shift_JIS portal expects Shift_JIS form posts).

Every helper turns the portal's special answers into typed errors:
a redirect to ``login.do`` or a login form where a page was expected →
``SessionExpired``; the maintenance page → ``UpstreamMaintenance``; 5xx →
``UpstreamUnavailable``; the portal's error page → ``UpstreamError``.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Any

import httpx
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from adapters.base import Adapter, UpstreamSession
from adapters.winj import pages
from core.errors import SessionExpired, UpstreamError, UpstreamMaintenance, UpstreamUnavailable

FormData = Mapping[str, str] | Sequence[tuple[str, str]]

HID_KEY = "hid"
CHARSET_KEY = "charset"

# The portal keeps ONE pending confirm per web session: two multi-step writes of the
# same patron interleaved (confirm A, confirm B, commit) would commit B for A (or a
# stale row index).  So every write of one patron — renew, holds, cart, password,
# and the account screens' writes — runs one at a time (per process).
_SERIAL: dict[tuple[str, str], threading.Lock] = {}
_SERIAL_GUARD = threading.Lock()


@dataclass
class Page:
    """One fetched portal page."""

    url: str
    status: int
    html: str
    charset: str

    @cached_property
    def tree(self) -> HTMLParser:
        return pages.tree(self.html)

    def text(self) -> str:
        return pages.page_text(self.tree)

    def messages(self) -> list[str]:
        return pages.message_lines(self.tree)

    def errors(self) -> list[str]:
        return pages.error_lines(self.tree)


class WinjHttp(Adapter):
    """HTTP plumbing of the winj portal; ``WinjAdapter`` and the account mixin
    build their flows on it."""

    #: charset to encode forms in before any page told us (None: UTF-8)
    _learned_charset: str | None = None

    # ------------------------------------------------------------ small things
    def today(self) -> date:
        return self.library.now().date()

    @staticmethod
    def mask(card: str) -> str:
        from mappers.cards import mask_card_number

        return mask_card_number(card)

    @contextlib.contextmanager
    def open(self, session: UpstreamSession | None) -> Iterator[httpx.Client]:
        """A client with the patron's cookies; cookies are saved back on exit."""
        client = self.client(session)
        try:
            yield client
        finally:
            if session is not None:
                self.keep_cookies(client, session)
            client.close()

    @contextlib.contextmanager
    def _serial(self, session: UpstreamSession | str) -> Iterator[None]:
        """Hold the per-(library, card) write lock; ``session`` may be the card itself
        (a password change without a session).  Not re-entrant: flows take it once."""
        card = session if isinstance(session, str) else session.card_number
        key = (self.library.id, card)
        with _SERIAL_GUARD:
            lock = _SERIAL.setdefault(key, threading.Lock())
        with lock:
            yield

    def _charset(self, session: UpstreamSession | None) -> str:
        if session is not None and session.data.get(CHARSET_KEY):
            return str(session.data[CHARSET_KEY])
        opt = self.library.options.get("charset") if isinstance(self.library.options, dict) else None
        return opt or self._learned_charset or "UTF-8"

    def _encode(self, data: FormData | None, charset: str) -> str:
        items = list(data.items()) if isinstance(data, Mapping) else list(data or [])
        return urllib.parse.urlencode(items, encoding=pages.py_codec(charset), errors="xmlcharrefreplace")

    # ------------------------------------------------------------ requests
    def _get(self, client: httpx.Client, session: UpstreamSession | None, path: str,
             params: FormData | None = None, *, login_ok: bool = False) -> Page:
        url = path
        if params:
            url = f"{path}?{self._encode(params, self._charset(session))}"
        # No retry here: reads are retried once, in one place, by the gateway's call
        # pipeline ([gateway] read_retries); a write flow's GETs are never retried.
        response = client.get(url)
        return self._page(client, session, response, login_ok=login_ok)

    def _post(self, client: httpx.Client, session: UpstreamSession | None, path: str,
              data: FormData | None = None, *, login_ok: bool = False, with_hid: bool = True) -> Page:
        items = list(data.items()) if isinstance(data, Mapping) else list(data or [])
        if with_hid and session is not None and session.data.get(HID_KEY):
            items.append(("hid_session", str(session.data[HID_KEY])))
        body = self._encode(items, self._charset(session))
        response = client.post(path, content=body.encode("ascii"),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        return self._page(client, session, response, login_ok=login_ok)

    def _raw(self, client: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
        return client.request(method, path, **kw)

    def _page(self, client: httpx.Client, session: UpstreamSession | None, response: httpx.Response,
              *, login_ok: bool = False, hops: int = 0) -> Page:
        lib = self.library.id
        if response.status_code in (301, 302, 303, 307):
            location = response.headers.get("location", "")
            if pages.LOGIN_PATH in location and not login_ok:
                raise SessionExpired("redirected to the login page")
            if hops >= 3:
                raise UpstreamError("too many redirects", library=lib)
            nxt = client.get(location)
            return self._page(client, session, nxt, login_ok=login_ok, hops=hops + 1)
        html = pages.decode_html(response.content, response.headers.get("content-type"))
        charset = pages.declared_charset(response.content, response.headers.get("content-type")) or "UTF-8"
        page = Page(str(response.url), response.status_code, html, charset)
        if pages.is_maintenance(page.tree):
            window = self.library.maintenance_window_at()
            retry = window.seconds_left(self.library.now()) if window else 3600
            raise UpstreamMaintenance("the portal is in its maintenance window", library=lib,
                                      retry_after=retry)
        if response.status_code >= 500:
            raise UpstreamUnavailable(f"the portal answered HTTP {response.status_code}", library=lib)
        if response.status_code >= 400:
            raise UpstreamError(f"the portal answered HTTP {response.status_code}", library=lib)
        if not login_ok and pages.is_login_page(page.tree):
            raise SessionExpired("the portal showed its login form")
        bad = pages.portal_error(page.tree)
        if bad:
            raise UpstreamError("the portal refused the request", library=lib, upstream_message=bad)
        self._learned_charset = charset
        if session is not None:
            session.data[CHARSET_KEY] = charset
            hid = pages.hid_session(page.tree)
            if hid:
                session.data[HID_KEY] = hid
        return page
