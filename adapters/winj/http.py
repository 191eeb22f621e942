"""Request helpers of the winj adapter (shared with the account screens' mixin).

The portal keeps its state in a ``JSESSIONID`` cookie, whose value the hidden
``hid_session`` of every stateful form carries (REAL_WINJ.md §1); both live in the
patron's ``UpstreamSession`` (cookies / ``data["hid"]``): the hid is taken from
each page that has one, else from the cookie (as 市川's scraper does).  Pages are
decoded by their declared charset (``adapters.html``), and forms are encoded in the
same charset.  Links on the pages are host-relative (``/kento/opac/…``): ``_abs``
turns them into full URLs; the adapter never sends a doubled slash.

Every helper turns the portal's special answers into typed errors:
a redirect to ``login.do``, a login form where a page was expected, or the
session-timeout page → ``SessionExpired``; the maintenance page →
``UpstreamMaintenance``; 5xx → ``UpstreamUnavailable``; the portal's error page →
``UpstreamError``.
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

from adapters import html as H
from adapters.base import Adapter, UpstreamSession
from adapters.winj import pages
from adapters.winj.layout import PortalLayout, context_paths, layout_of
from core.errors import SessionExpired, UpstreamError, UpstreamMaintenance, UpstreamUnavailable

FormData = Mapping[str, str] | Sequence[tuple[str, str]]

HID_KEY = "hid"
COOKIE = "JSESSIONID"
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
    @cached_property
    def layout(self) -> PortalLayout:
        """What this library's portal looks like (its configuration's first guess)."""
        return layout_of(getattr(self, "options", None) or self.library.options)

    @cached_property
    def context(self) -> tuple[str, str]:
        """(module path, context root) of the portal: ("/kento/opac", "/kento")."""
        return context_paths(self.library.base_url)

    def _abs(self, href: str) -> str:
        """A link of a page as a URL the client can fetch: host-relative paths
        (``/winj/opac/x.do``) become absolute, doubled slashes are collapsed."""
        import re

        parts = urllib.parse.urlsplit(href)
        if parts.scheme:
            return href
        if href.startswith("/"):
            base = urllib.parse.urlsplit(self.library.base_url)
            path = re.sub("/{2,}", "/", parts.path)
            return urllib.parse.urlunsplit((base.scheme, base.netloc, path, parts.query, ""))
        return href

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
        shared = self.patron_lock  # across processes, when the gateway runs on Redis
        if shared is not None:
            with shared(f"{self.library.id}\x00{card}"):
                yield
            return
        with _SERIAL_GUARD:
            lock = _SERIAL.setdefault(key, threading.Lock())
        with lock:
            yield

    def _charset(self, session: UpstreamSession | None) -> str:
        if session is not None and session.data.get(CHARSET_KEY):
            return str(session.data[CHARSET_KEY])
        return self._learned_charset or self.layout.charset

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
        response = client.get(self._abs(url))
        return self._page(client, session, response, login_ok=login_ok)

    def hid(self, client: httpx.Client, session: UpstreamSession | None) -> str:
        """The hid_session to send: the last page's, else the session cookie itself."""
        if session is not None and session.data.get(HID_KEY):
            return str(session.data[HID_KEY])
        return self._cookie(client) or ""

    @staticmethod
    def _cookie(client: httpx.Client) -> str | None:
        values = [c.value for c in client.cookies.jar if c.name == COOKIE and c.value]
        return values[-1] if values else None

    def _post(self, client: httpx.Client, session: UpstreamSession | None, path: str,
              data: FormData | None = None, *, login_ok: bool = False, with_hid: bool = True,
              headers: dict[str, str] | None = None) -> Page:
        items = list(data.items()) if isinstance(data, Mapping) else list(data or [])
        if with_hid and not any(k == "hid_session" for k, _ in items):
            hid = self.hid(client, session)
            if hid:
                items.insert(0, ("hid_session", hid))
        body = self._encode(items, self._charset(session))
        response = client.post(self._abs(path), content=body.encode("ascii"),
                               headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
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
            nxt = client.get(self._abs(location))
            return self._page(client, session, nxt, login_ok=login_ok, hops=hops + 1)
        decoded = H.decode_page(response.content, response.headers.get("content-type"), what="portal page",
                                library=lib)
        page = Page(str(response.url), response.status_code, decoded.text, decoded.charset)
        charset = decoded.charset
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
        if pages.is_timeout(page.tree):
            raise SessionExpired("the portal's session timed out")
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

    # ------------------------------------------------------------ paged lists
    def _read_all(self, client: httpx.Client, session: UpstreamSession, path: str,
                  parse: Any, what: str) -> tuple[list[tuple[int, Any]], int]:
        """Every row of a paged list (loans, holds) as (page number, row), and the page
        number this session displayed last (row indexes are only valid on it).

        The first page tells the count 「（全N 件）」.  When rows are missing and the page
        offers a bigger page size, ``PageForm`` is posted back once with the largest
        (``opt_pagesize`` + ``submit_btn_reload=再表示``): the size sticks in the
        upstream session, so the next read is one request again.  Pages beyond that
        are followed with ``?page=N``.  The rows delivered must add up to the count,
        else the list is ``UpstreamChanged`` — never a partial list."""
        page = self._get(client, session, path)
        rows, lp = parse(page.tree)
        total = lp.total
        if total is not None and len(rows) < total and lp.page_sizes and max(lp.page_sizes) > len(rows):
            page = self._post(client, session, path, [("idx", ""), ("opt_pagesize", str(max(lp.page_sizes))),
                                                      ("submit_btn_reload", "再表示")])
            rows, lp = parse(page.tree)
            total = lp.total if lp.total is not None else total
        out = [(1, r) for r in rows]
        n = 1
        nxt = lp.next_href
        while (total is not None and len(out) < total) or (total is None and nxt):
            n += 1
            if n > 200:
                raise H.changed(f"{what}: paging does not end", library=self.library.id)
            href = f"{path}?page={n}" if total is not None or not nxt else nxt
            page = self._get(client, session, href)
            rows, lp = parse(page.tree)
            if not rows:
                break
            out += [(n, r) for r in rows]
            nxt = lp.next_href
        if total is not None and len(out) != total:
            raise H.changed(f"{len(out)} {what} where the page says 全{total} 件", screen=what,
                            library=self.library.id)
        return out, n
