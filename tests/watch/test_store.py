"""gateway.watch.store: leases, budgets and exactly-once events across workers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from gateway.db import open_database
from gateway.migrations import upgrade
from gateway.watch.store import SQLWatchStore, SubscriptionRow, WatchedAccount


def _store(tmp_path: Path, accounts: int = 10, library: str = "a") -> SQLWatchStore:
    db = open_database(str(tmp_path / "w.sqlite3"))
    upgrade(db)
    store = SQLWatchStore(db)
    for i in range(accounts):
        sub = SubscriptionRow(f"s{i}", [library], ["hold.ready"], "http://127.0.0.1:1/h", b"x", f"c{i}", 3, None,
                              "active", "2026-12-04T00:00:00+00:00", [])
        store.create(sub, [WatchedAccount(f"s{i}", library, f"h{i}", "****0001", b"cred", None, None, "active")], 0)
    return store


def test_two_workers_never_lease_one_account(tmp_path: Path) -> None:
    store = _store(tmp_path, 40)
    got: list[list[str]] = [[], []]

    def claim(n: int) -> None:
        for _ in range(10):
            got[n] += [a.subscription_id for a in store.claim_due(f"w{n}", time.time(), 60, {"a": 1000}, 3)]

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    both = got[0] + got[1]
    assert len(both) == len(set(both)) == 40


def test_budget_per_library_per_minute_over_all_workers(tmp_path: Path) -> None:
    store = _store(tmp_path, 30)
    now = time.time()
    first = store.claim_due("w1", now, 60, {"a": 7}, 100)
    second = store.claim_due("w2", now, 60, {"a": 7}, 100)
    assert len(first) == 7 and second == []
    assert store.polls_per_minute() == {"a": 7}


def test_an_event_key_is_stored_once(tmp_path: Path) -> None:
    store = _store(tmp_path, 1)

    def ev(i: str) -> dict[str, object]:
        return {"id": i, "type": "hold.ready", "_key": "a:hold.ready:H1"}

    assert [e["id"] for e in store.record("s0", "a", None, [ev("e1")], deliver=True)] == ["e1"]
    assert store.record("s0", "a", None, [ev("e2")], deliver=True) == []  # a retried poll, another worker
    assert [e["id"] for _, e in store.events("s0", 0, 10)] == ["e1"]
    assert len(store.claim_deliveries("w", time.time(), 60, 10)) == 1
    assert store.claim_deliveries("w2", time.time(), 60, 10) == []  # leased: not delivered twice


def test_delete_erases_credentials_and_snapshots(tmp_path: Path) -> None:
    store = _store(tmp_path, 2)
    store.record("s0", "a", b"snap", [{"id": "e", "type": "t", "_key": "k"}], deliver=True)
    store.delete("s0")
    assert store.get("s0") is None and store.accounts("s0") == [] and store.events("s0", 0, 10) == []
    assert len(store.accounts("s1")) == 1
    import sqlite3

    with sqlite3.connect(tmp_path / "w.sqlite3") as conn:
        assert conn.execute("SELECT subscription_id FROM watch_accounts WHERE credential IS NOT NULL").fetchall() \
            == [("s1",)]


def test_a_paused_subscription_is_not_polled(tmp_path: Path) -> None:
    store = _store(tmp_path, 2)
    store.pause("s0", "a")
    assert [a.subscription_id for a in store.claim_due("w", time.time(), 60, {"a": 100}, 10)] == ["s1"]
