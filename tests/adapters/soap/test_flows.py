"""Flow tests of the soap adapter: cassette replay (vcrpy) and edge cases (respx).

The cassettes in recorded/soap/ were recorded from the simulators on the sandbox
ports by ``python -m fixtures.soap.record``; they replay with ``record_mode="none"``
against the sandbox configuration unchanged.  respx covers what a cassette cannot
show: timeouts, 500 with and without a Fault, refused connections, truncated bodies,
and the re-read after a write whose answer was lost.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import vcr

from adapters.base import UpstreamSession
from adapters.soap import SoapAdapter
from core.errors import (
    Conflict,
    InvalidCredentials,
    NotRenewable,
    SessionExpired,
    UpstreamChanged,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from fixtures.soap import wsdl_path
from fixtures.soap.record import CASSETTES, demo_flow, scrub_text, vcr_config
from gateway.config import LibraryConfig, sandbox_config
from gateway.models import HoldRequest, HoldUpdate

CFG = sandbox_config()
LIBS = ("soap-demo", "soap-kita")
ENVELOPES = Path(__file__).resolve().parents[3] / "fixtures" / "soap" / "envelopes"


# ---------------------------------------------------------------- cassette replay
def _held_record(lib: str) -> str:
    """The record id the cassette placed a hold on (the catalog may have moved since)."""
    text = (CASSETTES / f"{lib}-flow.yaml").read_text(encoding="utf-8")
    m = re.search(r"<ns0:BibNo>(\d+)<|</ticket><biblio><id>(\d+)<", text)  # in the request
    assert m, "the cassette holds no place-hold request"
    return m.group(1) or m.group(2)


@pytest.mark.parametrize("lib", LIBS)
def test_cassette_replay(lib: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fixtures.soap.record.holdable_record_id", lambda _lib: _held_record(lib))
    adapter = SoapAdapter(CFG.libraries[lib])
    my_vcr = vcr.VCR(record_mode="none", **vcr_config())
    with my_vcr.use_cassette(str(CASSETTES / f"{lib}-flow.yaml")) as cassette:
        out = demo_flow(adapter, lib)
        assert cassette.all_played
        assert adapter.request_count == len(cassette)
    assert out["profile"].card_number_masked.endswith(("0001", "0002"))
    assert len(out["loans"]) == 4 and len(out["holds"]) == 3
    ok, refused = out["renewals"]
    assert ok.ok and ok.loan is not None and ok.loan.times_renewed == 1
    assert not refused.ok and refused.error is not None
    assert (
        refused.error.code == "not_renewable" and refused.error.model_dump()["reason"] == "reserved"
    )
    placed, unknown = out["placed"]
    assert placed.ok and placed.hold is not None and placed.hold.status == "submitted"
    assert not unknown.ok and unknown.error is not None and unknown.error.code == "not_found"
    assert [h.id for h in out["holds_after"]] == [h.id for h in out["holds"]]
    lib_cfg = CFG.libraries[lib]
    assert out["updated"].pickup_branch == lib_cfg.branches[0].name
    assert out["updated"].contact_method == lib_cfg.contact_methods[2]
    assert isinstance(out["update_refused"], Conflict)
    assert isinstance(out["wrong_password"], InvalidCredentials)
    assert isinstance(out["after_logout"], SessionExpired)


@pytest.mark.parametrize("lib", LIBS)
def test_cassettes_are_scrubbed(lib: str) -> None:
    text = (CASSETTES / f"{lib}-flow.yaml").read_text(encoding="utf-8")
    for secret in ("soap-pass", "kita-pass", "2000000001", "3100000002"):
        assert secret not in text
    assert "SCRUBBED-SESSION-KEY" in text
    assert not re.search(r"<(?:\w+:)?(?:SessionKey|ticket)>(?!SCRUBBED)[^<]+<", text)
    assert "Set-Cookie" not in text and "set-cookie" not in text


def test_scrub_text() -> None:
    raw = "<ln:Pin>soap-pass</ln:Pin><ticket>abc</ticket><userId>3100000002</userId>"
    assert scrub_text(raw) == (
        "<ln:Pin>********</ln:Pin><ticket>SCRUBBED-SESSION-KEY</ticket><userId>******0002</userId>"
    )


# ---------------------------------------------------------------- respx edge cases
BASE = "http://soap.test"


def _lib(lib: str) -> LibraryConfig:
    path = "/" + CFG.libraries[lib].base_url.split("/", 3)[3]
    return CFG.libraries[lib].model_copy(update={"base_url": BASE + path, "timeout": 2})


def _wsdl(lib: str) -> bytes:
    text = wsdl_path(lib).read_text(encoding="utf-8")
    return re.sub(r'location="[^"]+"', f'location="{_lib(lib).base_url}"', text).encode()


def _env(lib: str, name: str) -> bytes:
    return (ENVELOPES / lib / f"{name}.xml").read_bytes()


def _op(request: httpx.Request) -> str:
    m = re.search(rb"<[\w-]+:Body><\w+:(\w+)", request.content)
    assert m, request.content[:200]
    return m.group(1).decode()


def _soap(content: bytes, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=content, headers={"Content-Type": "text/xml; charset=utf-8"}
    )


@pytest.fixture
def mock() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield router


def _route(
    mock: Any, lib: str, handler: Callable[[str, httpx.Request], httpx.Response]
) -> dict[str, int]:
    """WSDL on GET; POSTs dispatched by operation name to ``handler``; counts per op."""
    calls: dict[str, int] = {}
    url = _lib(lib).base_url
    mock.get(url + "?wsdl").mock(return_value=httpx.Response(200, content=_wsdl(lib)))

    def post(request: httpx.Request) -> httpx.Response:
        op = _op(request)
        calls[op] = calls.get(op, 0) + 1
        return handler(op, request)

    mock.post(url).mock(side_effect=post)
    return calls


SESSION = UpstreamSession(card_number="2000000001", data={"session": "k"})


def test_timeout_on_a_read_is_504(mock: Any) -> None:
    def handler(op: str, request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    _route(mock, "soap-demo", handler)
    with pytest.raises(UpstreamTimeout) as exc:
        SoapAdapter(_lib("soap-demo")).loans(SESSION)
    assert exc.value.status == 504 and exc.value.library == "soap-demo"


def test_500_with_a_fault_is_mapped(mock: Any) -> None:
    _route(mock, "soap-kita", lambda op, r: _soap(_env("soap-kita", "login-fault"), 500))
    with pytest.raises(InvalidCredentials) as exc:
        SoapAdapter(_lib("soap-kita")).login("3100000002", "nope")
    assert exc.value.to_problem()["status"] == 401


def test_500_with_an_unknown_fault_is_502_upstream_error(mock: Any) -> None:
    fault = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>'
        b"<faultcode>soap:Server</faultcode><faultstring>NullPointerException</faultstring>"
        b"</soap:Fault></soap:Body></soap:Envelope>"
    )
    _route(mock, "soap-demo", lambda op, r: _soap(fault, 500))
    with pytest.raises(UpstreamError) as exc:
        SoapAdapter(_lib("soap-demo")).holds(SESSION)
    problem = exc.value.to_problem()
    assert problem["status"] == 502 and problem["faultcode"] == "soap:Server"
    assert problem["faultstring"] == "NullPointerException"


def test_500_without_a_fault_is_503(mock: Any) -> None:
    _route(
        mock,
        "soap-demo",
        lambda op, r: httpx.Response(500, text="<html>Internal Server Error</html>"),
    )
    with pytest.raises(UpstreamUnavailable) as exc:
        SoapAdapter(_lib("soap-demo")).loans(SESSION)
    assert exc.value.status == 503


def test_404_without_a_fault_is_upstream_error(mock: Any) -> None:
    _route(mock, "soap-demo", lambda op, r: httpx.Response(404, text="Not Found"))
    with pytest.raises(UpstreamError):
        SoapAdapter(_lib("soap-demo")).loans(SESSION)


def test_truncated_answer_is_upstream_changed(mock: Any) -> None:
    body = _env("soap-demo", "GetIssues-ok")
    _route(mock, "soap-demo", lambda op, r: _soap(body[:300]))
    with pytest.raises(UpstreamChanged):
        SoapAdapter(_lib("soap-demo")).loans(SESSION)


def test_connection_refused_is_503_and_the_wsdl_is_not_cached_broken(mock: Any) -> None:
    url = _lib("soap-demo").base_url
    wsdl_route = mock.get(url + "?wsdl")
    wsdl_route.side_effect = [
        httpx.ConnectError("refused"),
        httpx.Response(200, content=_wsdl("soap-demo")),
    ]
    mock.post(url).mock(return_value=_soap(_env("soap-demo", "GetIssues-ok")))
    adapter = SoapAdapter(_lib("soap-demo"))
    with pytest.raises(UpstreamUnavailable):
        adapter.loans(SESSION)
    assert len(adapter.loans(SESSION)) == 4  # the next call loads the WSDL again
    assert adapter.request_count == 3
    adapter.loans(SESSION)
    assert adapter.request_count == 4  # WSDL kept: one POST only


def test_post_connection_refused_is_503(mock: Any) -> None:
    def handler(op: str, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    _route(mock, "soap-kita", handler)
    with pytest.raises(UpstreamUnavailable):
        SoapAdapter(_lib("soap-kita")).login("3100000002", "kita-pass")


def _renew_handler(lib: str, renewed: bool) -> Callable[[str, httpx.Request], httpx.Response]:
    """Loans list first, then the renewal times out, then the re-read (renewed or not)."""
    loans_op = "GetIssues" if lib == "soap-demo" else "getCheckouts"
    renew_op = "RenewIssue" if lib == "soap-demo" else "extendCheckout"
    before = _env(lib, f"{loans_op}-ok")
    after = before
    if renewed:  # the first loan's renewal count went up: the renewal did happen
        after = re.sub(
            rb"(<(?:ln:)?(?:RenewCount|extensionCount)>)0<", rb"\g<1>1<", before, count=1
        )
        assert after != before
    reads = iter([before, after])

    def handler(op: str, request: httpx.Request) -> httpx.Response:
        if op == loans_op:
            return _soap(next(reads))
        assert op == renew_op
        raise httpx.ReadTimeout("lost answer", request=request)

    return handler


@pytest.mark.parametrize("lib", LIBS)
def test_renew_timeout_then_reread_shows_it_renewed(mock: Any, lib: str) -> None:
    calls = _route(mock, lib, _renew_handler(lib, renewed=True))
    first = "ISS0001" if lib == "soap-demo" else "CO-0001"
    (result,) = SoapAdapter(_lib(lib)).renew(SESSION, [first])
    assert result.ok and result.loan is not None and result.loan.times_renewed == 1
    assert (
        sum(v for k, v in calls.items() if k in {"RenewIssue", "extendCheckout"}) == 1
    )  # never repeated


@pytest.mark.parametrize("lib", LIBS)
def test_renew_timeout_then_reread_shows_nothing_changed(mock: Any, lib: str) -> None:
    calls = _route(mock, lib, _renew_handler(lib, renewed=False))
    first = "ISS0001" if lib == "soap-demo" else "CO-0001"
    (result,) = SoapAdapter(_lib(lib)).renew(SESSION, [first])
    assert not result.ok and result.error is not None and result.error.code == "upstream_timeout"
    assert sum(v for k, v in calls.items() if k in {"RenewIssue", "extendCheckout"}) == 1


def test_renew_refusal_and_unknown_id(mock: Any) -> None:
    def handler(op: str, request: httpx.Request) -> httpx.Response:
        if op == "GetIssues":
            return _soap(_env("soap-demo", "GetIssues-ok"))
        return _soap(_env("soap-demo", "RenewIssue-fault"), 500)

    calls = _route(mock, "soap-demo", handler)
    refused, unknown = SoapAdapter(_lib("soap-demo")).renew(SESSION, ["ISS0002", "NOPE"])
    assert refused.error is not None and refused.error.model_dump()["reason"] == "reserved"
    assert unknown.error is not None and unknown.error.code == "not_found"
    assert calls == {"GetIssues": 1, "RenewIssue": 1}  # no write for an id not among the loans


def test_cancel_timeout_resolved_by_reading_holds(mock: Any) -> None:
    reads = iter([_env("soap-demo", "GetReservations-ok")])

    def handler(op: str, request: httpx.Request) -> httpx.Response:
        if op == "GetReservations":
            return _soap(next(reads))
        raise httpx.ReadTimeout("lost", request=request)

    calls = _route(mock, "soap-demo", handler)
    adapter = SoapAdapter(_lib("soap-demo"))
    adapter.cancel_hold(SESSION, "RSV0101")  # not among the holds any more: it was cancelled
    assert calls == {"CancelReservation": 1, "GetReservations": 1}
    reads = iter([_env("soap-demo", "GetReservations-ok")])
    with pytest.raises(UpstreamTimeout):
        adapter.cancel_hold(SESSION, "RSV0002")  # still there: the timeout stands
    assert calls["CancelReservation"] == 2


def test_place_timeout_resolved_by_reading_holds(mock: Any) -> None:
    def handler(op: str, request: httpx.Request) -> httpx.Response:
        if op == "getReservations":
            return _soap(_env("soap-kita", "getReservations-ok"))
        raise httpx.ReadTimeout("lost", request=request)

    calls = _route(mock, "soap-kita", handler)
    session = UpstreamSession(card_number="3100000002", data={"session": "t"})
    # 1000000015 is among the seeded holds of the saved answer → found after the timeout
    held = re.search(rb"<biblio><id>(\d+)</id>", _env("soap-kita", "getReservations-ok"))
    assert held
    (result,) = SoapAdapter(_lib("soap-kita")).place_holds(
        session, HoldRequest(record_ids=[held.group(1).decode()], pickup_branch="赤羽図書館")
    )
    assert result.ok and result.hold is not None
    assert calls == {"addReservation": 1, "getReservations": 1}


def test_fault_with_http_200_is_still_a_fault(mock: Any) -> None:
    _route(mock, "soap-demo", lambda op, r: _soap(_env("soap-demo", "RenewIssue-fault"), 200))
    adapter = SoapAdapter(_lib("soap-demo"))
    with pytest.raises(NotRenewable):
        adapter.call(adapter.options.operations.renew, {"session": "k", "loan_id": "ISS0002"})


# ---------------------------------------------------------------- through the gateway, with respx
@pytest.fixture
def gateway_client(mock: Any, tmp_path: Path) -> Any:
    from cryptography.fernet import Fernet

    from gateway.app import create_app
    from gateway.config import GatewayConfig

    lib = _lib("soap-demo")
    settings = CFG.gateway.model_copy(
        update={"database": str(tmp_path / "gw.sqlite3"), "read_cache_seconds": 0}
    )
    app = create_app(
        GatewayConfig(gateway=settings, libraries={lib.id: lib}),
        secret_key=Fernet.generate_key().decode(),
    )
    yield app.test_client()
    app.extensions["opacgw"].close()


UNKNOWN_FAULT = (
    b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>'
    b"<faultcode>soap:Server</faultcode><faultstring>ORA-00054: resource busy</faultstring>"
    b"</soap:Fault></soap:Body></soap:Envelope>"
)


@pytest.mark.parametrize(
    ("loans_answer", "status", "code"),
    [
        (lambda r: _soap(UNKNOWN_FAULT, 500), 502, "upstream_error"),
        (lambda r: httpx.Response(500, text="<html>500</html>"), 503, "upstream_unavailable"),
        (lambda r: _soap(b"<soap:Envelope"), 502, "upstream_changed"),
        (lambda r: _soap(_env("soap-demo", "RenewIssue-ok")), 502, "upstream_changed"),
    ],
)
def test_a_fault_never_surfaces_as_a_500(
    gateway_client: Any, mock: Any, loans_answer: Any, status: int, code: str
) -> None:
    def handler(op: str, request: httpx.Request) -> httpx.Response:
        if op == "AuthenticateBorrower":
            return _soap(_env("soap-demo", "AuthenticateBorrower-ok"))
        return loans_answer(request)

    _route(mock, "soap-demo", handler)
    c = gateway_client
    r = c.post(
        "/v1/sessions",
        json={"library": "soap-demo", "card_number": "2000000001", "password": "soap-pass"},
    )
    assert r.status_code == 201, r.get_json()
    h = {"Authorization": f"Bearer {r.get_json()['token']}"}
    r = c.get("/v1/libraries/soap-demo/loans", headers=h)
    assert r.status_code == status, r.get_json()
    assert r.get_json()["code"] == code and r.get_json()["library"] == "soap-demo"
    assert "soap-pass" not in r.get_data(as_text=True)


def test_gateway_timeout_is_504(gateway_client: Any, mock: Any) -> None:
    def handler(op: str, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("slow", request=request)

    _route(mock, "soap-demo", handler)
    r = gateway_client.post(
        "/v1/sessions",
        json={"library": "soap-demo", "card_number": "2000000001", "password": "soap-pass"},
    )
    assert r.status_code == 504 and r.get_json()["code"] == "upstream_timeout"


def test_update_hold_timeout_resolved_by_reading_holds(mock: Any) -> None:
    # the saved hold list shows RSV0002 at 東部分館 with メール
    def handler(op: str, request: httpx.Request) -> httpx.Response:
        if op == "GetReservations":
            return _soap(_env("soap-demo", "GetReservations-ok"))
        raise httpx.ReadTimeout("lost", request=request)

    calls = _route(mock, "soap-demo", handler)
    adapter = SoapAdapter(_lib("soap-demo"))
    hold = adapter.update_hold(SESSION, "RSV0002", HoldUpdate(pickup_branch="east"))
    assert hold.pickup_branch == "東部分館"  # already so: the change happened
    with pytest.raises(UpstreamTimeout):
        adapter.update_hold(SESSION, "RSV0002", HoldUpdate(pickup_branch="west"))
    assert calls == {"ChangeReservation": 2, "GetReservations": 2}  # each write sent once
