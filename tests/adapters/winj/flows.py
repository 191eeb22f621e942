"""The winj flows, shared by the cassette-replay tests and the live tests, plus
the recorder of cassettes (``recorded/winj/``) and saved pages
(``fixtures/winj/pages/<library>/``).

Re-record (simulator on loopback, clock frozen at ``FROZEN``)::

    python -m tests.adapters.winj.flows

Each flow takes an adapter bound to one library and asserts what the library's
seeded state must give.  Cassettes and pages are scrubbed: no password fields, no
cookies, ``hid_session`` values replaced, card numbers masked; the loopback
host:port is rewritten to ``winj.test`` so replays do not depend on a port.
"""

from __future__ import annotations

from fixtures.winj import base_path

import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapters.winj import WinjAdapter
from core.errors import (
    AccountBlocked,
    Conflict,
    InvalidCredentials,
    NotFound,
    PasswordChangeRequired,
    PasswordPolicyViolation,
)
from fixtures.cassettes import Scrubber, scrubber_for, vcr_for
from gateway.config import LibraryConfig, sandbox_config
from gateway.models import HoldRequest, HoldUpdate, SearchQuery

ROOT = Path(__file__).resolve().parents[3]
CASSETTES = ROOT / "recorded" / "winj"
PAGES = ROOT / "fixtures" / "winj" / "pages"
HOST = "winj.test"
FROZEN = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
TODAY = FROZEN.date()
LIBRARIES = ("kumamoto-city", "kagoshima-pref", "amami", "niigata-city")


@dataclass(frozen=True)
class Case:
    card: str  # the demo account that logs in directly
    password: str
    hold_card: str  # an account without overdue loans (can place holds)
    hold_password: str
    pickup: str  # a branch id to pick up holds at
    pw_card: str  # the account whose password a flow changes
    pw_old: str
    pw_new: str
    forced: bool  # pw_card is on an initial/temporary password


CASES: dict[str, Case] = {
    "kumamoto-city": Case("0000002377570", "0808", "0000002377570", "0808", "tatsuda",
                          "0000001234567", "1225", "kuma2026", False),
    "kagoshima-pref": Case("9999999999", "20211030", "8000000001", "19800101", "kodomo",
                           "8000000001", "19800101", "kago2026", False),
    "amami": Case("2000654321", "amami2022", "2000654321", "amami2022", "honkan",
                  "2000123456", "19850315", "amami2026x", True),
    "niigata-city": Case("0300000001", "niigata1", "0300000001", "niigata1", "toyano",
                         "0300000000", "12345678", "5678", True),
}
def _all_cards() -> list[str]:
    from fixtures.winj.seed import DEMO_ACCOUNTS

    cards = {c for case in CASES.values() for c in (case.card, case.hold_card, case.pw_card)}
    cards |= {card for accounts in DEMO_ACCOUNTS.values() for card, _, _ in accounts}
    return sorted(cards, key=len, reverse=True)


ALL_CARDS = _all_cards()


# ------------------------------------------------------------------ the flows
def flow_login_loans(a: WinjAdapter, case: Case) -> None:
    short = case.card.lstrip("0") if a.library.card_number.pad else case.card
    s = a.login(short, case.password)
    assert s.card_number == case.card
    before = a.request_count
    loans = a.loans(s)
    assert a.request_count - before == 1, "a warm loan list must cost one request"
    assert loans, "seeded loans"
    for loan in loans:
        assert loan.id == loan.item_id and loan.id.isdigit()
        assert loan.library == a.library.id
        assert loan.due_on.year == TODAY.year or loan.due_on.year == TODAY.year + 1
    assert len({l.id for l in loans}) == len(loans)
    with pytest.raises(InvalidCredentials):
        a.login(case.card, case.password + "9")
    a.logout(s)


def flow_renew(a: WinjAdapter, case: Case) -> dict[str, Any]:
    s = a.login(case.card, case.password)
    loans = {l.id: l for l in a.loans(s)}
    results = a.renew(s, list(loans))
    out = {}
    for r in results:
        out[r.loan_id] = r
        if r.ok:
            assert r.loan is not None and r.loan.due_on > loans[r.loan_id].due_on
        else:
            assert r.error is not None and r.error.code in ("not_renewable",)
    assert [r.loan_id for r in results] == list(loans)
    return out


def flow_holds(a: WinjAdapter, case: Case) -> None:
    s = a.login(case.hold_card, case.hold_password)
    before = a.request_count
    holds = a.holds(s)
    assert a.request_count - before == 1
    held = {h.record_id for h in holds}
    found = a.search(SearchQuery(title="サンタクロース"))
    candidates = [r.id for r in found.records if r.id not in held]
    assert len(candidates) >= 3
    branch = a.library.branch_by_name_or_id(case.pickup)
    assert branch is not None
    one = a.place_holds(s, HoldRequest(record_ids=candidates[:1], pickup_branch=case.pickup))
    assert one[0].ok and one[0].hold is not None, one
    assert one[0].hold.pickup_branch == branch.name
    assert one[0].hold.status in ("submitted", "waiting")
    two = a.place_holds(s, HoldRequest(record_ids=candidates[1:3], ordered=True))
    assert all(r.ok for r in two), two
    groups = {r.hold.order_group for r in two if r.hold}
    assert len(groups) == 1 and None not in groups
    again = a.place_holds(s, HoldRequest(record_ids=candidates[:1]))
    assert not again[0].ok and again[0].error is not None and again[0].error.code == "conflict"
    assert again[0].hold is None  # exactly one of the hold and the problem (#11.3)
    other = a.library.branches[0]
    changed = a.update_hold(s, one[0].hold.id, HoldUpdate(pickup_branch=other.name))
    assert changed.pickup_branch == other.name and changed.id == one[0].hold.id
    a.cancel_hold(s, two[0].hold.id)  # type: ignore[union-attr]
    left = {h.id for h in a.holds(s)}
    assert two[0].hold.id not in left and one[0].hold.id in left  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        a.cancel_hold(s, "0")


def flow_cart(a: WinjAdapter, case: Case) -> None:
    s = a.login(case.hold_card, case.hold_password)
    cart = a.cart(s)
    found = a.search(SearchQuery(q="サンタクロース", page=2))
    rid = next(r.id for r in found.records if r.id not in {i.record_id for i in cart.items})
    after = a.cart_add(s, rid)
    assert rid in {i.record_id for i in after.items}
    a.cart_remove(s, rid)
    assert rid not in {i.record_id for i in a.cart(s).items}
    with pytest.raises(NotFound):
        a.cart_remove(s, rid)


def flow_password(a: WinjAdapter, case: Case) -> None:
    if case.forced:
        with pytest.raises(PasswordChangeRequired):
            a.login(case.pw_card, case.pw_old)
        with pytest.raises(PasswordPolicyViolation):
            a.change_password(None, case.pw_card, case.pw_old, "x")
        a.change_password(None, case.pw_card, case.pw_old, case.pw_new)
    else:
        s = a.login(case.pw_card, case.pw_old)
        a.change_password(s, case.pw_card, case.pw_old, case.pw_new)
        a.logout(s)
    with pytest.raises(InvalidCredentials):
        a.login(case.pw_card, case.pw_old)
    s = a.login(case.pw_card, case.pw_new)
    assert a.loans(s) is not None


def flow_catalog(a: WinjAdapter, case: Case) -> None:
    before = a.request_count
    first = a.search(SearchQuery(title="サンタクロース"))
    assert a.request_count - before <= 2
    assert first.total > 10 and len(first.records) == 10 and first.page == 1
    second = a.search(SearchQuery(title="サンタクロース", page=2))
    assert second.page == 2 and {r.id for r in first.records}.isdisjoint(r.id for r in second.records)
    rec = a.record(first.records[0].id)
    assert rec.title == first.records[0].title and rec.holdings
    assert all(h.status != "unknown" for h in rec.holdings)
    with pytest.raises(NotFound):
        a.record("0000000000")
    if rec.isbn:
        assert a.availability(rec.isbn)
    by_author = a.search(SearchQuery(author="東野"))
    assert by_author.total >= 1 and all("東野" in (r.author or "") for r in by_author.records)


def flow_blocked(a: WinjAdapter, case: Case) -> None:
    """kagoshima-pref's demo patron has an overdue loan: holds are refused."""
    s = a.login(case.card, case.password)
    found = a.search(SearchQuery(title="サンタクロース", page=3))
    before = [i.record_id for i in a.cart(s).items]
    assert before, "the seeded cart"
    wanted = [r.id for r in found.records if r.id not in before][:2] + before[:1]
    with pytest.raises(AccountBlocked) as exc:
        a.place_holds(s, HoldRequest(record_ids=wanted))
    assert exc.value.extra["reason"] == "overdue"
    # what the refused flow put in the cart came out again; the patron's own stayed
    assert [i.record_id for i in a.cart(s).items] == before


FLOWS: dict[str, Callable[[WinjAdapter, Case], Any]] = {
    "login_loans": flow_login_loans,
    "renew": flow_renew,
    "holds": flow_holds,
    "cart": flow_cart,
    "password": flow_password,
    "catalog": flow_catalog,
}
EXTRA_FLOWS = {"kagoshima-pref": {"blocked": flow_blocked}}


def flows_for(library: str) -> dict[str, Callable[[WinjAdapter, Case], Any]]:
    return {**FLOWS, **EXTRA_FLOWS.get(library, {})}


# ------------------------------------------------------------------ live simulator
@contextmanager
def live_app(library: str, frozen: datetime | None = FROZEN) -> Iterator[tuple[WinjAdapter, Any]]:
    """(adapter, simulator Flask app) against a fresh simulator on loopback; with
    ``frozen`` the simulator's clock and the adapter's today stand still there."""
    from fixtures.registry import serve_app
    from fixtures.winj import create_app

    app = create_app(library, clock=(lambda: frozen) if frozen is not None else None)
    server = serve_app(app, name=library)
    cfg = sandbox_config().libraries[library]
    from adapters.winj.layout import context_paths

    lib = cfg.model_copy(update={"base_url": server.url + context_paths(cfg.base_url)[0]})
    adapter = WinjAdapter(lib)
    if frozen is not None:
        adapter.today = lambda: frozen.date()  # type: ignore[method-assign]
    try:
        yield adapter, app
    finally:
        adapter.close()
        server.stop()


@contextmanager
def live_adapter(library: str, frozen: datetime | None = FROZEN) -> Iterator[tuple[WinjAdapter, Any]]:
    """(adapter, simulator state) against a fresh simulator on loopback."""
    from fixtures.winj.portal import EXT_KEY

    with live_app(library, frozen) as (adapter, app):
        yield adapter, app.extensions[EXT_KEY]


def replay_library(library: str) -> LibraryConfig:
    return sandbox_config().libraries[library].model_copy(update={"base_url": f"http://{HOST}" + base_path(library)})


# ------------------------------------------------------------------ scrubbing
#: every password field of the winj forms (login, password change, 利用者情報変更): what
#: the adapter declares it posts as secret
SECRET_FIELDS = WinjAdapter.secret_fields.secret


def winj_scrubber(cards: Iterable[str]) -> Scrubber:
    """The winj scrubbing, built from ``WinjAdapter.secret_fields`` (``fixtures.cassettes.
    scrubber_for``): password fields dropped; the session id (``hid_session`` in forms,
    pages and the links that carry it, the ``JSESSIONID`` cookie's value) replaced;
    ``cards`` masked; the loopback host:port → ``winj.test``; no request cookies, and no
    Host/Date/Server either, so a re-recording only differs where the pages do.
    ``Set-Cookie`` stays with its value scrubbed: the adapter checks that the portal issued
    a session before the login."""
    return scrubber_for(
        WinjAdapter.secret_fields, drop_secrets=True,
        scrub_query_params=tuple(sorted(WinjAdapter.secret_fields.tokens)), card_numbers=cards, replay_host=HOST,
        scrub_headers={"set-cookie"}, drop_headers={"cookie", "host", "date", "server"},
    )


SCRUBBER = winj_scrubber(ALL_CARDS)
scrub_bytes = SCRUBBER.bytes_


def cassette_vcr(record_mode: str = "none") -> Any:
    return vcr_for(CASSETTES, record_mode=record_mode, scrubber=SCRUBBER)


# ------------------------------------------------------------------ recording
def record_cassettes(library: str) -> None:
    CASSETTES.mkdir(parents=True, exist_ok=True)
    for name, fn in flows_for(library).items():
        path = CASSETTES / f"{library}-{name}.yaml"
        path.unlink(missing_ok=True)
        with live_adapter(library) as (adapter, _st), cassette_vcr("all").use_cassette(path.name):
            fn(adapter, CASES[library])
        print("recorded", path.relative_to(ROOT))


def save_pages(library: str) -> None:
    """Save the pages the parser tests read, straight from the simulator (scrubbed)."""
    import httpx

    from adapters.winj import pages as P

    out = PAGES / library
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.html"):
        old.unlink()
    case = CASES[library]
    with live_adapter(library) as (adapter, st):
        base = adapter.library.base_url + "/"
        codec = P.py_codec(st.charset)
        hdr = {"Content-Type": "application/x-www-form-urlencoded"}

        def enc(pairs: list[tuple[str, str]]) -> bytes:
            return urllib.parse.urlencode(pairs, encoding=codec).encode("ascii")

        def save(name: str, r: httpx.Response) -> httpx.Response:
            (out / f"{name}.html").write_bytes(scrub_bytes(r.content))
            return r

        def login(c: httpx.Client, card: str, password: str, name: str | None = None) -> httpx.Response:
            page = c.get("login.do?lang=ja&dispatch=/opac/mylibrary.do")
            if P.parse_login_form(P.tree(page.content)) is None:
                if name:
                    save(f"{name}_cold", page)
                page = c.get("login.do?lang=ja&dispatch=/opac/mylibrary.do")
            if name:
                save(name, page)
            return c.post("login.do?lang=ja&dispatch=/opac/mylibrary.do", headers=hdr, content=enc(
                [("txt_usercd", card), ("txt_password", password), ("submit_btn_login", "ログイン")]))

        with httpx.Client(base_url=base, follow_redirects=True) as c:
            save("login_failed", login(c, case.card, "nope", "login"))
            save("mylibrary", login(c, case.card, case.password))
            sid = c.cookies.get("JSESSIONID") or ""
            lend = save("lend_list", c.get("lend-list.do"))
            rows, _ = P.parse_lend_items(P.tree(lend.content), library, TODAY)
            row = next((r for r in rows if r.extend), None)
            if row is not None and row.extend:
                save("lend_confirm", c.get(adapter._abs(row.extend)))
                conf = P.parse_extension_confirm(c.get(adapter._abs(row.extend)).text)
                save("lend_result", c.post("lend-extension-confirm.do", headers=hdr, content=enc(
                    [("hid_session", sid), ("hid_lenid", conf.lenid), conf.submit])))
            save("reserve_list", c.get("reserve-list.do"))
            save("basket", c.get("reserve-basket.do"))
            q = [("lang", "ja"), ("cmb_column1", "title"), ("txt_word1", "サンタクロース"), ("opt_pagesize", "10"),
                 ("submit_btn_searchDetailSelAr", "所蔵検索")]
            found = P.parse_search(save("search_list", c.get("search-detail.do?" + urllib.parse.urlencode(
                q, encoding=codec))).text, 1)
            save("search_page2", c.get("search-list.do?page=2"))
            save("search_empty", c.get("search-detail.do?" + urllib.parse.urlencode(
                [("cmb_column1", "title"), ("txt_word1", "存在しない書名xyz"), ("submit_btn_searchDetailSelAr", "所蔵検索")],
                encoding=codec)))
            rec = st.catalog.get(found.records[0].id)
            save("search_one", c.get("search-detail.do?" + urllib.parse.urlencode(
                [("cmb_code_column", "isbn"), ("txt_code", rec.isbn or ""), ("submit_btn_searchDetailSelAr", "所蔵検索")],
                encoding=codec)))
            save("detail", c.get(f"switch-detail.do?lang=ja&bibid={found.records[0].id}"))
            save("detail_missing", c.get("switch-detail.do?lang=ja&bibid=0000000000"))
            held = {h.record_id for h in P.parse_holds(c.get("reserve-list.do").text, library)}
            if not st.is_overdue(case.card):
                ids = ([sorted(held)[0]] if held else []) + [found.records[5].id]
                for rid in ids:
                    c.post("switch-detail.do", headers=hdr, content=enc(
                        [("hid_session", sid), ("bibid", rid), ("submit_btn_reserve_basket", "予約かご")]))
                basket = P.parse_basket(c.get("reserve-basket.do").text)
                form = list(basket.hidden) + [("chk_check", basket.entries[rid]) for rid in ids if rid in basket.entries]
                save("reserve_confirm", c.post("reserve-basket.do", headers=hdr, content=enc(
                    [("hid_session", sid)] + form + [basket.buttons["normal"]])))
                conf = P.parse_reserve_confirm(c.post("reserve-basket.do", headers=hdr, content=enc(
                    [("hid_session", sid)] + form + [basket.buttons["normal"]])).text)
                save("reserve_result", c.post("reserve-confirm.do", headers=hdr, content=enc(
                    [("hid_session", sid)] + list(conf.hidden) + [conf.submit])))
                save("reserve_list_after", c.get("reserve-list.do"))
                hrows, _ = P.parse_hold_items(P.tree(c.get("reserve-list.do").content), library)
                first = next(r.index for r in hrows if r.index)
                save("reserve_cancel_confirm", c.post("reserve-cancel.do", headers=hdr, content=enc(
                    [("chk_reserve", first), ("hid_session", sid)])))
                basket = P.parse_basket(save("basket_full", c.get("reserve-basket.do")).text)
                if basket.entries:
                    rid = next(iter(basket.entries))
                    save("basket_delete", c.post("reserve-basket.do", headers=hdr, content=enc(
                        [("hid_session", sid)] + list(basket.hidden) + [("chk_check", basket.entries[rid]),
                                                                        basket.buttons["delete"]])))
            else:
                c.post("switch-detail.do", headers=hdr, content=enc(
                    [("hid_session", sid), ("bibid", found.records[5].id), ("submit_btn_reserve_basket", "予約かご")]))
                basket = P.parse_basket(c.get("reserve-basket.do").text)
                save("reserve_blocked", c.post("reserve-basket.do", headers=hdr, content=enc(
                    [("hid_session", sid)] + list(basket.hidden) + [("chk_check", next(iter(basket.entries))),
                                                                    basket.buttons["normal"]])))
            save("password_form", c.get("password-change.do"))
            save("timeout", c.post("lend-list.do", headers=hdr, content=enc([("hid_session", "0" * 32)])))
            c.get("logout.do")
        if case.forced:
            with httpx.Client(base_url=base, follow_redirects=True) as c:
                save("password_forced", login(c, case.pw_card, case.pw_old))
        if library == "kumamoto-city":  # the 25-loan patron: paged lists
            with httpx.Client(base_url=base, follow_redirects=True) as c:
                login(c, "0000000002525", "2525")
                save("lend_list_p1", c.get("lend-list.do"))
                save("lend_list_p3", c.get("lend-list.do?page=3"))
                save("reserve_list_p2", c.get("reserve-list.do?page=2"))
        if st.library.maintenance:
            st.clock = lambda: FROZEN.replace(hour=4, minute=30)
            with httpx.Client(base_url=base) as c:
                save("maintenance", c.get("login.do"))
            st.clock = lambda: FROZEN
    print("saved pages", out.relative_to(ROOT))


def main() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for library in LIBRARIES:
        save_pages(library)
        record_cassettes(library)


if __name__ == "__main__":
    main()


_ = (date, timedelta, Conflict)
