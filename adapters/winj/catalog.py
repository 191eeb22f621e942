"""Catalog of the winj portal (REAL_WINJ.md §10–11): the detailed search
``search-detail.do`` (``cmb_columnN``/``txt_wordN`` for title, author and publisher,
``cmb_code_column=isbn`` + ``txt_code``, ``txt_word`` for a keyword, 10 a page,
``submit_btn_searchDetailSelAr``), later pages ``search-list.do?page=N`` of the
session's search, and the permalink detail ``switch-detail.do?lang=ja&bibid=N``.
One hit answers with the detail page itself, which the parser reads as a
one-record result.  No patron session needed (the portal's anonymous session
lives in the client for one operation).
"""

from __future__ import annotations

from adapters.base import translate_transport_errors
from adapters.winj import pages
from adapters.winj.forms import F_BIBID, SEARCH_COLUMNS
from adapters.winj.http import WinjHttp
from core.errors import InvalidRequest, NotFound, UpstreamChanged
from core.models import Holding, Record, SearchQuery, SearchResult

PAGE_SIZE = 10


class WinjCatalog(WinjHttp):
    """Catalog of the winj portal: search, record detail and availability."""

    def _search_params(self, query: SearchQuery) -> list[tuple[str, str]]:
        params: list[tuple[str, str]] = [("lang", "ja")]
        n = 0
        for attr, column in SEARCH_COLUMNS:
            value = getattr(query, attr)
            if value:
                n += 1
                params += [(f"cmb_column{n}", column), (f"txt_word{n}", str(value)), (f"cmb_like{n}", "2"),
                           (f"cmb_unit{n}", "0")]
        if query.isbn:
            params += [("cmb_code_column", "isbn"), ("txt_code", query.isbn)]
        if query.q:
            params += [("txt_word", query.q), ("hid_word_column", "fulltext")]
        if len(params) == 1:
            raise InvalidRequest("give at least one of q, title, author, publisher, isbn",
                                 library=self.library.id)
        return params + [("opt_pagesize", str(PAGE_SIZE)), ("submit_btn_searchDetailSelAr", "所蔵検索")]

    @translate_transport_errors
    def search(self, query: SearchQuery) -> SearchResult:
        params = self._search_params(query)
        with self.open(None) as client:
            page = self._get(client, None, pages.SEARCH_PATH, params)
            result = self._result(page, 1)
            if query.page > 1:
                if result.total <= PAGE_SIZE * (query.page - 1):
                    return SearchResult(records=[], total=result.total, page=query.page)
                page = self._get(client, None, pages.SEARCH_LIST_PATH, [("page", str(query.page))])
                result = self._result(page, query.page)
        return result

    def _result(self, page: object, n: int) -> SearchResult:
        from adapters.winj.http import Page

        assert isinstance(page, Page)
        errors = page.errors()
        if errors and page.tree.css_first(pages.SEL_NAV_HDG) is None and not pages.says_empty(page.tree) \
                and page.tree.css_first(pages.SEL_DETAIL_TBL) is None:
            raise InvalidRequest("the library refused the search", library=self.library.id,
                                 upstream_message=errors[0])
        return pages.parse_search(page.tree, n, self.library.id)

    @translate_transport_errors
    def record(self, record_id: str) -> Record:
        with self.open(None) as client:
            page = self._get(client, None, pages.DETAIL_PATH, [("lang", "ja"), (F_BIBID, record_id)])
        rec = pages.parse_record(page.tree, record_id, self.library.id)
        if rec is None:
            raise NotFound(f"no record {record_id!r}", library=self.library.id)
        return rec

    @translate_transport_errors
    def availability(self, isbn: str) -> list[Holding]:
        holdings: list[Holding] = []
        with self.open(None) as client:
            page = self._get(client, None, pages.SEARCH_PATH, self._search_params(SearchQuery(isbn=isbn)))
            if page.tree.css_first(pages.SEL_DETAIL_TBL) is not None:  # one hit: its detail page
                rec = pages.parse_record(page.tree, None, self.library.id)
                if rec is None:
                    raise UpstreamChanged("a detail page without a record", library=self.library.id)
                return list(rec.holdings)
            found = pages.parse_search(page.tree, 1, self.library.id)
            for summary in found.records:
                detail = self._get(client, None, pages.DETAIL_PATH, [("lang", "ja"), (F_BIBID, summary.id)])
                rec = pages.parse_record(detail.tree, summary.id, self.library.id)
                if rec is not None:
                    holdings.extend(rec.holdings)
        return holdings
