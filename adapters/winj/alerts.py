"""The library's own SDI alerts (新着図書お知らせメール) on the winj portal.  Its form has
four rows of タイトル/著者/一般件名/出版者 「を含む」 joined by 「かつ」; anything else is
refused before any upstream call.  Evidence is silent on these screens (REAL_WINJ.md):
they follow the seed guides.

Upstream requests with a warm session: alerts 1 + one per alert, create alert 2 (3 when
created paused), update alert 2 + 2 for content + 1 for 配信/停止, delete alert 2."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from adapters.base import UpstreamSession, translate_transport_errors
from adapters.winj import account_pages as ap
from core.errors import (
    InvalidRequest,
    NotFound,
    UpstreamChanged,
)
from core.models import (
    Alert,
    AlertCondition,
    AlertCreate,
    AlertUpdate,
)

from adapters.winj.account_base import (
    SDI_MAX_CHOICES,
    TXT_SDI_DONE,
    WinjAccountBase,
)

if TYPE_CHECKING:
    from adapters.winj.http import Page



class WinjAlerts(WinjAccountBase):
    """The winj SDI alerts (新着図書お知らせメール)."""

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
        return ap.parse_sdi_list(self._get(client, session, ap.SDI_LIST_PATH).tree, self.library.id)

    def _acct_sdi_register(self, client: httpx.Client, session: UpstreamSession, fields: list[tuple[str, str]],
                           done_key: str, recheck: Callable[[], bool]) -> Page | None:
        """条件入力 → 登録内容確認 → 登録; None when a timeout on 登録 was re-read as done."""
        lib = self.library.id
        confirm = self._post(client, session, ap.SDI_CONFIRM_PATH, fields + [("btn_regist", "登録")])
        if not ap.is_sdi_confirm(confirm.tree):
            if confirm.tree.css_first(ap.SEL_SDI_FORM) is not None:
                raise InvalidRequest("the library refused the alert", library=lib,
                                     upstream_message=" ".join(ap.form_errors(confirm.tree)) or None)
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
        return ap.parse_sdi_form(page.tree, row.active, self.library.id)

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
            rows = self._acct_sdi_list(client, session) if done is None else ap.parse_sdi_list(done.tree, lib)
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
            if not ap.is_sdi_confirm(confirm.tree):
                raise self._acct_refusal(confirm, what="delete alert")
            done = self._acct_commit(
                client, session, ap.SDI_DELETE_PATH, [("btn_commit", "削除")], what="delete alert",
                recheck=lambda: all(r.id != alert_id for r in self._acct_sdi_list(client, session)))
            if done is not None:
                self._acct_expect(done, TXT_SDI_DONE["delete"], what="delete alert")
