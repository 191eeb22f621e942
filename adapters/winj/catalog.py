"""Catalog of the winj portal: 検索結果一覧 (``search-list.do``), 資料詳細
(``switch-detail.do``) and availability by ISBN; no patron session needed.
"""

from __future__ import annotations

import httpx

from adapters.base import translate_transport_errors
from adapters.winj import pages
from adapters.winj.forms import *
from adapters.winj.http import WinjHttp
from core.errors import (
    InvalidRequest,
    NotFound,
)
from core.models import (
    Holding,
    Record,
    SearchQuery,
    SearchResult,
)


class WinjCatalog(WinjHttp):
    """Catalog of the winj portal: 検索結果一覧 (``search-list.do``), 資料詳細"""

    def _search_params(self, query: SearchQuery) -> list[tuple[str, str]]:
        params = [(f, str(getattr(query, attr))) for attr, f in SEARCH_FIELDS if getattr(query, attr)]
        if not params:
            raise InvalidRequest("give at least one of q, title, author, publisher, isbn",
                                 library=self.library.id)
        params.append(("page", str(query.page)))
        return params

    def _ensure_charset(self, client: httpx.Client, params: list[tuple[str, str]]) -> None:
        # Non-ASCII query text must be sent in the portal's charset; learn it once.
        if self._learned_charset is None and not self.library.options.get("charset") \
                and any(not v.isascii() for _, v in params):
            self._get(client, None, pages.SEARCH_FORM_PATH)

    @translate_transport_errors
    def search(self, query: SearchQuery) -> SearchResult:
        params = self._search_params(query)
        with self.open(None) as client:
            self._ensure_charset(client, params)
            page = self._get(client, None, pages.SEARCH_PATH, params)
        errors = page.errors()
        if errors and page.tree.css_first(pages.SEL_HIT_COUNT) is None:
            raise InvalidRequest("the library refused the search", library=self.library.id,
                                 upstream_message=errors[0])
        return pages.parse_search(page.html, query.page)

    @translate_transport_errors
    def record(self, record_id: str) -> Record:
        with self.open(None) as client:
            page = self._get(client, None, pages.DETAIL_PATH, [(F_BIBID, record_id)])
        rec = pages.parse_record(page.html, record_id)
        if rec is None:
            raise NotFound(f"no record {record_id!r}", library=self.library.id)
        return rec

    @translate_transport_errors
    def availability(self, isbn: str) -> list[Holding]:
        holdings: list[Holding] = []
        with self.open(None) as client:
            page = self._get(client, None, pages.SEARCH_PATH, [("txt_isbn", isbn), ("page", "1")])
            found = pages.parse_search(page.html, 1)
            for summary in found.records:
                detail = self._get(client, None, pages.DETAIL_PATH, [(F_BIBID, summary.id)])
                rec = pages.parse_record(detail.html, summary.id)
                if rec is not None:
                    holdings.extend(rec.holdings)
        return holdings
