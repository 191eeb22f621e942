"""Secrets never leave: no demo password, full card number, session cookie or hidden
session token in the cassettes of recorded/ or the saved pages of fixtures/*/pages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.registry import demo_accounts

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(p for d in [ROOT / "recorded", *ROOT.glob("fixtures/*/pages"), *ROOT.glob("fixtures/*/captures")]
               if d.exists()
               for p in d.rglob("*") if p.is_file())

PATTERNS = [
    re.compile(r"txt_password=[^&\"'\s*]{2,}"),          # a password field left in a form body
    re.compile(r"JSESSIONID=(?!\*|SCRUBBED|x+\b)[0-9A-Za-z]{12,}"),  # a live session cookie
    re.compile(r"hid_session[\"']?\s*(?:=|value=[\"']?)(?!\*|SCRUBBED)[0-9A-Za-z]{12,}"),
    re.compile(r"\"password\"\s*:\s*\"(?!\*|SCRUBBED)[^\"]+\""),
    re.compile(r"(?i)authorization:\s*(?:basic|bearer)\s+(?!\*|SCRUBBED)[A-Za-z0-9+/=._-]{8,}"),
]


def _record_ids() -> set[str]:
    from fixtures.catalog import load_records

    return {r.id for r in load_records()}


def _secrets() -> tuple[list[str], list[str], list[str]]:
    """(secrets that must not appear anywhere, card numbers and passwords that only count
    in a card or password context: short ones like "0808" or "52" also occur as dates,
    counts and ids, and Yamaguchi's demo cards look like the sample set's record ids)."""
    anywhere, cards, passwords = set(), set(), set()
    ids = _record_ids()
    for accounts in demo_accounts().values():
        for card, password, _ in accounts:
            if len(card) >= 8 and card not in ids:
                anywhere.add(card)
            else:
                cards.add(card.lstrip("0") or card)
            if password.startswith("("):
                continue  # "(none yet)"
            (anywhere if len(password) >= 6 else passwords).add(password)
    return sorted(anywhere), sorted(cards), sorted(passwords)


CARD_CONTEXT = (r"(?i)(?:usercd|card|user_?id|useridentifiervalue|authenticationinputdata|patron|login|riyosha)"
                r"[\"'>:= ]{1,4}0*")
PASSWORD_CONTEXT = r"(?i)(?:password|passwd|pin|authenticationinputdata)[\"'>:= ]{1,4}"


def test_there_is_something_to_check() -> None:
    assert FILES, "no cassettes or saved pages found"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_file_holds_no_secret(path: Path) -> None:
    text = path.read_bytes().decode("utf-8", errors="replace")
    for pattern in PATTERNS:
        m = pattern.search(text)
        assert m is None, f"{pattern.pattern} matched {m.group(0)[:40]!r}"
    anywhere, cards, passwords = _secrets()
    for secret in anywhere:
        assert secret not in text, f"a demo secret ending …{secret[-4:]} is in the file"
    for card in cards:
        m = re.search(CARD_CONTEXT + re.escape(card) + r"(?![0-9])", text)
        assert m is None, f"a demo card number ending …{card[-4:]} is in the file: {m.group(0)[:50]!r}"
    for password in passwords:
        m = re.search(PASSWORD_CONTEXT + re.escape(password) + r"(?![0-9A-Za-z])", text)
        assert m is None, f"a short demo password is in the file: {m.group(0)[:30]!r}"


# ------------------------------------------------------------------ declared secret fields
# Every adapter declares what it posts that is secret (``Adapter.secret_fields`` /
# ``secrets()``); the cassette scrubbers are built from those declarations
# (``fixtures.cassettes.scrubber_for``), and the checks below read them too.  The last
# tests run the recording flows against the simulators and check that every field the
# adapter posts with a password, birth date or card number in it is declared.
def _declared() -> dict[str, Any]:
    """library id → the SecretFields of its adapter, for every sandbox library."""
    from adapters.registry import adapter_class
    from gateway.config import sandbox_config

    out: dict[str, Any] = {}
    for lib_id, lib in sandbox_config().libraries.items():
        cls = adapter_class(lib.adapter)
        if cls is None:
            continue
        adapter = cls(lib)
        out[lib_id] = adapter.secrets()
        adapter.close()
    return out


def _declared_patterns() -> list[re.Pattern[str]]:
    """A secret form field / XML element with a value that is not scrubbed or masked."""
    secret, cards = set(), set()
    for fields in _declared().values():
        secret |= fields.secret | fields.tokens
        cards |= fields.cards
    out = []
    for name in sorted(secret):
        n = re.escape(name)
        out.append(re.compile(rf"(?<![\w-]){n}=(?!SCRUBBED|\*)[^&\"'\s*]+"))
        out.append(re.compile(rf"<(?:\w+:)?{n}>(?![^<]*SCRUBBED)(?!\*+<)[^<]+</"))
    for name in sorted(cards):
        n = re.escape(name)
        out.append(re.compile(rf"(?<![\w-]){n}=(?!SCRUBBED|(?:\*|%2A)+\d{{4}}(?![\d]))[^&\"'\s]+"))
        out.append(re.compile(rf"<(?:\w+:)?{n}>(?![^<]*SCRUBBED)(?!\*+\d{{0,4}}<)[^<]+</"))
    return out


def test_every_family_declares_its_secret_fields() -> None:
    declared = _declared()
    for lib_id, fields in declared.items():
        if lib_id.startswith(("soap-", "ncip-", "yamaguchi")):
            assert fields.secret and fields.cards, f"{lib_id} declares no secret fields"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_declared_secret_fields_are_scrubbed(path: Path) -> None:
    text = path.read_bytes().decode("utf-8", errors="replace")
    for pattern in _DECLARED_PATTERNS:
        m = pattern.search(text)
        assert m is None, f"declared secret field unscrubbed: {m.group(0)[:40]!r}"


_DECLARED_PATTERNS = _declared_patterns()


class _Capture(httpx.BaseTransport):
    """An httpx transport that keeps every request body it sends (shared by the per-call
    clients of an adapter, so closing one of them does not close it)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.bodies.append(request.content)
        return self.inner.handle_request(request)

    def close(self) -> None:
        pass

    def really_close(self) -> None:
        self.inner.close()


def _spy(adapter: Any, values: set[str]) -> None:
    """Record every card number, password and birth date the flows hand the adapter."""
    for name in ("login", "change_password", "register_password"):
        original = getattr(adapter, name)

        def wrapped(*args: Any, _original: Any = original, **kw: Any) -> Any:
            for a in (*args, *kw.values()):
                if isinstance(a, str) and a:
                    values.add(a)
                elif hasattr(a, "strftime"):
                    values.update({f"{a:%Y%m%d}", a.isoformat()})
            return _original(*args, **kw)

        setattr(adapter, name, wrapped)


def _posted_fields(bodies: list[bytes]) -> list[tuple[str, str]]:
    """(field or element local name, value) of every form and XML body."""
    import urllib.parse

    from lxml import etree

    out: list[tuple[str, str]] = []
    for body in bodies:
        if not body:
            continue
        if body.lstrip().startswith(b"<"):
            for el in etree.fromstring(body).iter():
                if isinstance(el.tag, str) and el.text and el.text.strip():
                    out.append((etree.QName(el).localname, el.text.strip()))
        else:
            out += urllib.parse.parse_qsl(body.decode("ascii", "replace"), keep_blank_values=True)
    return out


def _assert_declared(fields: Any, posted: list[tuple[str, str]], values: set[str], cards: set[str]) -> None:
    assert posted, "nothing was posted"
    secret_names = fields.secret | fields.tokens | fields.cards
    ids = _record_ids()  # Yamaguchi's demo cards are also record ids: a bibid is not a card
    seen = 0
    for name, value in posted:
        if value in cards and value in ids and name not in secret_names:
            continue
        if value in values:
            seen += 1
            allowed = fields.cards | fields.secret if value in cards else fields.secret
            assert name in allowed or (value in cards and name in secret_names), \
                f"field {name!r} carries a {'card number' if value in cards else 'secret'} but is not declared"
    assert seen, "no secret was posted at all: the flows did not log in"


def test_wo_declares_every_secret_field_it_posts() -> None:
    from adapters.wo import WoAdapter
    from fixtures.registry import serve_app
    from fixtures.wo import create_app
    from fixtures.wo.record import FLOWS
    from gateway.config import sandbox_config

    capture = _Capture()
    values: set[str] = set()
    for flow in FLOWS.values():
        server = serve_app(create_app("yamaguchi-pref"), name="wo-secrets")
        lib = sandbox_config().libraries["yamaguchi-pref"].model_copy(update={"base_url": server.url + "/wo"})
        adapter = WoAdapter(lib, transport=capture)
        _spy(adapter, values)
        try:
            flow(adapter)
        finally:
            server.stop()
    cards = {v for v in values if v.isdigit() and len(v) == 10}
    _assert_declared(WoAdapter.secret_fields, _posted_fields(capture.bodies), values, cards)
    capture.really_close()


@pytest.mark.parametrize("library_id", ["soap-demo", "soap-kita"])
def test_soap_declares_every_secret_element_it_posts(library_id: str) -> None:
    from adapters.soap import SoapAdapter
    from fixtures.registry import serve_app
    from fixtures.soap import DEMO_PATRONS, create_app
    from fixtures.soap.record import demo_flow
    from gateway.config import sandbox_config

    lib = sandbox_config().libraries[library_id]
    path = re.sub(r"^https?://[^/]+", "", lib.base_url)
    server = serve_app(create_app(library_id), name="soap-secrets")
    capture = _Capture()
    adapter = SoapAdapter(lib.model_copy(update={"base_url": server.url + path}), transport=capture)
    values: set[str] = set()
    _spy(adapter, values)
    try:
        demo_flow(adapter, library_id)
    finally:
        server.stop()
    card, _ = DEMO_PATRONS[library_id]
    _assert_declared(adapter.secrets(), _posted_fields(capture.bodies), values, {card})
    capture.really_close()


def test_ncip_declares_every_secret_element_it_posts() -> None:
    from adapters.ncip import NcipAdapter
    from fixtures.ncip import create_app
    from fixtures.registry import serve_app
    from gateway.config import sandbox_config

    server = serve_app(create_app("ncip-consortium"), name="ncip-secrets")
    lib = sandbox_config().libraries["ncip-consortium"]
    capture = _Capture()
    adapter = NcipAdapter(lib.model_copy(update={"base_url": server.url}), transport=capture)
    values: set[str] = set()
    _spy(adapter, values)
    try:
        session = adapter.login("00052", "ncip-pass")
        adapter.loans(session)
    finally:
        server.stop()
    posted = _posted_fields(capture.bodies)
    _assert_declared(adapter.secrets(), posted, values, {"00052", "52"})
    capture.really_close()
