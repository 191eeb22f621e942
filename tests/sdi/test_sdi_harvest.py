"""Harvesting from the feed simulator on loopback: OAI-PMH pages and resumption
tokens, incremental ``from``, ISO 2709 and MARCXML feeds, matches stored once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fixtures.feeds import acquired, create_app
from fixtures.registry import serve_app
from gateway.config import FeedConfig, LibraryConfig
from gateway.models import AlertCondition, AlertCreate
from gateway.sdi.feed import FeedError
from gateway.sdi.harvest import harvest, run_library
from gateway.sdi.store import AlertStore

LIB = "yamaguchi-pref"


@pytest.fixture(scope="module")
def feed_server() -> Iterator[Any]:
    server = serve_app(create_app("feeds", page_size=50), port=0, name="feeds")
    yield server
    server.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def library(url: str, fmt: str, lib: str = LIB) -> LibraryConfig:
    return LibraryConfig(id=lib, name="テスト図書館", adapter="wo", base_url="http://127.0.0.1:9",
                         feed=FeedConfig(url=url, format=fmt))


def test_oai_harvest_follows_resumption_tokens(feed_server: Any, http: httpx.Client) -> None:
    seen: list[str] = []
    original = http.get

    def spy(url: str, **kw: Any) -> httpx.Response:
        seen.append(str(kw.get("params")))
        return original(url, **kw)

    http.get = spy  # type: ignore[method-assign]
    h = harvest(FeedConfig(url=f"{feed_server.url}/feeds/{LIB}/oai", format="oai-pmh"), http)
    ids = [r.id for r in h.records]
    assert ids == [r.id for r in acquired(LIB)]
    assert h.complete[0] and h.next_from
    entries = len(ids) + 3  # three malformed entries share the pages
    assert len(seen) == -(-entries // 50) > 1  # page_size=50
    assert sum("resumptionToken" in s for s in seen) == len(seen) - 1
    assert h.stats.malformed == 3 and h.stats.records == len(ids)


@pytest.mark.parametrize(("path", "fmt", "malformed"), [("new.mrc", "marc21", 4), ("new.xml", "marcxml", 3)])
def test_file_feeds(feed_server: Any, http: httpx.Client, path: str, fmt: str, malformed: int) -> None:
    h = harvest(FeedConfig(url=f"{feed_server.url}/feeds/{LIB}/{path}", format=fmt), http)
    assert [r.id for r in h.records] == [r.id for r in acquired(LIB)]
    assert h.stats.malformed == malformed


def test_oai_errors(feed_server: Any, http: httpx.Client) -> None:
    cfg = FeedConfig(url=f"{feed_server.url}/feeds/{LIB}/oai", format="oai-pmh")
    empty = harvest(cfg, http, since="2999-01-01T00:00:00Z")  # noRecordsMatch is not an error
    assert list(empty.records) == []
    with pytest.raises(FeedError, match="badArgument"):
        harvest(cfg, http, since="yesterday")


def test_run_stores_matches_once_and_harvests_incrementally(feed_server: Any, http: httpx.Client) -> None:
    lib = "soap-second"
    store = AlertStore(sqlite3.connect(":memory:"))
    cfg = library(f"{feed_server.url}/feeds/{lib}/oai", "oai-pmh", lib)
    assert run_library(store, cfg, http).skipped == "no active gateway alerts"
    assert store.harvest_state(lib) is None  # no alerts: `from` does not advance
    records = acquired(lib)
    everything = store.create(lib, "h1", AlertCreate(name="all", max_results=100, conditions=[
        AlertCondition(field="any", op="not_contains", value="存在しない語")]))
    first = run_library(store, cfg, http)
    expected = [r.id for r in records][:100]  # max_results, first in feed order
    assert first.matches == len(expected) and first.malformed == 3 and first.harvested_from is None
    state = store.harvest_state(lib)
    assert state is not None and state.next_from
    assert [m.record_id for m in store.matches(everything.id)] == expected
    # Nothing new: the incremental harvest asks from the last responseDate
    second = run_library(store, cfg, http)
    assert second.harvested_from == state.next_from and second.matches == 0
    # A new acquisition arrives; an already reported record comes back too
    catalogue = [r.id for r in records[:1]]
    from fixtures.catalog import load_records

    new_id = next(r.id for r in load_records() if r.id not in {x.id for x in records})
    resp = http.post(f"{feed_server.url}/feeds/{lib}/_acquire", json={"record_ids": [new_id, *catalogue]})
    assert resp.json()["added"] == [new_id, *catalogue]
    third = run_library(store, cfg, http)
    assert third.records == 2 and third.matches == 1
    assert store.matches(everything.id)[-1].record_id == new_id
    # A withdrawn record comes back as an OAI-PMH deleted header: counted, not matched
    gone = http.post(f"{feed_server.url}/feeds/{lib}/_withdraw", json={"record_ids": [records[-1].id]})
    assert gone.json()["withdrawn"] == [records[-1].id]
    fourth = run_library(store, cfg, http)
    # (records of the same second as `from` come again — `from` is inclusive — and are not re-reported)
    assert fourth.deleted == 1 and fourth.matches == 0


def test_transient_errors_are_retried_and_bad_tokens_fail() -> None:
    import respx

    from fixtures.catalog import load_records
    from fixtures.feeds.marcgen import catalog_fields, encode_iso2709

    body = encode_iso2709(catalog_fields(load_records()[0]))
    url = "http://feeds.invalid/new.mrc"
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(url).mock(side_effect=[httpx.Response(503), httpx.ConnectError("reset"),
                                                httpx.Response(200, content=body)])
        with httpx.Client() as client:
            h = harvest(FeedConfig(url=url, format="marc21"), client)
            assert [r.id for r in h.records] == [load_records()[0].id]
        assert route.call_count == 3
    with respx.mock() as mock:
        mock.get(url).mock(return_value=httpx.Response(404))
        with httpx.Client() as client, pytest.raises(httpx.HTTPStatusError):
            harvest(FeedConfig(url=url, format="marc21"), client)
    oai = "http://feeds.invalid/oai"
    error = (b'<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><responseDate>2026-01-01T00:00:00Z'
             b'</responseDate><error code="badResumptionToken">expired</error></OAI-PMH>')
    with respx.mock() as mock:
        mock.get(oai).mock(return_value=httpx.Response(200, content=error))
        with httpx.Client() as client, pytest.raises(FeedError, match="badResumptionToken"):
            harvest(FeedConfig(url=oai, format="oai-pmh"), client)


def test_feeds_publish_the_shared_sample_set_and_never_a_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import fixtures.feeds.app as feeds_app
    from fixtures.catalog import load_records

    assert importlib.util.find_spec("fixtures.feeds.sample") is None  # no leftover stand-in
    ids = {r.id for r in load_records()}
    assert {r.id for r in acquired("kumamoto-city")} <= ids

    def broken() -> list[Any]:
        raise RuntimeError("sample set broken")

    # a broken sample set is an error, not a quietly served substitute
    monkeypatch.setattr(feeds_app, "load_records", broken)
    with pytest.raises(RuntimeError):
        acquired("kumamoto-city")
