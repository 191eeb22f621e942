"""#16.9: layout drift on a list page is 502 ``upstream_changed``, never an empty or a
shorter list.

Every saved list page of every screen-scraping family is parsed three ways:

- as saved: it lists something (so the drift cases below are meaningful);
- with every ``class`` and ``id`` renamed (``x`` → ``drift-x``): ``UpstreamChanged``;
- empty list pages (the portal's own "no items" notice, or a count of 0) still parse to
  an empty list, so the rule is "empty only when positively recognised".

The XML families (NCIP, SOAP) have no classes; their analogue, every element of a list
answer renamed, is covered in the same way below.

The winj cases read whatever pages ``fixtures/winj/pages`` holds (the winj rebuild
re-captures them); a case the current winj parser still fails is marked xfail(strict),
so the fix shows up as an XPASS to unmark.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapters import html
from core.errors import UpstreamChanged

ROOT = Path(__file__).resolve().parents[2]
WO_PAGES = ROOT / "fixtures" / "wo" / "pages"
WINJ_PAGES = ROOT / "fixtures" / "winj" / "pages"
TODAY = date(2026, 11, 25)
TZ = ZoneInfo("Asia/Tokyo")
_ATTR = re.compile(r"""(\b(?:class|id)\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)


def rename_classes_and_ids(page: str) -> str:
    """Every class name and id of the page prefixed with ``drift-``."""
    def sub(m: re.Match[str]) -> str:
        renamed = " ".join("drift-" + token for token in m.group(3).split())
        return f"{m.group(1)}{m.group(2)}{renamed}{m.group(2)}"

    return _ATTR.sub(sub, page)


_ROW = re.compile(r"<(tr|li|dl|div)\b[^>]*>", re.IGNORECASE)


def rename_row_classes(page: str) -> str:
    """Only the classes and ids of the rows (``tr``, ``li``, ``dl``, ``div``) renamed: the
    table is still there, its rows no longer look like rows."""
    return _ROW.sub(lambda m: rename_classes_and_ids(m.group(0)), page)


def items(result: Any) -> list[Any]:
    """The listed things of a parser's answer (a list, or an object holding one)."""
    if isinstance(result, list):
        return result
    for name in ("records", "items", "rows", "entries", "lines"):
        value = getattr(result, name, None)
        if isinstance(value, list):
            return value
    raise AssertionError(f"no list in {type(result).__name__}")


@dataclass(frozen=True)
class Case:
    family: str
    path: Path
    parse: Callable[[str], Any]
    decode: Callable[[bytes], str]
    #: the saved page's name within its family ("reserve_list.html", "account/shelves.html")
    name: str = ""

    @property
    def id(self) -> str:
        return f"{self.family}:{self.path.relative_to(ROOT / 'fixtures')}"


# ------------------------------------------------------------------ wo
def _wo_cases() -> tuple[list[Case], list[Case]]:
    from adapters.wo import parse as P

    def dec(raw: bytes) -> str:
        return P.decode(raw, "text/html; charset=Shift_JIS")

    lists = {
        "lend.html": lambda t: P.parse_loans(t, "yamaguchi-pref", TODAY),
        "rsv.html": lambda t: P.parse_holds(t, "yamaguchi-pref"),
        "enet_list.html": P.parse_enet_requests,
        "srh_rslt.html": lambda t: P.parse_search(t, 1),
        "ext_result.html": P.parse_renewal_results,
    }
    empty = {
        "enet_empty.html": P.parse_enet_requests,
        "srh_none.html": lambda t: P.parse_search(t, 1),
    }
    return ([Case("wo", WO_PAGES / n, f, dec) for n, f in lists.items()],
            [Case("wo", WO_PAGES / n, f, dec) for n, f in empty.items()])


# ------------------------------------------------------------------ winj
#: per drift test, the winj list screens whose current parser gives an empty or a shorter
#: list instead of 502 (the winj rebuild fixes them, then an XPASS says to drop the name)
WINJ_KNOWN: dict[str, set[str]] = {
    "all": set(),
    "rows": set(),
}


def _winj_cases() -> tuple[list[Case], list[Case]]:
    from adapters.winj import account_pages as A
    from adapters.winj import pages as P

    def dec(raw: bytes) -> str:
        return P.decode_html(raw, None)

    lists: dict[str, Callable[[str], Any]] = {
        "lend_list.html": lambda t: P.parse_loans(t, "winj", TODAY),
        "reserve_list.html": lambda t: P.parse_holds(t, "winj"),
        "reserve_list_after.html": lambda t: P.parse_holds(t, "winj"),
        "search_list.html": lambda t: P.parse_search(t, 1),
        "account/history.html": A.parse_history,
        "account/messages_all.html": lambda t: A.parse_messages(t, TZ),
        "account/shelves.html": A.parse_shelves,
        "account/shelf_items.html": A.parse_shelf_items,
        "account/sdi_list.html": A.parse_sdi_list,
    }
    empty: dict[str, Callable[[str], Any]] = {
        "search_empty.html": lambda t: P.parse_search(t, 1),
        "account/shelves_empty.html": A.parse_shelves,
        "account/sdi_empty.html": A.parse_sdi_list,
    }
    cases: tuple[list[Case], list[Case]] = ([], [])
    for out, table in zip(cases, (lists, empty), strict=True):
        for name, fn in table.items():
            sub, _, leaf = name.rpartition("/")
            for library_dir in sorted((WINJ_PAGES / sub).iterdir() if (WINJ_PAGES / sub).is_dir() else []):
                path = library_dir / leaf
                if library_dir.is_dir() and path.exists():
                    out.append(Case("winj", path, fn, dec, name=name))
    return cases


WO_LISTS, WO_EMPTY = _wo_cases()
WINJ_LISTS, WINJ_EMPTY = _winj_cases()
LISTS = WO_LISTS + WINJ_LISTS
EMPTY = WO_EMPTY + WINJ_EMPTY


def _params(cases: list[Case], drift: str | None = None) -> list[Any]:
    def marks(c: Case) -> list[Any]:
        if drift and c.family == "winj" and c.name in WINJ_KNOWN[drift]:
            return [pytest.mark.xfail(strict=True, reason="winj gives a shorter list; its rebuild fixes it (#16.9)")]
        return []

    return [pytest.param(c, id=c.id, marks=marks(c)) for c in cases]


def test_every_family_has_list_pages() -> None:
    assert {c.family for c in LISTS} == {"wo", "winj"}
    assert len(WINJ_LISTS) >= 4 * 4, [c.id for c in WINJ_LISTS]


@pytest.mark.parametrize("case", _params(LISTS))
def test_the_saved_list_page_lists_something(case: Case) -> None:
    assert items(case.parse(case.decode(case.path.read_bytes())))


@pytest.mark.parametrize("case", _params(LISTS, "all"))
def test_renamed_classes_and_ids_are_upstream_changed(case: Case) -> None:
    page = case.decode(case.path.read_bytes())
    drifted = rename_classes_and_ids(page)
    assert drifted != page
    with pytest.raises(UpstreamChanged):
        result = case.parse(drifted)
        pytest.fail(f"drifted page parsed to {len(items(result))} items instead of 502")


@pytest.mark.parametrize("case", _params(LISTS, "rows"))
def test_renamed_row_classes_are_upstream_changed_or_the_same_list(case: Case) -> None:
    """Rows whose own class or id changed: either the parser does not need those names
    (the same list) or it is 502; never fewer items."""
    page = case.decode(case.path.read_bytes())
    before = items(case.parse(page))
    drifted = rename_row_classes(page)
    try:
        after = items(case.parse(drifted))
    except UpstreamChanged:
        return
    assert after == before


@pytest.mark.parametrize("case", _params(EMPTY))
def test_a_recognised_empty_list_is_empty(case: Case) -> None:
    assert items(case.parse(case.decode(case.path.read_bytes()))) == []


# ------------------------------------------------------------------ shorter lists (wo prints a count)
@pytest.mark.parametrize("name,parse", [
    ("lend.html", lambda t: __import__("adapters.wo.parse", fromlist=["x"]).parse_loans(t, "y", TODAY)),
    ("rsv.html", lambda t: __import__("adapters.wo.parse", fromlist=["x"]).parse_holds(t, "y")),
    ("enet_list.html", lambda t: __import__("adapters.wo.parse", fromlist=["x"]).parse_enet_requests(t)),
])
def test_wo_a_row_that_no_longer_matches_is_not_a_shorter_list(name: str, parse: Callable[[str], Any]) -> None:
    """One row's markup drifted (here: it moved out of the table body): the screen's own
    count no longer matches the rows found, and that is 502, not one item fewer."""
    page = html.decode((WO_PAGES / name).read_bytes(), "text/html; charset=Shift_JIS")
    rows = re.findall(r"<tr class=\"wo_row\".*?</tr>", page, re.DOTALL)
    assert len(rows) >= 2
    fewer = page.replace(rows[-1], "", 1)
    with pytest.raises(UpstreamChanged, match="where the page says"):
        parse(fewer)


# ------------------------------------------------------------------ XML families
def _rename_elements(raw: bytes, below: str, only: str | None = None) -> bytes:
    """Every element under the first ``below`` element (by local name) renamed ``<name>X``,
    or only the elements called ``only``; namespaces kept."""
    from lxml import etree

    root = etree.fromstring(raw)
    top = next(el for el in root.iter() if isinstance(el.tag, str) and etree.QName(el).localname == below)
    for el in top.iterdescendants():
        if not isinstance(el.tag, str):
            continue
        q = etree.QName(el)
        if only is None or q.localname == only:
            el.tag = etree.QName(q.namespace, q.localname + "X") if q.namespace else q.localname + "X"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


NCIP_USER = ROOT / "fixtures" / "ncip" / "pages" / "lookup-user.xml"


def _ncip_lists(raw: bytes) -> list[Any]:
    from adapters.ncip.parsers import parse_lookup_user

    info = parse_lookup_user(raw, library="ncip-consortium", tz=TZ, today=TODAY)
    return [*info.loans, *info.holds, *info.lendings]


@pytest.mark.parametrize("only", [None, "LoanedItem", "RequestedItem"])
def test_ncip_renamed_list_elements_are_upstream_changed(only: str | None) -> None:
    raw = NCIP_USER.read_bytes()
    assert _ncip_lists(raw)
    with pytest.raises(UpstreamChanged):
        _ncip_lists(_rename_elements(raw, "LookupUserResponse", only))


SOAP_LISTS = [  # library, role, envelope, the repeated element
    ("soap-demo", "loans", "GetIssues-ok", "Issue"),
    ("soap-demo", "holds", "GetReservations-ok", "Reservation"),
    ("soap-kita", "loans", "getCheckouts-ok", "entry"),
    ("soap-kita", "holds", "getReservations-ok", "entry"),
]


def _soap_list(library: str, role: str, raw: bytes) -> list[Any]:
    import zeep

    from adapters.soap.envelope import parse_response
    from adapters.soap.mapping import Context, SoapOptions, map_holds, map_loans
    from fixtures.soap import wsdl_path
    from gateway.config import sandbox_config

    lc = sandbox_config().libraries[library]
    ops = SoapOptions.model_validate(lc.options).operations
    op = getattr(ops, role)
    data = parse_response(zeep.Client(str(wsdl_path(library))), op.operation, raw)
    ctx = Context(library, TZ, {b.code: b.name for b in lc.branches if b.code}, {}, TODAY)
    return (map_loans if role == "loans" else map_holds)(op, data, ctx)


@pytest.mark.parametrize("library,role,name,item", SOAP_LISTS)
@pytest.mark.parametrize("every", [True, False], ids=["every-element", "list-item"])
def test_soap_renamed_list_elements_are_upstream_changed(library: str, role: str, name: str, item: str,
                                                         every: bool) -> None:
    raw = (ROOT / "fixtures" / "soap" / "envelopes" / library / f"{name}.xml").read_bytes()
    assert _soap_list(library, role, raw)
    body = raw.split(b"Body", 1)[1]
    assert f":{item}>".encode() in body or f"<{item}>".encode() in body, "the repeated element is named right"
    from lxml import etree

    response = next(etree.QName(el).localname for el in etree.fromstring(raw).iter()
                    if isinstance(el.tag, str) and etree.QName(el).localname.endswith("Response"))
    with pytest.raises(UpstreamChanged):
        _soap_list(library, role, _rename_elements(raw, response, None if every else item))
