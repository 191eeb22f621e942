"""PostgreSQL and Redis for the shared-state tiers: real servers on loopback.

``OPACGW_TEST_DATABASE_URL`` / ``OPACGW_TEST_REDIS_URL`` name them (``.ci/run`` starts
throw-away ones with ``.ci/services``).  Without them a test of those tiers skips and
says why; with ``OPACGW_REQUIRE_SERVICES=1`` (CI) it fails instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import quote

import pytest

DB_ENV = "OPACGW_TEST_DATABASE_URL"
REDIS_ENV = "OPACGW_TEST_REDIS_URL"


def _need(env: str, what: str) -> str:
    url = os.environ.get(env)
    if not url:
        reason = f"{what} tier: set {env} (.ci/services start DIR starts a throw-away server)"
        if os.environ.get("OPACGW_REQUIRE_SERVICES"):
            pytest.fail(reason)
        pytest.skip(reason)
    return url


def postgres_url() -> str:
    return _need(DB_ENV, "PostgreSQL")


def redis_url() -> str:
    return _need(REDIS_ENV, "Redis")


def fresh_schema_url() -> Iterator[str]:
    """A URL whose search_path is a new, empty schema (dropped afterwards)."""
    import psycopg

    base = postgres_url()
    schema = "t_" + secrets.token_hex(6)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def fresh_redis_url() -> Iterator[str]:
    """The test Redis, emptied before and after (the tests run one at a time)."""
    import redis

    url = redis_url()
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
