"""The stores' contract, run against both backends: SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.db import Database, SQLiteDatabase, open_database
from gateway.idempotency import IdempotencyStore
from gateway.lending import LendingStore, StoredRequest
from gateway.migrations import LATEST, SchemaOutOfDate, current_version, ensure_current, upgrade
from gateway.models import AlertCreate
from gateway.sdi.engine import Match
from gateway.sdi.store import AlertStore
from gateway.sessions import SessionRecord, SQLSessionStore, StoredAccount
from tests.services import fresh_schema_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> Iterator[Database]:
    if request.param == "sqlite":
        database: Database = SQLiteDatabase(str(tmp_path / "gw.sqlite3"))
        ensure_current(database)
        yield database
        database.close()
        return
    for url in fresh_schema_url():
        database = open_database(url)
        upgrade(database)
        yield database
        database.close()


def test_schema_is_current_and_upgrade_is_idempotent(db: Database) -> None:
    assert current_version(db) == LATEST
    assert upgrade(db) == []
    ensure_current(db)


def test_postgres_refuses_an_empty_schema_and_names_the_command() -> None:
    for url in fresh_schema_url():
        database = open_database(url)
        try:
            with pytest.raises(SchemaOutOfDate, match="opacgw db upgrade"):
                ensure_current(database)
            assert upgrade(database) == list(range(1, LATEST + 1))  # every migration, in order
            ensure_current(database)
        finally:
            database.close()


def _record(th: str, libraries: list[str], minutes: int = 30) -> SessionRecord:
    now = datetime.now(UTC).replace(microsecond=0)
    return SessionRecord(th, now, now + timedelta(minutes=minutes),
                         [StoredAccount(lib, f"hash-{lib}", "****1234", b"\x00sealed-" + lib.encode())
                          for lib in libraries])


def test_sessions(db: Database) -> None:
    store = SQLSessionStore(db)
    now = datetime.now(UTC)
    store.create(_record("t1", ["b", "a"]))
    got = store.get("t1", now)
    assert got is not None and [a.library for a in got.accounts] == ["b", "a"]
    assert got.accounts[0].upstream == b"\x00sealed-b" and isinstance(got.accounts[0].upstream, bytes)
    store.update_upstream("t1", "a", b"new")
    assert store.get("t1", now).account("a").upstream == b"new"  # type: ignore[union-attr]
    later = now + timedelta(hours=2)
    store.touch("t1", later)
    assert store.get("t1", now).expires_at == later.replace(microsecond=later.microsecond)  # type: ignore[union-attr]
    assert store.get("t1", later + timedelta(seconds=1)) is None  # expired: gone
    assert store.get("t1", now) is None
    store.create(_record("t2", ["a"], minutes=-1))
    store.create(_record("t3", ["a"]))
    assert store.purge(now) == 1
    assert store.get("t3", now) is not None
    store.delete("t3")
    assert store.get("t3", now) is None


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_idempotency(db: Database) -> None:
    clock = _Clock()
    store = IdempotencyStore(db, lease_seconds=30, clock=clock)
    first = store.begin("s", "k", "fp")
    assert first.outcome == "run"
    assert store.begin("s", "k", "fp").outcome == "running"
    assert store.begin("s", "k", "other").outcome == "mismatch"
    clock.now += 31
    second = store.begin("s", "k", "fp")
    assert second.outcome == "run" and second.taken_over
    store.finish("s", "k", first.owner, 201, b"stale", "{}")  # the stale run cannot store
    store.finish("s", "k", second.owner, 201, b"\x00body", '{"Location": "/x"}')
    replay = store.begin("s", "k", "fp")
    assert (replay.outcome, replay.status, replay.body, replay.headers) == ("replay", 201, b"\x00body",
                                                                           '{"Location": "/x"}')
    third = store.begin("s", "k2", "fp")
    store.forget("s", "k2", third.owner)
    assert store.begin("s", "k2", "fp").outcome == "run"
    clock.now += 25 * 3600  # kept 24 hours
    assert store.begin("s", "k", "fp").outcome == "run"


def test_idempotency_one_winner_among_concurrent_begins(db: Database) -> None:
    store = IdempotencyStore(db, lease_seconds=30)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def one() -> None:
        barrier.wait()
        outcomes.append(store.begin("s", "race", "fp").outcome)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["run"] + ["running"] * 7


def test_alerts_matches_and_harvest_cursors(db: Database) -> None:
    store = AlertStore(db)
    made = [store.create("lib", "card", AlertCreate(name=f"a{i}", conditions=[{"field": "title", "op": "contains",
                                                                                 "value": "猫"}]))
            for i in range(3)]
    assert [a.name for a in store.list("lib", "card")] == ["a0", "a1", "a2"]
    assert store.list("lib", "other") == []
    assert [a.id for a in store.active_alerts("lib")] == [a.id for a in made]
    from gateway.models import AlertUpdate

    updated = store.update("lib", "card", made[1].id, AlertUpdate(active=False, memo="m"))
    assert updated is not None and not updated.active and updated.memo == "m"
    assert [a.id for a in store.active_alerts("lib")] == [made[0].id, made[2].id]
    added = store.add_matches([Match(made[0].id, "R2", "二"), Match(made[0].id, "R1", "一")])
    assert added == 2
    assert store.add_matches([Match(made[0].id, "R1", "一"), Match(made[0].id, "R3", "三")]) == 1
    assert [m.record_id for m in store.matches(made[0].id)] == ["R2", "R1", "R3"]
    assert store.reported([made[0].id, made[1].id]) == {made[0].id: {"R1", "R2", "R3"}, made[1].id: set()}
    assert store.delete("lib", "card", made[0].id) and not store.delete("lib", "card", made[0].id)
    assert store.matches(made[0].id) == []
    assert store.harvest_state("lib") is None
    store.save_harvest("lib", next_from="2026-01-01", records=10, malformed=1, matches=2)
    store.save_harvest("lib", next_from="2026-02-01", records=5, malformed=0, matches=1)
    state = store.harvest_state("lib")
    assert state is not None and (state.next_from, state.records, state.malformed, state.matches) == (
        "2026-02-01", 5, 0, 1)


def test_lending_requests(db: Database) -> None:
    store = LendingStore(db)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    req = StoredRequest(id="lr-1", card_hash="c", supplying_library="sup", pickup_library="pick",
                        pickup_branch=None, record_id="R", title="本", status="requested", upstream_id="U1",
                        history=[("requested", t0)], created_at=t0, updated_at=t0)
    store.save(req)
    other = StoredRequest(id="lr-2", card_hash="c", supplying_library="sup", pickup_library="pick",
                          pickup_branch="b", record_id="R2", title="二", status="requested", upstream_id="U2",
                          history=[("requested", t0)], created_at=t0 + timedelta(days=1),
                          updated_at=t0 + timedelta(days=1))
    store.save(other)
    req.advance("shipped", t0 + timedelta(days=2))
    store.save(req)
    got = store.by_upstream("sup", "c", "U1")
    assert got is not None and got.status == "shipped"
    assert [s for s, _ in got.history] == ["requested", "accepted", "shipped"]
    assert [r.id for r in store.for_cards(["c"])] == ["lr-2", "lr-1"]
    assert store.get("lr-1", ["nobody"]) is None and store.for_cards([]) == []


def test_sqlite_pool_keeps_no_connection_per_thread(tmp_path) -> None:
    """#16.11: request threads come and go; their connections must not stay open."""
    database = SQLiteDatabase(str(tmp_path / "gw.sqlite3"), idle=4)
    ensure_current(database)
    store = SQLSessionStore(database)

    def one(i: int) -> None:
        store.create(_record(f"t{i}", ["a"]))

    for i in range(40):
        t = threading.Thread(target=one, args=(i,))
        t.start()
        t.join()
    assert database.idle_connections() <= 4
    import gc
    import sqlite3

    gc.collect()
    open_conns = [o for o in gc.get_objects() if isinstance(o, sqlite3.Connection)]
    assert len(open_conns) <= 5
    database.close()
