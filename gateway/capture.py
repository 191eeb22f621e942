"""`opacgw capture --library ID PAGE...`: an operator reporting a broken library logs in
once and saves the named screens, scrubbed, with a manifest, so the report becomes a
parser regression test in one step (``load_capture``).

The card and password come from a prompt (getpass) or from ``OPACGW_CAPTURE_CARD`` /
``OPACGW_CAPTURE_PASSWORD``, never from argv.  Pages are written as fetched (bytes in
the portal's charset) after scrubbing with the cassettes' scrubber
(``fixtures.cassettes.scrubber_for``, built from the adapter's declared secret fields:
hidden tokens such as ``hid_session`` and card fields), plus: the card number (masked to
its last 4 digits), the session's cookie values (e.g. a ``;jsessionid=`` in a link), the
patron's name and e-mail addresses as the profile screen gives them, and any other
e-mail address.  The manifest (``manifest.json``) lists, per screen: library, family,
screen, URL path, charset, captured_at, file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from adapters import html
from core.config import LibraryConfig
from gateway.config import GatewayConfig

ENV_CARD = "OPACGW_CAPTURE_CARD"
ENV_PASSWORD = "OPACGW_CAPTURE_PASSWORD"
MANIFEST = "manifest.json"

#: screen name → path under the library's base_url, per family ("{}" is detail's record id)
SCREENS: dict[str, dict[str, str]] = {
    "winj": {"loans": "/lend-list.do", "holds": "/reserve-list.do", "mylibrary": "/mylibrary.do",
             "basket": "/reserve-basket.do", "detail": "/switch-detail.do?bibid={}"},
    "wo": {"loans": "/opc_srh/lend", "holds": "/opc_srh/rsv", "mylibrary": "/opc_srh/menu",
           "detail": "/opc_srh/srh_detail?id={}"},
}
_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
NAME_PLACEHOLDER = "利用者氏名"
EMAIL_PLACEHOLDER = b"user@example.invalid"


class CaptureError(Exception):
    """The capture cannot be made (unknown screen, no credentials): exit 2."""


@dataclass(frozen=True)
class CapturedPage:
    screen: str
    path: str
    charset: str
    file: str
    captured_at: str
    library: str
    family: str


def screen_path(family: str, screen: str) -> str:
    known = SCREENS.get(family, {})
    name, _, arg = screen.partition(":")
    if name not in known or (("{}" in known[name]) != bool(arg)):
        raise CaptureError(f"unknown screen {screen!r} for the {family} family "
                           f"(known: {', '.join(k + (':<record>' if '{}' in v else '') for k, v in known.items())})")
    return known[name].format(arg)


def capture(config: GatewayConfig, lib: LibraryConfig, screens: list[str], out: Path,
            card: str, password: str) -> list[CapturedPage]:
    from fixtures.cassettes import scrubber_for
    from gateway.build import make_adapter

    paths = [(s, screen_path(lib.adapter, s)) for s in screens]  # refuse a typo before logging in
    adapter = make_adapter(config, lib)
    try:
        session = adapter.login(card, password)
        secrets_: list[str] = [v for v in session.cookies.values() if len(v) >= 8]
        names: list[str] = []
        emails: list[str] = []
        if "profile" in adapter.capabilities:
            try:
                profile = adapter.profile(session)
                names = [profile.name] if profile.name else []
                emails = [e.address for e in profile.emails]
            except Exception:  # noqa: BLE001 - a broken profile screen must not stop the capture
                pass
        scrubber = scrubber_for(adapter.secrets(), card_numbers=[card, card.lstrip("0") or card],
                                scrub_query_params=("jsessionid", "JSESSIONID"))
        out.mkdir(parents=True, exist_ok=True)
        pages: list[CapturedPage] = []
        with adapter.client(session, follow_redirects=True) as client:
            for screen, path in paths:
                r = client.get(lib.base_url + path)
                secrets_ += [c.split(";", 1)[0].partition("=")[2] for c in r.headers.get_list("set-cookie")]
                decoded = html.decode_page(r.content, r.headers.get("content-type"), what=screen)
                body = _scrub(r.content, decoded.charset, scrubber, secrets_, names, emails)
                name = re.sub(r"[^A-Za-z0-9_-]+", "_", screen) + ".html"
                (out / name).write_bytes(body)
                pages.append(CapturedPage(screen, path, decoded.charset, name,
                                          datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                          lib.id, lib.adapter))
        adapter.logout(session)
    finally:
        adapter.close()
    (out / MANIFEST).write_text(json.dumps([p.__dict__ for p in pages], ensure_ascii=False, indent=2) + "\n",
                                encoding="utf-8")
    return pages


def _scrub(body: bytes, charset: str, scrubber: Any, secrets_: list[str], names: list[str],
           emails: list[str]) -> bytes:
    codec = html.py_codec(charset) or "utf-8"
    body = scrubber.bytes_(body)
    for value in sorted({s for s in secrets_ if len(s) >= 8}, key=len, reverse=True):
        body = body.replace(value.encode(codec, "ignore"), b"SCRUBBED")
    for name in names:
        for variant in {name, name.replace(" ", "\u3000"), name.replace("\u3000", " "), name.replace(" ", "")}:
            body = body.replace(variant.encode(codec, "ignore"), NAME_PLACEHOLDER.encode(codec))
    for address in emails:
        body = body.replace(address.encode(codec, "ignore"), EMAIL_PLACEHOLDER)
    return _EMAIL.sub(EMAIL_PLACEHOLDER, body)


def load_capture(folder: Path | str) -> dict[str, tuple[CapturedPage, html.Decoded]]:
    """screen → (its manifest entry, the page decoded by its declared charset): what a parser
    test reads (``pages.parse_lend_items(pages.tree(decoded.text), entry.library, today)``)."""
    folder = Path(folder)
    entries = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    out: dict[str, tuple[CapturedPage, html.Decoded]] = {}
    for e in entries:
        page = CapturedPage(**e)
        raw = (folder / page.file).read_bytes()
        out[page.screen] = (page, html.decode_page(raw, f"text/html; charset={page.charset}", what=page.screen,
                                                    library=page.library))
    return out
