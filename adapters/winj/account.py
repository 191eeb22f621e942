"""Account screens of the winj WebOPAC family: profile (利用者情報変更), reading
history (借りたことがある資料), messages (通知メッセージ), bookshelves (本棚) and the
library's own SDI alerts (新着図書お知らせメール).

Mixed into ``adapters.winj.adapter.WinjAdapter`` (which provides login and the
request helpers of ``adapters.winj.http.WinjHttp``: ``open``, ``_get``, ``_post``
with ``hid_session``, charset handling, SessionExpired/maintenance detection).  One
module per capability: ``profile``, ``history`` (history and messages), ``shelves``,
``alerts``; their shared helpers are ``account_base``.  Parsers are the pure functions
of ``adapters.winj.account_pages``.

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

from adapters.winj.account_base import WinjAccountBase
from adapters.winj.alerts import WinjAlerts
from adapters.winj.history import WinjHistory
from adapters.winj.profile import WinjProfile
from adapters.winj.shelves import WinjShelves

ACCOUNT_CAPABILITIES = frozenset({"profile", "profile_update", "history", "messages", "shelves", "alerts"})


class WinjAccountMixin(WinjProfile, WinjHistory, WinjShelves, WinjAlerts, WinjAccountBase):
    """The account capabilities of the winj adapter."""


__all__ = ["ACCOUNT_CAPABILITIES", "WinjAccountMixin"]
