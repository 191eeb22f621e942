"""Pure parsers of winj portal pages (text in, domain values out), written to what
real ``/winj/opac/`` sites serve (``../shared/docs/REAL_WINJ.md``), not to one
site's markup.

How they read:

- **By structure, with fallbacks.** Lists are ``ol.list-book > li`` (then the
  smartphone ``ul.listBookBa > li``, then ``div.report`` for result lists); a title
  is ``span.title`` (then ``p.title``, then the ``h4.link-image`` link); the
  labelled lines are the ``p``s of ``div.column.info`` (then ``p.txt``).  Each
  tuple in the selector constants below is tried in order (``adapters.html``).
- **By labels, not positions.** Dates are found after their label, in every
  spelling seen (貸出日: / 返却期限: 返却予定日: 返却期限日: / 予約日 / 取置期限日, with a
  half- or full-width colon or none, ``/`` or ``.``, with or without zero
  padding); a hold's rank in every form seen (``(N位)``, ``（N位）``, ``順番：N``,
  ``予約順位：N位``).  The library's configured layout (``adapters.winj.layout``)
  is only the first guess.
- **Titles come out clean**: the 【図書】/【雑誌】 material type (inside
  ``span.title`` or in a sibling ``b``), line breaks and ``&nbsp;`` are removed;
  the material type is returned beside the title.
- **Never an empty or partial list by accident.** A list is empty only when the
  page says so (「該当するリストが存在しません。」, or a count of 0); the count 「（全N 件）」
  of ``.nav-hdg`` (or 「全N件」 of ``div.nav-area``) is checked against what the
  paging delivered.  A required field that is missing is ``UpstreamChanged`` (502
  ``upstream_changed``) naming the screen and the field.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from dataclasses import dataclass, field
from datetime import date

from adapters import html as H
from adapters.html import HTMLParser, Node, Screen
from core.errors import UpstreamChanged
from core.models import CartItem, Hold, Holding, Loan, Record, RecordSummary, SearchResult
from mappers import MappingError
from mappers.bibline import parse_bibline
from mappers.dates import parse_date
from mappers.status import hold_status, holding_status

# ------------------------------------------------------------------ paths (relative to base_url)
TOP_PATH = "top.do"
LOGIN_PATH = "login.do"
LOGOUT_PATH = "logout.do"
MYLIBRARY_PATH = "mylibrary.do"
PASSWORD_PATH = "password-change.do"
LEND_LIST_PATH = "lend-list.do"
LEND_CONFIRM_PATH = "lend-extension-confirm.do"
RESERVE_LIST_PATH = "reserve-list.do"
RESERVE_CANCEL_PATH = "reserve-cancel.do"
RESERVE_CHANGE_PATH = "reserve-change.do"
BASKET_PATH = "reserve-basket.do"
BASKET_DELETE_PATH = "reserve-basket-delete.do"
RESERVE_CONFIRM_PATH = "reserve-confirm.do"
SEARCH_PATH = "search-detail.do"
SEARCH_LIST_PATH = "search-list.do"
DETAIL_PATH = "switch-detail.do"
#: dispatch values are relative to the context root (REAL_WINJ.md §0)
DISPATCH_MYLIBRARY = "/opac/mylibrary.do"

# ------------------------------------------------------------------ selectors (fallbacks in order)
SEL_HID = 'input[name="hid_session"]'
SEL_LOGIN_FORM = ('form[name="LoginForm"]', 'form:has(input[name="txt_usercd"])')
SEL_LOGIN_USER = 'input[name="txt_usercd"]'
SEL_LOGIN_SUBMIT = ('input[name="submit_btn_login"]', 'button[name="submit_btn_login"]')
SEL_MAINTENANCE = "p.maintenance"
SEL_MESSAGE = ("#message p",)
SEL_ERROR = "div.report > p, p.error, span.error"
SEL_LIST_ITEMS = ("ol.list-book.result.hook-check-all > li", "ol.list-book > li", "ul.listBookBa-2 > li",
                  "ul.listBookBa > li")
SEL_RESULT_ITEMS = ("ol.list-book > li", "div#main div.report", "div.report")
SEL_TITLE = ("span.title", "p.title", ".link-image a", "h4 a")
SEL_TYPE_SIBLING = (".link-image > b", "h4 > b")
SEL_INFO_LINES = "div.column.info p, p.txt"
SEL_COUNT = (".nav-hdg", "div.nav-area")
SEL_NEXT_PAGE = ("li.next > a",)
SEL_PAGESIZE_OPTION = 'select[name="opt_pagesize"] option'
SEL_DELAY = ("span.icon-delay",)
SEL_EXTEND = ('div.info a.btn-02', 'div.info a[href*="submit_btn_extend"]', 'a[href*="submit_btn_extend"]',
              'input[name="submit_btn_extend"]')
SEL_BIBID_ATTR = ('[href*="bibid="]', '[src*="bibid="]')
SEL_HOLD_CHECK = 'input[name="chk_reserve"]'
SEL_BASKET_CHECK = ('input[name="chk_check"]',)
SEL_AREA_OPTION = 'select[name="cmb_area"] option'
SEL_CONTACT_OPTION = 'select[name="cmb_ctttp"] option, select[name="cmb_contact"] option'
SEL_BASKET_COUNT = 'font[color="red"]'
SEL_MAIN_FORM_FIRST_P = ("div#main form p",)
SEL_DETAIL_TABLE = ("table.tbl-04",)
SEL_CANCEL_ROW = "table#cancel-list tr.cancel-row"
SEL_CHANGE_ROW = "table#change-list tr.change-row"
SEL_CHANGE_AREA_OPTION = 'select[name="cmb_area"] option'
SEL_CHANGE_CONTACT_OPTION = 'select[name="cmb_contact"] option'

SEL_ICON = '[class^="icon-"]'
SEL_DAY_FIELD = '[name="cmb_day"], [name="txt_day"]'
SEL_MONTH_FIELD = '[name="cmb_month"], [name="txt_month"]'
SEL_CONFIRM_BUTTON_ANY = '[name^="submit_btn_confirm"]'
SEL_LINK = 'a[href]'
SEL_CONTROL = 'a[href], input[type=submit]'
SEL_RESULT_PLACED = 'div#main form ol.list-book > li'
SEL_REPORT = 'div.report'
SEL_FORM = 'form'
SEL_CHK_LIMIT = 'input[name="chk_limit"]'
SEL_APLPH = 'input[name="hid_aplph"]'
SEL_IDLIST = 'input[name="hid_idlist"]'
SEL_LENID = 'input[name="hid_lenid"]'
SEL_HIDDEN = 'input[type="hidden"]'
SEL_SUBMIT = 'input[type="submit"], button[type="submit"]'
SEL_P = 'p'
SEL_CONTACT_SELECT = 'select[name="cmb_ctttp"], select[name="cmb_contact"]'
SEL_EMAIL_SELECT = 'select[name="cmb_email"]'
SEL_TABLE = 'table'
SEL_TD = 'td'
SEL_RESERVE_NO_CELL = 'td.reserve-no'
SEL_TH = 'th'
SEL_TR = 'tr'
SEL_HEADER_CELLS = 'tr th'
SEL_NAV_HDG = '.nav-hdg'
SEL_DETAIL_TBL = 'table.tbl-04'

# ------------------------------------------------------------------ texts
TXT_EMPTY = ("該当するリストが存在しません", "該当する資料はありません")
TXT_LOGIN_FAILED = ("誤り", "正しくありません")
TXT_RENEW_DONE = "貸出延長申込が完了しました"
TXT_RESERVE_DONE = "以下のタイトルについて予約を行いました。"
TXT_RESERVE_DONE_LOOSE = "予約を行いました"
TXT_REASON = "理由"
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
TXT_TIMEOUT = "タイムアウト"
TXT_STALE = "一覧を表示してから操作してください"
TXT_SYSTEM_ERROR = "システムエラー"
TXT_TOO_MANY = "ヒット件数が多すぎます"

# ------------------------------------------------------------------ patterns
_D = r"[0-9０-９]"
DATE = rf"{_D}{{4}}\s*[/.／．年]\s*{_D}{{1,2}}\s*[/.／．月]\s*{_D}{{1,2}}日?"
_COLON = r"\s*[:：]?\s*"
_COUNT = re.compile(r"全\s*([0-9０-９,]+)\s*件")
_BIBID = re.compile(r"[?&;]bibid=([0-9A-Za-z]+)")
_IDX = re.compile(r"[?&]idx=(\d+)")
_TYPE = re.compile(r"^\s*【([^】]{1,6})】\s*")
_RANK = re.compile(r"[（(]\s*([0-9０-９]+)\s*位\s*[)）]|順番\s*[:：]?\s*([0-9０-９]+)|予約順位\s*[:：]?\s*([0-9０-９]+)")
_RESERVED = re.compile(r"予約\s*[:：]\s*([0-9０-９]+)\s*件")
_RENEWED = re.compile(r"延長回数\s*[:：]\s*([0-9０-９]+)")
_ITEM_ID = re.compile(r"資料番号\s*[:：]\s*([0-9A-Za-z-]+)")
_BRANCH = re.compile(r"貸出館\s*[:：]\s*(\S+)")
_RESERVE_NO = re.compile(r"予約番号\s*[:：]\s*([0-9A-Za-z-]+)")
_PICKUP = re.compile(r"受取館\s*[:：]?\s*([^\s:：0-9０-９]+?)(?=\s|予約|取置|連絡|$)")
_CONTACT = re.compile(r"連絡方法\s*[:：]\s*(\S+)")
_GROUP = re.compile(r"まとめて予約\s*[:：]\s*([0-9A-Za-z]+)")
_STATUS = re.compile(r"予約状態\s*[:：]?\s*([^\s:：0-9０-９(（]+?)(?=順番|取置期限|予約順位|[（(]|\s|$)")


def _label(*labels: str) -> re.Pattern[str]:
    return re.compile("(?:" + "|".join(map(re.escape, labels)) + ")" + _COLON + f"({DATE})")


RE_LOANED = _label("貸出日")
RE_DUE = _label("返却期限日", "返却予定日", "返却期限")
RE_PLACED = _label("予約日")
RE_READY_UNTIL = re.compile(r"(?:取置期限日|受取可)" + _COLON + f"({DATE})?")
RE_EXPIRES = _label("予約有効期限", "有効期限")


# ------------------------------------------------------------------ decoding and text
def py_codec(charset: str) -> str:
    """Python codec for a declared charset: Shift_JIS pages are really cp932."""
    return H.py_codec(charset) or "utf-8"


def tree(page: str | bytes | HTMLParser) -> HTMLParser:
    """A parsed page; an already parsed one as it is (each page is parsed once per request:
    the adapter hands its ``Page.tree`` to the parsers)."""
    if isinstance(page, HTMLParser):
        return page
    return H.tree(page)


clean = H.clean


def node_text(node: Node | None) -> str:
    return H.text(node)


def page_text(t: HTMLParser) -> str:
    return H.text(t.body) if t.body is not None else ""


def message_lines(t: HTMLParser) -> list[str]:
    return H.texts(t.css(SEL_MESSAGE[0]))


def error_lines(t: HTMLParser) -> list[str]:
    return list(dict.fromkeys(H.texts(t.css(SEL_ERROR))))


def hid_session(t: HTMLParser) -> str | None:
    n = t.css_first(SEL_HID)
    return (n.attributes.get("value") or None) if n is not None else None


def is_login_page(t: HTMLParser) -> bool:
    return t.css_first(SEL_LOGIN_USER) is not None


def is_maintenance(t: HTMLParser) -> bool:
    return t.css_first(SEL_MAINTENANCE) is not None


def is_timeout(t: HTMLParser) -> bool:
    return any(TXT_TIMEOUT in e for e in error_lines(t))


def portal_error(t: HTMLParser) -> str | None:
    """The portal's own error page (stale screen, system error), else None."""
    for line in error_lines(t):
        if TXT_STALE in line or TXT_SYSTEM_ERROR in line:
            return line
    return None


def login_error(t: HTMLParser) -> str | None:
    """The error line of a re-shown login form (wrong card or password)."""
    lines = error_lines(t)
    return next((x for x in lines if any(w in x for w in TXT_LOGIN_FAILED)), lines[0] if lines else None)


@dataclass(frozen=True)
class LoginForm:
    action: str  # host-relative, as the page writes it
    submit: tuple[str, str]  # (name, value) of the submit button


def parse_login_form(t: HTMLParser) -> LoginForm | None:
    form = H.optional(t, SEL_LOGIN_FORM)
    if form is None:
        return None
    btn = H.optional(form, SEL_LOGIN_SUBMIT)
    submit = ("submit_btn_login", "ログイン")
    if btn is not None:
        submit = (btn.attributes.get("name") or submit[0], btn.attributes.get("value") or submit[1])
    return LoginForm(form.attributes.get("action") or "", submit)


def login_link(t: HTMLParser) -> str | None:
    """The 「ログインする」 link of a top page (a cold GET of login.do may land there)."""
    for a in t.css(SEL_LINK):
        href = a.attributes.get("href") or ""
        if "login.do" in href and "ログイン" in H.text(a):
            return href
    return None


def reason_text(line: str) -> str:
    """The text after 「理由:」 (the whole line if there is none)."""
    s = unicodedata.normalize("NFKC", line)
    i = s.find("理由:")
    return s[i + 3:].strip() if i >= 0 else s.strip()


# ------------------------------------------------------------------ list items
def _date(text: str, what: str, screen: Screen) -> date:
    return screen.mapped(parse_date, unicodedata.normalize("NFKC", text).replace(" ", ""), what)


def _int(text: str | None) -> int | None:
    return H.optional_int(text)


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    m = pattern.search(text)
    if m is None:
        return None
    return next((g for g in m.groups() if g), None) if m.groups() else m.group(0)


def bibid_in(node: Node) -> str | None:
    """A record id (bibid) in a link or image URL inside ``node``."""
    for sel in SEL_BIBID_ATTR:
        for n in node.css(sel):
            for attr in ("href", "src"):
                m = _BIBID.search(n.attributes.get(attr) or "")
                if m:
                    return urllib.parse.unquote(m.group(1))
    return None


@dataclass(frozen=True)
class Title:
    title: str
    material_type: str | None


def title_of(item: Node, screen: Screen) -> Title:
    """The clean title of a list item and its material type (【図書】 inside span.title or
    a sibling ``b``)."""
    raw = screen.required_text(item, SEL_TITLE, "title")
    kind = None
    m = _TYPE.match(raw)
    if m:
        kind, raw = m.group(1), raw[m.end():]
    else:
        sib = H.optional_text(item, SEL_TYPE_SIBLING)
        m2 = _TYPE.match(sib or "")
        if m2:
            kind = m2.group(1)
    title = H.clean(raw)
    if not title:
        raise screen.changed("title is blank")
    return Title(title, kind)


def info_lines(item: Node) -> list[str]:
    """The labelled lines of a list item (``div.column.info > p``; the 2024 layout's flex
    ``div`` holds more ``p``s, which this includes)."""
    return H.texts(item.css(SEL_INFO_LINES))


def _author(lines: list[str], title: str) -> str | None:
    for line in lines[:1]:
        if "--" in line or "／" in line or "/" in line:
            try:
                return parse_bibline(line, title=title).author or None
            except MappingError:
                return None
    return None


@dataclass(frozen=True)
class ListPage:
    """One page of a paged list (loans, holds): its items, the count it prints, where
    the next page is and the page-size options it offers."""

    items: list[Node]
    total: int | None
    next_href: str | None
    page_sizes: list[int]
    empty: bool


def _count(t: HTMLParser) -> int | None:
    for sel in SEL_COUNT:
        for n in t.css(sel):
            m = _COUNT.search(H.text(n))
            if m:
                return int(unicodedata.normalize("NFKC", m.group(1)).replace(",", ""))
    return None


def says_empty(t: HTMLParser) -> bool:
    body = page_text(t)
    return any(x in body for x in TXT_EMPTY)


def list_page(t: HTMLParser, screen: Screen, selectors: tuple[str, ...] = SEL_LIST_ITEMS) -> ListPage:
    total = _count(t)
    empty = says_empty(t)
    items = screen.rows(t, selectors, "list items", empty=lambda: empty or total == 0)
    nxt = H.optional_attr(t, SEL_NEXT_PAGE, "href")
    sizes = sorted({int(v) for o in t.css(SEL_PAGESIZE_OPTION)
                    if (v := (o.attributes.get("value") or "")).isdigit()})
    return ListPage(items, total, nxt, sizes, empty and not items)


# ------------------------------------------------------------------ loans
@dataclass(frozen=True)
class LendRow:
    idx: str | None  # the row index the renewal control posts (session-relative)
    extend: str | None  # the renewal control's URL (only on renewable rows)
    loan: Loan
    material_type: str | None = None
    #: what the list shows for a loan it offers no renewal for (延滞 / 予約:1件 / 延長回数:1件)
    refusal_text: str | None = None


def parse_lend_items(t: HTMLParser, library: str, today: date) -> tuple[list[LendRow], ListPage]:
    """借りている資料, one page: its rows and the page's paging facts."""
    screen = Screen("借りている資料 (lend-list.do)", library)
    page = list_page(t, screen)
    rows = []
    for item in page.items:
        t_ = title_of(item, screen)
        lines = info_lines(item)
        text = " ".join(lines)
        all_text = H.text(item)
        due_s = _first(RE_DUE, text)
        if due_s is None:
            raise screen.changed("no due date (返却期限 / 返却予定日 / 返却期限日) in a loan")
        due = _date(due_s, "due date", screen)
        loaned_s = _first(RE_LOANED, text)
        bibid = bibid_in(item)
        item_id = _first(_ITEM_ID, text)
        if item_id is None and bibid is None:
            raise screen.changed("no loan id (資料番号) and no record id (bibid) in a loan")
        loaned = _date(loaned_s, "loan date", screen) if loaned_s else None
        loan_id = item_id or f"{bibid}-{loaned:%Y%m%d}" if loaned else (item_id or str(bibid))
        ext = H.optional(item, SEL_EXTEND)
        if ext is None and "貸出延長" in all_text:  # 千代田/渋谷: a control labelled 貸出延長
            ext = next((a for a in item.css(SEL_CONTROL) if "延長" in H.text(a)
                        or "延長" in (a.attributes.get("value") or "")), None)
        href = (ext.attributes.get("href") or "") if ext is not None else None
        idx = None
        if href:
            m = _IDX.search(href)
            idx = m.group(1) if m else None
        elif ext is not None:
            idx = ext.attributes.get("value")
        overdue = H.optional(item, SEL_DELAY) is not None or due < today
        reserved = _int(_first(_RESERVED, text)) or (1 if "予約有" in all_text else 0)
        renewed = _int(_first(_RENEWED, text))
        if renewed is None and "延長済" in all_text:
            renewed = 1
        reason: str | None = None
        shown: str | None = None
        if ext is None:
            if overdue:
                reason, shown = "overdue", "延滞"
            elif reserved:
                reason, shown = "reserved", f"予約:{reserved}件"
            elif renewed:
                reason, shown = "already_renewed", f"延長回数:{renewed}件"
            else:
                reason, shown = "other", "貸出延長できません"
        loan = Loan(
            id=loan_id, library=library, record_id=bibid or loan_id, title=t_.title,
            author=_author(lines, t_.title), item_id=item_id, loaned_on=loaned, due_on=due, overdue=overdue,
            renewable=reason is None, not_renewable_reason=reason,  # type: ignore[arg-type]
            times_renewed=renewed, branch=_first(_BRANCH, text))
        rows.append(LendRow(idx, href or None, loan, t_.material_type, shown))
    return rows, page


@dataclass(frozen=True)
class ExtensionConfirm:
    lenid: str
    item_id: str | None
    title: str | None
    action: str
    submit: tuple[str, str]


def parse_extension_confirm(html: str | HTMLParser, library: str | None = None) -> ExtensionConfirm:
    """貸出延長 confirm: the ``hid_lenid`` it carries, and which loan it names."""
    t = tree(html)
    screen = Screen("貸出延長確認", library)
    lenid = screen.required_attr(t, ('input[name="hid_lenid"]',), "value", "hid_lenid")
    form = next((f for f in t.css(SEL_FORM) if f.css_first(SEL_LENID) is not None), None)
    btn = H.optional(form, ('input[name="submit_btn_confirm"]', 'button[name="submit_btn_confirm"]'))
    submit = ("submit_btn_confirm", (btn.attributes.get("value") if btn is not None else None) or "貸出延長する")
    main = H.optional(t, ("div#main",)) or t.body
    text = H.text(main)
    title = None
    node = H.optional(main, SEL_TITLE)
    if node is not None:
        title = H.clean(_TYPE.sub("", H.text(node)))
    return ExtensionConfirm(lenid, _first(_ITEM_ID, text), title,
                            (form.attributes.get("action") if form is not None else None) or LEND_CONFIRM_PATH,
                            submit)


@dataclass(frozen=True)
class ExtensionResult:
    ok: bool
    due_on: date | None
    times_renewed: int | None
    message: str


def parse_extension_result(html: str | HTMLParser, library: str | None = None) -> ExtensionResult:
    """貸出延長 result: 「貸出延長申込が完了しました」 (with the new due date when printed), or
    the 「理由:」 line of a refusal."""
    t = tree(html)
    screen = Screen("貸出延長結果", library)
    main = H.optional(t, ("div#main",)) or t.body
    text = H.text(main)
    if TXT_RENEW_DONE in text:
        due_s = _first(RE_DUE, text)
        return ExtensionResult(True, _date(due_s, "due date", screen) if due_s else None,
                               _int(_first(_RENEWED, text)), TXT_RENEW_DONE)
    reasons = [x for x in error_lines(t) if TXT_REASON in x]
    if reasons:
        return ExtensionResult(False, None, None, reasons[0])
    raise screen.changed("neither 「貸出延長申込が完了しました」 nor a 「理由:」 line")


# ------------------------------------------------------------------ holds
@dataclass(frozen=True)
class HoldRow:
    index: str  # the chk_reserve value (session-relative), "" when not cancelable online
    hold: Hold
    material_type: str | None = None


def _status_word(lines: list[str], item: Node) -> str | None:
    text = " ".join(lines)
    w = _first(_STATUS, text)
    if w:
        return w
    for line in lines[1:]:
        if re.match(r"\s*(予約日|受取館|予約番号|連絡方法|取置期限日|予約有効期限|まとめて予約)\s*[:：]", line):
            continue
        word = _RANK.sub("", line)
        word = re.sub(DATE, "", word).strip(" :：")
        word = word.split()[0] if word.split() else ""
        if word:
            return word
    icon = item.css_first(SEL_ICON)
    return H.text(icon) or None if icon is not None else None


def parse_hold_items(t: HTMLParser, library: str) -> tuple[list[HoldRow], ListPage]:
    """予約した資料, one page."""
    screen = Screen("予約した資料 (reserve-list.do)", library)
    page = list_page(t, screen)
    out = []
    for item in page.items:
        t_ = title_of(item, screen)
        lines = info_lines(item)
        text = " ".join(lines)
        word = _status_word(lines, item)
        if not word:
            raise screen.changed("no status (予約状態) in a hold")
        try:
            status = hold_status(word)
        except MappingError:
            raise screen.changed(f"unknown hold status {word!r}") from None
        bibid = bibid_in(item)
        no = _first(_RESERVE_NO, text)
        if no is None and bibid is None:
            raise screen.changed("no hold id (予約番号) and no record id (bibid) in a hold")
        placed_s = _first(RE_PLACED, text)
        ready_s = _first(RE_READY_UNTIL, text)
        exp_s = _first(RE_EXPIRES, text)
        chk = item.css_first(SEL_HOLD_CHECK)
        rank = _first(_RANK, text)
        hold = Hold(
            id=no or str(bibid), library=library, record_id=bibid or str(no), title=t_.title,
            author=_author(lines, t_.title), status=status,  # type: ignore[arg-type]
            position=_int(rank) if status in ("waiting", "submitted") else None,
            pickup_branch=_first(_PICKUP, text), contact_method=_first(_CONTACT, text),
            placed_on=_date(placed_s, "hold date", screen) if placed_s else None,
            expires_on=screen.expiry_date(unicodedata.normalize("NFKC", exp_s).replace(".", "/"), "hold expiry")
            if exp_s else None,
            ready_until=_date(ready_s, "pickup deadline", screen) if ready_s else None,
            cancelable=chk is not None, order_group=_first(_GROUP, text))
        out.append(HoldRow((chk.attributes.get("value") or "") if chk is not None else "", hold, t_.material_type))
    return out, page


def parse_selected_reserve_nos(html: str | HTMLParser, selector: str) -> list[str]:
    """The 予約番号 listed on a cancel/change confirm screen."""
    t = tree(html)
    rows = t.css(selector)
    if not rows:
        raise H.changed("no hold list", screen="予約取消/変更確認")
    return [H.text(r.css_first(SEL_RESERVE_NO_CELL)) for r in rows]


# ------------------------------------------------------------------ basket
@dataclass
class BasketPage:
    items: list[CartItem]
    entries: dict[str, str]  # record_id → chk_check value
    hidden: list[tuple[str, str]] = field(default_factory=list)  # hid_aplph, view-title, ...
    areas: dict[str, str] = field(default_factory=dict)  # branch name → cmb_area value
    contacts: dict[str, str] = field(default_factory=dict)  # label → contact code
    contact_field: str = "cmb_ctttp"
    expiry: str = "triple"  # "triple" or "chk_limit"
    month_field: str = "cmb_month"
    day_field: str = "cmb_day"
    buttons: dict[str, tuple[str, str]] = field(default_factory=dict)  # normal/bulk/delete → (name, value)
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def indexes(self) -> dict[str, str]:
        return self.entries


def parse_basket(html: str | HTMLParser, library: str | None = None) -> BasketPage:
    """予約かご: entries (record ids and their checkbox values), the hidden fields to post
    back, the pickup / contact choices, the expiry controls and the buttons."""
    t = tree(html)
    screen = Screen("予約かご (reserve-basket.do)", library)
    form = next((f for f in t.css(SEL_FORM) if f.css_first(SEL_APLPH) is not None), None)
    if form is None:
        raise screen.changed("no basket form (hid_aplph)")
    count = None
    for n in t.css(SEL_BASKET_COUNT):
        m = re.search(r"該当件数は\s*([0-9０-９]+)\s*件", H.text(n))
        if m:
            count = _int(m.group(1))
    lis = screen.rows(form, ("ol.list-book > li",), "basket entries",
                      empty=lambda: count == 0 or says_empty(t), count=count)
    items, entries = [], {}
    for li in lis:
        chk = screen.required(li, SEL_BASKET_CHECK, "entry checkbox")
        value = chk.attributes.get("value") or ""
        rid = value if value.isdigit() else (bibid_in(li) or _js_bibid(li))
        if not rid:
            raise screen.changed("an entry without its record id")
        t_ = title_of(li, screen)
        text = " ".join(info_lines(li))
        added = re.search(r"追加日" + _COLON + f"({DATE})", text)
        items.append(CartItem(record_id=rid, title=t_.title, author=_author(info_lines(li), t_.title),
                              added_on=_date(added.group(1), "date added", screen) if added else None))
        entries[rid] = value
    hidden = [(n.attributes.get("name") or "", n.attributes.get("value") or "")
              for n in form.css(SEL_HIDDEN)
              if (n.attributes.get("name") or "") not in ("hid_session", "")]
    areas = {H.text(o): o.attributes.get("value") or "" for o in form.css(SEL_AREA_OPTION)}
    contact_sel = form.css_first(SEL_CONTACT_SELECT)
    contacts = {H.text(o): o.attributes.get("value") or "" for o in form.css(SEL_CONTACT_OPTION)}
    expiry = "chk_limit" if form.css_first(SEL_CHK_LIMIT) is not None else "triple"
    month = form.css_first(SEL_MONTH_FIELD)
    day = form.css_first(SEL_DAY_FIELD)
    buttons: dict[str, tuple[str, str]] = {}
    for b in form.css(SEL_SUBMIT):
        name, value = b.attributes.get("name") or "", b.attributes.get("value") or ""
        if name.startswith("submit_btn_delete"):
            buttons["delete"] = (name, value)
        elif name.startswith("submit_btn_reservation") and ("bulk" in name or "まとめて" in value):
            buttons["bulk"] = (name, value)
        elif name.startswith("submit_btn_reservation"):
            buttons["normal"] = (name, value)
    return BasketPage(items, entries, hidden, areas, contacts,
                      (contact_sel.attributes.get("name") or "cmb_ctttp") if contact_sel is not None else "cmb_ctttp",
                      expiry, (month.attributes.get("name") or "cmb_month") if month is not None else "cmb_month",
                      (day.attributes.get("name") or "cmb_day") if day is not None else "cmb_day",
                      buttons, message_lines(t), error_lines(t))


def _js_bibid(node: Node) -> str | None:
    for a in node.css(SEL_LINK):
        m = re.search(r"otherWin\('([^']*)'\)", a.attributes.get("href") or "")
        if m:
            b = _BIBID.search(m.group(1))
            if b:
                return b.group(1)
    return None


@dataclass(frozen=True)
class DeleteConfirm:
    ids: list[str]
    action: str
    submit: tuple[str, str]


def parse_basket_delete(html: str | HTMLParser, library: str | None = None) -> DeleteConfirm:
    t = tree(html)
    screen = Screen("予約かご削除確認", library)
    node = screen.required(t, ('input[name="hid_idlist"]',), "hid_idlist")
    form = next((f for f in t.css(SEL_FORM) if f.css_first(SEL_IDLIST) is not None), None)
    btn = H.optional(form, ('input[name="submit_btn_delete"]',))
    return DeleteConfirm((node.attributes.get("value") or "").split(),
                         (form.attributes.get("action") if form is not None else None) or BASKET_DELETE_PATH,
                         ("submit_btn_delete", (btn.attributes.get("value") if btn is not None else None) or "削除"))


@dataclass(frozen=True)
class ReserveConfirm:
    records: list[str]
    titles: list[str]
    hidden: list[tuple[str, str]]
    email_field: str | None
    submit: tuple[str, str]


def parse_reserve_confirm(html: str | HTMLParser, library: str | None = None) -> ReserveConfirm:
    """予約内容確認: the titles about to be reserved (record ids from their links), the
    hidden fields, the e-mail select (sent as 送信しない) and the confirm button."""
    t = tree(html)
    screen = Screen("予約内容確認 (reserve-confirm.do)", library)
    form = next((f for f in t.css(SEL_FORM) if f.css_first(SEL_CONFIRM_BUTTON_ANY) is not None), None)
    if form is None:
        raise screen.changed("no confirm form (submit_btn_confirm)")
    lis = screen.rows(form, ("ol.list-book > li", "div.report"), "titles", empty=False)
    records = [bibid_in(li) or "" for li in lis]
    titles = [title_of(li, screen).title for li in lis]
    hidden = [(n.attributes.get("name") or "", n.attributes.get("value") or "")
              for n in form.css(SEL_HIDDEN) if (n.attributes.get("name") or "") not in ("hid_session", "")]
    email = form.css_first(SEL_EMAIL_SELECT)
    btn = screen.required(form, ('input[name^="submit_btn_confirm"]', 'button[name^="submit_btn_confirm"]'),
                          "confirm button")
    return ReserveConfirm(records, titles, hidden, "cmb_email" if email is not None else None,
                          (btn.attributes.get("name") or "submit_btn_confirm", btn.attributes.get("value") or "予約する"))


@dataclass(frozen=True)
class ReserveLine:
    record_id: str
    title: str
    ok: bool
    message: str


def parse_reserve_result(html: str | HTMLParser, library: str | None = None) -> tuple[bool, list[ReserveLine]]:
    """予約結果: (「以下のタイトルについて予約を行いました。」 seen, one line per title): the
    placed titles of the list, and each ``div.report`` with its 「理由:」 line."""
    t = tree(html)
    screen = Screen("予約結果", library)
    first = H.optional(t, SEL_MAIN_FORM_FIRST_P)
    done = first is not None and H.text(first) == TXT_RESERVE_DONE
    lines: list[ReserveLine] = []
    for li in t.css(SEL_RESULT_PLACED):
        t_ = title_of(li, screen)
        lines.append(ReserveLine(bibid_in(li) or "", t_.title, True, ""))
    for rep in t.css(SEL_REPORT):
        reason = next((x for x in H.texts(rep.css(SEL_P)) if x.startswith(TXT_REASON)), None)
        if reason is None:
            continue
        title = H.optional(rep, SEL_TITLE)
        lines.append(ReserveLine(bibid_in(rep) or "", H.clean(_TYPE.sub("", H.text(title))) if title else "",
                                 False, reason))
    if not lines:
        if done or TXT_RESERVE_DONE_LOOSE in page_text(t):
            raise screen.changed("the result names no title")
        raise screen.changed("neither 「以下のタイトルについて予約を行いました。」 nor a 「理由:」 line")
    return done, lines


# ------------------------------------------------------------------ catalog
def parse_search(html: str | HTMLParser, page: int, library: str | None = None) -> SearchResult:
    """検索結果一覧 → RecordSummary list, total hits, page.  One hit answers with the
    detail page itself: that record alone."""
    t = tree(html)
    screen = Screen("検索結果一覧", library)
    total = _count(t)
    if total is None and t.css_first(SEL_DETAIL_TABLE[0]) is not None:
        rec = parse_record(html, None, library)
        if rec is None:
            raise screen.changed("a detail page without a record")
        return SearchResult(records=[RecordSummary(id=rec.id, title=rec.title, author=rec.author,
                                                   publisher=rec.publisher, published=rec.published,
                                                   isbn=rec.isbn)], total=1, page=page)
    if any(TXT_TOO_MANY in x for x in error_lines(t)):
        raise screen.changed("too many hits")  # pragma: no cover - the caller maps it first
    empty = says_empty(t)
    items = screen.rows(t, SEL_RESULT_ITEMS, "results", empty=lambda: empty or total == 0)
    if total is None and items:
        raise screen.changed("no hit count (全N 件)")
    records = []
    for it in items:
        rid = bibid_in(it)
        if not rid:
            raise screen.changed("a result without its record id (bibid)")
        t_ = title_of(it, screen)
        parsed = None
        lines = info_lines(it)
        if lines:
            try:
                parsed = parse_bibline(lines[0], title=t_.title)
            except MappingError:
                parsed = None
        records.append(RecordSummary(id=rid, title=t_.title, author=parsed.author if parsed else None,
                                     publisher=parsed.publisher if parsed else None,
                                     published=parsed.year if parsed else None))
    return SearchResult(records=records, total=total or 0, page=page)


_BIB_LABELS = {"title": ("本タイトル", "タイトル", "書名"), "author": ("著者", "著者名", "責任表示"),
               "publisher": ("出版者", "出版社"), "published": ("出版年", "出版年月", "出版日"),
               "isbn": ("ISBN(13桁)", "ISBN"), "classification": ("分類", "NDC"), "bibid": ("書誌番号", "書誌ID")}


def parse_record(html: str | HTMLParser, record_id: str | None, library: str | None = None) -> Record | None:
    """資料詳細 (``table.tbl-04``) → Record with holdings; None when the portal says there
    is no such record."""
    t = tree(html)
    screen = Screen("資料詳細 (switch-detail.do)", library)
    table = H.optional(t, SEL_DETAIL_TABLE)
    if table is None:
        if says_empty(t):
            return None
        raise screen.changed("no bibliographic table (table.tbl-04)")
    fields: dict[str, str] = {}
    for tr in table.css(SEL_TR):
        th, td = tr.css_first(SEL_TH), tr.css_first(SEL_TD)
        if th is not None and td is not None:
            fields.setdefault(H.text(th), H.text(td))

    def get(key: str) -> str | None:
        return next((fields[k] for k in _BIB_LABELS[key] if fields.get(k)), None)

    title = get("title")
    if not title:
        raise screen.changed("no title (本タイトル)")
    rid = record_id or get("bibid")
    if not rid:
        raise screen.changed("no record id (書誌番号)")
    holdings = []
    for tbl in t.css(SEL_TABLE):
        head = [H.text(th) for th in tbl.css(SEL_HEADER_CELLS)]
        if "所蔵館" not in head or "状態" not in head:
            continue
        col = {h: i for i, h in enumerate(head)}
        for tr in tbl.css(SEL_TR):
            cells = [H.text(td) for td in tr.css(SEL_TD)]
            if len(cells) < len(head):
                continue
            due = cells[col["返却予定日"]] if "返却予定日" in col else ""
            holdings.append(Holding(
                branch=cells[col["所蔵館"]], status=holding_status(cells[col["状態"]]),  # type: ignore[arg-type]
                call_number=(cells[col["請求記号"]] or None) if "請求記号" in col else None,
                due_on=_date(due, "return date", screen) if due else None))
    isbn = re.sub(r"[^0-9X]", "", get("isbn") or "") or None
    return Record(id=rid, title=H.clean(_TYPE.sub("", title)), author=get("author"), publisher=get("publisher"),
                  published=get("published"), isbn=isbn, classification=get("classification"),
                  holdings=holdings)


def parse_loans(html: str | HTMLParser, library: str, today: date) -> list[Loan]:
    """One page of 借りている資料 as loans (the adapter follows the paging)."""
    return [r.loan for r in parse_lend_items(tree(html), library, today)[0]]


def parse_holds(html: str | HTMLParser, library: str) -> list[Hold]:
    """One page of 予約した資料 as holds (the adapter follows the paging)."""
    return [r.hold for r in parse_hold_items(tree(html), library)[0]]


__all__ = ["UpstreamChanged"]


def decode_html(content: bytes, content_type: str | None = None) -> str:
    """A page's text by its declared charset (``adapters.html.decode``)."""
    return H.decode(content, content_type)
