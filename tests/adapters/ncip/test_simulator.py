"""The NCIP responder simulator (``fixtures/ncip``) against other systems' requests.

Each sample request of the NCIP tester (``../shared/conformance/ncip/requests-nciptester/``,
read in place, skipped when absent) is POSTed to a fresh responder; the answer must be
schema-valid, of the right type, and a Problem exactly for the deliberately bad ones.
VuFind's sample requests get typed answers too.  Then the responder's own rules:
invalid XML never crashes it, HTTP auth, consortium lending moving on over time and by
the admin endpoints, ILL notifications.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.ncip import messages as M
from adapters.ncip.xml import message_body, read_message, shared_dir, validation_errors
from fixtures.ncip import LIBRARIES, create_app

SHARED = shared_dir()
TESTER = SHARED / "conformance/ncip/requests-nciptester" if SHARED else None
VUFIND_REQUESTS = SHARED / "conformance/ncip/vufind-xcncip2/request" if SHARED else None
needs_shared = pytest.mark.skipif(TESTER is None or not TESTER.is_dir(),
                                  reason="../shared/conformance/ncip is not on this machine")

# sample → (response element, ProblemType or None)
EXPECTED: dict[str, tuple[str, str | None]] = {
    "CancelRequestItem.xml": ("CancelRequestItemResponse", None),
    "ItemReceived.xml": ("ItemReceivedResponse", None),
    "ItemRequested.xml": ("ItemRequestedResponse", None),
    "ItemShipped.xml": ("ItemShippedResponse", None),
    "LookupAgency.xml": ("LookupAgencyResponse", "Unknown Agency"),  # a template: agency "123", to "NO-FIXME2"
    "LookupUser-fail.xml": ("LookupUserResponse", "Unknown User"),
    "LookupUser-oneline-dummy.xml": ("LookupUserResponse", "Unknown User"),
    "LookupUser.xml": ("LookupUserResponse", None),
    "RenewItem.xml": ("RenewItemResponse", None),
    "RequestItem-missing-cardnumber.xml": ("RequestItemResponse", "Invalid Message Syntax Error"),
    "RequestItem-old.xml": ("RequestItemResponse", None),
    "RequestItem-unknown-item.xml": ("RequestItemResponse", "Unknown Item"),
    "RequestItem-unknown-user.xml": ("RequestItemResponse", "Unknown User"),
    "RequestItem.xml": ("RequestItemResponse", None),
}


def post(client: Any, raw: bytes) -> tuple[int, Any, bytes]:
    r = client.post("/ncip", data=raw, content_type="application/xml")
    return r.status_code, read_message(r.data), r.data


def problem_types(root: Any) -> list[str]:
    return [p.findtext("ProblemType") for p in root.iter("Problem")]


@pytest.fixture
def client() -> Any:
    return create_app("ncip-consortium").test_client()


def test_registry_exports() -> None:
    assert LIBRARIES == ("ncip-consortium",)
    with pytest.raises(KeyError):
        create_app("elsewhere")


@needs_shared
def test_every_tester_sample_is_listed() -> None:
    assert TESTER is not None
    assert sorted(p.name for p in TESTER.glob("*.xml")) == sorted(EXPECTED)


@needs_shared
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tester_sample_gets_a_valid_answer_of_the_right_type(name: str, client: Any) -> None:
    assert TESTER is not None
    status, root, data = post(client, (TESTER / name).read_bytes())
    kind, problem = EXPECTED[name]
    assert status == 200
    assert validation_errors(data) == []
    body = message_body(root)
    assert body is not None and body.tag == kind
    assert problem_types(root) == ([problem] if problem else [])


@needs_shared
def test_tester_samples_get_real_answers(client: Any) -> None:
    assert TESTER is not None
    _, root, _ = post(client, (TESTER / "LookupUser.xml").read_bytes())
    assert root.findtext("LookupUserResponse/UserId/UserIdentifierValue") == "51"
    _, root, _ = post(client, (TESTER / "RenewItem.xml").read_bytes())
    assert root.findtext("RenewItemResponse/ItemId/ItemIdentifierValue") == "1"
    assert root.findtext("RenewItemResponse/RenewalCount") == "1"
    # RequestItem with the requester's RequestId FFL/123: idempotent, answers that request
    _, root, _ = post(client, (TESTER / "RequestItem.xml").read_bytes())
    assert root.findtext("RequestItemResponse/RequestId/RequestIdentifierValue") == "123"
    assert root.findtext("RequestItemResponse/RequestId/AgencyId") == "FFL"
    # header echoed back the other way round
    assert root.findtext("RequestItemResponse/ResponseHeader/FromAgencyId/AgencyId") == "CPL"
    # the ILL life of FFL/123: shipped, then received → available for pickup
    state = client.application.config["ncip_state"]
    assert state.requests[("FFL", "123")].status == "In Process"
    post(client, (TESTER / "ItemShipped.xml").read_bytes())
    assert state.requests[("FFL", "123")].status == "In Transit"
    post(client, (TESTER / "ItemReceived.xml").read_bytes())
    assert state.requests[("FFL", "123")].status == "Available For Pickup"
    _, root, _ = post(client, (TESTER / "CancelRequestItem.xml").read_bytes())
    assert state.requests[("FFL", "3")].status == "Cancelled"
    _, root, _ = post(client, (TESTER / "CancelRequestItem.xml").read_bytes())
    assert problem_types(root) == ["Request Not Cancellable"]


@needs_shared
@pytest.mark.parametrize("name", ["CancelRequestItemRequest.xml", "LookupAgencyRequest.xml", "LookupUserRequest.xml",
                                  "RenewItemRequest.xml", "RequestItemRequest.xml"])
def test_vufind_requests_get_valid_typed_answers(name: str, client: Any) -> None:
    assert VUFIND_REQUESTS is not None
    raw = (VUFIND_REQUESTS / name).read_bytes()
    status, root, data = post(client, raw)
    assert status == 200 and validation_errors(data) == []
    request_kind = read_message(raw)[0].tag
    assert message_body(root).tag == request_kind + "Response"
    # their patrons and agencies are not ours: every one is a well-formed refusal
    assert problem_types(root)


@pytest.mark.parametrize("garbage", [b"", b"not xml at all", b"<NCIPMessage><LookupUser>", b"<html/>"])
def test_garbage_is_a_problem_never_a_crash(garbage: bytes, client: Any) -> None:
    r = client.post("/ncip", data=garbage, content_type="application/xml")
    assert r.status_code == 400
    assert problem_types(read_message(r.data)) == ["Invalid Message Syntax Error"]


def test_unsupported_and_schema_invalid_messages(client: Any) -> None:
    hdr = M.Header("OPACGW", "CPL")
    raw = M.lookup_user(hdr, "52").replace(b"LookupUser>", b"CheckOutItem>")
    _, root, data = post(client, raw)
    assert problem_types(root) == ["Unsupported Service"] and validation_errors(data) in ([], None)
    bad = M.renew_item(hdr, "52", "CPL", "3", "CPL").replace(b"<ns1:UserId>", b"<ns1:UserIdx>").replace(
        b"</ns1:UserId>", b"</ns1:UserIdx>")
    _, root, data = post(client, bad)
    assert message_body(root).tag == "RenewItemResponse"
    assert problem_types(root) == ["Invalid Message Syntax Error"]


def test_without_the_xsd_validation_is_skipped(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import adapters.ncip.xml as X

    monkeypatch.setattr(X, "schema_path", lambda: None)
    assert X.validation_errors(b"<x/>") is None
    _, root, _ = post(client, M.lookup_user(M.Header("OPACGW", "CPL"), "52"))
    assert root.findtext("LookupUserResponse/UserId/UserIdentifierValue") == "52"


def test_http_auth_when_configured() -> None:
    app = create_app("ncip-consortium")
    app.config["NCIP_AUTH"] = ("bearer", "s3cret")
    c = app.test_client()
    msg = M.lookup_agency(M.Header("OPACGW", "CPL"), "CPL")
    r = c.post("/ncip", data=msg, content_type="application/xml")
    assert r.status_code == 401 and problem_types(read_message(r.data)) == ["User Authentication Failed"]
    r = c.post("/ncip", data=msg, content_type="application/xml", headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and read_message(r.data).findtext("LookupAgencyResponse/AgencyId") == "CPL"


def test_authentication_input_refusals_look_the_same(client: Any) -> None:
    hdr = M.Header("OPACGW", "CPL")
    _, wrong_pw, _ = post(client, M.lookup_user_login(hdr, "52", "nope"))
    _, no_user, _ = post(client, M.lookup_user_login(hdr, "9999", "nope"))
    assert problem_types(wrong_pw) == problem_types(no_user) == ["User Authentication Failed"]
    _, ok, _ = post(client, M.lookup_user_login(hdr, "52", "ncip-pass"))
    assert ok.findtext("LookupUserResponse/UserId/UserIdentifierValue") == "52"


def test_lending_requests_move_on_over_time_and_by_admin(client: Any) -> None:
    app = client.application
    app.config["NCIP_STEP_SECONDS"] = 0  # no automatic progress: drive it by hand
    hdr = M.Header("OPACGW", "CPL")
    state = app.config["ncip_state"]
    _, root, _ = post(client, M.request_item(hdr, "52", "CPL", record_id=state.bibs[3].id, request_type="Loan",
                                             pickup_location="藤ヶ丘図書館"))
    rid = root.findtext("RequestItemResponse/RequestId/RequestIdentifierValue")
    agency = root.findtext("RequestItemResponse/RequestId/AgencyId")
    assert root.findtext("RequestItemResponse/Ext/RequestStatusType") == "Pending"
    seen = []
    for _ in range(4):
        seen.append(client.post(f"/ncip/_admin/requests/{agency}/{rid}/advance").get_json()["status"])
    assert seen == ["In Process", "In Transit", "Available For Pickup", "Checked Out"]
    r = client.post(f"/ncip/_admin/requests/{agency}/{rid}/status", json={"status": "Completed"})
    assert r.get_json()["status"] == "Completed"
    assert client.post(f"/ncip/_admin/requests/{agency}/{rid}/status", json={"status": "Lost"}).status_code == 400
    listed = next(x for x in client.get("/ncip/_admin/requests").get_json() if x["id"] == rid)
    assert [h["status"] for h in listed["history"]] == ["Pending", "In Process", "In Transit",
                                                         "Available For Pickup", "Checked Out", "Completed"]
    # and by themselves, one step per NCIP_STEP_SECONDS, up to Available For Pickup
    from datetime import timedelta

    _, root, _ = post(client, M.request_item(hdr, "52", "CPL", record_id=state.bibs[4].id, request_type="Loan",
                                             pickup_location="駅前分室"))
    rid2 = root.findtext("RequestItemResponse/RequestId/RequestIdentifierValue")
    req = state.requests[(agency, rid2)]
    req.history[-1] = (req.history[-1][0], req.history[-1][1] - timedelta(seconds=600))
    app.config["NCIP_STEP_SECONDS"] = 60
    state.tick(60)
    assert req.status == "Available For Pickup"


def test_blocked_patron_and_duplicate_hold(client: Any) -> None:
    hdr = M.Header("OPACGW", "CPL")
    state = client.application.config["ncip_state"]
    _, root, _ = post(client, M.request_item(hdr, "53", "CPL", record_id=state.bibs[0].id))
    assert problem_types(root) == ["User Blocked"]
    _, root, _ = post(client, M.lookup_user(hdr, "53", fiscal=True, elements=("Block Or Trap",)))
    assert root.findtext("LookupUserResponse/UserFiscalAccount/AccountBalance/MonetaryValue") == "-300"
    post(client, M.request_item(hdr, "52", "CPL", record_id=state.bibs[0].id))
    _, root, _ = post(client, M.request_item(hdr, "52", "CPL", record_id=state.bibs[0].id))
    assert problem_types(root) == ["Duplicate Request"]


def test_pages_directory_has_the_saved_answer() -> None:
    page = Path(__file__).resolve().parents[3] / "fixtures/ncip/pages/lookup-user.xml"
    assert read_message(page.read_bytes()).findtext("LookupUserResponse/UserId/UserIdentifierValue") == "CARD-SCRUBBED"


def test_a_handler_bug_is_a_problem_not_a_500(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import fixtures.ncip.responder as R

    def broken(*_: Any) -> None:
        raise KeyError("boom")

    monkeypatch.setitem(R.HANDLERS, "LookupAgency", broken)
    status, root, data = post(client, M.lookup_agency(M.Header("OPACGW", "CPL"), "CPL"))
    assert status == 200 and problem_types(root) == ["Temporary Processing Failure"]
    assert validation_errors(data) in ([], None)


def test_update_request_item_changes_the_pickup_location(client: Any) -> None:
    hdr = M.Header("OPACGW", "CPL")
    state = client.application.config["ncip_state"]
    _, root, data = post(client, M.update_request_item(hdr, "1002", "CPL", old_pickup="中央図書館",
                                                       new_pickup="東分館"))
    assert problem_types(root) == [] and validation_errors(data) in ([], None)
    assert state.requests[("CPL", "1002")].pickup == "東分館"
    _, root, _ = post(client, M.update_request_item(hdr, "1002", "CPL", old_pickup=None, new_pickup="月面分館"))
    assert problem_types(root) == ["Unknown Pickup Location"]
    _, root, _ = post(client, M.update_request_item(hdr, "4711", "CPL", old_pickup=None, new_pickup="東分館"))
    assert problem_types(root) == ["Unknown Request"]


def test_lookup_item_with_its_borrower(client: Any) -> None:
    from zoneinfo import ZoneInfo

    from adapters.ncip.parsers import parse_lookup_item
    from adapters.ncip.xml import Builder, E, id_element

    b = Builder("LookupItem")
    id_element(b.body, "Item", "5", "CPL")
    E(b.body, "ItemElementType", "Circulation Status")
    E(b.body, "CurrentBorrowerDesired")
    _, root, data = post(client, b.tobytes())
    assert validation_errors(data) in ([], None)
    assert root.findtext("LookupItemResponse/ItemTransaction/CurrentBorrower/UserId/UserIdentifierValue") == "52"
    title, holding = parse_lookup_item(data, tz=ZoneInfo("Asia/Tokyo"))
    assert title and holding.status == "on_loan" and holding.due_on is not None
    _, root, _ = post(client, M.lookup_item(M.Header("OPACGW", "CPL"), "4242"))
    assert problem_types(root) == ["Unknown Item"]
