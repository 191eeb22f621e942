"""winj flows: cassette replay (``recorded/winj/``, vcrpy ``record_mode="none"``)
and the same flows live against the simulator on loopback, for each library.

Cassettes: re-record with ``python -m tests.adapters.winj.flows``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from adapters.winj import WinjAdapter
from core.errors import NotRenewable, SessionExpired, UpstreamMaintenance
from tests.adapters.winj.flows import (
    CASES,
    CASSETTES,
    FROZEN,
    LIBRARIES,
    TODAY,
    cassette_vcr,
    flows_for,
    live_adapter,
    replay_library,
)

FLOW_CASES = [(lib, name) for lib in LIBRARIES for name in flows_for(lib)]


@pytest.mark.parametrize(("library", "flow"), FLOW_CASES, ids=[f"{l}-{f}" for l, f in FLOW_CASES])
def test_cassette_replay(library: str, flow: str) -> None:
    path = CASSETTES / f"{library}-{flow}.yaml"
    assert path.exists(), f"missing cassette {path}; record with python -m tests.adapters.winj.flows"
    adapter = WinjAdapter(replay_library(library))
    adapter.today = lambda: TODAY  # type: ignore[method-assign]
    with cassette_vcr("none").use_cassette(path.name) as cassette:
        flows_for(library)[flow](adapter, CASES[library])
        assert cassette.all_played, "the flow made fewer requests than recorded"
    assert adapter.request_count == len(cassette.requests)


def test_cassettes_hold_no_secret() -> None:
    from tests.adapters.winj.flows import ALL_CARDS

    texts = [p.read_text(encoding="utf-8") for p in Path(CASSETTES).glob("*.yaml")]
    assert len(texts) >= 4 * 6
    for text in texts:
        assert "txt_password=" not in text and "txt_new_password" not in text
        # the session id: scrubbed in Set-Cookie, in hid_session fields and in the links carrying it
        assert not re.search(r"JSESSIONID=(?!SCRUBBED)", text)
        assert not re.search(r"hid_session(=|\" value=\")(?!SCRUBBED)", text)
        assert not re.search(r"[0-9A-F]{32}", text)
        for card in ALL_CARDS:
            assert card not in text


@pytest.mark.e2e
@pytest.mark.parametrize(("library", "flow"), FLOW_CASES, ids=[f"{l}-{f}" for l, f in FLOW_CASES])
def test_live_flow(library: str, flow: str) -> None:
    with live_adapter(library) as (adapter, _state):
        flows_for(library)[flow](adapter, CASES[library])


@pytest.mark.e2e
@pytest.mark.parametrize("library", LIBRARIES)
def test_live_flows_on_the_real_clock(library: str) -> None:
    """Seeds are relative to today: the same flows hold on any date (outside
    the maintenance window)."""
    with live_adapter(library, frozen=None) as (adapter, state):
        if state.in_maintenance():
            pytest.skip("inside the library's maintenance window right now")
        case = CASES[library]
        s = adapter.login(case.card, case.password)
        loans = adapter.loans(s)
        today = state.today()
        assert all(l.overdue == (l.due_on < today) for l in loans)
        assert adapter.holds(s) is not None


@pytest.mark.e2e
def test_kagoshima_renewal_rules() -> None:
    with live_adapter("kagoshima-pref") as (adapter, _state):
        case = CASES["kagoshima-pref"]
        s = adapter.login(case.card, case.password)
        loans = {l.title: l for l in adapter.loans(s)}
        results = {r.loan_id: r for r in adapter.renew(s, None)}  # all renewable ones
        good = loans["赤松小三郎ともう一つの明治維新"]
        assert list(results) == [good.id]
        assert results[good.id].ok and results[good.id].loan.due_on == TODAY + timedelta(days=14)  # type: ignore[union-attr]
        again = adapter.renew(s, [good.id])[0]
        assert not again.ok and again.error is not None and again.error.reason == "already_renewed"  # type: ignore[attr-defined]
        reasons = {}
        for loan in loans.values():
            if loan.id == good.id:
                continue
            r = adapter.renew(s, [loan.id])[0]
            assert not r.ok and r.error is not None and r.error.code == NotRenewable.code
            reasons[loan.title] = r.error.reason  # type: ignore[attr-defined]
            assert r.error.upstream_message  # type: ignore[attr-defined]
        assert sorted(reasons.values()) == ["already_renewed", "overdue", "reserved"]
        unknown = adapter.renew(s, ["nope"])[0]
        assert not unknown.ok and unknown.error is not None and unknown.error.code == "not_found"
        # the portal's due dates agree with what the renewal answered
        assert {l.id: l.due_on for l in adapter.loans(s)}[good.id] == TODAY + timedelta(days=14)


@pytest.mark.e2e
def test_kumamoto_maintenance_window() -> None:
    night = FROZEN.replace(hour=4, minute=30)
    with live_adapter("kumamoto-city", frozen=night) as (adapter, state):
        with pytest.raises(UpstreamMaintenance) as exc:
            adapter.login(CASES["kumamoto-city"].card, CASES["kumamoto-city"].password)
        assert exc.value.status == 503
        state.clock = lambda: night.replace(hour=5, minute=0)
        assert adapter.login(CASES["kumamoto-city"].card, CASES["kumamoto-city"].password)


@pytest.mark.e2e
def test_expired_upstream_session_is_reported_for_relogin() -> None:
    with live_adapter("niigata-city") as (adapter, state):
        case = CASES["niigata-city"]
        s = adapter.login(case.card, case.password)
        assert adapter.loans(s)
        state.expire_all_sessions()
        with pytest.raises(SessionExpired):
            adapter.loans(s)
        s = adapter.login(case.card, case.password)
        assert adapter.loans(s)


@pytest.mark.e2e
def test_hold_limit_and_cart_limit() -> None:
    with live_adapter("kumamoto-city") as (adapter, _state):
        case = CASES["kumamoto-city"]
        from gateway.models import HoldRequest, SearchQuery

        s = adapter.login(case.card, case.password)
        held = {h.record_id for h in adapter.holds(s)}
        ids = []
        page = 1
        while len(ids) < 12:
            res = adapter.search(SearchQuery(title="サンタクロース", page=page))
            ids += [r.id for r in res.records if r.id not in held and r.id not in ids]
            page += 1
        # The cart holds at most 10 (one is seeded).
        cart = adapter.cart(s)
        room = 10 - len(cart.items)
        for rid in ids[:room]:
            adapter.cart_add(s, rid)
        from core.errors import LimitExceeded

        with pytest.raises(LimitExceeded) as exc:
            adapter.cart_add(s, ids[room])
        assert exc.value.extra["limit"] == 10
        # Holds over the library's limit (10) are refused per title.
        limit = adapter.library.hold_limit or 10
        room = limit - len(held)
        results = adapter.place_holds(s, HoldRequest(record_ids=ids[: room + 1]))
        assert [r.ok for r in results] == [True] * room + [False]
        assert results[-1].error is not None and results[-1].error.code == "limit_exceeded"


@pytest.mark.e2e
def test_card_number_forms_are_normalised() -> None:
    with live_adapter("kumamoto-city") as (adapter, _state):
        for typed in ("2377570", "0000-0023-77570", "２３７７５７０", "A0000002377570B"):
            assert adapter.login(typed, "0808").card_number == "0000002377570"
        from core.errors import CardNumberInvalid

        with pytest.raises(CardNumberInvalid):
            adapter.login("12345678901234", "0808")


_ = datetime


@pytest.mark.e2e
def test_hold_expiry_date_is_sent_and_checked() -> None:
    from core.errors import InvalidRequest
    from gateway.models import HoldRequest, SearchQuery

    with live_adapter("niigata-city") as (adapter, _state):
        case = CASES["niigata-city"]
        s = adapter.login(case.card, case.password)
        ids = [r.id for r in adapter.search(SearchQuery(title="サンタクロース", page=3)).records]
        until = TODAY + timedelta(days=60)
        res = adapter.place_holds(s, HoldRequest(record_ids=ids[:1], expires_on=until, contact_method="メール"))
        assert res[0].ok and res[0].hold is not None
        assert res[0].hold.expires_on == until and res[0].hold.contact_method == "メール"
        with pytest.raises(InvalidRequest):
            adapter.place_holds(s, HoldRequest(record_ids=ids[1:2], expires_on=TODAY - timedelta(days=1)))
        with pytest.raises(InvalidRequest):
            adapter.place_holds(s, HoldRequest(record_ids=ids[1:2], contact_method="伝書鳩"))
        assert ids[1] not in {h.record_id for h in adapter.holds(s)}


@pytest.mark.e2e
def test_every_holding_status_word_is_mapped() -> None:
    expected = {"貸出可": "available", "貸出中": "on_loan", "館内のみ": "in_library_only", "予約中": "reserved",
                "準備中": "in_preparation", "休館中": "closed", "行方不明": "missing"}
    with live_adapter("amami") as (adapter, state):
        seen = {}
        for record_id, copies in state.catalog.copies.items():
            words = {c.status_word for c in copies} - set(seen)
            if not words:
                continue
            rec = adapter.record(record_id)
            for copy, holding in zip(copies, rec.holdings, strict=True):
                assert holding.branch == copy.branch and holding.call_number == copy.call_number
                seen[copy.status_word] = holding.status
            if len(seen) == len(expected):
                break
        assert seen == expected
