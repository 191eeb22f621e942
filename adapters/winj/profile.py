"""The patron's profile on the winj portal (利用者情報変更): read from the form itself
(it carries every setting, pre-filled); a change is form → 利用者情報変更確認 → 更新 and
succeeds only when the result page says 「利用者情報変更申し込みを受け付けました。」.  The
form is always posted whole, so settings the caller did not mention stay as they are; a
timeout on the final 更新 is never retried: the form is re-read.  A notice row can only
deliver to a kind of address (自PC/携帯) that is registered.  Evidence is silent on these
screens (REAL_WINJ.md): they follow the seed guides.

Upstream requests with a warm session: profile 1, profile update 4."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from adapters.base import UpstreamSession, translate_transport_errors
from adapters.winj import account_pages as ap
from core.errors import (
    InvalidRequest,
    UpstreamChanged,
    UpstreamError,
    UpstreamTimeout,
)
from core.models import (
    Profile,
    ProfileUpdate,
)

from adapters.winj.account_base import (
    WinjAccountBase,
)

if TYPE_CHECKING:
    from adapters.winj.http import Page



class WinjProfile(WinjAccountBase):
    """The winj profile: 利用者情報変更 (read and change)."""

    # ================================================================ profile
    def _acct_profile_page(self, client: httpx.Client, session: UpstreamSession) -> tuple[Page, ap.HtmlForm]:
        page = self._get(client, session, ap.PROFILE_FORM_PATH)
        return page, ap.find_profile_form(page.tree, self.library.id)

    def _acct_profile_of(self, page: Page, form: ap.HtmlForm, session: UpstreamSession) -> Profile:
        return ap.profile_from_form(form, page.tree, self.mask(session.card_number), self.library.id)

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
                errors = ap.form_errors(confirm.tree)
                if errors:
                    raise InvalidRequest("the library refused the change", library=lib,
                                         upstream_message=" ".join(errors))
                raise UpstreamChanged("no 利用者情報変更確認 screen after the form", library=lib)
            shown = ap.parse_profile_confirm(confirm.tree, lib)
            if (pickup_name and shown.pickup != pickup_name) or (
                    changes.keep_history is not None and shown.keep_history != changes.keep_history):
                raise UpstreamChanged("the confirm screen does not show the requested change", library=lib)
            final: list[tuple[str, str]] = [("btn_update", "更新")]
            if getattr(self.options, "profile_confirm_mail", False) and shown.mail_option:
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
            if not ap.profile_update_done(done.tree):
                errors = ap.form_errors(done.tree) or done.errors()
                if errors:
                    raise UpstreamError("the library did not accept the change", library=lib,
                                        upstream_message=" ".join(errors))
                raise UpstreamChanged("no 利用者情報変更申し込みを受け付けました on the result page", library=lib)
            page, form = self._acct_profile_page(client, session)
            return self._acct_profile_of(page, form, session)
