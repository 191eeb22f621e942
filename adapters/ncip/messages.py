"""Builders of the NCIP 2.02 initiation messages the adapter sends.

Each function returns the bytes of one complete ``NCIPMessage``, with elements in
schema order; ``tests/adapters/ncip/test_schema.py`` validates every one of them
against the official XSD.  Scheme URIs are the NCIP 2.0 implementation-profile
schemes where the standard names one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adapters.ncip.xml import Builder, E, header, id_element

SCHEME_BASE = "http://www.niso.org/ncip/v1_0/imp1/schemes/"
S_AUTH_INPUT = SCHEME_BASE + "authenticationinputtype/authenticationinputtype.scm"
S_USER_ELEMENT = "http://www.niso.org/ncip/v1_0/schemes/userelementtype/userelementtype.scm"
S_ITEM_ELEMENT = "http://www.niso.org/ncip/v1_0/schemes/itemelementtype/itemelementtype.scm"
S_AGENCY_ELEMENT = "http://www.niso.org/ncip/v1_0/schemes/agencyelementtype/agencyelementtype.scm"
S_REQUEST_TYPE = SCHEME_BASE + "requesttype/requesttype.scm"
S_REQUEST_SCOPE = SCHEME_BASE + "requestscopetype/requestscopetype.scm"
S_BIB_ITEM_CODE = SCHEME_BASE + "bibliographicitemidentifiercode/bibliographicitemidentifiercode.scm"

USER_ELEMENTS_PROFILE = ("Name Information", "User Address Information", "User Privilege", "Block Or Trap")
ITEM_ELEMENTS = ("Bibliographic Description", "Circulation Status", "Item Description", "Location")


@dataclass(frozen=True)
class Header:
    """From/To agency of every message (the library's configuration)."""

    from_agency: str
    to_agency: str


def _envelope(message: str, hdr: Header) -> Builder:
    b = Builder(message)
    header(b.body, "InitiationHeader", hdr.from_agency, hdr.to_agency)
    return b


def _user(b: Builder, user_id: str, agency: str | None) -> None:
    id_element(b.body, "User", user_id, agency)


def lookup_user_login(hdr: Header, card_number: str, password: str, *,
                      card_type: str = "Barcode Id", password_type: str = "PIN") -> bytes:
    """LookupUser authenticated by card number + password (the login)."""
    b = _envelope("LookupUser", hdr)
    for value, kind in ((card_number, card_type), (password, password_type)):
        ai = E(b.body, "AuthenticationInput")
        E(ai, "AuthenticationInputData", value)
        E(ai, "AuthenticationDataFormatType", "text/plain")
        E(ai, "AuthenticationInputType", kind, scheme=S_AUTH_INPUT)
    E(b.body, "UserElementType", "Name Information", scheme=S_USER_ELEMENT)
    return b.tobytes()


def lookup_user(hdr: Header, user_id: str, agency: str | None = None, *, elements: Sequence[str] = (),
                loans: bool = False, requests: bool = False, fiscal: bool = False) -> bytes:
    b = _envelope("LookupUser", hdr)
    _user(b, user_id, agency)
    for el in elements:
        E(b.body, "UserElementType", el, scheme=S_USER_ELEMENT)
    if loans:
        E(b.body, "LoanedItemsDesired")
    if requests:
        E(b.body, "RequestedItemsDesired")
    if fiscal:
        E(b.body, "UserFiscalAccountDesired")
    return b.tobytes()


def renew_item(hdr: Header, user_id: str, user_agency: str | None, item_id: str, item_agency: str | None) -> bytes:
    b = _envelope("RenewItem", hdr)
    _user(b, user_id, user_agency)
    id_element(b.body, "Item", item_id, item_agency)
    return b.tobytes()


def request_item(hdr: Header, user_id: str, user_agency: str | None, *, record_id: str | None = None,
                 record_agency: str | None = None, isbn: str | None = None, item_id: str | None = None,
                 item_agency: str | None = None, request_type: str = "Hold",
                 pickup_location: str | None = None, need_before: str | None = None,
                 request_id: str | None = None, request_agency: str | None = None) -> bytes:
    """RequestItem for a bibliographic record (title-level) or one item."""
    b = _envelope("RequestItem", hdr)
    _user(b, user_id, user_agency)
    if record_id or isbn:
        bid = E(b.body, "BibliographicId")
        if record_id:
            brid = E(bid, "BibliographicRecordId")
            E(brid, "BibliographicRecordIdentifier", record_id)
            E(brid, "AgencyId", record_agency or hdr.to_agency)
        else:
            bii = E(bid, "BibliographicItemId")
            E(bii, "BibliographicItemIdentifier", isbn)
            E(bii, "BibliographicItemIdentifierCode", "ISBN", scheme=S_BIB_ITEM_CODE)
    if item_id:
        id_element(b.body, "Item", item_id, item_agency)
    if not (record_id or isbn or item_id):
        raise ValueError("a RequestItem needs a record, an ISBN or an item")
    if request_id:
        id_element(b.body, "Request", request_id, request_agency)
    E(b.body, "RequestType", request_type, scheme=S_REQUEST_TYPE)
    E(b.body, "RequestScopeType", "Item" if item_id and not record_id else "Bibliographic Item",
      scheme=S_REQUEST_SCOPE)
    if need_before:
        E(b.body, "NeedBeforeDate", need_before)
    if pickup_location:
        E(b.body, "PickupLocation", pickup_location)
    E(b.body, "ItemElementType", "Bibliographic Description", scheme=S_ITEM_ELEMENT)
    return b.tobytes()


def cancel_request_item(hdr: Header, user_id: str, user_agency: str | None, *, request_id: str | None = None,
                        request_agency: str | None = None, item_id: str | None = None,
                        item_agency: str | None = None, request_type: str = "Hold") -> bytes:
    b = _envelope("CancelRequestItem", hdr)
    _user(b, user_id, user_agency)
    if request_id:
        id_element(b.body, "Request", request_id, request_agency)
        if item_id:
            id_element(b.body, "Item", item_id, item_agency)
    elif item_id:
        id_element(b.body, "Item", item_id, item_agency)
    else:
        raise ValueError("a CancelRequestItem needs a RequestId or an ItemId")
    E(b.body, "RequestType", request_type, scheme=S_REQUEST_TYPE)
    return b.tobytes()


def update_request_item(hdr: Header, request_id: str, request_agency: str | None, *,
                        old_pickup: str | None, new_pickup: str) -> bytes:
    """UpdateRequestItem by RequestId: replace the PickupLocation."""
    b = _envelope("UpdateRequestItem", hdr)
    id_element(b.body, "Request", request_id, request_agency)
    if old_pickup:
        E(E(b.body, "DeleteRequestFields"), "PickupLocation", old_pickup)
    E(E(b.body, "AddRequestFields"), "PickupLocation", new_pickup)
    E(b.body, "ItemElementType", "Bibliographic Description", scheme=S_ITEM_ELEMENT)
    return b.tobytes()


def lookup_agency(hdr: Header, agency_id: str) -> bytes:
    b = _envelope("LookupAgency", hdr)
    E(b.body, "AgencyId", agency_id)
    for el in ("Organization Name Information", "Agency Address Information"):
        E(b.body, "AgencyElementType", el, scheme=S_AGENCY_ELEMENT)
    return b.tobytes()


def lookup_item(hdr: Header, item_id: str, agency: str | None = None) -> bytes:
    b = _envelope("LookupItem", hdr)
    id_element(b.body, "Item", item_id, agency)
    for el in ITEM_ELEMENTS:
        E(b.body, "ItemElementType", el, scheme=S_ITEM_ELEMENT)
    return b.tobytes()


def lookup_item_set(hdr: Header, *, record_ids: Sequence[str] = (), isbns: Sequence[str] = (),
                    agency: str | None = None) -> bytes:
    """LookupItemSet by bibliographic record ids or by ISBNs (one of the two)."""
    if bool(record_ids) == bool(isbns):
        raise ValueError("give record ids or ISBNs")
    b = _envelope("LookupItemSet", hdr)
    for rid in record_ids:
        brid = E(E(b.body, "BibliographicId"), "BibliographicRecordId")
        E(brid, "BibliographicRecordIdentifier", rid)
        E(brid, "AgencyId", agency or hdr.to_agency)
    for isbn in isbns:
        bii = E(E(b.body, "BibliographicId"), "BibliographicItemId")
        E(bii, "BibliographicItemIdentifier", isbn)
        E(bii, "BibliographicItemIdentifierCode", "ISBN", scheme=S_BIB_ITEM_CODE)
    for el in ITEM_ELEMENTS:
        E(b.body, "ItemElementType", el, scheme=S_ITEM_ELEMENT)
    return b.tobytes()


#: every builder with sample arguments — the schema test validates each one
def all_samples() -> dict[str, bytes]:
    h = Header("OPACGW", "CPL")
    return {
        "LookupUser-login": lookup_user_login(h, "52", "ncip-pass"),
        "LookupUser-profile": lookup_user(h, "52", "CPL", elements=USER_ELEMENTS_PROFILE),
        "LookupUser-loans": lookup_user(h, "52", "CPL", elements=("Block Or Trap",), loans=True),
        "LookupUser-all": lookup_user(h, "52", None, elements=USER_ELEMENTS_PROFILE, loans=True, requests=True,
                                      fiscal=True),
        "RenewItem": renew_item(h, "52", "CPL", "3", "CPL"),
        "RequestItem-record": request_item(h, "52", "CPL", record_id="1000000001", pickup_location="中央図書館",
                                           need_before="2026-12-31T00:00:00+09:00"),
        "RequestItem-isbn": request_item(h, "52", None, isbn="9784591069110"),
        "RequestItem-item": request_item(h, "52", "CPL", item_id="7", item_agency="CPL"),
        "RequestItem-lending": request_item(h, "52", "CPL", record_id="1000000001", record_agency="FFL",
                                            request_type="Loan", pickup_location="藤ヶ丘図書館",
                                            request_id="gw-1", request_agency="OPACGW"),
        "CancelRequestItem-request": cancel_request_item(h, "52", "CPL", request_id="12", request_agency="CPL"),
        "CancelRequestItem-item": cancel_request_item(h, "52", "CPL", item_id="7", item_agency="CPL"),
        "CancelRequestItem-loan": cancel_request_item(h, "52", "CPL", request_id="13", request_type="Loan"),
        "UpdateRequestItem": update_request_item(h, "12", "CPL", old_pickup="中央図書館", new_pickup="東分館"),
        "UpdateRequestItem-no-old": update_request_item(h, "12", None, old_pickup=None, new_pickup="東分館"),
        "LookupAgency": lookup_agency(h, "CPL"),
        "LookupItem": lookup_item(h, "1", "CPL"),
        "LookupItemSet-records": lookup_item_set(h, record_ids=["1000000001", "1000000002"]),
        "LookupItemSet-isbn": lookup_item_set(h, isbns=["9784591069110"]),
    }
