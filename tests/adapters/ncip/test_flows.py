"""Flow tests of the ncip adapter: cassette replay (vcrpy, record_mode="none") and respx.

The cassettes in ``recorded/ncip/`` are real exchanges with the responder simulator
(``fixtures/ncip``), scrubbed of the password in ``AuthenticationInput``, of any
``Authorization`` header and of every card number (requests and responses: one fixed
placeholder; replay matches on scrubbed bodies).  Re-record them with ``OPACGW_RECORD=1 pytest
tests/adapters/ncip/test_flows.py`` (a fresh simulator on loopback per cassette).

Cassette dates are those of the recording day, so assertions here avoid anything
that depends on *today* (``overdue`` of a loan that was not yet due, etc.).
respx covers what a cassette cannot show: timeouts, 500s, truncated XML, HTTP
errors with XML bodies, and a session the responder no longer accepts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from lxml import etree

from adapters.ncip import NcipAdapter
from adapters.ncip.xml import read_message
from core.errors import (
    AccountBlocked,
    Conflict,
    InvalidCredentials,
    InvalidRequest,
    NotFound,
    SessionExpired,
    UpstreamChanged,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from fixtures.cassettes import vcr_for
from gateway.config import LibraryConfig, sandbox_config
from gateway.models import HoldRequest, HoldUpdate

ROOT = Path(__file__).resolve().parents[3]
CASSETTES = ROOT / "recorded" / "ncip"
RECORD = os.environ.get("OPACGW_RECORD") == "1"
REPLAY_BASE = "http://127.0.0.1:9"  # discard port: nothing may really be reached in replay
SCRUBBED = "********"
LIB = sandbox_config().libraries["ncip-consortium"]

# Seed facts the scenarios rely on (fixtures/ncip/seed.py).
CARD, PASSWORD = "00052", "ncip-pass"
RENEWABLE, RESERVED, OVERDUE, AT_LIMIT = "CPL.3", "CPL.5", "CPL.7", "CPL.9"


# ------------------------------------------------------------------ scrubbing / matching
#: every card number (UserIdentifierValue, a Barcode/User Id AuthenticationInput, a user
#: ProblemValue) becomes this one placeholder in requests AND responses.  Replay matches
#: on the scrubbed bodies, so the real card the test sends is never needed in a cassette;
#: interactions that differ only by the card are played in recorded order.
CARD_PLACEHOLDER = "CARD-SCRUBBED"
PASSWORD_TYPES = ("pin", "password")


def scrub_body(body: bytes | str | None) -> bytes | str | None:
    """The same message with passwords masked and card numbers replaced by the placeholder."""
    if not body:
        return body
    raw = body.encode() if isinstance(body, str) else body
    try:
        root = etree.fromstring(raw)
    except etree.XMLSyntaxError:
        return body
    cards: set[str] = set()

    def card(el: etree._Element | None) -> None:
        if el is not None and el.text and el.text.strip() != CARD_PLACEHOLDER:
            cards.add(el.text.strip())
            el.text = CARD_PLACEHOLDER

    declared = NcipAdapter.secret_fields  # what the adapter says it posts that is secret
    for name in sorted(declared.secret):  # AuthenticationInputData: a PIN, or the card
        for data in root.iter("{*}" + name):
            ai = data.getparent()
            kind = (ai.findtext("{*}AuthenticationInputType") or "").strip().lower() if ai is not None else ""
            if kind in PASSWORD_TYPES:
                data.text = SCRUBBED
            else:
                card(data)
    for name in sorted(declared.cards):
        for uid in root.iter("{*}" + name):
            card(uid)
    for problem in root.iter("{*}Problem"):
        element = (problem.findtext("{*}ProblemElement") or "").split("/")[-1].lower()
        if element.startswith(("user", "authentication")):
            card(problem.find("{*}ProblemValue"))
    for detail in root.iter("{*}ProblemDetail"):  # "no user 52"
        for value in cards:
            if detail.text and value:
                detail.text = re.sub(rf"(?<!\d){re.escape(value)}(?!\d)", CARD_PLACEHOLDER, detail.text)
    out = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)
    if out == etree.tostring(etree.fromstring(raw), xml_declaration=True, encoding="UTF-8", standalone=True):
        return body
    return out.decode() if isinstance(body, str) else out


def _ncip_body(r1: Any, r2: Any) -> None:
    a, b = scrub_body(r1.body), scrub_body(r2.body)
    a = a.encode() if isinstance(a, str) else a
    b = b.encode() if isinstance(b, str) else b
    assert a == b, "different NCIP message"


def cassette_vcr() -> Any:
    return vcr_for(
        CASSETTES,
        record_mode="all" if RECORD else "none",
        match_on=["method", "path", "ncip_body"],
        matchers={"ncip_body": _ncip_body},
        body_scrubber=scrub_body,
        drop_headers={"cookie", "set-cookie", *NcipAdapter.secret_fields.headers},
    )


@pytest.fixture
def flow() -> Iterator[Callable[..., NcipAdapter]]:
    """flow(name, **library_updates) → an adapter bound to cassette ``name`` (record or replay)."""
    servers: list[Any] = []
    contexts: list[Any] = []

    def _make(name: str, **updates: Any) -> NcipAdapter:
        path = CASSETTES / f"{name}.yaml"
        if not RECORD and not path.exists():
            pytest.fail(f"missing cassette {path}; record with OPACGW_RECORD=1")
        if RECORD:
            from fixtures.ncip import create_app
            from fixtures.registry import serve_app

            server = serve_app(create_app("ncip-consortium"), name="ncip")
            servers.append(server)
            base = server.url
        else:
            base = REPLAY_BASE
        lib = LIB.model_copy(update={"base_url": base, **updates})
        ctx = cassette_vcr().use_cassette(f"{name}.yaml")
        ctx.__enter__()
        contexts.append(ctx)
        return NcipAdapter(lib)

    yield _make
    for ctx in reversed(contexts):
        ctx.__exit__(None, None, None)
    for s in servers:
        s.stop()


# ------------------------------------------------------------------ cassette flows
def test_login_profile_loans_and_every_renewal_answer(flow: Callable[..., NcipAdapter]) -> None:
    a = flow("ncip-login-loans-renew")
    with pytest.raises(InvalidCredentials):
        a.login(CARD, "wrong-password")
    s = a.login(CARD, PASSWORD)
    # the UserId comes from the responder's answer (scrubbed in the cassette)
    assert s.data == {"user_id": "52" if RECORD else CARD_PLACEHOLDER, "user_agency": "CPL"}
    assert PASSWORD not in repr(s.to_dict())
    prof = a.profile(s)
    assert prof.name == "山田 花子"
    assert [e.address for e in prof.emails] == ["hanako@example.jp"]
    assert prof.card_number_masked == "*0052"

    loans = {loan.id: loan for loan in a.loans(s)}
    assert set(loans) == {RENEWABLE, RESERVED, OVERDUE, AT_LIMIT}
    assert loans[RENEWABLE].renewable and loans[RENEWABLE].not_renewable_reason is None
    assert (loans[RESERVED].renewable, loans[RESERVED].not_renewable_reason) == (False, "reserved")
    assert (loans[OVERDUE].overdue, loans[OVERDUE].not_renewable_reason) == (True, "overdue")
    assert loans[AT_LIMIT].not_renewable_reason == "renewal_limit" and loans[AT_LIMIT].times_renewed == 2
    assert all(loan.title and loan.record_id for loan in loans.values())

    results = {r.loan_id: r for r in a.renew(s, [RENEWABLE, RESERVED, OVERDUE, AT_LIMIT, "CPL.999"])}
    ok = results[RENEWABLE]
    assert ok.ok and ok.loan is not None and ok.loan.due_on > loans[RENEWABLE].due_on
    assert ok.loan.times_renewed == 1
    for lid, reason, ptype in ((RESERVED, "reserved", "Item Has Outstanding Requests"),
                               (OVERDUE, "overdue", "Item Not Renewable"),
                               (AT_LIMIT, "renewal_limit", "Maximum Renewals Exceeded")):
        err = results[lid].error
        assert not results[lid].ok and err is not None
        assert (err.status, err.code, err.model_extra["reason"]) == (422, "not_renewable", reason)
        assert err.model_extra["ProblemType"] == ptype
    assert results["CPL.999"].error is not None and results["CPL.999"].error.code == "not_found"


def test_holds_with_a_pickup_location_from_lookup_agency(flow: Callable[..., NcipAdapter]) -> None:
    # No configured branches: the pickup name can only be resolved through LookupAgency.
    a = flow("ncip-holds", branches=[])
    s = a.login(CARD, PASSWORD)
    before = a.holds(s)
    assert {h.status for h in before} == {"waiting", "ready"}
    ready = next(h for h in before if h.status == "ready")
    assert ready.ready_until is not None and ready.pickup_branch == "中央図書館"
    locations = a.agency("CPL").locations
    assert locations == ("中央図書館", "東分館")
    count = a.request_count
    results = a.place_holds(s, HoldRequest(record_ids=["1000000003", "1000000001"], pickup_branch=locations[1]))
    assert a.request_count - count == 2  # the agency answer is cached: one RequestItem per record
    assert [r.ok for r in results] == [True, True]
    hold = results[0].hold
    assert hold is not None and hold.pickup_branch == "東分館" and hold.status == "waiting"
    assert hold.position == 2  # patron 51 waits for 悪意 before us
    dup = a.place_holds(s, HoldRequest(record_ids=["1000000003"]))
    assert dup[0].error is not None and dup[0].error.code == "conflict"
    with pytest.raises(InvalidRequest):
        a.place_holds(s, HoldRequest(record_ids=["1000000003"], pickup_branch="どこでもない分館"))
    moved = a.update_hold(s, hold.id, HoldUpdate(pickup_branch=locations[0]))
    assert moved.pickup_branch == "中央図書館" and moved.id == hold.id
    assert next(h for h in a.holds(s) if h.id == hold.id).pickup_branch == "中央図書館"
    with pytest.raises(Conflict):  # a hold ready for pickup stays where it is
        a.update_hold(s, ready.id, HoldUpdate(pickup_branch=locations[1]))
    a.cancel_hold(s, hold.id)
    after = {h.id for h in a.holds(s)}
    assert hold.id not in after and results[1].hold is not None and results[1].hold.id in after
    with pytest.raises(NotFound):
        a.cancel_hold(s, "CPL.424242")


def test_lending_request_routed_over_ncip(flow: Callable[..., NcipAdapter]) -> None:
    a = flow("ncip-lending")
    s = a.login(CARD, PASSWORD)
    created = a.create_lending_request(s, "1000000002", "ffl", None)
    assert created.status == "requested"
    assert created.extra["pickup_agency"] == "FFL" and created.extra["pickup_location"] == "藤ヶ丘図書館"
    listed = {u.upstream_id: u for u in a.lending_requests(s)}
    assert listed[created.upstream_id].extra["pickup_library"] == "ffl"
    assert listed[created.upstream_id].record_id == "1000000002"
    second = a.create_lending_request(s, "1000000001", "FFL", "駅前分室")
    assert second.extra["pickup_location"] == "駅前分室"
    a.cancel_lending_request(s, second.upstream_id)
    assert second.upstream_id not in {u.upstream_id for u in a.lending_requests(s)}
    with pytest.raises(InvalidRequest):
        a.create_lending_request(s, "1000000001", "nowhere", None)


def test_catalog_record_and_availability(flow: Callable[..., NcipAdapter]) -> None:
    a = flow("ncip-catalog")
    rec = a.record("1000000002")
    assert rec.title == "赤松小三郎ともう一つの明治維新" and rec.isbn
    assert {h.status for h in rec.holdings} == {"on_loan", "available"}
    on_loan = next(h for h in rec.holdings if h.status == "on_loan")
    assert on_loan.due_on is not None and on_loan.branch == "東分館"
    assert a.availability(rec.isbn or "") == list(rec.holdings)
    assert a.availability("9780000000002") == []
    with pytest.raises(NotFound):
        a.record("999")


def test_fines_and_blocks_as_messages(flow: Callable[..., NcipAdapter]) -> None:
    a = flow("ncip-messages")
    blocked = a.login("00053", PASSWORD)
    msgs = {m.id: m for m in a.messages(blocked, False)}
    assert set(msgs) == {"fine-1", "block-block-hold", "block-block-request-item", "block-block-renewal"}
    assert msgs["fine-1"].subject == "未納の料金: 300 JPY" and msgs["fine-1"].body == "延滞料"
    assert "予約できません" in msgs["block-block-hold"].body
    assert not any(m.read for m in msgs.values())
    loans = a.loans(blocked)
    assert [loan.renewable for loan in loans] == [False]  # Block Renewal
    assert a.messages(a.login(CARD, PASSWORD), False) == []


def test_cassettes_hold_no_card_numbers_or_passwords() -> None:
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(CASSETTES.glob("*.yaml"))}
    assert texts
    for name, t in texts.items():
        assert not re.search(r"UserIdentifierValue>\s*\d", t), name
        assert not re.search(r"AuthenticationInputData>\s*\d", t), name
        assert not re.search(r"ProblemElement>User[A-Za-z]*</ns1:ProblemElement><ns1:ProblemValue>\s*\d", t), name
        assert PASSWORD not in t, name
    assert all(CARD_PLACEHOLDER in t for name, t in texts.items() if "catalog" not in name)


# ------------------------------------------------------------------ respx edge cases
def _adapter(**options: Any) -> NcipAdapter:
    opts = {**LIB.options, **options}
    lib: LibraryConfig = LIB.model_copy(update={"base_url": "http://ncip.example", "options": opts, "timeout": 1.0})
    return NcipAdapter(lib)


URL = "http://ncip.example/ncip"


def _ncip(body: str, root_attrs: str = 'xmlns:ns1="http://www.niso.org/2008/ncip" '
          'ns1:version="http://www.niso.org/schemas/ncip/v2_02/ncip_v2_02.xsd"') -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?><ns1:NCIPMessage {root_attrs}>{body}</ns1:NCIPMessage>'.encode()


def _session() -> Any:
    from adapters.base import UpstreamSession

    return UpstreamSession(card_number="0052", data={"user_id": "52", "user_agency": "CPL"})


@respx.mock
def test_timeout_is_504_and_connect_error_503() -> None:
    respx.post(URL).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(UpstreamTimeout):
        _adapter().loans(_session())
    respx.post(URL).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(UpstreamUnavailable):
        _adapter().holds(_session())


@respx.mock
def test_http_500_without_xml_is_unavailable_but_with_a_problem_body_is_the_problem() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(500, text="Internal Server Error"))
    with pytest.raises(UpstreamUnavailable):
        _adapter().loans(_session())
    route.mock(return_value=httpx.Response(
        400, content=_ncip("<ns1:Problem><ns1:ProblemType>User Blocked</ns1:ProblemType></ns1:Problem>")))
    # holds are placed one record at a time: the refusal is that record's result
    [result] = _adapter().place_holds(_session(), HoldRequest(record_ids=["1"]))
    assert result.error is not None and (result.error.status, result.error.code) == (403, "account_blocked")
    with pytest.raises(AccountBlocked):
        _adapter().loans(_session())


@respx.mock
def test_truncated_xml_is_upstream_changed_never_an_empty_list() -> None:
    full = _ncip("<ns1:LookupUserResponse><ns1:UserId><ns1:UserIdentifierValue>52</ns1:UserIdentifierValue>"
                 "</ns1:UserId></ns1:LookupUserResponse>")
    respx.post(URL).mock(return_value=httpx.Response(200, content=full[: len(full) // 2]))
    with pytest.raises(UpstreamChanged):
        _adapter().loans(_session())


@respx.mock
def test_unknown_user_mid_session_means_session_expired() -> None:
    respx.post(URL).mock(return_value=httpx.Response(200, content=_ncip(
        "<ns1:LookupUserResponse><ns1:Problem><ns1:ProblemType>Unknown User</ns1:ProblemType>"
        "</ns1:Problem></ns1:LookupUserResponse>")))
    with pytest.raises(SessionExpired):
        _adapter().loans(_session())
    with pytest.raises(InvalidCredentials):
        _adapter().login("0052", "x")


@respx.mock
def test_other_problems_are_502_with_the_ncip_fields() -> None:
    respx.post(URL).mock(return_value=httpx.Response(200, content=_ncip(
        "<ns1:RequestItemResponse><ns1:Problem><ns1:ProblemType>Temporary Processing Failure</ns1:ProblemType>"
        "<ns1:ProblemDetail>database locked</ns1:ProblemDetail><ns1:ProblemElement>RequestItem</ns1:ProblemElement>"
        "<ns1:ProblemValue>x</ns1:ProblemValue></ns1:Problem></ns1:RequestItemResponse>")))
    with pytest.raises(UpstreamError) as exc:
        _adapter().create_lending_request(_session(), "1", "CPL", "中央図書館")
    body = exc.value.to_problem()
    assert (body["status"], body["code"]) == (502, "upstream_error")
    assert (body["ProblemType"], body["ProblemDetail"], body["ProblemElement"], body["ProblemValue"]) == (
        "Temporary Processing Failure", "database locked", "RequestItem", "x")


@respx.mock
def test_renewal_timeout_rereads_instead_of_retrying() -> None:
    lookup = _ncip(
        "<ns1:LookupUserResponse><ns1:UserId><ns1:UserIdentifierValue>52</ns1:UserIdentifierValue></ns1:UserId>"
        "<ns1:LoanedItem><ns1:ItemId><ns1:AgencyId>CPL</ns1:AgencyId><ns1:ItemIdentifierValue>3</ns1:ItemIdentifierValue>"
        "</ns1:ItemId><ns1:DateDue>2030-01-10T00:00:00+09:00</ns1:DateDue><ns1:Title>悪意</ns1:Title></ns1:LoanedItem>"
        "</ns1:LookupUserResponse>")
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        kind = read_message(request.content)[0].tag
        calls.append(kind)
        if kind == "RenewItem":
            raise httpx.ReadTimeout("slow")
        return httpx.Response(200, content=lookup)

    respx.post(URL).mock(side_effect=answer)
    [result] = _adapter().renew(_session(), ["CPL.3"])
    assert calls == ["LookupUser", "RenewItem", "LookupUser"]  # exactly one RenewItem
    assert not result.ok and result.error is not None and result.error.code == "upstream_timeout"


@respx.mock
def test_basic_and_bearer_auth_headers() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200, content=_ncip(
        "<ns1:LookupAgencyResponse><ns1:AgencyId>CPL</ns1:AgencyId></ns1:LookupAgencyResponse>")))
    _adapter(auth={"type": "bearer", "token": "t0k"}).agency("CPL")
    assert route.calls.last.request.headers["Authorization"] == "Bearer t0k"
    _adapter(auth={"type": "basic", "user": "gw", "password": "pw"}).agency("CPL")
    assert route.calls.last.request.headers["Authorization"].startswith("Basic ")


def test_duplicate_request_problem_is_conflict() -> None:
    from adapters.ncip.problems import NcipProblem, problem_error

    assert isinstance(problem_error(NcipProblem("Duplicate Request"), context="session"), Conflict)


def test_scrubbed_cassettes_hold_no_password() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert len(files) >= 5
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert PASSWORD not in text and "wrong-password" not in text
        assert "authorization" not in text.lower().replace("authorizationinput", "")


@respx.mock
def test_http_401_is_the_gateways_credentials_not_the_patrons() -> None:
    respx.post(URL).mock(return_value=httpx.Response(401, content=_ncip(
        "<ns1:Problem><ns1:ProblemType>User Authentication Failed</ns1:ProblemType></ns1:Problem>")))
    with pytest.raises(UpstreamError) as exc:
        _adapter(auth={"type": "bearer", "token": "old"}).login("00052", "ncip-pass")
    assert exc.value.extra["http_status"] == 401


@respx.mock
def test_status_lines_before_the_xml_and_no_namespace() -> None:
    respx.post(URL).mock(return_value=httpx.Response(200, content=(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n\r\n"
        b'<?xml version="1.0"?><NCIPMessage><LookupUserResponse><UserId><UserIdentifierValue>52'
        b"</UserIdentifierValue></UserId><LoanedItem><ItemId><ItemIdentifierValue>3</ItemIdentifierValue></ItemId>"
        + "<Title>悪意</Title>".encode() + b"<DateDue>2026/12/01</DateDue></LoanedItem></LookupUserResponse>"
        b"</NCIPMessage>")))
    [loan] = _adapter().loans(_session())
    assert (loan.id, loan.title, loan.due_on.isoformat()) == ("3", "悪意", "2026-12-01")


def test_bad_options_name_the_library_and_key() -> None:
    from gateway.config import ConfigError

    with pytest.raises(ConfigError, match=r"ncip-consortium.*options\.to_agency_id"):
        NcipAdapter(LIB.model_copy(update={"options": {"endpoint": "/ncip"}}))
    with pytest.raises(ConfigError, match=r"options\.auth"):
        _adapter(auth={"type": "bearer"})
