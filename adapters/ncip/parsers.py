"""Pure parsers of NCIP 2.02 responses into the API's models.

Every function takes the bytes (or the lenient tree of ``xml.read_message``) and
returns values; no network.  Tolerance is deliberate: elements are looked up by
local name wherever they appear (responders put ``BibliographicRecordId`` under
``BibliographicId``, under ``Ext/BibliographicDescription`` or nowhere; ``BlockOrTrap``
after ``UserId`` although the schema wants it before), Problems are read at message
level and inside the response element (``problems.py``), partial Problems (type only)
and empty messages are handled.  What cannot be understood is ``UpstreamChanged``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

from adapters import html
from adapters.ncip.ids import encode_id, hold_id
from adapters.ncip.problems import (
    NcipProblem,
    already_cancelled,
    norm,
    parse_problem,
    parse_response,
    problem_error,
    raise_for_problems,
    renewal_reason,
)
from adapters.ncip.xml import find, findall, first_text, parse_ncip_date, text
from core.errors import NotFound, UpstreamChanged, UpstreamError
from core.models import Hold, Holding, Loan, Record, UpstreamLending

# ------------------------------------------------------------------ vocabularies (data)
#: RequestStatusType of a hold (RequestType Hold/Recall/...) → Hold.status
HOLD_STATUS: dict[str, str] = {
    "pending": "submitted", "submitted": "submitted", "request received": "submitted",
    "in process": "waiting", "waiting": "waiting", "in queue": "waiting",
    "in transit": "in_transit", "being fetched": "in_transit", "shipped": "in_transit",
    "available for pickup": "ready", "ready for pickup": "ready", "ready": "ready",
    "expired": "expired", "pickup expired": "expired",
    "cancelled": "cancelled", "canceled": "cancelled", "cannot fulfill request": "cancelled",
}
#: RequestStatusType of a lending request (RequestType Loan) → ISO 18626 status
LENDING_STATUS: dict[str, str] = {
    "pending": "requested", "submitted": "requested", "request received": "requested", "requested": "requested",
    "in process": "accepted", "accepted": "accepted", "will supply": "accepted",
    "in transit": "shipped", "shipped": "shipped", "item shipped": "shipped",
    "available for pickup": "ready_for_pickup", "ready for pickup": "ready_for_pickup", "received": "ready_for_pickup",
    "checked out": "loaned", "loaned": "loaned", "on loan": "loaned",
    "returned": "returned", "checked in": "returned",
    "completed": "completed", "filled": "completed", "closed": "completed",
    "cancelled": "cancelled", "canceled": "cancelled",
    "cannot fulfill request": "unfilled", "unfilled": "unfilled", "not supplied": "unfilled", "expired": "unfilled",
}
#: CirculationStatus → Holding.status
CIRCULATION_STATUS: dict[str, str] = {
    "available on shelf": "available", "available": "available", "available for pickup": "reserved",
    "on loan": "on_loan", "circulation status undefined": "unknown", "in transit between library locations": "in_preparation",
    "in process": "in_preparation", "on order": "in_preparation", "being processed": "in_preparation",
    "on hold": "reserved", "recalled": "reserved", "not available": "in_library_only",
    "in library use only": "in_library_only", "library use only": "in_library_only",
    "lost": "missing", "missing": "missing", "claimed returned": "missing",
    "closed": "closed", "not circulating": "in_library_only",
}
#: RequestType values the adapter treats as consortium lending, not holds
LENDING_REQUEST_TYPES = frozenset({"loan"})
#: BlockOrTrapType values that stop renewals
RENEWAL_BLOCKS = frozenset({"block renewal"})


# ------------------------------------------------------------------ LookupUser
#: the children NCIP 2.02 allows in a LookupUserResponse (and BlockOrTrap, which some
#: toolkits put there out of place); any other element is drift, not "nothing listed"
LOOKUP_USER_CHILDREN = frozenset({
    "ResponseHeader", "Problem", "UserId", "UserFiscalAccount", "LoanedItemsCount", "LoanedItem",
    "RequestedItemsCount", "RequestedItem", "UserOptionalFields", "Ext", "BlockOrTrap",
})
@dataclass
class Fine:
    amount: str
    currency: str | None
    description: str | None
    accrued: str | None = None  # AccrualDate as sent (ISO instant)


@dataclass
class UserInfo:
    user_id: str
    agency: str | None
    name: str | None
    emails: list[str]
    blocks: list[str]
    balance: str | None
    currency: str | None
    fines: list[Fine]
    valid_to: date | None
    loans: list[Loan] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    lendings: list[UpstreamLending] = field(default_factory=list)


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")


def _name(uof: etree._Element | None) -> str | None:
    pni = find(uof, "NameInformation/PersonalNameInformation")
    if pni is None:
        return first_text(uof, ["NameInformation/OrganizationNameInformation/OrganizationName"])
    unstructured = text(pni, "UnstructuredPersonalUserName")
    s = find(pni, "StructuredPersonalUserName")
    if s is None:
        return unstructured
    given, surname = text(s, "GivenName"), text(s, "Surname")
    parts = [surname, given] if _CJK.search((surname or "") + (given or "")) else [given, surname]
    return " ".join(p for p in parts if p) or unstructured


def _bib_record_id(el: etree._Element) -> str | None:
    return first_text(el, [
        "BibliographicId/BibliographicRecordId/BibliographicRecordIdentifier",
        "Ext/BibliographicDescription/BibliographicRecordId/BibliographicRecordIdentifier",
        "BibliographicDescription/BibliographicRecordId/BibliographicRecordIdentifier",
        "ItemOptionalFields/BibliographicDescription/BibliographicRecordId/BibliographicRecordIdentifier",
        "BibliographicId/BibliographicItemId/BibliographicItemIdentifier",
        "Ext/BibliographicDescription/BibliographicItemId/BibliographicItemIdentifier",
    ])


def _title_author(el: etree._Element) -> tuple[str | None, str | None]:
    title = first_text(el, ["Title", "Ext/BibliographicDescription/Title", "BibliographicDescription/Title",
                            "ItemOptionalFields/BibliographicDescription/Title"])
    author = first_text(el, ["Ext/BibliographicDescription/Author", "BibliographicDescription/Author",
                             "ItemOptionalFields/BibliographicDescription/Author", "Author"])
    return title, author


def _date(value: str | None, tz: ZoneInfo, library: str | None, what: str) -> date | None:
    """An xs:dateTime field as a calendar date (blank → None); unreadable → UpstreamChanged
    naming the element (``adapters.html.mapped``)."""
    if value is None:
        return None
    return html.mapped(lambda v: parse_ncip_date(v, tz), value, what, screen="NCIP answer", library=library)


def parse_loaned_item(el: etree._Element, *, library: str, tz: ZoneInfo, today: date,
                      blocks: list[str] = ()) -> Loan:  # type: ignore[assignment]
    item_value = text(el, "ItemId/ItemIdentifierValue")
    if not item_value:
        raise UpstreamChanged("LoanedItem without ItemIdentifierValue", library=library)
    agency = text(el, "ItemId/AgencyId")
    due = _date(first_text(el, ["DateDue", "Ext/DateDue"]), tz, library, "DateDue")
    if due is None:
        # IndeterminateLoanPeriodFlag: no due date — the API needs one; treat as far future
        if find(el, "IndeterminateLoanPeriodFlag") is None:
            raise UpstreamChanged(f"LoanedItem {item_value} without DateDue", library=library)
        due = date(9999, 12, 31)
    title, author = _title_author(el)
    overdue = due < today
    not_permitted = find(el, "Ext/RenewalNotPermitted") is not None or find(el, "RenewalNotPermitted") is not None
    reason: str | None = None
    if not_permitted:
        p = find(el, "Ext/Problem")
        reason = renewal_reason(parse_problem(p)) if p is not None else ("overdue" if overdue else "other")
    elif any(norm(b) in RENEWAL_BLOCKS for b in blocks):
        not_permitted, reason = True, "other"
    count = first_text(el, ["Ext/RenewalCount", "RenewalCount"])
    return Loan(
        id=encode_id(item_value, agency),
        library=library,
        record_id=_bib_record_id(el) or item_value,
        title=title or "",
        author=author,
        item_id=item_value,
        loaned_on=_date(first_text(el, ["Ext/DateCheckedOut", "DateCheckedOut"]), tz, library, "DateCheckedOut"),
        due_on=due,
        overdue=overdue,
        renewable=not not_permitted,
        not_renewable_reason=reason if not_permitted else None,
        times_renewed=int(count) if count and count.isdigit() else None,
        branch=first_text(el, ["Ext/Location/LocationName/LocationNameInstance/LocationNameValue"]),
    )


def _request_ref(el: etree._Element) -> tuple[str, str | None, str]:
    """(identifier, agency, kind) of a RequestedItem: the RequestId if given, else the ItemId."""
    rid = text(el, "RequestId/RequestIdentifierValue")
    if rid:
        return rid, text(el, "RequestId/AgencyId"), "request"
    iid = text(el, "ItemId/ItemIdentifierValue")
    if iid:
        return iid, text(el, "ItemId/AgencyId"), "item"
    raise UpstreamChanged("RequestedItem without RequestId or ItemId")


def _instant(value: str | None) -> str | None:
    """An ISO 8601 instant with offset, or None (for the gateway's lending history)."""
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))  # noqa: FURB162 - py3.10 compat
    except ValueError:
        return None
    return dt.isoformat() if dt.tzinfo else None


def parse_requested_item(el: etree._Element, *, library: str, tz: ZoneInfo,
                         pickup_names: dict[str, str] | None = None) -> Hold | UpstreamLending:
    value, agency, kind = _request_ref(el)
    rtype = norm(text(el, "RequestType"))
    status_word = text(el, "RequestStatusType")
    title, author = _title_author(el)
    record_id = _bib_record_id(el) or text(el, "ItemId/ItemIdentifierValue") or value
    pickup = text(el, "PickupLocation")
    if rtype in LENDING_REQUEST_TYPES:
        status = LENDING_STATUS.get(norm(status_word))
        extra: dict[str, Any] = {"pickup_location": pickup, "upstream_status": status_word,
                                 "requested_at": _instant(text(el, "DatePlaced"))}
        if status is None:
            status = "requested"
            extra["unmapped_status"] = True
        return UpstreamLending(upstream_id=hold_id(value, agency, kind), status=status, title=title or "",
                               record_id=record_id, extra={k: v for k, v in extra.items() if v is not None})
    status = HOLD_STATUS.get(norm(status_word))
    if status is None:
        raise UpstreamChanged(f"unknown RequestStatusType {status_word!r}", library=library)
    pos = first_text(el, ["HoldQueuePosition", "Ext/HoldQueuePosition"])
    if pickup and pickup_names:
        pickup = pickup_names.get(pickup, pickup)
    return Hold(
        id=hold_id(value, agency, kind),
        library=library,
        record_id=record_id,
        title=title or "",
        author=author,
        status=status,  # type: ignore[arg-type]
        position=int(pos) if pos and pos.isdigit() and int(pos) > 0 else None,
        pickup_branch=pickup,
        placed_on=_date(text(el, "DatePlaced"), tz, library, "DatePlaced"),
        expires_on=_date(first_text(el, ["Ext/NeedBeforeDate", "NeedBeforeDate"]), tz, library, "NeedBeforeDate"),
        ready_until=_date(first_text(el, ["PickupExpiryDate"]), tz, library, "PickupExpiryDate"),
        cancelable=status in ("submitted", "waiting", "in_transit", "ready"),
    )


def parse_lookup_user(raw: bytes | str, *, library: str, tz: ZoneInfo, today: date, context: str = "session",
                      pickup_names: dict[str, str] | None = None) -> UserInfo:
    resp = parse_response(raw, "LookupUserResponse", library=library)
    raise_for_problems(resp, context=context, library=library)
    body = resp.body
    assert body is not None
    uid = text(body, "UserId/UserIdentifierValue") or text(body, "UserOptionalFields/UserId/UserIdentifierValue")
    if not uid:
        raise UpstreamChanged("LookupUserResponse without UserId", library=library)
    unknown = sorted({etree.QName(c).localname for c in body if isinstance(c.tag, str)} - LOOKUP_USER_CHILDREN)
    if unknown:
        # a renamed LoanedItem / RequestedItem would otherwise read as "no loans"
        raise UpstreamChanged(f"LookupUserResponse with unknown elements {', '.join(unknown)}", library=library)
    uof = find(body, "UserOptionalFields")
    # BlockOrTrap is read wherever it is (some toolkits put it after UserId, out of order)
    blocks = [t for t in (text(b, "BlockOrTrapType") for b in body.iter("BlockOrTrap")) if t]
    emails = []
    for addr in findall(uof, "UserAddressInformation"):
        data = text(addr, "ElectronicAddress/ElectronicAddressData")
        etype = norm(text(addr, "ElectronicAddress/ElectronicAddressType"))
        if data and ("@" in data or etype in ("mailto", "email", "e-mail", "mailserver")):
            emails.append(data.removeprefix("mailto:"))
    fines = []
    balance = currency = None
    for acct in findall(body, "UserFiscalAccount"):
        balance = text(acct, "AccountBalance/MonetaryValue") or balance
        currency = text(acct, "AccountBalance/CurrencyCode") or currency
        for det in acct.iter("AccountDetails"):
            fti = find(det, "FiscalTransactionInformation")
            if fti is None:
                continue
            fines.append(Fine(text(fti, "Amount/MonetaryValue") or "0", text(fti, "Amount/CurrencyCode"),
                              text(fti, "FiscalTransactionDescription"), _instant(text(det, "AccrualDate"))))
    valid_to = [d for d in (_date(text(p, "ValidToDate"), tz, library, "ValidToDate")
                            for p in findall(uof, "UserPrivilege")) if d]
    info = UserInfo(
        user_id=uid, agency=text(body, "UserId/AgencyId"), name=_name(uof), emails=emails, blocks=blocks,
        balance=balance, currency=currency, fines=fines, valid_to=min(valid_to) if valid_to else None,
    )
    info.loans = [parse_loaned_item(li, library=library, tz=tz, today=today, blocks=blocks)
                  for li in findall(body, "LoanedItem")]
    for ri in findall(body, "RequestedItem"):
        parsed = parse_requested_item(ri, library=library, tz=tz, pickup_names=pickup_names)
        (info.lendings if isinstance(parsed, UpstreamLending) else info.holds).append(parsed)
    return info


# ------------------------------------------------------------------ RenewItem
@dataclass(frozen=True)
class Renewal:
    item_id: str
    due_on: date | None
    renewal_count: int | None


def parse_renew_item(raw: bytes | str, *, library: str, tz: ZoneInfo) -> Renewal:
    """A RenewItemResponse; raises the typed error of its Problem (NotRenewable, ...)."""
    resp = parse_response(raw, "RenewItemResponse", library=library)
    raise_for_problems(resp, context="renew", library=library)
    body = resp.body
    assert body is not None
    if find(body, "Pending") is not None:
        raise UpstreamError("the renewal is pending at the library", library=library)
    item = text(body, "ItemId/ItemIdentifierValue")
    if not item:
        raise UpstreamChanged("RenewItemResponse without ItemId", library=library)
    due = _date(first_text(body, ["DateDue", "ItemOptionalFields/DateDue", "DateForReturn"]), tz, library, "DateDue")
    count = text(body, "RenewalCount")
    return Renewal(item, due, int(count) if count and count.isdigit() else None)


# ------------------------------------------------------------------ RequestItem / Cancel
@dataclass(frozen=True)
class RequestResult:
    request_id: str | None
    request_agency: str | None
    item_id: str | None
    item_agency: str | None
    request_type: str | None
    status: str | None
    title: str | None
    author: str | None
    record_id: str | None
    position: int | None

    @property
    def opaque_id(self) -> str:
        if self.request_id and self.request_id != "-1":
            return hold_id(self.request_id, self.request_agency, "request")
        if self.item_id:
            return hold_id(self.item_id, self.item_agency, "item")
        raise UpstreamChanged("RequestItemResponse without RequestId or ItemId")


def parse_request_item(raw: bytes | str, *, library: str, context: str = "session") -> RequestResult:
    resp = parse_response(raw, "RequestItemResponse", library=library)
    raise_for_problems(resp, context=context, library=library)
    body = resp.body
    assert body is not None
    rid = text(body, "RequestId/RequestIdentifierValue")
    iid = text(body, "ItemId/ItemIdentifierValue")
    if not rid and not iid:
        raise UpstreamChanged("RequestItemResponse without RequestId or ItemId", library=library)
    pos = first_text(body, ["Ext/HoldQueuePosition", "HoldQueuePosition"])
    bd = find(body, "ItemOptionalFields/BibliographicDescription")
    return RequestResult(
        request_id=rid, request_agency=text(body, "RequestId/AgencyId"),
        item_id=iid, item_agency=text(body, "ItemId/AgencyId"),
        request_type=text(body, "RequestType"),
        status=first_text(body, ["Ext/RequestStatusType", "RequestStatusType"]),
        title=text(bd, "Title"), author=text(bd, "Author"),
        record_id=first_text(bd, ["BibliographicRecordId/BibliographicRecordIdentifier"]) if bd is not None else None,
        position=int(pos) if pos and pos.isdigit() and int(pos) > 0 else None,
    )


def parse_cancel_request_item(raw: bytes | str, *, library: str) -> str:
    """Returns the identifier echoed back (RequestId or ItemId value)."""
    resp = parse_response(raw, "CancelRequestItemResponse", library=library)
    if resp.problems and already_cancelled(resp.problems[0]):
        # Cancelling twice: the hold no longer exists for the patron (as on every other
        # adapter: 404 not_found), not a conflict with a state the patron could change.
        p = resp.problems[0]
        raise NotFound(p.redacted().detail or "the request is already cancelled", library=library, **p.fields())
    raise_for_problems(resp, context="session", library=library)
    body = resp.body
    assert body is not None
    ident = text(body, "RequestId/RequestIdentifierValue") or text(body, "ItemId/ItemIdentifierValue")
    if not ident:
        raise UpstreamChanged("CancelRequestItemResponse without RequestId or ItemId", library=library)
    return ident


def parse_update_request_item(raw: bytes | str, *, library: str) -> str | None:
    """An UpdateRequestItemResponse; returns the ItemId echoed back (None if absent)."""
    resp = parse_response(raw, "UpdateRequestItemResponse", library=library)
    raise_for_problems(resp, context="session", library=library)
    return text(resp.body, "ItemId/ItemIdentifierValue")


# ------------------------------------------------------------------ LookupAgency
@dataclass(frozen=True)
class Agency:
    agency_id: str
    name: str | None
    locations: tuple[str, ...]
    address: str | None = None


def parse_lookup_agency(raw: bytes | str, *, library: str | None = None) -> Agency:
    """Agency name and its pickup locations (``Ext/LocationName/LocationNameInstance``,
    the convention of XC NCIP toolkits and VuFind's driver)."""
    resp = parse_response(raw, "LookupAgencyResponse", library=library)
    raise_for_problems(resp, context="public", library=library)
    body = resp.body
    assert body is not None
    aid = text(body, "AgencyId")
    if not aid:
        raise UpstreamChanged("LookupAgencyResponse without AgencyId", library=library)
    locations = []
    for inst in body.iterfind("Ext/LocationName/LocationNameInstance"):
        v = text(inst, "LocationNameValue")
        if v and v not in locations:
            locations.append(v)
    return Agency(
        agency_id=aid,
        name=first_text(body, ["OrganizationNameInformation/OrganizationName"]),
        locations=tuple(locations),
        address=first_text(body, ["AgencyAddressInformation/PhysicalAddress/UnstructuredAddress/UnstructuredAddressData"]),
    )


# ------------------------------------------------------------------ LookupItem / LookupItemSet
def _holding(info: etree._Element, default_location: str | None, *, tz: ZoneInfo, library: str | None) -> Holding:
    iof = find(info, "ItemOptionalFields")
    status_word = text(iof, "CirculationStatus") or text(info, "CirculationStatus")
    status = CIRCULATION_STATUS.get(norm(status_word), "unknown")
    branch = (first_text(iof, ["Location/LocationName/LocationNameInstance/LocationNameValue"])
              or default_location or "")
    return Holding(
        branch=branch,
        status=status,  # type: ignore[arg-type]
        call_number=first_text(iof, ["ItemDescription/CallNumber"]),
        due_on=_date(first_text(info, ["DateDue", "ItemOptionalFields/DateDue"]), tz, library, "DateDue"),
    )


def parse_lookup_item(raw: bytes | str, *, library: str | None = None, tz: ZoneInfo) -> tuple[str | None, Holding]:
    """(title, holding) of one item."""
    resp = parse_response(raw, "LookupItemResponse", library=library)
    raise_for_problems(resp, context="public", library=library)
    body = resp.body
    assert body is not None
    title = text(body, "ItemOptionalFields/BibliographicDescription/Title")
    return title, _holding(body, None, tz=tz, library=library)


def parse_lookup_item_set(raw: bytes | str, *, library: str, tz: ZoneInfo) -> list[Record]:
    """One Record per BibInformation (with holdings); a BibInformation Problem of an
    unknown record is skipped; all-unknown → NotFound."""
    resp = parse_response(raw, "LookupItemSetResponse", library=library)
    raise_for_problems(resp, context="public", library=library)
    body = resp.body
    assert body is not None
    records: list[Record] = []
    bib_problems: list[NcipProblem] = []
    for bib in body.iterfind("BibInformation"):
        ps = [parse_problem(p) for p in bib.findall("Problem")]
        if ps:
            bib_problems += ps
            continue
        bd = find(bib, "BibliographicDescription")
        if bd is None:
            bd = find(bib, "HoldingsSet/BibliographicDescription")
        rid = (text(bib, "BibliographicId/BibliographicRecordId/BibliographicRecordIdentifier")
               or text(bd, "BibliographicRecordId/BibliographicRecordIdentifier"))
        isbn = None
        for bii in list(bib.iterfind("BibliographicId/BibliographicItemId")) + list(findall(bd, "BibliographicItemId")):
            if norm(text(bii, "BibliographicItemIdentifierCode")) in ("isbn", "") and text(bii, "BibliographicItemIdentifier"):
                isbn = text(bii, "BibliographicItemIdentifier")
                break
        holdings = []
        for hs in bib.iterfind("HoldingsSet"):
            loc = first_text(hs, ["Location/LocationName/LocationNameInstance/LocationNameValue"])
            for info in hs.iterfind("ItemInformation"):
                if info.find("Problem") is not None:
                    continue
                holdings.append(_holding(info, loc, tz=tz, library=library))
        title = text(bd, "Title")
        if not rid or not title:
            raise UpstreamChanged("BibInformation without record id or title", library=library)
        records.append(Record(
            id=rid, title=title, author=text(bd, "Author"), publisher=text(bd, "Publisher"),
            published=text(bd, "PublicationDate"), isbn=isbn, holdings=holdings,
        ))
    if not records and bib_problems:
        raise problem_error(bib_problems[0], context="public", library=library)
    return records
