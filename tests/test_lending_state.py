"""The lending-request state machine (ISO 18626 vocabulary) and its persistence."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from gateway.lending import (
    CANCELLABLE,
    STATUSES,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    LendingStore,
    StoredRequest,
    can_transition,
    path,
    reconcile,
)
from gateway.models import LendingRequest, UpstreamLending

LEGAL = {
    ("requested", "accepted"), ("requested", "cancelled"), ("requested", "unfilled"),
    ("accepted", "shipped"), ("accepted", "cancelled"), ("accepted", "unfilled"),
    ("shipped", "ready_for_pickup"),
    ("ready_for_pickup", "loaned"), ("ready_for_pickup", "returned"),
    ("loaned", "returned"),
    ("returned", "completed"),
}
ALL_PAIRS = list(itertools.permutations(STATUSES, 2))
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def up(status: str, upstream_id: str = "E2026112300001", title: str = "悪意") -> UpstreamLending:
    return UpstreamLending(upstream_id=upstream_id, status=status, title=title, record_id="1000000003")  # type: ignore[arg-type]


def fresh(status: str = "requested") -> StoredRequest:
    req = StoredRequest.new("hash", "yamaguchi-pref", "hofu", None, up("requested"), T0)
    if status != "requested":
        req.advance(status, T0)
    return req


def test_the_table_is_the_documented_one() -> None:
    assert {(a, b) for a, nxt in TRANSITIONS.items() for b in nxt} == LEGAL
    assert set(TRANSITIONS) == set(STATUSES) == set(LendingRequest.model_fields["status"].annotation.__args__)
    assert TERMINAL == {"completed", "cancelled", "unfilled"}
    assert CANCELLABLE == {"requested", "accepted"}


@pytest.mark.parametrize(("current", "target"), sorted(LEGAL))
def test_every_legal_transition(current: str, target: str) -> None:
    assert can_transition(current, target)
    assert path(current, target) == [target]
    req = fresh(current)
    assert req.advance(target, T0 + timedelta(hours=1))
    assert req.status == target
    assert req.history[-1] == (target, T0 + timedelta(hours=1))


@pytest.mark.parametrize(("current", "target"), sorted(set(ALL_PAIRS) - LEGAL))
def test_every_illegal_single_transition(current: str, target: str) -> None:
    assert not can_transition(current, target)


@pytest.mark.parametrize(("current", "target"), sorted(set(ALL_PAIRS) - LEGAL))
def test_illegal_targets_are_either_reachable_through_legal_steps_or_refused(current: str, target: str) -> None:
    req = fresh(current)
    before = list(req.history)
    try:
        steps = path(current, target)
    except IllegalTransition:
        with pytest.raises(IllegalTransition):
            req.advance(target)
        assert req.status == current and req.history == before
        return
    # a jump: every hop of the recorded path is legal
    assert len(steps) > 1
    for a, b in zip([current, *steps], steps):
        assert can_transition(a, b)


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
@pytest.mark.parametrize("target", STATUSES)
def test_terminal_states_go_nowhere(terminal: str, target: str) -> None:
    if target == terminal:
        assert path(terminal, target) == []
    else:
        with pytest.raises(IllegalTransition):
            path(terminal, target)


def test_no_going_back_and_no_cancelling_after_shipping() -> None:
    for late in ("shipped", "ready_for_pickup", "loaned", "returned"):
        with pytest.raises(IllegalTransition):
            path(late, "cancelled")
    with pytest.raises(IllegalTransition):
        path("shipped", "accepted")
    with pytest.raises(IllegalTransition):
        path("loaned", "ready_for_pickup")


def test_a_jump_records_each_intermediate_state() -> None:
    req = fresh()
    at = T0 + timedelta(days=3)
    assert req.advance("completed", at)
    assert [s for s, _ in req.history] == [
        "requested", "accepted", "shipped", "ready_for_pickup", "loaned", "returned", "completed"]
    assert all(a == at for _, a in req.history[1:])
    assert req.updated_at == at and req.created_at == T0


def test_same_status_is_no_change() -> None:
    req = fresh("shipped")
    assert not req.advance("shipped")
    assert len(req.history) == 3


def test_unknown_status_is_illegal() -> None:
    with pytest.raises(IllegalTransition):
        path("requested", "lost")


def test_reconcile_ignores_impossible_upstream_reports() -> None:
    req = fresh("shipped")
    assert not reconcile(req, up("accepted"))
    assert req.status == "shipped"
    assert reconcile(req, up("ready_for_pickup"))
    assert req.status == "ready_for_pickup"


def test_new_request_starts_requested_even_when_upstream_is_ahead() -> None:
    req = StoredRequest.new("h", "yamaguchi-pref", "ube", "本館", up("accepted"), T0)
    assert [s for s, _ in req.history] == ["requested", "accepted"]
    assert req.id.startswith("lr_") and len(req.id) > 10
    model = req.to_model()
    assert model.status == "accepted" and model.pickup_branch == "本館" and model.stale is False


def test_store_round_trip_and_lookup_by_card() -> None:
    conn = sqlite3.connect(":memory:")
    st = LendingStore(conn)
    LendingStore(conn)  # creating the table twice is harmless
    a = fresh()
    b = StoredRequest.new("other", "yamaguchi-pref", "ube", None, up("requested", "E2"), T0 + timedelta(hours=1))
    st.save(a)
    st.save(b)
    a.advance("shipped", T0 + timedelta(days=1))
    st.save(a)
    got = st.get(a.id, ["hash"])
    assert got is not None
    assert got.status == "shipped"
    assert got.history == a.history
    assert st.get(a.id, ["other"]) is None
    assert [r.id for r in st.for_cards(["hash", "other"])] == [b.id, a.id]
    assert st.for_cards([]) == []
    found = st.by_upstream("yamaguchi-pref", "hash", "E2026112300001")
    assert found is not None and found.id == a.id
