"""gateway.watch.differ: each change gives its event once, keyed by stable ids."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from core.models import Hold, Loan, UpstreamLending
from gateway.watch.differ import Snapshot, auto_renew_candidates, diff

TODAY = date(2026, 12, 4)


def loan(i: str = "L1", due: int = 10, renewable: bool = True, **kw: Any) -> Loan:
    return Loan(id=i, library="x", record_id="R" + i, title="T" + i, due_on=TODAY + timedelta(days=due),
                overdue=due < 0, renewable=renewable, **kw)


def hold(i: str = "H1", status: str = "waiting", position: int | None = 3, **kw: Any) -> Hold:
    return Hold(id=i, library="x", record_id="R" + i, title="T" + i, status=status, position=position, **kw)


def types(changes: list[Any]) -> list[str]:
    return sorted(c.type for c in changes)


def test_nothing_changed_nothing_happens() -> None:
    s = Snapshot(loans=[loan()], holds=[hold()])
    assert diff(s, s, TODAY) == []


def test_first_snapshot_gives_only_state_events() -> None:
    s = Snapshot(loans=[loan(due=2), loan("L2", due=-1)], holds=[hold(status="ready", position=None)])
    assert types(diff(None, s, TODAY)) == ["loan.due_soon", "loan.overdue"]


def test_hold_ready_once_with_a_stable_key() -> None:
    old = Snapshot(holds=[hold()])
    new = Snapshot(holds=[hold(status="ready", position=None, ready_until=TODAY + timedelta(days=7))])
    first = diff(old, new, TODAY)
    assert types(first) == ["hold.ready"]
    assert diff(old, new, TODAY)[0].key == first[0].key == "hold.ready:H1"  # a retried poll: the same key
    assert diff(new, new, TODAY) == []


def test_hold_expiring_position_cancelled() -> None:
    ready = hold(status="ready", position=None, ready_until=TODAY + timedelta(days=2))
    assert types(diff(Snapshot(holds=[ready]), Snapshot(holds=[ready]), TODAY)) == ["hold.expiring"]
    moved = diff(Snapshot(holds=[hold()]), Snapshot(holds=[hold(position=1)]), TODAY)
    assert types(moved) == ["hold.position_changed"] and moved[0].data == {"position": 1, "previous_position": 3}
    assert types(diff(Snapshot(holds=[hold()]), Snapshot(), TODAY)) == ["hold.cancelled"]
    # a ready hold that left the list because it was collected is no cancellation
    collected = Snapshot(loans=[loan("H1")], holds=[])
    assert "hold.cancelled" not in types(diff(Snapshot(holds=[ready]), collected, TODAY))


def test_loans_renewed_blocked_due_overdue() -> None:
    old = Snapshot(loans=[loan(due=10), loan("L2", due=10)])
    new = Snapshot(loans=[loan(due=24), loan("L2", due=10, renewable=False, not_renewable_reason="reserved")])
    got = {c.type: c for c in diff(old, new, TODAY)}
    assert set(got) == {"loan.renewed", "loan.renewal_blocked"}
    assert got["loan.renewed"].data["previous_due_on"] == (TODAY + timedelta(days=10)).isoformat()
    assert got["loan.renewal_blocked"].data["reason"] == "reserved"
    assert types(diff(None, Snapshot(loans=[loan(due=3)]), TODAY, due_soon_days=3)) == ["loan.due_soon"]
    assert diff(None, Snapshot(loans=[loan(due=4)]), TODAY, due_soon_days=3) == []
    a = diff(None, Snapshot(loans=[loan(due=-1)]), TODAY)
    b = diff(None, Snapshot(loans=[loan(due=-1)]), TODAY + timedelta(days=1))
    assert a[0].key == b[0].key  # overdue once per due date, not once a day


def test_card_and_lending() -> None:
    assert types(diff(None, Snapshot(card_expires_on=TODAY + timedelta(days=30)), TODAY)) == ["card.expiring"]
    assert diff(None, Snapshot(card_expires_on=TODAY + timedelta(days=31)), TODAY) == []
    r1 = UpstreamLending(upstream_id="U1", status="requested", title="t", record_id="r")
    r2 = UpstreamLending(upstream_id="U1", status="shipped", title="t", record_id="r")
    got = diff(Snapshot(lending=[r1]), Snapshot(lending=[r2]), TODAY)
    assert types(got) == ["lending.status_changed"] and got[0].data["previous_status"] == "requested"


def test_auto_renew_candidates() -> None:
    s = Snapshot(loans=[loan("A", due=1), loan("B", due=3), loan("C", due=1, renewable=False), loan("D", due=-2)])
    assert [l.id for l in auto_renew_candidates(s, TODAY, 2)] == ["A"]


def test_differ_is_fast_enough_to_matter() -> None:
    # not a timing claim (bench/watch.py measures): the differ is linear, 200 loans diff at all
    old = Snapshot(loans=[loan(str(i), due=10) for i in range(200)])
    new = Snapshot(loans=[loan(str(i), due=10 + (i % 2) * 14) for i in range(200)])
    assert len([c for c in diff(old, new, TODAY) if c.type == "loan.renewed"]) == 100
