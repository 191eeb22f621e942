"""SOAP 1.1 envelopes in and out, as pure functions over bytes (given a loaded WSDL).

``build_envelope`` lets zeep serialise the request element from keyword arguments
(zeep validates them against the WSDL's schema); ``parse_response`` turns a response
body into a plain dict of the *whole* response element — deliberately not zeep's
``client.service`` result, which unwraps single-child responses and would make the
configured paths depend on how many children a vendor's answer has.
``parse_fault`` reads a Fault (faultcode with its prefix dropped, faultstring, and the
detail as a dict of local names), whatever the HTTP status it came with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import zeep
from lxml import etree
from zeep.exceptions import Error as ZeepError
from zeep.helpers import serialize_object
from zeep.wsdl.utils import etree_to_string

from core.errors import UpstreamChanged

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True
)


@dataclass
class SoapFault(Exception):
    """A SOAP Fault as the upstream sent it (never shown to clients as is)."""

    code: str  # local part of faultcode, e.g. "RenewalRefused", "Client"
    string: str
    detail: dict[str, Any] = field(default_factory=dict)
    raw_code: str = ""

    def __str__(self) -> str:
        return f"{self.raw_code or self.code}: {self.string}"


def build_envelope(client: zeep.Client, operation: str, kwargs: dict[str, Any]) -> bytes:
    try:
        env = client.create_message(client.service, operation, **kwargs)
    except (TypeError, ZeepError) as exc:
        # the configured request paths no longer fit the vendor's schema
        raise UpstreamChanged(
            f"cannot build the {operation} request from the mapping: {exc}"
        ) from None
    return etree_to_string(env)


def _xml(content: bytes) -> etree._Element:
    try:
        root = etree.fromstring(content, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise UpstreamChanged(f"the answer is not XML ({exc})") from None
    if root.tag != f"{{{SOAP11_ENV}}}Envelope":
        raise UpstreamChanged(f"the answer is not a SOAP 1.1 envelope (root {root.tag!r})")
    return root


def _body(root: etree._Element) -> etree._Element:
    body = root.find(f"{{{SOAP11_ENV}}}Body")
    if body is None or len(body) == 0:
        raise UpstreamChanged("the SOAP envelope has an empty Body")
    return body


def element_to_dict(elem: etree._Element) -> Any:
    """Generic XML → dict by local names (for Fault details, which need no schema)."""
    children = [c for c in elem if isinstance(c.tag, str)]
    if not children:
        return (elem.text or "").strip()
    out: dict[str, Any] = {}
    for c in children:
        key = etree.QName(c).localname
        value = element_to_dict(c)
        if key in out:
            if not isinstance(out[key], list):
                out[key] = [out[key]]
            out[key].append(value)
        else:
            out[key] = value
    return out


def find_fault(content: bytes) -> SoapFault | None:
    """The Fault in a response, or None if the body holds an answer; bad XML is drift."""
    body = _body(_xml(content))
    fault = body.find(f"{{{SOAP11_ENV}}}Fault")
    if fault is None:
        return None
    raw_code = (fault.findtext("faultcode") or "").strip()
    detail_el = fault.find("detail")
    detail = element_to_dict(detail_el) if detail_el is not None else {}
    return SoapFault(
        code=raw_code.rsplit(":", 1)[-1],
        string=(fault.findtext("faultstring") or "").strip(),
        detail=detail if isinstance(detail, dict) else {},
        raw_code=raw_code,
    )


def looks_like_fault(content: bytes) -> bool:
    try:
        return find_fault(content) is not None
    except UpstreamChanged:
        return False


def parse_response(client: zeep.Client, operation: str, content: bytes) -> dict[str, Any]:
    """The response element of ``operation`` as a plain dict (zeep's types applied).

    Raises ``SoapFault`` for a Fault and ``UpstreamChanged`` for anything that is not the
    element the WSDL promises (wrong element, unknown children, bad values).
    """
    body = _body(_xml(content))
    fault = find_fault(content)
    if fault is not None:
        raise fault
    elem = body[0]
    try:
        expected = client.service._binding._operations[operation].output.body
    except KeyError:
        raise UpstreamChanged(f"the WSDL has no operation {operation!r}") from None
    if elem.tag != expected.qname.text:
        raise UpstreamChanged(
            f"{operation}: expected {expected.qname.localname}, got {etree.QName(elem).localname}"
        )
    try:
        value = expected.parse(elem, client.wsdl.types)
    except (ZeepError, ValueError, TypeError) as exc:
        raise UpstreamChanged(f"{operation}: the answer does not match the WSDL ({exc})") from None
    plain = serialize_object(value, dict)
    if not isinstance(plain, dict):
        raise UpstreamChanged(f"{operation}: the answer is not a structure")
    return Answer(plain, present=frozenset(_element_paths(elem)))


class Answer(dict):  # type: ignore[type-arg]
    """A response element as a dict, remembering which elements were present.

    zeep gives None both for an absent element and for an empty one (``<checkoutList/>``);
    ``present`` tells them apart, so an empty list wrapper is zero items, not drift.
    """

    def __init__(self, data: dict[str, Any], present: frozenset[str] = frozenset()) -> None:
        super().__init__(data)
        self.present = present


def _element_paths(elem: etree._Element, prefix: str = "") -> list[str]:
    out: list[str] = []
    for child in elem:
        if not isinstance(child.tag, str):
            continue
        path = prefix + etree.QName(child).localname
        out.append(path)
        out.extend(_element_paths(child, path + "."))
    return out
