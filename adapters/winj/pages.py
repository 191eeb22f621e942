"""Pure parsers of winj portal pages (bytes/str in, domain values out).

Selectors are the named constants below (a markup change is a one-line fix);
each parser raises ``UpstreamChanged`` when the page lacks what it must have —
never an empty list for a page it does not understand.  A page that says "no
rows" (該当件数は0件 / …はありません) is an empty list.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from dataclasses import dataclass, field
from datetime import date

from selectolax.lexbor import LexborHTMLParser as HTMLParser
from selectolax.lexbor import LexborNode as Node

from core.errors import UpstreamChanged
from core.models import CartItem, Hold, Holding, Loan, Record, RecordSummary, SearchResult
from mappers import MappingError
from mappers.bibline import parse_bibline
from mappers.dates import parse_date, parse_expiry, parse_optional_date
from mappers.status import hold_status, holding_status, renewal_reason

# ------------------------------------------------------------------ paths
LOGIN_PATH = "login.do"
LOGOUT_PATH = "logout.do"
MYLIBRARY_PATH = "mylibrary.do"
PASSWORD_PATH = "password-change.do"
LEND_LIST_PATH = "lend-list.do"
LEND_CONFIRM_PATH = "lend-extension-confirm.do"
LEND_EXEC_PATH = "lend-extension.do"
RESERVE_LIST_PATH = "reserve-list.do"
RESERVE_CANCEL_PATH = "reserve-cancel.do"
RESERVE_CHANGE_PATH = "reserve-change.do"
BASKET_PATH = "reserve-basket.do"
BASKET_ADD_PATH = "reserve-basket-add.do"
RESERVE_CONFIRM_PATH = "reserve-confirm.do"
SEARCH_FORM_PATH = "search.do"
SEARCH_PATH = "search-list.do"
DETAIL_PATH = "switch-detail.do"

# ------------------------------------------------------------------ selectors
SEL_HID = 'input[name="hid_session"]'
SEL_LOGIN_FORM = 'input[name="txt_usercd"]'
SEL_MAINTENANCE = "p.maintenance"
SEL_MESSAGE = "#message p"
SEL_ERROR = "p.error, span.error"
SEL_PAGE_TITLE = "#page-title"
SEL_CELL = "td.{}"  # a row's cell by class: SEL_CELL.format("item-id")
SEL_LINK = "a[href]"
SEL_TITLE_LINK = "a"  # inside a row's title cell
SEL_BIBLINE = ".bibline"

SEL_LEND_TABLE = "table#lend-list"
SEL_LEND_ROW = "tr.lend-row"
SEL_LEND_EMPTY = "p.empty"
SEL_LEND_COUNT = "#lend-count"
SEL_LEND_CHECK = 'input[name="chk_lend"]'
SEL_EXT_ROW = "table#extension-list tr.ext-row"
SEL_EXT_RESULT_ROW = "table#extension-result tr.ext-row"

SEL_RESERVE_TABLE = "table#reserve-list"
SEL_RESERVE_ROW = "tr.reserve-row"
SEL_RESERVE_COUNT = "#reserve-count"
SEL_RESERVE_CHECK = 'input[name="chk_reserve"]'
SEL_CANCEL_ROW = "table#cancel-list tr.cancel-row"
SEL_CHANGE_ROW = "table#change-list tr.change-row"

SEL_BASKET_COUNT = "#basket-count"
SEL_BASKET_ROW = "table#basket-list tr.basket-row"
SEL_BASKET_CHECK = 'input[name="chk_basket"]'
SEL_AREA_OPTION = 'select[name="cmb_area"] option'
SEL_CONTACT_OPTION = 'select[name="cmb_contact"] option'
SEL_CONFIRM_ROW = "table#confirm-list tr.confirm-row"
SEL_RESULT_ROW = "table#result-list tr.result-row"

SEL_HIT_COUNT = "#hit-count"
SEL_RESULT_ITEM = "ol#result-list li.result-item"
SEL_RESULT_TITLE = "a.title"
SEL_RESULT_ISBN = ".isbn"
SEL_SEARCH_EMPTY = "p.empty"  # 該当する資料はありません (no hits, or a page past the last)
SEL_DETAIL = "#detail"
SEL_DETAIL_TITLE = ".title"
SEL_BIBLIO_ROW = "table#biblio tr"
SEL_BIBLIO_LABEL = "th"
SEL_BIBLIO_VALUE = "td"
SEL_HOLDING_ROW = "table#holdings tr.holding-row"

# ------------------------------------------------------------------ texts
TXT_LOGIN_FAILED = "正しくありません"
TXT_RENEW_DONE = "貸出延長申込が完了しました"
TXT_RESERVE_DONE = "予約を行いました"
TXT_REASON = "理由:"
TXT_OVERDUE_BLOCK = "延滞本をお持ちの場合"
TXT_ALREADY_HELD = "既に予約済"
TXT_LIMIT = "上限"
TXT_CART_FULL = "予約かごが一杯"
TXT_CART_DUP = "既に予約かごに入っています"
TXT_BAD_EXPIRY = "予約有効期限が正しくありません"
TXT_CANCEL_DONE = "予約を取り消しました"
TXT_CHANGE_DONE = "予約内容を変更しました"
TXT_PW_DONE = ("パスワードを変更しました", "パスワードの変更を受け付けました")
TXT_NO_RECORD = "該当する資料はありません"
TXT_BAD_FLOW = "不正な画面遷移"
TXT_SYSTEM_ERROR = "システムエラー"

_BIBID = re.compile(r"[?&]bibid=([^&#]+)")
_DIGITS = re.compile(r"\d+")
_CHARSET_HDR = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-]+)", re.IGNORECASE)
_CHARSET_META = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([A-Za-z0-9_\-]+)", re.IGNORECASE)


# ------------------------------------------------------------------ decoding
def py_codec(charset: str) -> str:
    """Python codec for a declared charset: Shift_JIS pages are really cp932."""
    c = charset.strip().lower().replace("-", "_")
    return {"shift_jis": "cp932", "sjis": "cp932", "x_sjis": "cp932", "windows_31j": "cp932",
            "euc_jp": "euc_jp", "x_euc_jp": "euc_jp"}.get(c, c)


def declared_charset(content: bytes, content_type: str | None) -> str | None:
    if content_type:
        m = _CHARSET_HDR.search(content_type)
        if m:
            return m.group(1)
    meta = _CHARSET_META.search(content[:2048])
    return meta.group(1).decode("ascii") if meta else None


def decode_html(content: bytes, content_type: str | None) -> str:
    """Decode by the declared charset (Content-Type, else <meta charset>, else UTF-8)."""
    charset = declared_charset(content, content_type) or "UTF-8"
    try:
        return content.decode(py_codec(charset), errors="replace")
    except LookupError:
        return content.decode("utf-8", errors="replace")


def tree(html: str | bytes) -> HTMLParser:
    if isinstance(html, bytes):
        html = decode_html(html, None)
    return HTMLParser(html)


def clean(text: str | None) -> str:
    """Collapse whitespace (incl. full-width spaces) and trim."""
    return " ".join((text or "").replace("\u3000", " ").split())


def node_text(node: Node | None) -> str:
    return clean(node.text(separator=" ")) if node is not None else ""


def page_text(t: HTMLParser) -> str:
    body = t.body
    return node_text(body) if body is not None else ""


def message_lines(t: HTMLParser) -> list[str]:
    return [node_text(n) for n in t.css(SEL_MESSAGE) if node_text(n)]


def error_lines(t: HTMLParser) -> list[str]:
    return [node_text(n) for n in t.css(SEL_ERROR) if node_text(n)]


def hid_session(t: HTMLParser) -> str | None:
    n = t.css_first(SEL_HID)
    return n.attributes.get("value") if n is not None else None


def is_login_page(t: HTMLParser) -> bool:
    return t.css_first(SEL_LOGIN_FORM) is not None


def is_maintenance(t: HTMLParser) -> bool:
    return t.css_first(SEL_MAINTENANCE) is not None


def portal_error(t: HTMLParser) -> str | None:
    """The portal's own error page (bad hid_session, system error), else None."""
    for line in error_lines(t):
        if TXT_BAD_FLOW in line or TXT_SYSTEM_ERROR in line:
            return line
    return None


def login_error(t: HTMLParser) -> str | None:
    """The error line of a re-shown login form (wrong card or password)."""
    lines = error_lines(t)
    return lines[0] if lines else None


def _cell(row: Node, cls: str) -> Node | None:
    return row.css_first(SEL_CELL.format(cls))


def _cell_text(row: Node, cls: str) -> str:
    return node_text(_cell(row, cls))


def _bibid(node: Node | None) -> str | None:
    if node is None:
        return None
    a = node.css_first(SEL_LINK) if node.tag != "a" else node
    if a is None:
        return None
    m = _BIBID.search(a.attributes.get("href") or "")
    return urllib.parse.unquote(m.group(1)) if m else None


def _title_author(row: Node) -> tuple[str, str | None]:
    cell = _cell(row, "title")
    if cell is None:
        raise UpstreamChanged("a row without its title cell")
    a = cell.css_first(SEL_TITLE_LINK)
    title = node_text(a) if a is not None else node_text(cell)
    author = None
    bl = cell.css_first(SEL_BIBLINE)
    if bl is not None and node_text(bl):
        try:
            author = parse_bibline(node_text(bl), title=title).author
        except MappingError:
            author = None
    return title, author


def _date(text: str, what: str) -> date:
    try:
        return parse_date(text)
    except MappingError as exc:
        raise UpstreamChanged(f"unreadable {what}: {text!r}") from exc


def _int(text: str) -> int | None:
    m = _DIGITS.search(unicodedata.normalize("NFKC", text or ""))
    return int(m.group(0)) if m else None


# ------------------------------------------------------------------ loans
@dataclass(frozen=True)
class LendRow:
    index: str  # the chk_lend value (session-relative)
    loan: Loan


def parse_lend_rows(html: str, library: str, today: date) -> list[LendRow]:
    """借りている資料: every row with its session-relative index."""
    t = tree(html)
    table = t.css_first(SEL_LEND_TABLE)
    if table is None:
        if t.css_first(SEL_LEND_EMPTY) is not None and t.css_first(SEL_LEND_COUNT) is not None:
            return []
        raise UpstreamChanged("no loan table on 借りている資料", library=library)
    rows = []
    for row in table.css(SEL_LEND_ROW):
        item_id = _cell_text(row, "item-id")
        if not item_id:
            raise UpstreamChanged("a loan row without its 資料番号", library=library)
        title, author = _title_author(row)
        record_id = _bibid(_cell(row, "title")) or item_id
        due = _date(_cell_text(row, "due-date"), "返却期限日")
        words = _cell_text(row, "state")
        overdue = due < today or "延滞" in words
        reason: str | None = None
        if overdue:
            reason = "overdue"
        elif words.strip():
            reason = renewal_reason(words)
        chk = row.css_first(SEL_LEND_CHECK)
        index = (chk.attributes.get("value") or "") if chk is not None else ""
        if not index:
            reason = reason or "other"
        loaned = _cell_text(row, "lend-date")
        loan = Loan(
            id=item_id, library=library, record_id=record_id, title=title, author=author, item_id=item_id,
            loaned_on=_date(loaned, "貸出日") if loaned else None, due_on=due, overdue=overdue,
            renewable=reason is None, not_renewable_reason=reason,  # type: ignore[arg-type]
            times_renewed=_int(_cell_text(row, "renew-count")),
            branch=_cell_text(row, "branch") or None,
        )
        rows.append(LendRow(index or "", loan))
    count = t.css_first(SEL_LEND_COUNT)
    if count is not None and _int(node_text(count)) not in (None, len(rows)):
        raise UpstreamChanged("the loan table is truncated", library=library)
    return rows


def parse_loans(html: str, library: str, today: date) -> list[Loan]:
    return [r.loan for r in parse_lend_rows(html, library, today)]


def parse_extension_confirm(html: str) -> list[str]:
    """貸出延長確認: the 資料番号 of the rows the portal is about to renew."""
    t = tree(html)
    rows = t.css(SEL_EXT_ROW)
    if not rows:
        raise UpstreamChanged("no item list on the renewal confirm screen")
    return [_cell_text(r, "item-id") for r in rows]


@dataclass(frozen=True)
class RenewalLine:
    item_id: str
    ok: bool
    due_on: date | None
    message: str
    times_renewed: int | None = None
    #: the loan's state words after the attempt (延滞 / 予約あり / 延長済), None if not printed
    state: str | None = None


def parse_extension_result(html: str) -> tuple[bool, list[RenewalLine]]:
    """貸出延長結果: (completed headline seen, one line per item)."""
    t = tree(html)
    rows = t.css(SEL_EXT_RESULT_ROW)
    if not rows:
        raise UpstreamChanged("no result list on the renewal result screen")
    done = any(TXT_RENEW_DONE in m for m in message_lines(t))
    out = []
    for r in rows:
        result = _cell_text(r, "result")
        ok = TXT_REASON not in result and "ng" not in (r.attributes.get("class") or "").split()
        due_text = _cell_text(r, "due-date")
        state_cell = _cell(r, "state")
        out.append(RenewalLine(_cell_text(r, "item-id"), ok, _date(due_text, "返却期限日") if due_text else None,
                               result, _int(_cell_text(r, "renew-count")),
                               node_text(state_cell) if state_cell is not None else None))
    return done, out


# ------------------------------------------------------------------ holds
@dataclass(frozen=True)
class HoldRow:
    index: str
    hold: Hold


def parse_hold_rows(html: str, library: str) -> list[HoldRow]:
    """予約した資料: every row with its session-relative index."""
    t = tree(html)
    table = t.css_first(SEL_RESERVE_TABLE)
    if table is None:
        if t.css_first(SEL_RESERVE_COUNT) is not None and _int(node_text(t.css_first(SEL_RESERVE_COUNT))) == 0:
            return []
        raise UpstreamChanged("no hold table on 予約した資料", library=library)
    out = []
    for row in table.css(SEL_RESERVE_ROW):
        reserve_no = _cell_text(row, "reserve-no")
        if not reserve_no:
            raise UpstreamChanged("a hold row without its 予約番号", library=library)
        title, author = _title_author(row)
        word = _cell_text(row, "state")
        try:
            status = hold_status(word)
        except MappingError as exc:
            raise UpstreamChanged(f"unknown hold status {word!r}", library=library) from exc
        group = _cell_text(row, "group") or None
        chk = row.css_first(SEL_RESERVE_CHECK)
        try:
            expires = parse_expiry(_cell_text(row, "limit-date"))
            placed = parse_optional_date(_cell_text(row, "reserve-date"))
            ready_until = parse_optional_date(_cell_text(row, "keep-date"))
        except MappingError as exc:
            raise UpstreamChanged(f"unreadable date in a hold row: {exc}", library=library) from exc
        hold = Hold(
            id=reserve_no, library=library, record_id=_bibid(_cell(row, "title")) or reserve_no,
            title=title, author=author, status=status,  # type: ignore[arg-type]
            position=_int(_cell_text(row, "order")), pickup_branch=_cell_text(row, "pickup") or None,
            contact_method=_cell_text(row, "contact") or None, placed_on=placed, expires_on=expires,
            ready_until=ready_until, cancelable=bool(_cell_text(row, "cancelable") == "可"),
            order_group=group.split("-")[0] if group else None,
        )
        out.append(HoldRow((chk.attributes.get("value") or "") if chk is not None else "", hold))
    return out


def parse_holds(html: str, library: str) -> list[Hold]:
    return [r.hold for r in parse_hold_rows(html, library)]


def parse_selected_reserve_nos(html: str, selector: str) -> list[str]:
    """The 予約番号 listed on a cancel/change confirm screen."""
    t = tree(html)
    rows = t.css(selector)
    if not rows:
        raise UpstreamChanged("no hold list on the confirm screen")
    return [_cell_text(r, "reserve-no") for r in rows]


# ------------------------------------------------------------------ basket
@dataclass
class BasketPage:
    items: list[CartItem]
    indexes: dict[str, str]  # record_id → chk_basket value
    areas: dict[str, str] = field(default_factory=dict)  # branch name → cmb_area value
    contacts: dict[str, str] = field(default_factory=dict)  # label → cmb_contact value
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_basket(html: str) -> BasketPage:
    """予約かご: items (record ids), their row indexes, the pickup/contact choices."""
    t = tree(html)
    count = t.css_first(SEL_BASKET_COUNT)
    if count is None:
        raise UpstreamChanged("not the 予約かご page")
    items, idx = [], {}
    for row in t.css(SEL_BASKET_ROW):
        title, author = _title_author(row)
        rid = _bibid(_cell(row, "title"))
        if not rid:
            raise UpstreamChanged("a cart row without its record link")
        added = _cell_text(row, "added")
        items.append(CartItem(record_id=rid, title=title, author=author,
                              added_on=parse_optional_date(added) if added else None))
        chk = row.css_first(SEL_BASKET_CHECK)
        if chk is not None:
            idx[rid] = chk.attributes.get("value") or ""
    if _int(node_text(count)) != len(items):
        raise UpstreamChanged("the cart list is truncated")
    areas = {node_text(o): o.attributes.get("value") or "" for o in t.css(SEL_AREA_OPTION)}
    contacts = {node_text(o): o.attributes.get("value") or "" for o in t.css(SEL_CONTACT_OPTION)}
    return BasketPage(items, idx, areas, contacts, message_lines(t), error_lines(t))


def parse_reserve_confirm(html: str) -> list[str]:
    """予約内容確認: record ids about to be reserved (in order)."""
    t = tree(html)
    rows = t.css(SEL_CONFIRM_ROW)
    if not rows:
        raise UpstreamChanged("no title list on 予約内容確認")
    out = []
    for r in rows:
        rid = _bibid(_cell(r, "title"))
        if not rid:
            raise UpstreamChanged("a confirm row without its record link")
        out.append(rid)
    return out


@dataclass(frozen=True)
class ReserveLine:
    record_id: str
    ok: bool
    reserve_no: str | None
    message: str


def parse_reserve_result(html: str) -> tuple[bool, list[ReserveLine]]:
    """予約結果: (「予約を行いました」 seen, one line per title)."""
    t = tree(html)
    rows = t.css(SEL_RESULT_ROW)
    if not rows:
        raise UpstreamChanged("no result list on the reservation result screen")
    done = any(TXT_RESERVE_DONE in m for m in message_lines(t))
    out = []
    for r in rows:
        result = _cell_text(r, "result")
        ok = TXT_REASON not in result and "ng" not in (r.attributes.get("class") or "").split()
        out.append(ReserveLine(_bibid(_cell(r, "title")) or "", ok, _cell_text(r, "reserve-no") or None, result))
    return done, out


def reason_text(line: str) -> str:
    """The text after 「理由:」 (the whole line if there is none)."""
    s = unicodedata.normalize("NFKC", line)
    i = s.find("理由:")
    return s[i + 3:].strip() if i >= 0 else s.strip()


# ------------------------------------------------------------------ catalog
def parse_search(html: str, page: int) -> SearchResult:
    """検索結果一覧 → RecordSummary list, total hits, page."""
    t = tree(html)
    hit = t.css_first(SEL_HIT_COUNT)
    if hit is None:
        raise UpstreamChanged("no hit count on the search result page")
    total = _int(node_text(hit))
    if total is None:
        raise UpstreamChanged("unreadable hit count")
    records = []
    for li in t.css(SEL_RESULT_ITEM):
        a = li.css_first(SEL_RESULT_TITLE)
        rid = _bibid(a)
        if a is None or not rid:
            raise UpstreamChanged("a result without its record link")
        title = node_text(a)
        bl = li.css_first(SEL_BIBLINE)
        parsed = None
        if bl is not None and node_text(bl):
            try:
                parsed = parse_bibline(node_text(bl), title=title)
            except MappingError:
                parsed = None
        isbn_node = li.css_first(SEL_RESULT_ISBN)
        isbn = re.sub(r"[^0-9X]", "", node_text(isbn_node)) if isbn_node is not None else ""
        records.append(RecordSummary(
            id=rid, title=title, author=parsed.author if parsed else None,
            publisher=parsed.publisher if parsed else None, published=parsed.year if parsed else None,
            isbn=isbn or None))
    if total and not records and not _says_no_rows(t):
        # Hits counted, no list and no 「該当する資料はありません」: the list is gone
        # (a past-the-end page says so and is an empty page, not an error).
        raise UpstreamChanged("hits counted but no result list")
    return SearchResult(records=records, total=total, page=page)


def _says_no_rows(t: HTMLParser) -> bool:
    """The portal's own 「該当する資料はありません」 (no hits, or a page past the last)."""
    notices = [node_text(n) for n in t.css(SEL_SEARCH_EMPTY)] + message_lines(t) + error_lines(t)
    return any(TXT_NO_RECORD in x for x in notices)


def parse_record(html: str, record_id: str) -> Record | None:
    """資料詳細 → Record with holdings; None when the portal says there is no such record."""
    t = tree(html)
    detail = t.css_first(SEL_DETAIL)
    if detail is None:
        if any(TXT_NO_RECORD in x for x in message_lines(t) + error_lines(t)):
            return None
        raise UpstreamChanged("not a record detail page")
    fields: dict[str, str] = {}
    for tr in t.css(SEL_BIBLIO_ROW):
        th, td = tr.css_first(SEL_BIBLIO_LABEL), tr.css_first(SEL_BIBLIO_VALUE)
        if th is not None and td is not None:
            fields[node_text(th)] = node_text(td)
    title = fields.get("タイトル") or node_text(detail.css_first(SEL_DETAIL_TITLE))
    if not title:
        raise UpstreamChanged("a record without a title")
    holdings = []
    for row in t.css(SEL_HOLDING_ROW):
        due = _cell_text(row, "due-date")
        holdings.append(Holding(
            branch=_cell_text(row, "branch"), status=holding_status(_cell_text(row, "state")),  # type: ignore[arg-type]
            call_number=_cell_text(row, "callno") or None,
            due_on=parse_optional_date(due) if due else None))
    isbn = re.sub(r"[^0-9X]", "", fields.get("ISBN", "")) or None
    return Record(id=record_id, title=title, author=fields.get("著者") or None,
                  publisher=fields.get("出版者") or None, published=fields.get("出版年") or None,
                  isbn=isbn, classification=fields.get("分類") or None, holdings=holdings)
