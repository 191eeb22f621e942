"""Account screens of the winj WebOPAC family: profile (利用者情報変更), reading
history (借りたことがある資料), messages (通知メッセージ), bookshelves (本棚) and the
library's own SDI alerts (新着図書お知らせメール).

Mixed into ``adapters.winj.adapter.WinjAdapter`` (which provides login and the
request helpers of ``adapters.winj.http.WinjHttp``: ``open``, ``_get``, ``_post``
with ``hid_session``, charset handling, SessionExpired/maintenance detection).
Parsers are the pure functions of ``adapters.winj.account_pages``.

Upstream quirks handled here:
- the profile is read from the 利用者情報変更 form itself (it carries every
  setting, pre-filled); a change is form → 利用者情報変更確認 → 更新 and succeeds
  only when the result page says 「利用者情報変更申し込みを受け付けました。」 (the
  portal's wording varies: 受付しました/受付ました are accepted too).  The form is
  always posted whole, so settings the caller did not mention stay as they are.
  A timeout on the final 更新 is never retried: the form is re-read to learn
  whether the change was stored.  Every other write (shelves, SDI) does the same on
  a timeout of its final step: re-read, never repeat.
- the portal keeps ONE pending confirm per web session, so a patron's writes
  (these and the core ones) run one at a time per process, under
  ``WinjHttp._serial`` (adapters/winj/http.py).
- a notice row can only deliver to a kind of address (自PC/携帯) that is
  registered; turning a notice on checks the kinds that are registered, and the
  destinations of a removed address are unchecked.
- history exists only after 「残す」 (and only from the next day on); the portal
  shows at most 1,000 entries and pages by 10/20/50/100.
- the portal's SDI form has four rows of タイトル/著者/一般件名/出版者 「を含む」
  joined by 「かつ」; anything else is refused before any upstream call.

Upstream requests with a warm session: profile 1, profile update 4, history 1
(2 when an API page straddles two portal pages), messages 1, shelves 1,
create shelf 2, rename shelf 1, delete shelf 2, shelf items ⌈n/100⌉ (min 1),
add/remove/move/copy item 2, export 1, alerts 1 + one per alert, create alert 2
(3 when created paused), update alert 2 + 2 for content + 1 for 配信/停止,
delete alert 2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from adapters.base import UpstreamSession, translate_transport_errors
from adapters.winj import account_pages as ap
from core.errors import (
    Conflict,
    GatewayError,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    UpstreamChanged,
    UpstreamError,
    UpstreamTimeout,
)
from core.models import (
    Alert,
    AlertCondition,
    AlertCreate,
    AlertUpdate,
    HistoryPage,
    Message,
    Profile,
    ProfileUpdate,
    Shelf,
    ShelfItem,
)

if TYPE_CHECKING:
    from adapters.winj.http import Page, WinjHttp

    _Base = WinjHttp
else:
    _Base = object

ACCOUNT_CAPABILITIES = frozenset({"profile", "profile_update", "history", "messages", "shelves", "alerts"})

HISTORY_DISP = (10, 20, 50, 100)
SHELF_PAGE = 100
SHELF_NAME_MAX = 32
SHELF_ITEM_LIMIT = 1000
SDI_MAX_CHOICES = (5, 10, 20, 30, 50, 100)

# Refusal texts of the portal → typed errors (first match wins).
TXT_CONFLICT = ("既に", "同じ名称")
TXT_LIMIT = ("冊までです",)
TXT_NOT_FOUND = ("存在しません", "資料が選択されていません", "本棚を選択してください", "本棚が選択されていません")
TXT_SHELF_DONE = {
    "create": "本棚を登録しました", "rename": "本棚の名称を変更しました", "delete": "本棚を削除しました",
    "add": "本棚へ資料を登録しました", "remove": "本棚から資料を削除しました",
    "copy": "資料を複写しました", "move": "資料を移動しました",
}
TXT_SDI_DONE = {"create": "新着図書お知らせメールを登録しました", "update": "新着図書お知らせメールを更新しました",
                "status": "配信状態を変更しました", "delete": "新着図書お知らせメールを削除しました"}


class WinjAccountMixin(_Base):
    """The account capabilities of the winj adapter."""

    # ================================================================ helpers
    def _acct_refusal(self, page: Page, *, what: str, limit: int = SHELF_ITEM_LIMIT) -> GatewayError:
        """The portal refused: its message → the matching typed error."""
        lines = ap.form_errors(page.html) or page.errors()
        msg = " ".join(lines)
        lib = self.library.id
        if not msg:
            return UpstreamChanged(f"unexpected answer to {what}", library=lib)
        if any(w in msg for w in TXT_LIMIT):
            return LimitExceeded(f"{what}: the shelf is full", library=lib, limit=limit, upstream_message=msg)
        if any(w in msg for w in TXT_CONFLICT):
            return Conflict(f"{what}: refused by the library", library=lib, upstream_message=msg)
        if any(w in msg for w in TXT_NOT_FOUND):
            return NotFound(f"{what}: not found at the library", library=lib, upstream_message=msg)
        return InvalidRequest(f"{what}: refused by the library", library=lib, upstream_message=msg)

    def _acct_expect(self, page: Page, done: str, *, what: str) -> None:
        """The page must say ``done``; else the refusal it shows (or UpstreamChanged)."""
        if any(done in line for line in page.messages()):
            return
        raise self._acct_refusal(page, what=what)

    def _acct_commit(self, client: httpx.Client, session: UpstreamSession, path: str,
                     data: list[tuple[str, str]], recheck: Callable[[], bool], *, what: str) -> Page | None:
        """POST the final step of a write.  It is never repeated: on a timeout the
        state is re-read (``recheck`` says whether the write happened) → None when it
        did, UpstreamTimeout when it did not."""
        try:
            return self._post(client, session, path, data)
        except httpx.TimeoutException:
            if recheck():
                return None
            raise UpstreamTimeout(f"{what}: no answer from the library, and it was not done",
                                  library=self.library.id) from None

    # ================================================================ profile
    def _acct_profile_page(self, client: httpx.Client, session: UpstreamSession) -> tuple[Page, ap.HtmlForm]:
        page = self._get(client, session, ap.PROFILE_FORM_PATH)
        return page, ap.find_profile_form(page.html, self.library.id)

    def _acct_profile_of(self, page: Page, form: ap.HtmlForm, session: UpstreamSession) -> Profile:
        return ap.profile_from_form(form, page.html, self.mask(session.card_number), self.library.id)

    @translate_transport_errors
    def profile(self, session: UpstreamSession) -> Profile:
        with self.open(session) as client:
            page, form = self._acct_profile_page(client, session)
            return self._acct_profile_of(page, form, session)

    def _acct_check_update(self, changes: ProfileUpdate) -> None:
        """What can be refused without asking the portal."""
        lib = self.library.id
        if changes.pickup_branch is not None and self.library.branches \
                and self.library.branch_by_name_or_id(changes.pickup_branch) is None:
            raise InvalidRequest(f"unknown pickup_branch {changes.pickup_branch!r}", library=lib,
                                 errors=[{"field": "pickup_branch", "allowed": [b.name for b in self.library.branches]}])
        if changes.contact_method is not None and self.library.contact_methods \
                and changes.contact_method not in self.library.contact_methods:
            raise InvalidRequest(f"unknown contact_method {changes.contact_method!r}", library=lib,
                                 errors=[{"field": "contact_method", "allowed": list(self.library.contact_methods)}])

    def _acct_apply(self, form: ap.HtmlForm, changes: ProfileUpdate) -> None:
        """Fill the 利用者情報変更 form with the requested changes (in place)."""
        lib = self.library.id

        def choose(select: str, label: str, api: str) -> None:
            value = form.value_for_label(select, label)
            if value is None:
                allowed = [lab for _, lab in form.options.get(select, [])]
                raise InvalidRequest(f"{api} {label!r} is not offered by the library", library=lib,
                                     errors=[{"field": api, "allowed": allowed}])
            form.set(select, value)

        for name in ("txt_password", "txt_newpassword", "txt_newpassword2"):
            if name in form.names:
                form.set(name, "")
        if changes.emails is not None:
            kinds = {"pc": "自PC", "mobile": "携帯"}
            for i in (1, 2):
                email = changes.emails[i - 1] if i <= len(changes.emails) else None
                form.set(ap.F_MAIL.format(i), email.address if email else "")
                select = ap.F_MAIL_KIND.format(i)
                if email is not None:
                    value = next((v for v, lab in form.options.get(select, [])
                                  if (email.kind == "mobile") == any(w in lab for w in ap.MOBILE_WORDS)), None)
                    if value is None:
                        raise InvalidRequest(f"e-mail kind {kinds[email.kind]} is not offered", library=lib)
                    form.set(select, value)
        # Addresses after the change decide which destinations a notice may use:
        # a row keeps its state (unless asked to change) on the kinds still registered.
        kinds_now = set()
        for i in (1, 2):
            if form.get(ap.F_MAIL.format(i)).strip():
                label = form.label_of(ap.F_MAIL_KIND.format(i))
                kinds_now.add("mobile" if any(w in label for w in ap.MOBILE_WORDS) else "pc")
        n = changes.notifications
        wanted = {} if n is None else {api: getattr(n, api) for api in ap.NOTICE_ROWS if getattr(n, api) is not None}
        for api, stem in list(ap.NOTICE_ROWS.items()) + [("sdi", "sdi")]:
            if f"chk_{stem}_pc" not in form.names:
                if api in wanted:
                    raise InvalidRequest(f"notifications.{api}: this library has no such notice", library=lib)
                continue
            has_radio = api not in ap.NOTICE_ROWS_WITHOUT_RADIO and api != "sdi"
            dest = {k for k, suffix in (("pc", "pc"), ("mobile", "mb")) if form.has(f"chk_{stem}_{suffix}")}
            was_on = bool(dest) and (not has_radio or form.get(f"rdo_{stem}") == ap.RADIO_ON)
            explicit = api in wanted
            on = wanted[api].enabled if explicit else was_on
            dest &= kinds_now
            if on and not dest:
                dest = set(kinds_now)
            if on and not dest:
                if explicit:
                    raise InvalidRequest(f"notifications.{api}: register an e-mail address first", library=lib)
                on = False
            if not on and not has_radio:
                dest = set()
            for kind, suffix in (("pc", "pc"), ("mobile", "mb")):
                form.set(f"chk_{stem}_{suffix}", "1" if kind in dest else None)
            if has_radio:
                form.set(f"rdo_{stem}", ap.RADIO_ON if on else ap.RADIO_OFF)
        if n is not None and n.due_reminder is not None:
            days = str(n.due_reminder.days_before)
            offered = [v for v, _ in form.options.get(ap.F_LIMIT_DAYS, [])]
            if days not in offered:
                raise InvalidRequest(f"notifications.due_reminder.days_before must be one of {offered}",
                                     library=lib, errors=[{"field": "notifications.due_reminder.days_before",
                                                           "allowed": offered}])
            form.set(ap.F_LIMIT_DAYS, days)
        if changes.pickup_branch is not None:
            branch = self.library.branch_by_name_or_id(changes.pickup_branch)
            label = branch.name if branch else changes.pickup_branch
            if branch is not None and branch.code and any(v == branch.code for v, _ in form.options.get(ap.F_AREA, [])):
                form.set(ap.F_AREA, branch.code)
            else:
                choose(ap.F_AREA, label, "pickup_branch")
        if changes.contact_method is not None:
            choose(ap.F_CONTACT, changes.contact_method, "contact_method")
        if changes.phone_contact is not None:
            choose(ap.F_TEL, changes.phone_contact, "phone_contact")
        if changes.keep_history is not None:
            form.set(ap.F_HISTORY, "1" if changes.keep_history else None)

    @staticmethod
    def _acct_matches(profile: Profile, changes: ProfileUpdate, pickup_name: str | None) -> bool:
        """Does a profile read back show the requested changes?"""
        if changes.emails is not None and [(e.address, e.kind) for e in profile.emails] != \
                [(e.address, e.kind) for e in changes.emails]:
            return False
        if pickup_name is not None and profile.pickup_branch != pickup_name:
            return False
        if changes.contact_method is not None and profile.contact_method != changes.contact_method:
            return False
        if changes.keep_history is not None and profile.keep_history != changes.keep_history:
            return False
        n = changes.notifications
        if n is not None:
            now = profile.notifications
            if n.due_reminder is not None and (now.due_reminder.enabled != n.due_reminder.enabled or (
                    n.due_reminder.enabled and now.due_reminder.days_before != n.due_reminder.days_before)):
                return False
            for api in ("registration", "hold_ready", "checkout"):
                want, got = getattr(n, api), getattr(now, api)
                if want is not None and (got is None or got.enabled != want.enabled):
                    return False
        return True

    @translate_transport_errors
    def update_profile(self, session: UpstreamSession, changes: ProfileUpdate, password: str | None) -> Profile:
        # ``password`` is not needed: the portal asks for 現パスワード only to change
        # the password, which is PUT .../password (change_password), not this form.
        self._acct_check_update(changes)
        lib = self.library.id
        branch = self.library.branch_by_name_or_id(changes.pickup_branch) if changes.pickup_branch else None
        pickup_name = branch.name if branch else changes.pickup_branch
        with self._serial(session), self.open(session) as client:
            page, form = self._acct_profile_page(client, session)
            self._acct_apply(form, changes)
            confirm = self._post(client, session, ap.PROFILE_CONFIRM_PATH, form.fields + [("btn_confirm", "更新")])
            if confirm.tree.css_first(ap.SEL_PROFILE_CONFIRM) is None:
                errors = ap.form_errors(confirm.html)
                if errors:
                    raise InvalidRequest("the library refused the change", library=lib,
                                         upstream_message=" ".join(errors))
                raise UpstreamChanged("no 利用者情報変更確認 screen after the form", library=lib)
            shown = ap.parse_profile_confirm(confirm.html, lib)
            if (pickup_name and shown.pickup != pickup_name) or (
                    changes.keep_history is not None and shown.keep_history != changes.keep_history):
                raise UpstreamChanged("the confirm screen does not show the requested change", library=lib)
            final: list[tuple[str, str]] = [("btn_update", "更新")]
            if self.library.options.get("profile_confirm_mail") and shown.mail_option:
                final += [("chk_mail", "1"), ("cmb_mail", shown.mail_option)]
            try:
                done = self._post(client, session, ap.PROFILE_UPDATE_PATH, final)
            except httpx.TimeoutException:
                # Never repeat the write: read back what the portal stored.
                page, form = self._acct_profile_page(client, session)
                profile = self._acct_profile_of(page, form, session)
                if self._acct_matches(profile, changes, pickup_name):
                    return profile
                raise UpstreamTimeout("no answer to 更新; the change was not stored", library=lib) from None
            if not ap.profile_update_done(done.html):
                errors = ap.form_errors(done.html) or done.errors()
                if errors:
                    raise UpstreamError("the library did not accept the change", library=lib,
                                        upstream_message=" ".join(errors))
                raise UpstreamChanged("no 利用者情報変更申し込みを受け付けました on the result page", library=lib)
            page, form = self._acct_profile_page(client, session)
            return self._acct_profile_of(page, form, session)

    # ================================================================ history
    @translate_transport_errors
    def history(self, session: UpstreamSession, page: int, per_page: int) -> HistoryPage:
        page, per_page = max(1, page), max(1, per_page)
        with self.open(session) as client:
            def fetch(p: int, disp: int) -> ap.HistorySlice:
                got = self._get(client, session, ap.HISTORY_PATH, [("page", str(p)), ("disp", str(disp))])
                return ap.parse_history(got.html, self.library.id)

            if per_page in HISTORY_DISP:
                s = fetch(page, per_page)
                return HistoryPage(entries=s.entries, total=s.total)
            # Other page sizes: cut the API page out of the portal's 100-entry pages.
            disp = max(HISTORY_DISP)
            start = (page - 1) * per_page
            first, last = start // disp + 1, (start + per_page - 1) // disp + 1
            entries = []
            total = 0
            for p in range(first, last + 1):
                s = fetch(p, disp)
                total = s.total
                entries.extend(s.entries)
                if p * disp >= total:
                    break
            offset = start - (first - 1) * disp
            return HistoryPage(entries=entries[offset:offset + per_page], total=total)

    # ================================================================ messages
    @translate_transport_errors
    def messages(self, session: UpstreamSession, include_read: bool) -> list[Message]:
        params = [("chk_read", "1")] if include_read else None
        with self.open(session) as client:
            page = self._get(client, session, ap.MESSAGES_PATH, params)
        return ap.parse_messages(page.html, self.library.tz, self.library.id)

    # ================================================================ shelves
    def _acct_shelf_list(self, client: httpx.Client, session: UpstreamSession) -> list[Shelf]:
        return ap.parse_shelves(self._get(client, session, ap.SHELF_LIST_PATH).html, self.library.id)

    def _acct_encodable(self, session: UpstreamSession, field: str, *texts: str | None) -> None:
        """A Shift_JIS / EUC-JP portal cannot store characters outside its charset
        (the form would carry &#NNNN; and the portal would keep that text)."""
        from adapters.winj.pages import py_codec

        charset = self._charset(session)
        for text in texts:
            try:
                (text or "").encode(py_codec(charset))
            except UnicodeEncodeError as exc:
                raise InvalidRequest(f"{field}: {(text or '')[exc.start:exc.end]!r} cannot be stored by the library "
                                     f"(its pages are {charset})", library=self.library.id,
                                     errors=[{"field": field, "message": f"not representable in {charset}"}]) from None
            except LookupError:
                return

    def _acct_check_name(self, name: str, session: UpstreamSession) -> str:
        self._acct_encodable(session, "name", name)
        name = name.strip()
        if not name or len(name) > SHELF_NAME_MAX:
            raise InvalidRequest(f"a shelf name has 1 to {SHELF_NAME_MAX} characters", library=self.library.id,
                                 errors=[{"field": "name", "max_length": SHELF_NAME_MAX}])
        return name

    @staticmethod
    def _acct_shelf_no(shelf_id: str, lib: str) -> str:
        if not shelf_id.isdigit():
            raise NotFound(f"no shelf {shelf_id!r}", library=lib)
        return shelf_id

    @translate_transport_errors
    def shelves(self, session: UpstreamSession) -> list[Shelf]:
        with self.open(session) as client:
            return self._acct_shelf_list(client, session)

    @translate_transport_errors
    def create_shelf(self, session: UpstreamSession, name: str) -> Shelf:
        name = self._acct_check_name(name, session)
        lib = self.library.id
        with self._serial(session), self.open(session) as client:
            confirm = self._post(client, session, ap.SHELF_CREATE_CONFIRM_PATH, [("txt_name", name)])
            if confirm.tree.css_first(ap.SEL_SHELF_CONFIRM) is None:
                raise self._acct_refusal(confirm, what="create shelf")
            if [i.title for i in ap.parse_confirm_items(confirm.html, lib)] != [name]:
                raise UpstreamChanged("本棚作成確認 does not show the name asked for", library=lib)
            done = self._acct_commit(
                client, session, ap.SHELF_CREATE_PATH, [("btn_commit", "登録")], what="create shelf",
                recheck=lambda: any(x.name == name for x in self._acct_shelf_list(client, session)))
            if done is None:
                listed = self._acct_shelf_list(client, session)
            else:
                self._acct_expect(done, TXT_SHELF_DONE["create"], what="create shelf")
                listed = ap.parse_shelves(done.html, lib)
            for shelf in listed:
                if shelf.name == name:
                    return shelf
        raise UpstreamChanged("the new shelf is not in 本棚一覧", library=lib)

    @translate_transport_errors
    def rename_shelf(self, session: UpstreamSession, shelf_id: str, name: str) -> Shelf:
        name = self._acct_check_name(name, session)
        lib = self.library.id
        no = self._acct_shelf_no(shelf_id, lib)
        with self._serial(session), self.open(session) as client:
            done = self._acct_commit(
                client, session, ap.SHELF_RENAME_PATH, [("hid_shelf", no), ("txt_name", name), ("btn_regist", "登録")],
                what="rename shelf",
                recheck=lambda: any(x.id == no and x.name == name for x in self._acct_shelf_list(client, session)))
            if done is None:
                listed = self._acct_shelf_list(client, session)
            else:
                self._acct_expect(done, TXT_SHELF_DONE["rename"], what="rename shelf")
                listed = ap.parse_shelves(done.html, lib)
            for shelf in listed:
                if shelf.id == no:
                    return shelf
        raise UpstreamChanged("the renamed shelf is not in 本棚一覧", library=lib)

    @translate_transport_errors
    def delete_shelf(self, session: UpstreamSession, shelf_id: str) -> None:
        lib = self.library.id
        no = self._acct_shelf_no(shelf_id, lib)
        with self._serial(session), self.open(session) as client:
            confirm = self._post(client, session, ap.SHELF_DELETE_CONFIRM_PATH, [("chk_shelf", no),
                                                                                 ("btn_delete", "削除")])
            if confirm.tree.css_first(ap.SEL_SHELF_CONFIRM) is None:
                raise self._acct_refusal(confirm, what="delete shelf")
            if len(ap.parse_confirm_items(confirm.html, lib)) != 1:
                raise UpstreamChanged("本棚削除確認 does not list exactly the shelf asked for", library=lib)
            done = self._acct_commit(
                client, session, ap.SHELF_DELETE_PATH, [("btn_commit", "削除")], what="delete shelf",
                recheck=lambda: all(x.id != no for x in self._acct_shelf_list(client, session)))
            if done is None:
                return
            self._acct_expect(done, TXT_SHELF_DONE["delete"], what="delete shelf")
            if any(s.id == no for s in ap.parse_shelves(done.html, lib)):
                raise UpstreamChanged("the shelf is still listed after 削除", library=lib)

    @translate_transport_errors
    def shelf_items(self, session: UpstreamSession, shelf_id: str) -> list[ShelfItem]:
        lib = self.library.id
        no = self._acct_shelf_no(shelf_id, lib)
        with self.open(session) as client:
            return self._acct_items(client, session, no)

    def _acct_items(self, client: httpx.Client, session: UpstreamSession, no: str) -> list[ShelfItem]:
        items: list[ShelfItem] = []
        page_no = 1
        while True:
            page = self._get(client, session, ap.SHELF_DETAIL_PATH,
                             [("shelf", no), ("page", str(page_no)), ("disp", str(SHELF_PAGE))])
            if page.tree.css_first(ap.SEL_SHELF_HEADING) is None:
                raise self._acct_refusal(page, what="shelf items")
            got = ap.parse_shelf_items(page.html, self.library.id)
            items.extend(got.items)
            if not got.items or page_no * SHELF_PAGE >= got.total:
                return items
            page_no += 1

    def _acct_on_shelf(self, client: httpx.Client, session: UpstreamSession, no: str, record_id: str) -> bool:
        return any(i.record_id == record_id for i in self._acct_items(client, session, no))

    def _acct_item_action(self, session: UpstreamSession, shelf_id: str, record_id: str, button: tuple[str, str],
                          done_key: str, extra: list[tuple[str, str]] | None = None,
                          dest: str | None = None) -> ap.ConfirmItem:
        lib = self.library.id
        no = self._acct_shelf_no(shelf_id, lib)
        with self._serial(session), self.open(session) as client:
            confirm = self._post(client, session, ap.SHELF_ITEM_CONFIRM_PATH,
                                 [("hid_shelf", no), ("chk_bib", record_id), button] + (extra or []))
            if confirm.tree.css_first(ap.SEL_SHELF_CONFIRM) is None:
                raise self._acct_refusal(confirm, what=f"{done_key} shelf item")
            listed = ap.parse_confirm_items(confirm.html, lib)
            if len(listed) != 1:
                raise UpstreamChanged("the confirm screen does not list exactly the item asked for", library=lib)

            def recheck() -> bool:
                on_source = self._acct_on_shelf(client, session, no, record_id)
                if done_key == "remove":
                    return not on_source
                arrived = dest is not None and self._acct_on_shelf(client, session, dest, record_id)
                return arrived and (done_key == "copy" or not on_source)

            done = self._acct_commit(client, session, ap.SHELF_ITEM_COMMIT_PATH, [("btn_commit", button[1])],
                                     recheck=recheck, what=f"{done_key} shelf item")
            if done is not None:
                self._acct_expect(done, TXT_SHELF_DONE[done_key], what=f"{done_key} shelf item")
            return listed[0]

    @translate_transport_errors
    def add_shelf_item(self, session: UpstreamSession, shelf_id: str, record_id: str) -> ShelfItem:
        lib = self.library.id
        no = self._acct_shelf_no(shelf_id, lib)
        with self._serial(session), self.open(session) as client:
            confirm = self._post(client, session, ap.SHELF_ADD_CONFIRM_PATH,
                                 [("bibid", record_id), ("rdo_shelf", no), ("btn_select", "選択確定")])
            if confirm.tree.css_first(ap.SEL_SHELF_CONFIRM) is None:
                raise self._acct_refusal(confirm, what="add shelf item")
            listed = ap.parse_confirm_items(confirm.html, lib)
            if len(listed) != 1:
                raise UpstreamChanged("本棚資料登録確認 does not list exactly one record", library=lib)
            done = self._acct_commit(client, session, ap.SHELF_ADD_PATH, [("btn_commit", "選択確定")],
                                     recheck=lambda: self._acct_on_shelf(client, session, no, record_id),
                                     what="add shelf item")
            if done is not None:
                self._acct_expect(done, TXT_SHELF_DONE["add"], what="add shelf item")
        item = listed[0]
        return ShelfItem(record_id=record_id, title=item.title, author=ap._author(item.title, item.bibline),
                         added_on=self.today())

    @translate_transport_errors
    def remove_shelf_item(self, session: UpstreamSession, shelf_id: str, record_id: str) -> None:
        self._acct_item_action(session, shelf_id, record_id, ("btn_delete", "削除"), "remove")

    @translate_transport_errors
    def move_shelf_item(self, session: UpstreamSession, shelf_id: str, record_id: str, to_shelf_id: str,
                        copy: bool) -> None:
        lib = self.library.id
        if to_shelf_id == shelf_id:
            raise InvalidRequest("to_shelf_id is the shelf the item is on", library=lib)
        dest = self._acct_shelf_no(to_shelf_id, lib)
        button = ("btn_copy", "複写") if copy else ("btn_move", "移動")
        self._acct_item_action(session, shelf_id, record_id, button, "copy" if copy else "move",
                               extra=[("cmb_dest", dest)], dest=dest)

    @translate_transport_errors
    def export_shelf(self, session: UpstreamSession, shelf_id: str) -> str:
        lib = self.library.id
        no = self._acct_shelf_no(shelf_id, lib)
        with self.open(session) as client:
            page = self._get(client, session, ap.SHELF_DOWNLOAD_PATH, [("shelf", no)])
        if not page.html.lstrip("\ufeff").startswith(ap.DOWNLOAD_HEADER):
            raise self._acct_refusal(page, what="export shelf")
        return ap.shelf_download_to_csv(page.html.lstrip("\ufeff"), lib)

    # ================================================================ SDI alerts
    def _acct_sdi_check(self, conditions: list[AlertCondition] | None, match: str | None,
                   max_results: int | None) -> None:
        """InvalidRequest for what the portal's form cannot express (before any request)."""
        conditions = conditions or []
        problems = []
        if len(conditions) > ap.SDI_ROWS:
            problems.append(f"at most {ap.SDI_ROWS} conditions")
        for c in conditions:
            if c.field not in ap.SDI_FIELD_CODES:
                problems.append(f"field {c.field!r} (only {', '.join(ap.SDI_FIELD_CODES)})")
            if c.op != "contains":
                problems.append(f"op {c.op!r} (only 'contains' = を含む)")
        if match == "any":
            problems.append("match 'any' (conditions are joined by かつ = 'all')")
        if max_results is not None and max_results not in SDI_MAX_CHOICES:
            problems.append(f"max_results {max_results} (one of {', '.join(map(str, SDI_MAX_CHOICES))})")
        if problems:
            raise InvalidRequest("the library's 新着図書お知らせメール cannot express: " + "; ".join(problems),
                                 library=self.library.id, errors=[{"field": "conditions", "unsupported": problems}])

    def _acct_sdi_fields(self, name: str, memo: str | None, conditions: list[AlertCondition], match: str,
                    max_results: int, no: str = "") -> list[tuple[str, str]]:
        """The 条件入力 form for an alert (checked first)."""
        self._acct_sdi_check(conditions, match, max_results)
        fields = [("hid_no", no), ("txt_title", name), ("txt_memo", memo or "")]
        defaults = list(ap.SDI_FIELD_CODES.values())
        for i in range(1, ap.SDI_ROWS + 1):
            c = conditions[i - 1] if i <= len(conditions) else None
            fields += [(f"cmb_item{i}", ap.SDI_FIELD_CODES[c.field] if c else defaults[i - 1]),
                       (f"txt_word{i}", c.value if c else ""), (f"cmb_cond{i}", ap.SDI_CONTAINS)]
            if i < ap.SDI_ROWS:
                fields.append((f"cmb_conj{i}", ap.SDI_AND))
        fields.append(("cmb_max", str(max_results)))
        return fields

    def _acct_sdi_list(self, client: httpx.Client, session: UpstreamSession) -> list[ap.SdiRow]:
        return ap.parse_sdi_list(self._get(client, session, ap.SDI_LIST_PATH).html, self.library.id)

    def _acct_sdi_register(self, client: httpx.Client, session: UpstreamSession, fields: list[tuple[str, str]],
                           done_key: str, recheck: Callable[[], bool]) -> Page | None:
        """条件入力 → 登録内容確認 → 登録; None when a timeout on 登録 was re-read as done."""
        lib = self.library.id
        confirm = self._post(client, session, ap.SDI_CONFIRM_PATH, fields + [("btn_regist", "登録")])
        if not ap.is_sdi_confirm(confirm.html):
            if confirm.tree.css_first(ap.SEL_SDI_FORM) is not None:
                raise InvalidRequest("the library refused the alert", library=lib,
                                     upstream_message=" ".join(ap.form_errors(confirm.html)) or None)
            raise self._acct_refusal(confirm, what="alert")
        done = self._acct_commit(client, session, ap.SDI_REGIST_PATH, [("btn_commit", "登録")],
                                 recheck=recheck, what="alert")
        if done is not None:
            self._acct_expect(done, TXT_SDI_DONE[done_key], what="alert")
        return done

    def _acct_sdi_status(self, client: httpx.Client, session: UpstreamSession, no: str, active: bool) -> None:
        button = ("btn_on", "配信") if active else ("btn_off", "停止")
        done = self._acct_commit(
            client, session, ap.SDI_STATUS_PATH, [("hid_no", no), button], what="alert 配信/停止",
            recheck=lambda: any(r.id == no and r.active == active for r in self._acct_sdi_list(client, session)))
        if done is not None:
            self._acct_expect(done, TXT_SDI_DONE["status"], what="alert 配信/停止")

    def _acct_sdi_read(self, client: httpx.Client, session: UpstreamSession, row: ap.SdiRow) -> Alert:
        page = self._get(client, session, ap.SDI_INPUT_PATH, [("no", row.id)])
        if page.tree.css_first(ap.SEL_SDI_FORM) is None:
            raise self._acct_refusal(page, what="alert")
        return ap.parse_sdi_form(page.html, row.active, self.library.id)

    def _acct_sdi_row(self, client: httpx.Client, session: UpstreamSession, alert_id: str) -> ap.SdiRow:
        rows = self._acct_sdi_list(client, session)
        row = next((r for r in rows if r.id == alert_id), None)
        if row is None:
            raise NotFound(f"no alert {alert_id!r}", library=self.library.id)
        return row

    @translate_transport_errors
    def alerts(self, session: UpstreamSession) -> list[Alert]:
        with self.open(session) as client:
            rows = self._acct_sdi_list(client, session)
            return [self._acct_sdi_read(client, session, r) for r in rows]

    @translate_transport_errors
    def create_alert(self, session: UpstreamSession, alert: AlertCreate) -> Alert:
        self._acct_encodable(session, "alert", alert.name, alert.memo, *(c.value for c in alert.conditions))
        fields = self._acct_sdi_fields(alert.name, alert.memo, list(alert.conditions), alert.match, alert.max_results)
        lib = self.library.id
        with self._serial(session), self.open(session) as client:
            title = alert.name.strip()
            # After a timeout on 登録, an alert of that title means it was stored (the
            # portal does not tell two alerts of one title apart: the newest is taken).
            done = self._acct_sdi_register(
                client, session, fields, "create",
                recheck=lambda: any(r.title == title for r in self._acct_sdi_list(client, session)))
            rows = self._acct_sdi_list(client, session) if done is None else ap.parse_sdi_list(done.html, lib)
            # The portal assigns increasing numbers: ours is the newest of that title.
            mine = [r for r in rows if r.title == title]
            if not mine:
                raise UpstreamChanged("the new alert is not in the list", library=lib)
            row = max(mine, key=lambda r: int(r.id) if r.id.isdigit() else 0)
            if not alert.active:
                self._acct_sdi_status(client, session, row.id, False)
        return Alert(id=row.id, name=alert.name.strip(), memo=(alert.memo or "").strip() or None,
                     conditions=[AlertCondition(field=c.field, op="contains", value=c.value.strip())
                                 for c in alert.conditions],
                     match="all", max_results=alert.max_results, active=alert.active, source="library")

    @translate_transport_errors
    def update_alert(self, session: UpstreamSession, alert_id: str, changes: AlertUpdate) -> Alert:
        content = {k: v for k, v in changes.model_dump(exclude_unset=True).items() if k != "active"}
        self._acct_encodable(session, "alert", changes.name, changes.memo,
                             *(c.value for c in changes.conditions or []))
        self._acct_sdi_check(list(changes.conditions) if changes.conditions is not None else None,
                             changes.match, changes.max_results)
        with self._serial(session), self.open(session) as client:
            row = self._acct_sdi_row(client, session, alert_id)
            current = self._acct_sdi_read(client, session, row)
            merged = current.model_copy(update={
                "name": changes.name if changes.name is not None else current.name,
                "memo": changes.memo if "memo" in content else current.memo,
                "conditions": list(changes.conditions) if changes.conditions is not None else current.conditions,
                "match": changes.match or current.match,
                "max_results": changes.max_results or current.max_results,
            })
            if content:
                fields = self._acct_sdi_fields(merged.name, merged.memo, list(merged.conditions), merged.match,
                                               merged.max_results, no=row.id)
                def stored() -> bool:
                    now = self._acct_sdi_read(client, session, row)
                    return (now.name, now.memo, now.conditions, now.max_results) == (
                        merged.name, merged.memo, merged.conditions, merged.max_results)

                self._acct_sdi_register(client, session, fields, "update", recheck=stored)
            active = row.active
            if changes.active is not None and changes.active != row.active:
                self._acct_sdi_status(client, session, row.id, changes.active)
                active = changes.active
        return merged.model_copy(update={"active": active, "match": "all", "source": "library", "id": row.id})

    @translate_transport_errors
    def delete_alert(self, session: UpstreamSession, alert_id: str) -> None:
        lib = self.library.id
        if not alert_id.isdigit():
            raise NotFound(f"no alert {alert_id!r}", library=lib)
        with self._serial(session), self.open(session) as client:
            confirm = self._post(client, session, ap.SDI_DELETE_CONFIRM_PATH, [("hid_no", alert_id),
                                                                               ("btn_delete", "削除")])
            if not ap.is_sdi_confirm(confirm.html):
                raise self._acct_refusal(confirm, what="delete alert")
            done = self._acct_commit(
                client, session, ap.SDI_DELETE_PATH, [("btn_commit", "削除")], what="delete alert",
                recheck=lambda: all(r.id != alert_id for r in self._acct_sdi_list(client, session)))
            if done is not None:
                self._acct_expect(done, TXT_SDI_DONE["delete"], what="delete alert")

