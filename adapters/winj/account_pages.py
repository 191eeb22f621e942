"""Pure parsers of the winj portal's account screens (str in, values out).

Screens: 利用者情報変更 (the profile form, read as the profile), its confirm and
result screens, 借りたことがある資料 (history), 通知メッセージ一覧 (messages), 本棚一覧 /
本棚資料一覧 / the 本棚 download (shelves), 新着図書お知らせメール list and form (SDI).

Selectors, field names and the texts the flows look for are the named constants
below.  A page that lacks what it must have raises ``UpstreamChanged``; a page
that says it has nothing (該当するリストが存在しません, 該当する資料はありません, …) is an
empty result.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from selectolax.lexbor import LexborHTMLParser as HTMLParser
from selectolax.lexbor import LexborNode as Node

from adapters import html as H
from adapters.winj.pages import clean, node_text, tree
from core.errors import UpstreamChanged
from core.models import (
    Alert,
    AlertCondition,
    DueReminder,
    Email,
    HistoryEntry,
    Message,
    Notifications,
    Profile,
    Shelf,
    ShelfItem,
    Toggle,
)
from mappers import MappingError
from mappers.bibline import parse_bibline
from mappers.dates import parse_date, parse_optional_date

# ------------------------------------------------------------------ paths
PROFILE_FORM_PATH = "user-info-change.do"
PROFILE_CONFIRM_PATH = "user-info-confirm.do"
PROFILE_UPDATE_PATH = "user-info-update.do"
HISTORY_PATH = "lend-history.do"
MESSAGES_PATH = "message-list.do"
SHELF_LIST_PATH = "bookshelf-list.do"
SHELF_CREATE_CONFIRM_PATH = "bookshelf-create-confirm.do"
SHELF_CREATE_PATH = "bookshelf-create.do"
SHELF_RENAME_PATH = "bookshelf-rename.do"
SHELF_DELETE_CONFIRM_PATH = "bookshelf-delete-confirm.do"
SHELF_DELETE_PATH = "bookshelf-delete.do"
SHELF_DETAIL_PATH = "bookshelf-detail.do"
SHELF_DOWNLOAD_PATH = "bookshelf-download.do"
SHELF_ADD_CONFIRM_PATH = "bookshelf-add-confirm.do"
SHELF_ADD_PATH = "bookshelf-add.do"
SHELF_ITEM_CONFIRM_PATH = "bookshelf-item-confirm.do"
SHELF_ITEM_COMMIT_PATH = "bookshelf-item-commit.do"
SDI_LIST_PATH = "sdi-list.do"
SDI_INPUT_PATH = "sdi-input.do"
SDI_CONFIRM_PATH = "sdi-confirm.do"
SDI_REGIST_PATH = "sdi-regist.do"
SDI_STATUS_PATH = "sdi-status.do"
SDI_DELETE_CONFIRM_PATH = "sdi-delete-confirm.do"
SDI_DELETE_PATH = "sdi-delete.do"

# ------------------------------------------------------------------ selectors
SEL_PROFILE_FORM = "form#user-info-form, form[name=UserInfoForm]"
SEL_PROFILE_CONFIRM = "form#user-info-confirm"
SEL_CARD_LIMIT = "#card-limit"
SEL_USER_NAME = "#username"
SEL_CONFIRM_PICKUP = "td.pickup"
SEL_CONFIRM_CONTACT = "td.contact"
SEL_CONFIRM_HISTORY = "td.history"
SEL_HISTORY_LIST = "ol.history-list"
SEL_HISTORY_ITEM = "li.history-item"
SEL_HIT_COUNT = "p.hit-count"
SEL_MESSAGE_TABLE = "table.message-list"
SEL_MESSAGE_ROW = "tr.notice-message"
SEL_SHELF_TABLE = "table.shelf-list"
SEL_SHELF_ROW = "tr.shelf"
SEL_EMPTY = "p.empty"
SEL_SHELF_HEADING = "#shelf-name"
SEL_SHELF_ITEMS = "ol.shelf-items"
SEL_SHELF_ITEM = "li.shelf-item"
SEL_PAGING = "p.paging"
SEL_CONFIRM_ITEM = "li.confirm-item"
SEL_SDI_TABLE = "table.sdi-list"
SEL_SDI_ROW = "tr.sdi"
SEL_SDI_FORM = "form#sdi-form"
SEL_SDI_CONFIRM = "form#sdi-confirm-form"
SEL_MESSAGE = "#message p"
SEL_ANY_ROW = "li, tr"
SEL_HEADER_CELL = "th"
SEL_ERROR = "p.error"
SEL_FORM_CONTROLS = "input, select, textarea"
SEL_OPTION = "option"
SEL_ITEM_TITLE = "a.title"
SEL_HISTORY_LOANED = "dd.lend-date"
SEL_HISTORY_RETURNED = "dd.return-date"
SEL_ITEM_BIBLINE = "p.bibline"
SEL_MESSAGE_SUBJECT = "td.subject a"
SEL_MESSAGE_DATE = "td.date"
SEL_MESSAGE_BODY = "td.body"
SEL_MESSAGE_STATE = "td.state"
SEL_SHELF_NAME = "td.name a"
SEL_SHELF_COUNT = "td.count"
SEL_SHELF_ITEM_CHECK = 'input[name="chk_bib"]'
SEL_SHELF_ITEM_ADDED = "p.regist-date span"
SEL_SHELF_CONFIRM = "form#shelf-confirm-form"
SEL_CONFIRM_TITLE = "span.title"
SEL_CONFIRM_BIBLINE = "span.bibline"
SEL_SDI_NO = 'input[name="hid_no"]'
SEL_SDI_TITLE = "td.title"
SEL_SDI_STATE = "td.state span.current"

# ------------------------------------------------------------------ form fields
F_MAIL = "txt_mail{}"
F_MAIL_KIND = "cmb_mailkind{}"
F_AREA = "cmb_area"
F_CONTACT = "cmb_contact"
F_TEL = "cmb_tel"
F_HISTORY = "chk_history"
F_LIMIT_DAYS = "cmb_limitday"
RADIO_ON = "1"
RADIO_OFF = "0"
#: notice rows of the profile form: API name → field-name stem (chk_<stem>_pc/_mb, rdo_<stem>)
NOTICE_ROWS = {"registration": "regist", "hold_ready": "reserve", "checkout": "lend", "due_reminder": "limit"}
#: rows whose state is only the destinations (no 配信/停止 radio)
NOTICE_ROWS_WITHOUT_RADIO = {"hold_ready"}
SDI_ROWS = 4
SDI_FIELD_CODES = {"title": "TI", "author": "AU", "subject": "SH", "publisher": "PU"}
SDI_CODE_FIELDS = {v: k for k, v in SDI_FIELD_CODES.items()}
SDI_FIELD_LABELS = {"タイトル": "title", "著者": "author", "一般件名": "subject", "出版者": "publisher"}
SDI_CONTAINS = "1"
SDI_AND = "AND"

# ------------------------------------------------------------------ texts
TXT_PROFILE_DONE = re.compile(r"利用者情報変更申し?込みを受け?付")
TXT_HISTORY_OFF = "残す」設定になっていません"
TXT_NO_ROWS = ("該当する資料はありません", "該当するリストが存在しません", "通知メッセージはありません",
               "新着図書お知らせメールは登録されていません")
MOBILE_WORDS = ("携帯",)
NO_PHONE_WORDS = ("電話番号未登録", "なし", "不要")
READ_WORD = "既読"
ACTIVE_WORDS = ("配信中",)
DOWNLOAD_HEADER = "書誌番号"
EXPORT_COLUMNS = ("record_id", "title", "author", "publisher", "year", "classification", "added_on")

_NO = re.compile(r"[?&](?:no|shelf)=(\d+)")
_BIBID = re.compile(r"[?&]bibid=([^&#]+)")
_INT = re.compile(r"\d+")
_TOTAL = re.compile(r"全\s*(\d+)\s*件")


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "")


def _int(text: str) -> int | None:
    m = _INT.search(_nfkc(text))
    return int(m.group(0)) if m else None


def _messages(t: HTMLParser) -> list[str]:
    return [node_text(n) for n in t.css(SEL_MESSAGE) if node_text(n)]


def page_messages(html: str | HTMLParser) -> list[str]:
    """The result/refusal lines a page shows (#message p)."""
    return _messages(tree(html))


def says_nothing(text: str) -> bool:
    return any(w in text for w in TXT_NO_ROWS)


# ------------------------------------------------------------------ generic forms
@dataclass
class HtmlForm:
    """A form as a browser would submit it, plus what its selects offer."""

    action: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    #: select name → [(value, label)]
    options: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    #: names of every control (checked or not)
    names: set[str] = field(default_factory=set)
    #: radio name → values offered
    radios: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return next((v for k, v in self.fields if k == name), default)

    def has(self, name: str) -> bool:
        return any(k == name for k, _ in self.fields)

    def set(self, name: str, value: str | None) -> None:
        """Set (or, with None, remove — an unchecked checkbox) a field."""
        self.fields = [(k, v) for k, v in self.fields if k != name]
        if value is not None:
            self.fields.append((name, value))

    def label_of(self, select: str) -> str:
        value = self.get(select)
        return next((lab for v, lab in self.options.get(select, []) if v == value), "")

    def value_for_label(self, select: str, label: str) -> str | None:
        want = clean(_nfkc(label))
        for v, lab in self.options.get(select, []):
            if clean(_nfkc(lab)) == want:
                return v
        return None


def parse_form(node: Node) -> HtmlForm:
    """Serialise a <form> the way a browser does (no submit buttons)."""
    form = HtmlForm(action=node.attributes.get("action") or "")
    for el in node.css(SEL_FORM_CONTROLS):
        name = el.attributes.get("name")
        if not name:
            continue
        form.names.add(name)
        tag = el.tag
        if tag == "select":
            opts = [(o.attributes.get("value") if o.attributes.get("value") is not None else node_text(o),
                     node_text(o)) for o in el.css(SEL_OPTION)]
            form.options[name] = [(v or "", lab) for v, lab in opts]
            chosen = [o for o in el.css(SEL_OPTION) if "selected" in o.attributes]
            if chosen:
                v = chosen[0].attributes.get("value")
                form.fields.append((name, v if v is not None else node_text(chosen[0])))
            elif opts:
                form.fields.append((name, opts[0][0] or ""))
            continue
        if tag == "textarea":
            form.fields.append((name, el.text() or ""))
            continue
        kind = (el.attributes.get("type") or "text").lower()
        value = el.attributes.get("value") or ""
        if kind in ("submit", "button", "reset", "image"):
            continue
        if kind == "radio":
            form.radios.setdefault(name, []).append(value)
        if kind in ("checkbox", "radio"):
            if "checked" in el.attributes:
                form.fields.append((name, value or "on"))
            continue
        form.fields.append((name, value))
    return form


# ------------------------------------------------------------------ profile
def find_profile_form(html: str | HTMLParser, library: str | None = None) -> HtmlForm:
    t = tree(html)
    node = t.css_first(SEL_PROFILE_FORM)
    if node is None:
        raise UpstreamChanged("no 利用者情報変更 form", library=library)
    form = parse_form(node)
    for required in (F_MAIL.format(1), F_AREA, F_CONTACT, "chk_regist_pc", "chk_limit_pc", F_HISTORY):
        if required not in form.names:
            raise UpstreamChanged(f"利用者情報変更 form without {required}", library=library)
    return form


def form_errors(html: str | HTMLParser) -> list[str]:
    t = tree(html)
    out: list[str] = []
    for n in t.css(SEL_ERROR):
        line = node_text(n)
        if line and line not in out:
            out.append(line)
    return out


def _kind_of(label: str) -> Literal["pc", "mobile"]:
    return "mobile" if any(w in label for w in MOBILE_WORDS) else "pc"


def _dest(form: HtmlForm, stem: str) -> tuple[bool, bool]:
    return form.has(f"chk_{stem}_pc"), form.has(f"chk_{stem}_mb")


def profile_from_form(form: HtmlForm, html: str | HTMLParser, card_masked: str, library: str | None = None) -> Profile:
    """利用者情報変更 (pre-filled with the current settings) → Profile."""
    emails = []
    for i in (1, 2):
        address = clean(form.get(F_MAIL.format(i)))
        if address:
            emails.append(Email(address=address, kind=_kind_of(form.label_of(F_MAIL_KIND.format(i)))))

    def toggle(api: str) -> Toggle | None:
        stem = NOTICE_ROWS[api]
        if f"chk_{stem}_pc" not in form.names:
            return None
        pc, mb = _dest(form, stem)
        if api in NOTICE_ROWS_WITHOUT_RADIO:
            return Toggle(enabled=pc or mb)
        return Toggle(enabled=(pc or mb) and form.get(f"rdo_{stem}") == RADIO_ON)

    due = toggle("due_reminder")
    days = _int(form.get(F_LIMIT_DAYS)) or _int(form.label_of(F_LIMIT_DAYS)) or 1
    registration, hold_ready = toggle("registration"), toggle("hold_ready")
    if due is None or registration is None or hold_ready is None:
        raise UpstreamChanged("利用者情報変更 form without its notice rows", library=library)
    phone = form.label_of(F_TEL) if F_TEL in form.names else ""
    t = tree(html)
    expiry_node = t.css_first(SEL_CARD_LIMIT)
    try:
        expires = parse_optional_date(node_text(expiry_node)) if expiry_node is not None else None
    except MappingError as exc:
        raise UpstreamChanged(f"unreadable 貸出カード有効期限日 {node_text(expiry_node)!r}", library=library) from exc
    pickup = form.label_of(F_AREA)
    contact = form.label_of(F_CONTACT)
    if not pickup or not contact:
        raise UpstreamChanged("利用者情報変更 form without 予約受取館/予約連絡方法", library=library)
    return Profile(
        card_number_masked=card_masked,
        name=node_text(t.css_first(SEL_USER_NAME)) or None,
        emails=emails,
        pickup_branch=pickup,
        contact_method=contact,
        phone_contact=None if not phone or phone in NO_PHONE_WORDS else phone,
        notifications=Notifications(
            due_reminder=DueReminder(enabled=due.enabled, days_before=min(max(days, 0), 14)),
            hold_ready=hold_ready,
            checkout=toggle("checkout"),
            registration=registration,
        ),
        keep_history=form.has(F_HISTORY),
        card_expires_on=expires,
    )


def parse_profile(html: str | HTMLParser, card_masked: str, library: str | None = None) -> Profile:
    return profile_from_form(find_profile_form(html, library), html, card_masked, library)


@dataclass(frozen=True)
class ProfileConfirm:
    pickup: str
    contact: str
    keep_history: bool
    mail_option: str | None  # the first address offered for the 申請確認メール


def parse_profile_confirm(html: str | HTMLParser, library: str | None = None) -> ProfileConfirm:
    """利用者情報変更確認: what the portal is about to store."""
    t = tree(html)
    node = t.css_first(SEL_PROFILE_CONFIRM)
    if node is None:
        raise UpstreamChanged("no 利用者情報変更確認 screen", library=library)
    form = parse_form(node)
    offered = form.options.get("cmb_mail") or []
    return ProfileConfirm(
        pickup=node_text(t.css_first(SEL_CONFIRM_PICKUP)),
        contact=node_text(t.css_first(SEL_CONFIRM_CONTACT)),
        keep_history=node_text(t.css_first(SEL_CONFIRM_HISTORY)) == "残す",
        mail_option=offered[0][0] if offered else None,
    )


def profile_update_done(html: str | HTMLParser) -> bool:
    body = tree(html).body
    return bool(TXT_PROFILE_DONE.search(clean(body.text(separator=" ") if body is not None else "")))


# ------------------------------------------------------------------ history
@dataclass(frozen=True)
class HistorySlice:
    entries: list[HistoryEntry]
    total: int
    kept: bool  # False: the patron has not opted in (「残す」)


def _bibid(node: Node | None) -> str | None:
    if node is None:
        return None
    m = _BIBID.search(node.attributes.get("href") or "")
    return urllib.parse.unquote(m.group(1)) if m else None


def _author(title: str, line: str) -> str | None:
    if not line:
        return None
    try:
        return parse_bibline(line, title=title).author
    except MappingError:
        return None


def _list_rows(container: Node, selector: str, what: str, library: str | None) -> list[Node]:
    """The rows of a list or table that match ``selector`` — and every row the container
    holds must match: a row whose class changed is layout drift (502), never a shorter list."""
    rows = list(container.css(selector))
    cid = container.mem_id
    structural = [n for n in container.css(SEL_ANY_ROW) if n.css_first(SEL_HEADER_CELL) is None
                  and n.parent is not None and (n.parent.mem_id == cid or (
                      n.parent.tag in ("tbody", "thead", "tfoot") and n.parent.parent is not None
                      and n.parent.parent.mem_id == cid))]
    if len(structural) != len(rows):
        raise UpstreamChanged(f"the {what} page changed: {len(rows)} rows match where the list has "
                              f"{len(structural)}", library=library)
    return rows


def parse_history(html: str | HTMLParser, library: str | None = None) -> HistorySlice:
    """借りたことがある資料 (one page of it)."""
    t = tree(html)
    text = " ".join(_messages(t))
    if TXT_HISTORY_OFF in text:
        return HistorySlice([], 0, kept=False)
    lst = t.css_first(SEL_HISTORY_LIST)
    if lst is None:
        if says_nothing(text):
            return HistorySlice([], 0, kept=True)
        raise UpstreamChanged("no list on 借りたことがある資料", library=library)
    total = _int(node_text(t.css_first(SEL_HIT_COUNT)))
    if total is None:
        raise UpstreamChanged("no 該当件数 on 借りたことがある資料", library=library)
    entries = []
    for li in _list_rows(lst, SEL_HISTORY_ITEM, "借りたことがある資料", library):
        a = li.css_first(SEL_ITEM_TITLE)
        title = node_text(a)
        record_id = _bibid(a)
        if not title or not record_id:
            raise UpstreamChanged("a history entry without title or 書誌番号", library=library)
        returned = node_text(li.css_first(SEL_HISTORY_RETURNED))
        try:
            returned_on = parse_optional_date(returned)
        except MappingError as exc:
            raise UpstreamChanged(f"unreadable 返却日 {returned!r}", library=library) from exc
        entries.append(HistoryEntry(
            record_id=record_id, title=title, author=_author(title, node_text(li.css_first(SEL_ITEM_BIBLINE))),
            loaned_on=H.required_date(node_text(li.css_first(SEL_HISTORY_LOANED)), "貸出日", screen="history",
                                      library=library), returned_on=returned_on,
        ))
    return HistorySlice(entries, total, kept=True)


# ------------------------------------------------------------------ messages
def parse_messages(html: str | HTMLParser, tz: ZoneInfo, library: str | None = None) -> list[Message]:
    """通知メッセージ一覧 → messages (newest first, as listed)."""
    t = tree(html)
    table = t.css_first(SEL_MESSAGE_TABLE)
    if table is None:
        if says_nothing(" ".join(_messages(t))):
            return []
        raise UpstreamChanged("no table on 通知メッセージ一覧", library=library)
    out = []
    for row in _list_rows(table, SEL_MESSAGE_ROW, "通知メッセージ", library):
        a = row.css_first(SEL_MESSAGE_SUBJECT)
        m = _NO.search(a.attributes.get("href") or "") if a is not None else None
        stamp = node_text(row.css_first(SEL_MESSAGE_DATE))
        if m is None or not stamp:
            raise UpstreamChanged("a message row without its number or date", library=library)
        day, _, clock = stamp.partition(" ")
        try:
            hh, mm = (int(x) for x in (clock or "00:00").split(":")[:2])
            sent = datetime.combine(parse_date(day), time(hh, mm), tzinfo=tz)
        except (MappingError, ValueError) as exc:
            raise UpstreamChanged(f"unreadable message date {stamp!r}", library=library) from exc
        out.append(Message(id=m.group(1), subject=node_text(a), body=node_text(row.css_first(SEL_MESSAGE_BODY)),
                           sent_at=sent, read=node_text(row.css_first(SEL_MESSAGE_STATE)) == READ_WORD))
    return out


# ------------------------------------------------------------------ shelves
def parse_shelves(html: str | HTMLParser, library: str | None = None) -> list[Shelf]:
    """本棚一覧."""
    t = tree(html)
    table = t.css_first(SEL_SHELF_TABLE)
    if table is None:
        empty = t.css_first(SEL_EMPTY)
        if empty is not None and says_nothing(node_text(empty)):
            return []
        raise UpstreamChanged("no table on 本棚一覧", library=library)
    out = []
    for row in _list_rows(table, SEL_SHELF_ROW, "本棚", library):
        a = row.css_first(SEL_SHELF_NAME)
        m = _NO.search(a.attributes.get("href") or "") if a is not None else None
        count = _int(node_text(row.css_first(SEL_SHELF_COUNT)))
        if m is None or count is None:
            raise UpstreamChanged("a shelf row without its number or 冊数", library=library)
        out.append(Shelf(id=m.group(1), name=node_text(a), item_count=count))
    return out


@dataclass(frozen=True)
class ShelfPage:
    name: str
    items: list[ShelfItem]
    total: int


def parse_shelf_items(html: str | HTMLParser, library: str | None = None) -> ShelfPage:
    """本棚資料一覧 (one page of it)."""
    t = tree(html)
    heading = t.css_first(SEL_SHELF_HEADING)
    if heading is None:
        raise UpstreamChanged("no heading on 本棚資料一覧", library=library)
    name = node_text(heading).removesuffix("へ格納された資料一覧")
    lst = t.css_first(SEL_SHELF_ITEMS)
    if lst is None:
        empty = t.css_first(SEL_EMPTY)
        if empty is not None and says_nothing(node_text(empty)):
            return ShelfPage(name, [], 0)
        raise UpstreamChanged("no list on 本棚資料一覧", library=library)
    m = _TOTAL.search(_nfkc(node_text(t.css_first(SEL_PAGING))))
    if m is None:
        raise UpstreamChanged("no 件数 on 本棚資料一覧", library=library)
    items = []
    for li in _list_rows(lst, SEL_SHELF_ITEM, "本棚の資料", library):
        chk = li.css_first(SEL_SHELF_ITEM_CHECK)
        a = li.css_first(SEL_ITEM_TITLE)
        record_id = (chk.attributes.get("value") if chk is not None else None) or _bibid(a)
        title = node_text(a)
        if not record_id or not title:
            raise UpstreamChanged("a shelf item without 書誌番号 or title", library=library)
        added = node_text(li.css_first(SEL_SHELF_ITEM_ADDED))
        try:
            added_on = parse_optional_date(added)
        except MappingError:
            added_on = None
        items.append(ShelfItem(record_id=record_id, title=title,
                               author=_author(title, node_text(li.css_first(SEL_ITEM_BIBLINE))), added_on=added_on))
    return ShelfPage(name, items, int(m.group(1)))


@dataclass(frozen=True)
class ConfirmItem:
    title: str
    bibline: str


def parse_confirm_items(html: str | HTMLParser, library: str | None = None) -> list[ConfirmItem]:
    """The list of a 本棚 confirm screen (作成/削除/資料登録/資料削除/複写/移動確認)."""
    t = tree(html)
    if t.css_first(SEL_SHELF_CONFIRM) is None:
        raise UpstreamChanged("not a 本棚 confirm screen", library=library)
    out = []
    for li in t.css(SEL_CONFIRM_ITEM):
        out.append(ConfirmItem(node_text(li.css_first(SEL_CONFIRM_TITLE)) or node_text(li),
                               node_text(li.css_first(SEL_CONFIRM_BIBLINE))))
    return out


def shelf_download_to_csv(text: str, library: str | None = None) -> str:
    """The portal's ダウンロード (tab-separated text) → CSV with our header row."""
    lines = [ln for ln in text.replace("\r\n", "\n").split("\n") if ln.strip()]
    if not lines or not lines[0].startswith(DOWNLOAD_HEADER):
        raise UpstreamChanged("the 本棚 download is not the expected text", library=library)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(EXPORT_COLUMNS)
    for ln in lines[1:]:
        cells = ln.split("\t")
        if len(cells) < 7:
            raise UpstreamChanged("a short line in the 本棚 download", library=library)
        try:
            added = parse_optional_date(cells[6])
        except MappingError:
            added = None
        w.writerow([cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], added.isoformat() if added else ""])
    return out.getvalue()


# ------------------------------------------------------------------ SDI
@dataclass(frozen=True)
class SdiRow:
    id: str
    title: str
    active: bool


def parse_sdi_list(html: str | HTMLParser, library: str | None = None) -> list[SdiRow]:
    """新着図書お知らせメール (the list)."""
    t = tree(html)
    table = t.css_first(SEL_SDI_TABLE)
    if table is None:
        empty = t.css_first(SEL_EMPTY)
        if empty is not None and says_nothing(node_text(empty)):
            return []
        raise UpstreamChanged("no table on 新着図書お知らせメール", library=library)
    out = []
    for row in _list_rows(table, SEL_SDI_ROW, "新着図書お知らせメール", library):
        no = row.css_first(SEL_SDI_NO)
        title = node_text(row.css_first(SEL_SDI_TITLE))
        state = node_text(row.css_first(SEL_SDI_STATE))
        if no is None or not title or not state:
            raise UpstreamChanged("an SDI row without number, title or 配信状態", library=library)
        out.append(SdiRow(no.attributes.get("value") or "", title, any(w in state for w in ACTIVE_WORDS)))
    return out


def parse_sdi_form(html: str | HTMLParser, active: bool, library: str | None = None) -> Alert:
    """新着図書お知らせメール条件入力 pre-filled with a stored alert → Alert."""
    t = tree(html)
    node = t.css_first(SEL_SDI_FORM)
    if node is None:
        raise UpstreamChanged("no 新着図書お知らせメール条件入力 form", library=library)
    form = parse_form(node)
    conditions = []
    for i in range(1, SDI_ROWS + 1):
        word = clean(form.get(f"txt_word{i}"))
        if not word:
            continue
        api_field = SDI_CODE_FIELDS.get(form.get(f"cmb_item{i}")) or SDI_FIELD_LABELS.get(form.label_of(f"cmb_item{i}"))
        if api_field is None:
            raise UpstreamChanged(f"unknown SDI field {form.get(f'cmb_item{i}')!r}", library=library)
        conditions.append(AlertCondition(field=api_field, op="contains", value=word))  # type: ignore[arg-type]
    no = form.get("hid_no")
    title = clean(form.get("txt_title"))
    max_results = _int(form.get("cmb_max"))
    if not no or not title or not conditions or max_results is None:
        raise UpstreamChanged("the SDI form lacks its number, title, conditions or 最大抽出件数", library=library)
    memo = clean(form.get("txt_memo"))
    return Alert(id=no, name=title, memo=memo or None, conditions=conditions, match="all",
                 max_results=max_results, active=active, source="library")


def is_sdi_confirm(html: str | HTMLParser) -> bool:
    return tree(html).css_first(SEL_SDI_CONFIRM) is not None
