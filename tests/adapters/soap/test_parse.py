"""Parser tests of the soap adapter on saved envelopes (fixtures/soap/envelopes/).

No network: the zeep clients load the vendors' WSDLs from fixtures/soap/wsdl/, the
envelopes were recorded from the simulators by ``python -m fixtures.soap.record``.
The same assertions run over both vendors, whose answers differ in shape only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import zeep

from adapters.soap import SoapAdapter
from adapters.soap.envelope import SoapFault, find_fault, parse_response
from adapters.soap.mapping import (
    Context,
    SoapOptions,
    as_date,
    get_path,
    map_hold,
    map_holds,
    map_loan,
    map_loans,
    map_pickup_locations,
    map_profile,
)
from core.errors import (
    Conflict,
    InvalidCredentials,
    NotFound,
    NotRenewable,
    SessionExpired,
    UpstreamChanged,
)
from fixtures.soap import wsdl_path
from gateway.config import sandbox_config

ENVELOPES = Path(__file__).resolve().parents[3] / "fixtures" / "soap" / "envelopes"
CFG = sandbox_config()
LIBS = ("soap-demo", "soap-kita")
TZ = ZoneInfo("Asia/Tokyo")
# (operation per role) for each library, read from its configuration
OPS = {lib: SoapOptions.model_validate(CFG.libraries[lib].options).operations for lib in LIBS}
EXPECTED_NAME = {"soap-demo": "山田 花子", "soap-kita": "鈴木 次郎"}


@pytest.fixture(scope="module")
def wsdl() -> dict[str, zeep.Client]:
    return {lib: zeep.Client(str(wsdl_path(lib))) for lib in LIBS}


def envelope(lib: str, name: str) -> bytes:
    return (ENVELOPES / lib / f"{name}.xml").read_bytes()


def ctx(lib: str, today: date = date(2000, 1, 1)) -> Context:
    lc = CFG.libraries[lib]
    opts = SoapOptions.model_validate(lc.options)
    return Context(
        lib,
        TZ,
        {b.code: b.name for b in lc.branches if b.code},
        {v: k for k, v in opts.contact_methods.items()},
        today,
    )


def answer(wsdl: dict[str, zeep.Client], lib: str, role: str, name: str) -> dict[str, Any]:
    op = getattr(OPS[lib], role).operation
    return parse_response(wsdl[lib], op, envelope(lib, name))


# ---------------------------------------------------------------- answers
@pytest.mark.parametrize("lib", LIBS)
def test_loans(wsdl: dict[str, zeep.Client], lib: str) -> None:
    name = "GetIssues-ok" if lib == "soap-demo" else "getCheckouts-ok"
    loans = map_loans(OPS[lib].loans, answer(wsdl, lib, "loans", name), ctx(lib))
    assert len(loans) == 4
    assert len({l.id for l in loans}) == 4
    assert [l.not_renewable_reason for l in loans] == [
        None,
        "reserved",
        "overdue",
        "already_renewed" if lib == "soap-demo" else "renewal_limit",
    ]
    assert [l.renewable for l in loans] == [True, False, False, False]
    assert loans[2].overdue and not loans[0].overdue  # overdue by code, whatever today is
    names = {b.name for b in CFG.libraries[lib].branches}
    for loan in loans:
        assert loan.library == lib and loan.title and loan.record_id
        assert loan.loaned_on is not None and loan.loaned_on < loan.due_on
        assert loan.branch in names
    assert loans[0].due_on - loans[0].loaned_on == timedelta(days=14)
    assert loans[3].times_renewed == 1


@pytest.mark.parametrize("lib", LIBS)
def test_holds(wsdl: dict[str, zeep.Client], lib: str) -> None:
    name = "GetReservations-ok" if lib == "soap-demo" else "getReservations-ok"
    holds = map_holds(OPS[lib].holds, answer(wsdl, lib, "holds", name), ctx(lib))
    assert [h.status for h in holds] == ["waiting", "ready", "submitted"]
    waiting, ready, submitted = holds
    assert waiting.position == 2 and waiting.expires_on is not None
    assert ready.ready_until is not None and ready.position is None
    assert submitted.expires_on is None  # open-ended (kita: "9999/12/31")
    assert waiting.contact_method == "メール"
    assert submitted.contact_method in {"不要", "連絡不要"}
    names = {b.name for b in CFG.libraries[lib].branches}
    assert all(h.pickup_branch in names for h in holds)
    assert waiting.cancelable and submitted.cancelable
    # OPAC-Link says a hold on the pickup shelf is locked; LibraNet has no such field
    assert ready.cancelable is (lib == "soap-demo")


@pytest.mark.parametrize("lib", LIBS)
def test_profile(wsdl: dict[str, zeep.Client], lib: str) -> None:
    name = "GetBorrowerDetails-ok" if lib == "soap-demo" else "getUser-ok"
    profile = map_profile(
        OPS[lib].profile, answer(wsdl, lib, "profile", name), ctx(lib), "******0001"
    )
    assert profile.name == EXPECTED_NAME[lib]
    assert profile.emails and "@" in profile.emails[0].address
    assert profile.pickup_branch in {b.name for b in CFG.libraries[lib].branches}
    assert profile.card_expires_on is None
    assert profile.card_number_masked == "******0001"


@pytest.mark.parametrize("lib", LIBS)
def test_renewed_and_placed(wsdl: dict[str, zeep.Client], lib: str) -> None:
    renew, place = (
        ("RenewIssue-ok", "PlaceReservation-ok")
        if lib == "soap-demo"
        else ("extendCheckout-ok", "addReservation-ok")
    )
    ops = OPS[lib]
    assert ops.renew.loan and ops.place_hold.hold
    loan = map_loan(
        ops.loans, get_path(answer(wsdl, lib, "renew", renew), ops.renew.loan), ctx(lib)
    )
    assert loan.times_renewed == 1 and not loan.renewable
    hold = map_hold(
        ops.holds, get_path(answer(wsdl, lib, "place_hold", place), ops.place_hold.hold), ctx(lib)
    )
    assert hold.status == "submitted"
    assert hold.pickup_branch == CFG.libraries[lib].branches[-1].name


def test_pickup_locations(wsdl: dict[str, zeep.Client]) -> None:
    # not in the saved flow: build the answer by hand in LibraNet's shape
    body = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b'<ln:GetPickupLocationsResponse xmlns:ln="urn:libranet:circulation:2"><ln:Locations>'
        b"<ln:Location><ln:LocationCode>CEN</ln:LocationCode><ln:LocationName>\xe4\xb8\xad\xe5\xa4\xae"
        b"</ln:LocationName></ln:Location></ln:Locations></ln:GetPickupLocationsResponse></soap:Body>"
        b"</soap:Envelope>"
    )
    op = OPS["soap-demo"].pickup_locations
    assert op is not None
    assert map_pickup_locations(op, parse_response(wsdl["soap-demo"], op.operation, body)) == {
        "CEN": "中央"
    }


# ---------------------------------------------------------------- faults
FAULTS = [
    ("soap-demo", "AuthenticateBorrower-fault", InvalidCredentials, None),
    ("soap-demo", "RenewIssue-fault", NotRenewable, "reserved"),
    ("soap-demo", "PlaceReservation-fault", NotFound, None),
    ("soap-demo", "GetIssues-fault", SessionExpired, None),
    ("soap-kita", "login-fault", InvalidCredentials, None),
    ("soap-kita", "extendCheckout-fault", NotRenewable, "reserved"),
    ("soap-kita", "addReservation-fault", NotFound, None),
    ("soap-kita", "getCheckouts-fault", SessionExpired, None),
    ("soap-demo", "ChangeReservation-fault", Conflict, None),
    ("soap-kita", "modifyReservation-fault", Conflict, None),
]


@pytest.mark.parametrize(("lib", "name", "error", "reason"), FAULTS)
def test_faults_map_to_api_errors(lib: str, name: str, error: type, reason: str | None) -> None:
    fault = find_fault(envelope(lib, name))
    assert isinstance(fault, SoapFault) and fault.string
    adapter = SoapAdapter(CFG.libraries[lib])
    err = adapter.fault_error(fault)
    assert isinstance(err, error)
    if reason:
        assert err.reason == reason  # type: ignore[attr-defined]
    if hasattr(err, "to_problem"):
        assert err.to_problem()["upstream_message"] == fault.string
    assert adapter.request_count == 0  # mapping a fault needs no network


def test_fault_codes_are_read_where_each_vendor_puts_them() -> None:
    demo = find_fault(envelope("soap-demo", "RenewIssue-fault"))
    kita = find_fault(envelope("soap-kita", "extendCheckout-fault"))
    assert demo and demo.code == "RenewalRefused" and demo.raw_code == "ln:RenewalRefused"
    assert demo.detail["LibraNetFault"]["ReasonCode"] == "R2"
    assert kita and kita.code == "Client"
    assert kita.detail["serviceException"]["errorCode"] == "EXTEND-DENIED"


def test_parse_response_raises_the_fault(wsdl: dict[str, zeep.Client]) -> None:
    with pytest.raises(SoapFault):
        parse_response(wsdl["soap-demo"], "RenewIssue", envelope("soap-demo", "RenewIssue-fault"))


def test_unmapped_fault_is_upstream_error_keeping_code_and_string() -> None:
    adapter = SoapAdapter(CFG.libraries["soap-demo"])
    err = adapter.fault_error(SoapFault("DatabaseLocked", "DB busy", {}, "ln:DatabaseLocked"))
    problem = err.to_problem()  # type: ignore[attr-defined]
    assert problem["status"] == 502 and problem["code"] == "upstream_error"
    assert problem["faultcode"] == "ln:DatabaseLocked" and problem["faultstring"] == "DB busy"


def test_renewal_reason_falls_back_to_the_japanese_text() -> None:
    adapter = SoapAdapter(CFG.libraries["soap-kita"])
    err = adapter.fault_error(
        SoapFault(
            "Client",
            "返却期限を過ぎているため延長できません",
            {"serviceException": {"errorCode": "EXTEND-DENIED"}},
        )
    )
    assert isinstance(err, NotRenewable) and err.reason == "overdue"


# ---------------------------------------------------------------- drift
def test_renamed_element_is_upstream_changed(wsdl: dict[str, zeep.Client]) -> None:
    body = envelope("soap-demo", "GetIssues-ok").replace(b"DateDue>", b"DueDate>")
    with pytest.raises(UpstreamChanged):
        parse_response(wsdl["soap-demo"], "GetIssues", body)


def test_truncated_envelope_is_upstream_changed(wsdl: dict[str, zeep.Client]) -> None:
    body = envelope("soap-kita", "getCheckouts-ok")
    with pytest.raises(UpstreamChanged):
        parse_response(wsdl["soap-kita"], "getCheckouts", body[: len(body) // 2])


def test_wrong_response_element_is_upstream_changed(wsdl: dict[str, zeep.Client]) -> None:
    with pytest.raises(UpstreamChanged):
        parse_response(wsdl["soap-demo"], "GetIssues", envelope("soap-demo", "GetReservations-ok"))


def test_unknown_status_code_is_upstream_changed(wsdl: dict[str, zeep.Client]) -> None:
    body = envelope("soap-demo", "GetReservations-ok").replace(
        b"<ln:StatusCode>Q</ln:StatusCode>", b"<ln:StatusCode>Z</ln:StatusCode>"
    )
    data = parse_response(wsdl["soap-demo"], "GetReservations", body)
    with pytest.raises(UpstreamChanged, match="Z"):
        map_holds(OPS["soap-demo"].holds, data, ctx("soap-demo"))


def test_empty_list_is_a_real_empty_list(wsdl: dict[str, zeep.Client]) -> None:
    body = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b'<ol:getCheckoutsResponse xmlns:ol="http://opaclink.example.jp/ws/circulation/1.0">'
        b"<return><checkoutList/></return></ol:getCheckoutsResponse></soap:Body></soap:Envelope>"
    )
    data = parse_response(wsdl["soap-kita"], "getCheckouts", body)
    assert map_loans(OPS["soap-kita"].loans, data, ctx("soap-kita")) == []


def test_missing_list_wrapper_is_upstream_changed() -> None:
    with pytest.raises(UpstreamChanged):
        map_loans(OPS["soap-kita"].loans, {"return": {}}, ctx("soap-kita"))


def test_utc_instant_is_dated_in_the_library_zone() -> None:
    # OPAC-Link reports a check-out at 08:30 JST as 23:30Z the day before
    instant = datetime(2026, 11, 16, 23, 30, tzinfo=UTC)
    assert as_date(instant, "loaned_on", TZ) == date(2026, 11, 17)
    assert as_date("2026/12/31", "expires_on", TZ, open_ended=True) == date(2026, 12, 31)
    assert as_date("9999/12/31", "expires_on", TZ, open_ended=True) is None
    with pytest.raises(UpstreamChanged):
        as_date("someday", "due_on", TZ)


def test_overdue_follows_today_when_no_code_says_so(wsdl: dict[str, zeep.Client]) -> None:
    data = answer(wsdl, "soap-demo", "loans", "GetIssues-ok")
    loans = map_loans(OPS["soap-demo"].loans, data, ctx("soap-demo", today=date(2100, 1, 1)))
    assert all(l.overdue for l in loans)
