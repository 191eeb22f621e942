"""Catalog endpoints (no patron token): search, record detail."""

from __future__ import annotations

from flask import Blueprint, Response

from core.errors import InvalidRequest
from gateway.http import json_response, query, spec
from gateway.models import Record, SearchQuery, SearchResult
from gateway.runtime import gw

bp = Blueprint("catalog", __name__, url_prefix="/v1/libraries/<library>")


@bp.get("/records")
@spec(query=SearchQuery, response=SearchResult, auth="client",
      summary="Search the catalog by keyword, title, author, publisher or ISBN")
def search(library: str) -> Response:
    q = query(SearchQuery)
    if not any([q.q, q.title, q.author, q.publisher, q.isbn]):
        raise InvalidRequest("give at least one of q, title, author, publisher, isbn",
                             errors=[{"field": "q", "message": "no search term"}])
    return json_response(gw().public(library).search(q))


@bp.get("/records/<record_id>")
@spec(response=Record, auth="client", summary="A record with its holdings per branch")
def record(library: str, record_id: str) -> Response:
    # A circulation protocol without catalogue search (NCIP) can still describe one record
    # with its holdings (LookupItemSet): such adapters declare `availability`.
    # (Adapter.record is declared for either capability.)
    return json_response(gw().public(library).record(record_id))
