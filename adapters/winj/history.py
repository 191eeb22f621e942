"""Reading history (借りたことがある資料) and the library's messages (通知メッセージ) on the
winj portal.  History exists only after 「残す」 (and only from the next day on); the
portal shows at most 1,000 entries and pages by 10/20/50/100.  Evidence is silent on
these screens (REAL_WINJ.md): they follow the seed guides.

Upstream requests with a warm session: history 1 (2 when an API page straddles two
portal pages), messages 1."""

from __future__ import annotations

from typing import TYPE_CHECKING


from adapters.base import UpstreamSession, translate_transport_errors
from adapters.winj import account_pages as ap
from core.models import (
    HistoryPage,
    Message,
)

from adapters.winj.account_base import (
    HISTORY_DISP,
    WinjAccountBase,
)

if TYPE_CHECKING:
    pass



class WinjHistory(WinjAccountBase):
    """The winj reading history and messages."""

    # ================================================================ history
    @translate_transport_errors
    def history(self, session: UpstreamSession, page: int, per_page: int) -> HistoryPage:
        page, per_page = max(1, page), max(1, per_page)
        with self.open(session) as client:
            def fetch(p: int, disp: int) -> ap.HistorySlice:
                got = self._get(client, session, ap.HISTORY_PATH, [("page", str(p)), ("disp", str(disp))])
                return ap.parse_history(got.tree, self.library.id)

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
        return ap.parse_messages(page.tree, self.library.tz, self.library.id)
