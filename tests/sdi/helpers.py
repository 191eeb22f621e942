"""Small builders shared by the SDI tests."""

from __future__ import annotations

from typing import Any

import pymarc

from fixtures.feeds.marcgen import encode_iso2709
from gateway.sdi.feed import FeedStats, iter_iso2709


def rec(*fields: Any) -> bytes:
    """ISO 2709 bytes of one record; fields as in fixtures.feeds.marcgen."""
    return encode_iso2709(list(fields))


def pymarc_records(data: bytes) -> list[pymarc.Record]:
    return list(iter_iso2709(data, FeedStats()))


def alert(alert_id: str, *conds: tuple[str, str, str], match: str = "all", max_results: int = 10,
          active: bool = True) -> dict[str, Any]:
    return {"id": alert_id, "name": alert_id, "match": match, "max_results": max_results, "active": active,
            "source": "gateway",
            "conditions": [{"field": f, "op": op, "value": v} for f, op, v in conds]}
