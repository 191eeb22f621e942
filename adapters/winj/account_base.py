"""What the winj account screens share: their limits, the portal's refusal and done
texts, and three helpers (a refusal → the typed error, "the page must say done", and
the final step of a write that is never repeated).  The screens themselves are
``profile``, ``history`` (history and messages), ``shelves`` and ``alerts``, composed
into ``WinjAccountMixin`` by ``adapters.winj.account``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from adapters.base import UpstreamSession
from adapters.winj import account_pages as ap
from core.errors import (
    Conflict,
    GatewayError,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    UpstreamChanged,
    UpstreamTimeout,
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




class WinjAccountBase(_Base):
    """Helpers of the account screens."""

    # ================================================================ helpers
    def _acct_refusal(self, page: Page, *, what: str, limit: int = SHELF_ITEM_LIMIT) -> GatewayError:
        """The portal refused: its message → the matching typed error."""
        lines = ap.form_errors(page.tree) or page.errors()
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
