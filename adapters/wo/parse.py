"""Pure parsers of the ``wo`` portal's pages (山口県立山口図書館).

Every function takes page text (already decoded, see ``decode``) and returns domain
values; a page that is not what was expected raises ``UpstreamChanged``.  Selectors
and the portal's words are named constants at the top so a markup change is a
one-line fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from selectolax.lexbor import LexborHTMLParser as HTMLParser
from selectolax.lexbor import LexborNode as Node

from core.errors import UpstreamChanged
from core.models import (
    DueReminder,
    Email,
    Hold,
    Holding,
    Loan,
    Notifications,
    Profile,
    Record,
    RecordSummary,
    SearchResult,
    Toggle,
    UpstreamLending,
)
from mappers import MappingError
from mappers.dates import parse_date, parse_optional_date
from mappers.status import hold_status, holding_status

# ---------------------------------------------------------------- selectors
SEL_MESSAGE = "p.wo_msg"
SEL_ERROR = "p.wo_msg_err"
SEL_OK = "p.wo_msg_ok"
SEL_TITLE = "h2.wo_ttl"
SEL_CTKN = "input[name=wo_ctkn]"
SEL_LOGIN_FORM = "form[name=frm_login]"
SEL_USER_NAME = "#wo_usr .wo_usr_nm"
SEL_LOAN_TABLE = "table#tbl_lend"
SEL_NONE = "p.wo_none"  # "no loans / holds / requests / hits" paragraph
SEL_LOAN_ROWS = "table#tbl_lend tbody tr"
SEL_EXT_RESULT_ROWS = "table#tbl_ext_rslt tbody tr"
SEL_HOLD_TABLE = "table#tbl_rsv"
SEL_HOLD_ROWS = "table#tbl_rsv tbody tr"
SEL_HOLD_NO = "#rsv_no"
SEL_PROFILE = "dl#dl_usr"
SEL_HIT_COUNT = "#hit_cnt"
SEL_RESULTS = "ol.wo_rslt_lst li.wo_rslt"
SEL_BIB = "table#tbl_bib"
SEL_HOLDINGS = "table#tbl_zok tbody tr"
SEL_ENET_TABLE = "table#tbl_enet"
SEL_ENET_ROWS = "table#tbl_enet tbody tr"
SEL_ENET_NO = "#enet_no"
SEL_ENET_PICKUP = "select[name=sel_enet_uktr] option"
SEL_PWREG2 = "form[name=frm_pwreg2]"
SEL_REG_KEY = "input[name=reg_key]"
SEL_SELECT_OPTIONS = "select[name={name}] option"
FIELD_PICKUP = "sel_uktr"
FIELD_CONTACT = "sel_cntct"
SEL_CONTACT_OPTIONS = SEL_SELECT_OPTIONS.format(name=FIELD_CONTACT)
SEL_FORM_INPUTS = "form input"
SEL_FORM_SELECTS = "form select"
SEL_OPTION_SELECTED = "option[selected]"
SEL_OPTION = "option"
SEL_ROW_RECORD_LINK = "td.c_ttl a"
SEL_LOAN_CHECKBOX = "input[name=chk_shiryo]"
SEL_HOLD_CHECKBOX = "input[name=chk_rsv]"
SEL_ENET_CHECKBOX = "input[name=chk_enet]"
SEL_RESULT_TITLE = "a.rslt_ttl"
SEL_RESULT_ISBN = ".rslt_isbn"
SEL_RESULT_AUTHOR = ".rslt_ath"
SEL_RESULT_PUBLISHER = ".rslt_pub"
SEL_RESULT_YEAR = ".rslt_yr"
SEL_RECORD_ID = "input#bibid"
SEL_BIB_ROWS = "tr"
SEL_BIB_LABEL = "th"
SEL_BIB_VALUE = "td"
SEL_COPY_STATUS = "td.z_stat"
SEL_COPY_LOCATION = "td.z_loc"
SEL_COPY_LIBRARY = "td.z_lib"
SEL_COPY_CALL_NUMBER = "td.z_cls"
SEL_COPY_DUE = "td.z_due"
# table cells of the loan / hold / renewal / e-Net rows
COL_ITEM = "td.c_shiryo"
COL_TITLE = "td.c_ttl"
COL_AUTHOR = "td.c_ath"
COL_DUE = "td.c_rtn"
COL_LOANED = "td.c_lend"
COL_STATE = "td.c_stat"
COL_TIMES_RENEWED = "td.c_ext"
COL_RESULT = "td.c_rslt"
COL_HOLD_NO = "td.c_rsvno"
COL_POSITION = "td.c_jun"
COL_PICKUP = "td.c_uktr"
COL_CONTACT = "td.c_cntct"
COL_HOLD_DATE = "td.c_rsvdt"
COL_PICKUP_UNTIL = "td.c_limit"
COL_ENET_NO = "td.c_enetno"
COL_ENET_REQUESTED = "td.c_mskdt"
COL_ENET_UPDATED = "td.c_upd"
COL_NOTE = "td.c_biko"
# paths and patterns
RE_BIBID = re.compile(r"bibid=([A-Za-z0-9_.-]+)")
RE_LEADING_NUMBER = re.compile(r"(\d+)")
RE_REMINDER_DAYS = re.compile(r"(\d+)日前")
RE_STAMP = re.compile(r"(\d{4})\.(\d{1,2})\.(\d{1,2})\s+(\d{1,2}):(\d{2}):(\d{2})")

# ---------------------------------------------------------------- words
TITLE_LOGIN = "利用者ポータル ログイン"
MSG_NO_HITS = "該当する資料はありませんでした"
MSG_NOT_FOUND = "見つかりません"
MSG_BAD_TOKEN = "不正な画面遷移"
ENET_STATES: dict[str, str] = {
    # the portal's e-Net words → ISO 18626 vocabulary of the API
    "受付中": "requested",
    "発送準備中": "accepted",
    "発送済": "shipped",
    "到着済(受取可)": "ready_for_pickup",
    "到着済": "ready_for_pickup",
    "受取可": "ready_for_pickup",
    "貸出中": "loaned",
    "返却済": "returned",
    "完了": "completed",
    "取消": "cancelled",
    "謝絶": "unfilled",
}
CHARSET_RE = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-]+)", re.IGNORECASE)
# the portal says Shift_JIS but emits Windows-31J (NEC/IBM extensions such as ①, ～)
CHARSET_ALIASES = {"shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
                   "windows-31j": "cp932", "euc-jp": "euc_jp"}
TZ = ZoneInfo("Asia/Tokyo")


def decode(content: bytes, content_type: str | None = None) -> str:
    """Bytes of a page → text, by the header's charset, else the meta tag, else UTF-8."""
    charset = None
    if content_type:
        m = CHARSET_RE.search(content_type)
        charset = m.group(1) if m else None
    if charset is None:
        m = CHARSET_RE.search(content[:2048].decode("ascii", "replace"))
        charset = m.group(1) if m else "utf-8"
    codec = CHARSET_ALIASES.get(charset.lower(), charset)
    try:
        return content.decode(codec, "replace")
    except LookupError:
        return content.decode("utf-8", "replace")


# ---------------------------------------------------------------- helpers
def _tree(page: str) -> HTMLParser:
    return HTMLParser(page)


def _text(node: Node | None) -> str:
    return "" if node is None else " ".join(node.text(separator=" ").split())


def _cell(row: Node, selector: str) -> Node | None:
    return row.css_first(selector)


def _changed(what: str) -> UpstreamChanged:
    return UpstreamChanged(f"the portal's {what} page could not be understood")


def _date(text: str, what: str) -> date:
    try:
        return parse_date(text)
    except MappingError as exc:
        raise UpstreamChanged(f"unreadable {what}: {text!r}") from exc


def _opt_date(text: str, what: str) -> date | None:
    try:
        return parse_optional_date(text)
    except MappingError as exc:
        raise UpstreamChanged(f"unreadable {what}: {text!r}") from exc


def _bibid(row: Node) -> str:
    a = row.css_first(SEL_ROW_RECORD_LINK) or row.css_first(SEL_RESULT_TITLE)
    href = a.attributes.get("href", "") if a else ""
    m = RE_BIBID.search(href or "")
    if not m:
        raise _changed("record link")
    return m.group(1)


# ---------------------------------------------------------------- common
@dataclass(frozen=True)
class PageInfo:
    title: str
    errors: tuple[str, ...]
    oks: tuple[str, ...]
    ctkn: str | None
    is_login: bool


def page_info(page: str) -> PageInfo:
    t = _tree(page)
    ctkn_node = t.css_first(SEL_CTKN)
    return PageInfo(
        title=_text(t.css_first(SEL_TITLE)),
        errors=tuple(_text(n) for n in t.css(SEL_ERROR)),
        oks=tuple(_text(n) for n in t.css(SEL_OK)),
        ctkn=ctkn_node.attributes.get("value") if ctkn_node else None,
        is_login=t.css_first(SEL_LOGIN_FORM) is not None,
    )


def select_options(page: str, selector: str) -> dict[str, str]:
    """value → label of a select's options (e.g. ``select[name=sel_uktr] option``)."""
    return {
        (o.attributes.get("value") or ""): _text(o)
        for o in _tree(page).css(selector)
        if o.attributes.get("value")
    }


def selected_option(page: str, select_name: str) -> str | None:
    for o in _tree(page).css(SEL_SELECT_OPTIONS.format(name=select_name)):
        if "selected" in o.attributes:
            return o.attributes.get("value")
    return None


def form_values(page: str) -> dict[str, str]:
    """The current values of a form (text inputs, checked radios, selected options)."""
    t = _tree(page)
    data: dict[str, str] = {}
    for node in t.css(SEL_FORM_INPUTS):
        name = node.attributes.get("name")
        kind = (node.attributes.get("type") or "text").lower()
        if not name or kind in ("submit", "hidden"):
            continue
        if kind == "radio":
            if "checked" in node.attributes:
                data[name] = node.attributes.get("value") or ""
            continue
        data[name] = node.attributes.get("value") or ""
    for sel in t.css(SEL_FORM_SELECTS):
        name = sel.attributes.get("name")
        chosen = sel.css_first(SEL_OPTION_SELECTED) or sel.css_first(SEL_OPTION)
        if name and chosen is not None:
            data[name] = chosen.attributes.get("value") or ""
    return data


def _list_rows(page: str, table: str, rows: str, title_word: str, what: str) -> list[Node]:
    """The rows of a list screen; none when the screen (its title has ``title_word``) says
    there is nothing; any other page is ``UpstreamChanged``, never an empty list."""
    t = _tree(page)
    if t.css_first(table) is None:
        if t.css_first(SEL_NONE) is not None and title_word in _text(t.css_first(SEL_TITLE)):
            return []
        raise _changed(what)
    return list(t.css(rows))


# ---------------------------------------------------------------- loans
def parse_loans(page: str, library: str, today: date) -> list[Loan]:
    loans = []
    for row in _list_rows(page, SEL_LOAN_TABLE, SEL_LOAN_ROWS, "貸出", "loan list"):
        item = _text(_cell(row, COL_ITEM))
        due_text = _text(_cell(row, COL_DUE))
        if not item or not due_text:
            raise _changed("loan list")
        due = _date(due_text, "due date")
        note = _text(_cell(row, COL_STATE))
        renewable = row.css_first(SEL_LOAN_CHECKBOX) is not None
        times = RE_LEADING_NUMBER.match(_text(_cell(row, COL_TIMES_RENEWED)))
        loans.append(
            Loan(
                id=item,
                library=library,
                record_id=_bibid(row),
                title=_text(_cell(row, COL_TITLE)),
                author=_text(_cell(row, COL_AUTHOR)) or None,
                item_id=item,
                loaned_on=_opt_date(_text(_cell(row, COL_LOANED)), "loan date"),
                due_on=due,
                overdue=due < today,
                renewable=renewable,
                not_renewable_reason=None if renewable else refusal_reason(note),
                times_renewed=int(times.group(1)) if times else None,
            )
        )
    return loans


def refusal_reason(note: str) -> str:
    """The 状態 column / result line of a loan that cannot be renewed → API reason."""
    from mappers.status import renewal_reason

    if "延滞" in note or "期限を過ぎ" in note:
        return "overdue"
    return renewal_reason(note)


@dataclass(frozen=True)
class RenewalLine:
    item_id: str
    ok: bool
    due_on: date | None
    message: str


def parse_renewal_results(page: str) -> list[RenewalLine]:
    t = _tree(page)
    rows = t.css(SEL_EXT_RESULT_ROWS)
    if not rows:
        raise _changed("renewal result")
    out = []
    for row in rows:
        msg = _text(_cell(row, COL_RESULT))
        out.append(
            RenewalLine(
                item_id=_text(_cell(row, COL_ITEM)),
                ok=msg.startswith("延長しました"),
                due_on=_opt_date(_text(_cell(row, COL_DUE)), "due date"),
                message=msg,
            )
        )
    return out


# ---------------------------------------------------------------- holds
def parse_holds(page: str, library: str) -> list[Hold]:
    holds = []
    for row in _list_rows(page, SEL_HOLD_TABLE, SEL_HOLD_ROWS, "予約", "hold list"):
        hold_id = _text(_cell(row, COL_HOLD_NO))
        word = _text(_cell(row, COL_STATE))
        if not hold_id or not word:
            raise _changed("hold list")
        try:
            status = hold_status(word)
        except MappingError as exc:
            raise UpstreamChanged(f"unknown hold status {word!r}") from exc
        pos = RE_LEADING_NUMBER.match(_text(_cell(row, COL_POSITION)))
        holds.append(
            Hold(
                id=hold_id,
                library=library,
                record_id=_bibid(row),
                title=_text(_cell(row, COL_TITLE)),
                author=_text(_cell(row, COL_AUTHOR)) or None,
                status=status,  # type: ignore[arg-type]
                position=int(pos.group(1)) if pos else None,
                pickup_branch=_text(_cell(row, COL_PICKUP)) or None,
                contact_method=_text(_cell(row, COL_CONTACT)) or None,
                placed_on=_opt_date(_text(_cell(row, COL_HOLD_DATE)), "hold date"),
                ready_until=_opt_date(_text(_cell(row, COL_PICKUP_UNTIL)), "pickup deadline"),
                cancelable=row.css_first(SEL_HOLD_CHECKBOX) is not None,
            )
        )
    return holds


def parse_hold_number(page: str) -> str:
    node = _tree(page).css_first(SEL_HOLD_NO)
    if node is None or not _text(node):
        raise _changed("hold confirmation")
    return _text(node)


# ---------------------------------------------------------------- profile
def parse_profile(page: str, card_masked: str) -> Profile:
    t = _tree(page)
    dl = t.css_first(SEL_PROFILE)
    if dl is None:
        raise _changed("patron information")
    fields: dict[str, str] = {}
    key = None
    for node in dl.iter():
        if node.tag == "dt":
            key = _text(node)
        elif node.tag == "dd" and key is not None:
            fields[key] = _text(node)
    if "氏名" not in fields:
        raise _changed("patron information")
    mail = fields.get("メールアドレス", "")
    reminder = fields.get("返却期限お知らせメール", "")
    days = RE_REMINDER_DAYS.search(reminder)
    contact = fields.get("連絡方法") or None
    return Profile(
        card_number_masked=card_masked,
        name=fields["氏名"] or None,
        emails=[Email(address=mail, kind="pc")] if mail and "@" in mail else [],
        pickup_branch=fields.get("受取館") or None,
        contact_method=contact,
        notifications=Notifications(
            due_reminder=DueReminder(enabled=reminder.startswith("配信する"), days_before=int(days.group(1)) if days else 2),
            hold_ready=Toggle(enabled=contact in ("Eメール", "メール")),
            registration=Toggle(enabled=False),
        ),
        keep_history=False,
        card_expires_on=_opt_date(fields.get("有効期限", ""), "card expiry"),
    )


# ---------------------------------------------------------------- catalog
def parse_search(page: str, page_no: int) -> SearchResult:
    t = _tree(page)
    if MSG_NO_HITS in _text(t.css_first(SEL_NONE)):
        return SearchResult(records=[], total=0, page=page_no)
    count = t.css_first(SEL_HIT_COUNT)
    if count is None:
        raise _changed("search result")
    try:
        total = int(_text(count).replace(",", ""))
    except ValueError as exc:
        raise _changed("search result") from exc
    records = []
    for li in t.css(SEL_RESULTS):
        isbn = _text(li.css_first(SEL_RESULT_ISBN)).removeprefix("ISBN:").strip() or None
        records.append(
            RecordSummary(
                id=_bibid(li),
                title=_text(li.css_first(SEL_RESULT_TITLE)),
                author=_text(li.css_first(SEL_RESULT_AUTHOR)) or None,
                publisher=_text(li.css_first(SEL_RESULT_PUBLISHER)) or None,
                published=_text(li.css_first(SEL_RESULT_YEAR)) or None,
                isbn=isbn,
            )
        )
    if total and not records and page_no == 1:
        raise _changed("search result")
    return SearchResult(records=records, total=total, page=page_no)


def parse_record(page: str) -> Record:
    t = _tree(page)
    bib = t.css_first(SEL_BIB)
    rid = t.css_first(SEL_RECORD_ID)
    if bib is None or rid is None:
        raise _changed("record detail")
    fields = {_text(tr.css_first(SEL_BIB_LABEL)): _text(tr.css_first(SEL_BIB_VALUE)) for tr in bib.css(SEL_BIB_ROWS)}
    if not fields.get("書名"):
        raise _changed("record detail")
    holdings = []
    for row in t.css(SEL_HOLDINGS):
        word = _text(row.css_first(SEL_COPY_STATUS))
        holdings.append(
            Holding(
                branch=_text(row.css_first(SEL_COPY_LOCATION)) or _text(row.css_first(SEL_COPY_LIBRARY)),
                status=holding_status(word),  # type: ignore[arg-type]
                call_number=_text(row.css_first(SEL_COPY_CALL_NUMBER)) or None,
                due_on=_opt_date(_text(row.css_first(SEL_COPY_DUE)), "return date"),
            )
        )
    title = fields["書名"] + (f" : {fields['副書名']}" if fields.get("副書名") else "")
    return Record(
        id=rid.attributes.get("value") or "",
        title=title,
        author=fields.get("著者名") or None,
        publisher=fields.get("出版者") or None,
        published=fields.get("出版年") or None,
        isbn=fields.get("ISBN") or None,
        classification=fields.get("分類") or None,
        holdings=holdings,
    )


# ---------------------------------------------------------------- e-Net
def enet_status(word: str) -> str:
    key = "".join(word.split()).replace("（", "(").replace("）", ")")
    if key in ENET_STATES:
        return ENET_STATES[key]
    raise UpstreamChanged(f"unknown e-Net state {word!r}")


def _stamp(text: str) -> datetime | None:
    m = RE_STAMP.match(text)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups())
    return datetime(y, mo, d, h, mi, s, tzinfo=TZ)


def parse_enet_requests(page: str, code_to_pickup: dict[str, str] | None = None) -> list[UpstreamLending]:
    rows = _list_rows(page, SEL_ENET_TABLE, SEL_ENET_ROWS, "e-Net", "e-Net request list")
    code_to_pickup = code_to_pickup or {}
    out = []
    for row in rows:
        rid = _text(_cell(row, COL_ENET_NO))
        word = _text(_cell(row, COL_STATE))
        if not rid or not word:
            raise _changed("e-Net request list")
        pickup = _cell(row, COL_PICKUP)
        code = pickup.attributes.get("data-code") if pickup else None
        requested = _stamp(_text(_cell(row, COL_ENET_REQUESTED)))
        updated = _stamp(_text(_cell(row, COL_ENET_UPDATED)))
        out.append(
            UpstreamLending(
                upstream_id=rid,
                status=enet_status(word),  # type: ignore[arg-type]
                title=_text(_cell(row, COL_TITLE)),
                record_id=_bibid(row),
                extra={
                    "upstream_state": word,
                    "pickup_name": _text(pickup) or None,
                    "pickup_code": code,
                    "pickup_library": code_to_pickup.get(code or ""),
                    "note": _text(_cell(row, COL_NOTE)) or None,
                    "cancelable": row.css_first(SEL_ENET_CHECKBOX) is not None,
                    "requested_at": requested.isoformat() if requested else None,
                    "updated_at": updated.isoformat() if updated else None,
                },
            )
        )
    return out


def parse_enet_number(page: str) -> str:
    node = _tree(page).css_first(SEL_ENET_NO)
    if node is None or not _text(node):
        raise _changed("e-Net confirmation")
    return _text(node)


def parse_registration_key(page: str) -> str | None:
    """The hidden key of the 新規パスワード登録 step, or None when step 1 was refused."""
    t = _tree(page)
    if t.css_first(SEL_PWREG2) is None:
        return None
    node = t.css_first(SEL_REG_KEY)
    if node is None or not node.attributes.get("value"):
        raise _changed("password registration")
    return node.attributes["value"]
