"""The shared HTML kit (adapters/html.py): decoding, clean text, selectors with
fallbacks, mapped values, and lists that are never empty by accident."""

from __future__ import annotations

import codecs
from datetime import date
from pathlib import Path

import pytest

from adapters import html
from core.errors import UpstreamChanged

ROOT = Path(__file__).resolve().parents[2]
WO_LOANS = ROOT / "fixtures" / "wo" / "pages" / "lend.html"

PAGE = "<html><head><title>t</title></head><body><p class='ttl'>①～ 山口県立図書館の貸出</p></body></html>"


# ------------------------------------------------------------------ decoding
@pytest.mark.parametrize("header", ["text/html; charset=Shift_JIS", "text/html; charset=\"shift-jis\"",
                                    "text/html;charset=Windows-31J"])
def test_the_header_charset_decodes_and_shift_jis_is_windows_31j(header: str) -> None:
    d = html.decode_page(PAGE.encode("cp932"), header)
    assert "①～ 山口県立図書館" in d.text
    assert d.source == "header"


@pytest.mark.parametrize("meta", ['<meta charset="EUC-JP">',
                                  '<meta http-equiv="Content-Type" content="text/html; charset=euc-jp">'])
def test_the_meta_charset_decodes_when_the_header_says_nothing(meta: str) -> None:
    page = PAGE.replace("<head>", "<head>" + meta).replace("①～ ", "")
    d = html.decode_page(page.encode("euc_jp"), "text/html")
    assert "山口県立図書館" in d.text
    assert (d.charset.lower(), d.source) == ("euc-jp", "meta")


def test_the_header_wins_over_the_meta() -> None:
    page = PAGE.replace("<head>", '<head><meta charset="EUC-JP">')
    assert "①～" in html.decode(page.encode("cp932"), "text/html; charset=Shift_JIS")


def test_a_bom_is_honoured_and_dropped() -> None:
    d = html.decode_page(codecs.BOM_UTF8 + PAGE.encode(), None)
    assert d.text.startswith("<html>") and d.source == "bom"
    d16 = html.decode_page(codecs.BOM_UTF16_LE + PAGE.encode("utf-16-le"), None)
    assert d16.text == PAGE


def test_an_unknown_declared_charset_is_treated_as_undeclared() -> None:
    d = html.decode_page(PAGE.encode(), "text/html; charset=x-nonesuch")
    assert d.text == PAGE and d.source == "utf-8"


def test_an_undeclared_utf8_page_is_read_as_utf8() -> None:
    d = html.decode_page(PAGE.encode(), None)
    assert d.text == PAGE and d.source == "utf-8"


def test_an_undeclared_shift_jis_page_is_detected_not_mojibake() -> None:
    """#16.10: a real Shift_JIS loans page with its charset declaration removed."""
    raw = WO_LOANS.read_bytes()
    declared = html.decode(raw, "text/html; charset=Shift_JIS")
    stripped = declared.replace("charset=Shift_JIS", "").encode("cp932")
    assert html.declared_charset(stripped, "text/html") is None
    d = html.decode_page(stripped, "text/html")
    assert d.source == "detected"
    assert "\ufffd" not in d.text
    assert d.text == declared.replace("charset=Shift_JIS", "")


def test_an_undeclared_page_that_cannot_be_recognised_is_upstream_changed() -> None:
    noise = bytes(range(128, 256)) * 20
    with pytest.raises(UpstreamChanged, match="declares no charset"):
        html.decode(noise, "text/html", what="loan list")


def test_a_wrong_declaration_is_rescued_by_a_confident_detection() -> None:
    raw = WO_LOANS.read_bytes()  # Shift_JIS, served with a UTF-8 header
    declared = html.decode(raw, "text/html; charset=Shift_JIS")
    d = html.decode_page(raw.replace(b"charset=Shift_JIS", b"charset=UTF-8"), "text/html; charset=UTF-8")
    assert d.source == "detected" and "\ufffd" not in d.text
    assert d.text == declared.replace("charset=Shift_JIS", "charset=UTF-8")


def test_a_few_stray_bytes_in_a_declared_page_are_tolerated_more_are_502() -> None:
    page = PAGE.encode()
    one = page.replace("山口".encode(), b"\xff")
    assert html.decode(one, "text/html; charset=UTF-8").count("\ufffd") == 1
    noise = page + bytes(range(128, 256)) * 20
    with pytest.raises(UpstreamChanged, match="not in the UTF-8 it declares"):
        html.decode(noise, "text/html; charset=UTF-8")


# ------------------------------------------------------------------ text
def test_clean_collapses_nbsp_fullwidth_spaces_and_line_breaks() -> None:
    t = html.tree("<p>  山口\u3000県立&nbsp;&nbsp;図書館\r\n\t<br>本館\u200b </p>")
    assert html.text(t.css_first("p")) == "山口 県立 図書館 本館"
    assert html.clean(None) == "" and html.clean(" \u3000 ") == ""
    assert html.text(None) == ""


# ------------------------------------------------------------------ selectors
ROWS = html.tree("""
<table id="tbl"><tbody>
  <tr><td class="new_id">A1</td><td class="ttl">One</td><td class="blank"> </td></tr>
  <tr><td class="old_id">A2</td><td class="ttl">Two</td></tr>
</tbody></table><p class="none">no items</p>""")


def test_selector_fallbacks_are_tried_in_order() -> None:
    first, second = ROWS.css("tr")
    assert html.required_text(first, ("td.old_id", "td.new_id"), "item id") == "A1"
    assert html.required_text(second, ("td.old_id", "td.new_id"), "item id") == "A2"
    assert html.optional_text(first, ("td.nope", "td.ttl")) == "One"
    assert html.optional_text(first, "td.blank") is None
    assert html.optional(first, ("td.nope",)) is None
    assert html.optional(None, "td") is None


def test_a_missing_required_field_names_screen_and_field() -> None:
    row = ROWS.css_first("tr")
    with pytest.raises(UpstreamChanged) as exc:
        html.required(row, ("td.c_rsvno", "td.rsv_no"), "hold number", screen="hold list", library="wo-x")
    assert exc.value.detail == "the hold list page changed: no hold number (looked for td.c_rsvno | td.rsv_no)"
    assert exc.value.library == "wo-x"
    assert exc.value.status == 502 and exc.value.code == "upstream_changed"
    with pytest.raises(UpstreamChanged, match="hold list page changed: title is blank"):
        html.Screen("hold list").required_text(row, "td.blank", "title")


def test_attributes() -> None:
    t = html.tree('<a class="r" href="/x?bibid=1">x</a><a class="e" href="">y</a>')
    assert html.required_attr(t, ("a.nope", "a.r"), "href", "record link") == "/x?bibid=1"
    assert html.optional_attr(t, "a.e", "href") is None
    with pytest.raises(UpstreamChanged, match="record link has no href"):
        html.required_attr(t, "a.e", "href", "record link")


# ------------------------------------------------------------------ lists
def test_rows_from_the_first_selector_that_matches() -> None:
    assert [html.text(r.css_first("td")) for r in html.rows(ROWS, ("tr.row", "#tbl tr"), "loans", empty=False)] \
        == ["A1", "A2"]


def test_no_rows_is_empty_only_when_the_page_says_so() -> None:
    blank = html.tree("<table id='tbl'></table><p class='none'>貸出中の資料はありません</p>")
    assert html.rows(blank, "#tbl tr", "loans", empty=lambda: html.optional(blank, "p.none") is not None) == []
    with pytest.raises(UpstreamChanged, match="no loans and no notice that there are none"):
        html.rows(blank, "#tbl tr", "loans", empty=False, screen="loan list")


def test_a_list_shorter_than_the_page_count_is_drift() -> None:
    assert len(html.rows(ROWS, "#tbl tr", "loans", empty=False, count=2)) == 2
    with pytest.raises(UpstreamChanged, match="2 loans where the page says 3"):
        html.Screen("loan list").rows(ROWS, "#tbl tr", "loans", empty=False, count=3)


# ------------------------------------------------------------------ mapped values
def test_mapped_dates_and_numbers() -> None:
    s = html.Screen("loan list", library="lib")
    assert s.required_date("令和8年12月1日(火)", "due date") == date(2026, 12, 1)
    assert s.optional_date("  ", "loan date") is None and s.optional_date(None, "loan date") is None
    assert s.expiry_date("9999/12/31", "card expiry") is None
    assert s.expiry_date("2027/03/31", "card expiry") == date(2027, 3, 31)
    with pytest.raises(UpstreamChanged) as exc:
        s.required_date("someday", "due date")
    assert exc.value.detail == "the loan list page changed: unreadable due date 'someday'"
    assert exc.value.library == "lib"
    with pytest.raises(UpstreamChanged, match="unreadable loan date"):
        s.optional_date("2026/13/40", "loan date")
    assert html.optional_int("１，２３４件") == 1234 and html.optional_int("なし") is None
    assert s.required_int("第3位", "position") == 3
    with pytest.raises(UpstreamChanged, match="unreadable position"):
        s.required_int("", "position")
    assert s.mapped(int, "7", "count") == 7
    with pytest.raises(UpstreamChanged, match="unreadable count 'x'"):
        s.mapped(int, "x", "count")


def test_the_kit_passes_mypy_strict(tmp_path: Path) -> None:
    mypy_api = pytest.importorskip("mypy.api")
    out, err, status = mypy_api.run(["--strict", "--ignore-missing-imports", "--follow-imports=silent",
                                     "--cache-dir", str(tmp_path / "mypy-cache"), str(ROOT / "adapters" / "html.py")])
    assert status == 0, out + err
