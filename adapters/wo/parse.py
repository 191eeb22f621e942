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

from adapters import html
from adapters.html import Node
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
from mappers.status import hold_status, holding_status

# ---------------------------------------------------------------- selectors
SEL_MESSAGE = "p.wo_msg"
SEL_ERROR = "p.wo_msg_err"
SEL_OK = "p.wo_msg_ok"
SEL_TITLE = "h2.wo_ttl"
SEL_DOC_TITLE = "title"
SEL_CTKN = "input[name=wo_ctkn]"
SEL_LOGIN_FORM = "form[name=frm_login]"
SEL_USER_NAME = "#wo_usr .wo_usr_nm"
SEL_NONE = "p.wo_none"  # "no loans / holds / requests / hits" paragraph
SEL_LOAN_ROWS = "table#tbl_lend tbody tr"
SEL_EXT_RESULT_ROWS = "table#tbl_ext_rslt tbody tr"
SEL_HOLD_ROWS = "table#tbl_rsv tbody tr"
SEL_HOLD_NO = "#rsv_no"
SEL_PROFILE = "dl#dl_usr"
SEL_HIT_COUNT = "#hit_cnt"
SEL_RESULTS = "ol.wo_rslt_lst li.wo_rslt"
SEL_BIB = "table#tbl_bib"
SEL_HOLDINGS = "table#tbl_zok tbody tr"
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
TZ = ZoneInfo("Asia/Tokyo")
#: the number of rows a list screen prints above its table ("貸出件数 3件")
RE_LOAN_COUNT = re.compile(r"貸出件数\s*(\d+)\s*件")
RE_HOLD_COUNT = re.compile(r"予約件数\s*(\d+)\s*件")
RE_ENET_COUNT = re.compile(r"申込件数\s*(\d+)\s*件")

# one Screen per page kind: its name is in every UpstreamChanged detail
LOANS = html.Screen("loan list")
RENEWAL = html.Screen("renewal result")
HOLDS = html.Screen("hold list")
HOLD_DONE = html.Screen("hold confirmation")
PROFILE = html.Screen("patron information")
SEARCH = html.Screen("search result")
RECORD = html.Screen("record detail")
ENET = html.Screen("e-Net request list")
ENET_DONE = html.Screen("e-Net confirmation")
REGISTRATION = html.Screen("password registration")


def decode(content: bytes, content_type: str | None = None) -> str:
    """Bytes of a page → text (``adapters.html.decode``: declared charset, else detected, else 502)."""
    return html.decode(content, content_type)


# ---------------------------------------------------------------- helpers
_tree = html.tree
_text = html.text


def _cell(row: Node, selector: str) -> Node | None:
    return row.css_first(selector)


def _bibid(row: Node, screen: html.Screen) -> str:
    href = screen.required_attr(row, (SEL_ROW_RECORD_LINK, SEL_RESULT_TITLE), "href", "record link")
    m = RE_BIBID.search(href)
    if not m:
        raise screen.changed(f"record link without a bibid: {href!r}")
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


def _list_rows(page: str, rows: str, title_word: str, count: re.Pattern[str], screen: html.Screen,
               what: str) -> list[Node]:
    """The rows of a list screen.  None only when the screen (its title has ``title_word``)
    positively says there is nothing (the "no items" paragraph, or a count of 0); otherwise
    no rows, or fewer rows than the count the screen prints, is ``UpstreamChanged``."""
    t = _tree(page)
    m = count.search(html.text(t.body))
    shown = int(m.group(1)) if m else None

    def none() -> bool:
        if title_word not in _text(t.css_first(SEL_TITLE)) and title_word not in _text(t.css_first(SEL_DOC_TITLE)):
            return False
        return shown == 0 or (shown is None and t.css_first(SEL_NONE) is not None)

    return screen.rows(t, rows, what, empty=none, count=shown)


# ---------------------------------------------------------------- loans
def parse_loans(page: str, library: str, today: date) -> list[Loan]:
    loans = []
    for row in _list_rows(page, SEL_LOAN_ROWS, "貸出", RE_LOAN_COUNT, LOANS, "loans"):
        item = LOANS.required_text(row, COL_ITEM, "item number")
        due = LOANS.required_date(LOANS.required_text(row, COL_DUE, "due date"), "due date")
        note = _text(_cell(row, COL_STATE))
        renewable = row.css_first(SEL_LOAN_CHECKBOX) is not None
        times = RE_LEADING_NUMBER.match(_text(_cell(row, COL_TIMES_RENEWED)))
        loans.append(
            Loan(
                id=item,
                library=library,
                record_id=_bibid(row, LOANS),
                title=LOANS.required_text(row, COL_TITLE, "title"),
                author=_text(_cell(row, COL_AUTHOR)) or None,
                item_id=item,
                loaned_on=LOANS.optional_date(_text(_cell(row, COL_LOANED)), "loan date"),
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
    out = []
    for row in RENEWAL.rows(t, SEL_EXT_RESULT_ROWS, "renewal lines", empty=False):
        msg = RENEWAL.required_text(row, COL_RESULT, "result")
        out.append(
            RenewalLine(
                item_id=RENEWAL.required_text(row, COL_ITEM, "item number"),
                ok=msg.startswith("延長しました"),
                due_on=RENEWAL.optional_date(_text(_cell(row, COL_DUE)), "due date"),
                message=msg,
            )
        )
    return out


# ---------------------------------------------------------------- holds
def parse_holds(page: str, library: str) -> list[Hold]:
    holds = []
    for row in _list_rows(page, SEL_HOLD_ROWS, "予約", RE_HOLD_COUNT, HOLDS, "holds"):
        hold_id = HOLDS.required_text(row, COL_HOLD_NO, "hold number")
        status = HOLDS.mapped(hold_status, HOLDS.required_text(row, COL_STATE, "hold status"), "hold status")
        pos = RE_LEADING_NUMBER.match(_text(_cell(row, COL_POSITION)))
        holds.append(
            Hold(
                id=hold_id,
                library=library,
                record_id=_bibid(row, HOLDS),
                title=HOLDS.required_text(row, COL_TITLE, "title"),
                author=_text(_cell(row, COL_AUTHOR)) or None,
                status=status,  # type: ignore[arg-type]
                position=int(pos.group(1)) if pos else None,
                pickup_branch=_text(_cell(row, COL_PICKUP)) or None,
                contact_method=_text(_cell(row, COL_CONTACT)) or None,
                placed_on=HOLDS.optional_date(_text(_cell(row, COL_HOLD_DATE)), "hold date"),
                ready_until=HOLDS.optional_date(_text(_cell(row, COL_PICKUP_UNTIL)), "pickup deadline"),
                cancelable=row.css_first(SEL_HOLD_CHECKBOX) is not None,
            )
        )
    return holds


def parse_hold_number(page: str) -> str:
    return HOLD_DONE.required_text(_tree(page), SEL_HOLD_NO, "hold number")


# ---------------------------------------------------------------- profile
def parse_profile(page: str, card_masked: str) -> Profile:
    t = _tree(page)
    dl = PROFILE.required(t, SEL_PROFILE, "patron details")
    fields: dict[str, str] = {}
    key = None
    for node in dl.iter():
        if node.tag == "dt":
            key = _text(node)
        elif node.tag == "dd" and key is not None:
            fields[key] = _text(node)
    if "氏名" not in fields:
        raise PROFILE.changed("no 氏名 (name) row")
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
        card_expires_on=PROFILE.optional_date(fields.get("有効期限", ""), "card expiry"),
    )


# ---------------------------------------------------------------- catalog
def parse_search(page: str, page_no: int) -> SearchResult:
    t = _tree(page)
    if MSG_NO_HITS in _text(t.css_first(SEL_NONE)):
        return SearchResult(records=[], total=0, page=page_no)
    count = SEARCH.required_text(t, SEL_HIT_COUNT, "hit count")
    total = SEARCH.mapped(lambda v: int(v.replace(",", "")), count, "hit count")
    records = []
    for li in t.css(SEL_RESULTS):
        isbn = _text(li.css_first(SEL_RESULT_ISBN)).removeprefix("ISBN:").strip() or None
        records.append(
            RecordSummary(
                id=_bibid(li, SEARCH),
                title=SEARCH.required_text(li, SEL_RESULT_TITLE, "title"),
                author=_text(li.css_first(SEL_RESULT_AUTHOR)) or None,
                publisher=_text(li.css_first(SEL_RESULT_PUBLISHER)) or None,
                published=_text(li.css_first(SEL_RESULT_YEAR)) or None,
                isbn=isbn,
            )
        )
    if total and not records and page_no == 1:
        raise SEARCH.changed(f"no results listed although the page counts {total}")
    return SearchResult(records=records, total=total, page=page_no)


def parse_record(page: str) -> Record:
    t = _tree(page)
    bib = RECORD.required(t, SEL_BIB, "bibliographic table")
    rid = RECORD.required_attr(t, SEL_RECORD_ID, "value", "record id")
    fields = {_text(tr.css_first(SEL_BIB_LABEL)): _text(tr.css_first(SEL_BIB_VALUE)) for tr in bib.css(SEL_BIB_ROWS)}
    if not fields.get("書名"):
        raise RECORD.changed("no 書名 (title) row")
    holdings = []
    for row in t.css(SEL_HOLDINGS):
        word = _text(row.css_first(SEL_COPY_STATUS))
        holdings.append(
            Holding(
                branch=_text(row.css_first(SEL_COPY_LOCATION)) or _text(row.css_first(SEL_COPY_LIBRARY)),
                status=holding_status(word),  # type: ignore[arg-type]
                call_number=_text(row.css_first(SEL_COPY_CALL_NUMBER)) or None,
                due_on=RECORD.optional_date(_text(row.css_first(SEL_COPY_DUE)), "return date"),
            )
        )
    title = fields["書名"] + (f" : {fields['副書名']}" if fields.get("副書名") else "")
    return Record(
        id=rid,
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
    raise ENET.changed(f"unknown e-Net state {word!r}")


def _stamp(text: str) -> datetime | None:
    m = RE_STAMP.match(text)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups())
    return datetime(y, mo, d, h, mi, s, tzinfo=TZ)


def parse_enet_requests(page: str, code_to_pickup: dict[str, str] | None = None) -> list[UpstreamLending]:
    rows = _list_rows(page, SEL_ENET_ROWS, "e-Net", RE_ENET_COUNT, ENET, "requests")
    code_to_pickup = code_to_pickup or {}
    out = []
    for row in rows:
        rid = ENET.required_text(row, COL_ENET_NO, "request number")
        word = ENET.required_text(row, COL_STATE, "state")
        pickup = _cell(row, COL_PICKUP)
        code = pickup.attributes.get("data-code") if pickup else None
        requested = _stamp(_text(_cell(row, COL_ENET_REQUESTED)))
        updated = _stamp(_text(_cell(row, COL_ENET_UPDATED)))
        out.append(
            UpstreamLending(
                upstream_id=rid,
                status=enet_status(word),  # type: ignore[arg-type]
                title=ENET.required_text(row, COL_TITLE, "title"),
                record_id=_bibid(row, ENET),
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
    return ENET_DONE.required_text(_tree(page), SEL_ENET_NO, "request number")


def parse_registration_key(page: str) -> str | None:
    """The hidden key of the 新規パスワード登録 step, or None when step 1 was refused."""
    t = _tree(page)
    if t.css_first(SEL_PWREG2) is None:
        return None
    return REGISTRATION.required_attr(t, SEL_REG_KEY, "value", "registration key")
