"""winj: regression tests for the review findings — paging past the last search
page, a refused hold leaving records in the 予約かご, interleaved writes of one
patron, inline selectors, the simulator's history vs its loans, the catalog
stand-in, and README examples that cannot be pasted."""

from __future__ import annotations

from fixtures.winj import base_path

import ast
import importlib.util
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from adapters.winj import pages as P
from core.errors import AccountBlocked, UpstreamChanged
from gateway.models import HoldRequest, HoldUpdate, SearchQuery
from tests.adapters.winj.flows import LIBRARIES, PAGES, live_adapter

ROOT = Path(__file__).resolve().parents[3]


def saved(library: str, name: str) -> str:
    from adapters.html import decode

    return decode((PAGES / library / f"{name}.html").read_bytes())


# ------------------------------------------------------------------ 1. past the last page
@pytest.mark.parametrize("library", LIBRARIES)
def test_the_second_result_page_is_read_with_the_total(library: str) -> None:
    first = P.parse_search(saved(library, "search_list"), 1)
    second = P.parse_search(saved(library, "search_page2"), 2)
    assert second.total == first.total > 10 and second.page == 2
    assert second.records and {r.id for r in first.records}.isdisjoint(r.id for r in second.records)


def test_hits_counted_without_a_list_or_a_no_rows_notice_is_upstream_changed() -> None:
    html = saved("kumamoto-city", "search_list")
    gone = re.sub(r'<div class="report">.*?</div>\s*</div>', "", html, flags=re.S)
    assert gone != html and 'class="report"' not in gone
    with pytest.raises(UpstreamChanged):
        P.parse_search(gone, 1)
    # the items renamed on a page that has hits is never read as "nothing here"
    renamed = html.replace('class="report"', 'class="hit"')
    with pytest.raises(UpstreamChanged):
        P.parse_search(renamed, 1)


@pytest.mark.e2e
def test_searching_past_the_last_page_live() -> None:
    with live_adapter("kagoshima-pref") as (adapter, _st):
        first = adapter.search(SearchQuery(q="サンタクロース"))
        past = adapter.search(SearchQuery(q="サンタクロース", page=50))
        assert past.records == [] and past.total == first.total > 10
        one = adapter.search(SearchQuery(publisher="偕成社"))
        assert 0 < one.total <= 10
        two = adapter.search(SearchQuery(publisher="偕成社", page=2))
        assert two.records == [] and two.total == one.total


# ------------------------------------------------------------------ 2. the cart after a refused hold
def _cart(adapter, s) -> list[str]:  # type: ignore[no-untyped-def]
    return [i.record_id for i in adapter.cart(s).items]


@pytest.mark.e2e
def test_a_refused_hold_takes_out_of_the_cart_only_what_it_put_there() -> None:
    with live_adapter("kagoshima-pref") as (adapter, st):
        s = adapter.login("9999999999", "20211030")  # an overdue loan: holds are refused
        before = _cart(adapter, s)
        assert before, "the seeded cart"
        new = [r.id for r in st.catalog.held[40:43] if r.id not in before]
        with pytest.raises(AccountBlocked):
            adapter.place_holds(s, HoldRequest(record_ids=[before[0], *new]))
        assert _cart(adapter, s) == before
        with pytest.raises(AccountBlocked):  # the first title new, the patron's one later
            adapter.place_holds(s, HoldRequest(record_ids=[*new[:1], before[0]]))
        assert _cart(adapter, s) == before


@pytest.mark.e2e
def test_titles_refused_one_by_one_leave_the_cart_as_it_was() -> None:
    with live_adapter("kumamoto-city") as (adapter, st):
        s = adapter.login("0000002377570", "0808")
        before = _cart(adapter, s)
        on_loan = adapter.loans(s)[0].record_id  # 「貸出中の資料は予約できません」
        held = {h.record_id for h in adapter.holds(s)}
        fresh = next(r.id for r in st.catalog.held[60:] if r.id not in held and r.id not in before
                     and r.id != on_loan)
        results = adapter.place_holds(s, HoldRequest(record_ids=[on_loan, fresh]))
        assert [r.ok for r in results] == [False, True]
        assert _cart(adapter, s) == before  # placed: the portal took it out; refused: the adapter did


def test_the_hold_refusal_through_the_gateway_keeps_the_cart() -> None:
    from tests.adapters.winj.test_api import _token

    with _gateway("kagoshima-pref") as c:
        h = _token(c, "kagoshima-pref", "9999999999", "20211030")
        base = "/v1/libraries/kagoshima-pref"
        before = [i["record_id"] for i in c.get(f"{base}/cart", headers=h).get_json()["items"]]
        found = c.get(f"{base}/records?title=サンタクロース&page=2").get_json()["records"]
        rid = next(r["id"] for r in found if r["id"] not in before)
        r = c.post(f"{base}/holds", headers=h, json={"record_ids": [rid]})
        assert r.status_code == 403, r.get_json()
        after = [i["record_id"] for i in c.get(f"{base}/cart", headers=h).get_json()["items"]]
        assert after == before
        # paging past the end through the API: 200, no records, the total
        for query in ("q=サンタクロース&page=50", "publisher=偕成社&page=2"):
            r = c.get(f"{base}/records?{query}")
            assert r.status_code == 200, (query, r.get_json())
            assert r.get_json()["records"] == [] and r.get_json()["total"] > 0


def _gateway(library: str):  # type: ignore[no-untyped-def]
    import contextlib
    import tempfile

    from cryptography.fernet import Fernet

    from fixtures.registry import serve_app
    from fixtures.winj import create_app as sim_app
    from gateway.app import create_app
    from gateway.config import GatewayConfig, sandbox_config

    @contextlib.contextmanager
    def run():  # type: ignore[no-untyped-def]
        sandbox = sandbox_config()
        server = serve_app(sim_app(library), name=library)
        lib = sandbox.libraries[library].model_copy(update={"base_url": server.url + base_path(library),
                                                            "maintenance": []})
        with tempfile.TemporaryDirectory() as tmp:
            cfg = GatewayConfig(gateway=sandbox.gateway.model_copy(update={
                "database": str(Path(tmp) / "gw.sqlite3"), "read_cache_seconds": 0}), libraries={library: lib})
            app = create_app(cfg, secret_key=Fernet.generate_key().decode())
            try:
                yield app.test_client()
            finally:
                app.extensions["opacgw"].close()
                server.stop()

    return run()


# ------------------------------------------------------------------ 3. one write at a time per patron
@pytest.mark.e2e
def test_concurrent_core_writes_of_one_patron_do_not_cross() -> None:
    # one pending confirm per web session upstream (予約内容確認, 予約内容変更):
    # interleaved they would reserve or change another title than asked for
    with live_adapter("kumamoto-city") as (adapter, st):
        s = adapter.login("0000001234567", "1225")
        ids = [r.id for r in st.catalog.held[100:106]]
        with ThreadPoolExecutor(6) as pool:
            placed = list(pool.map(lambda rid: adapter.place_holds(s, HoldRequest(record_ids=[rid])), ids))
        assert [r[0].record_id for r in placed] == ids
        assert all(r[0].ok and r[0].hold and r[0].hold.record_id == r[0].record_id for r in placed), placed
        holds = {h.record_id: h for h in adapter.holds(s)}
        assert sorted(holds) == sorted(ids)
        branches = [b.name for b in adapter.library.branches]
        wanted = {ids[k]: branches[k % len(branches)] for k in range(len(ids))}
        with ThreadPoolExecutor(6) as pool:
            changed = list(pool.map(lambda rid: adapter.update_hold(
                s, holds[rid].id, HoldUpdate(pickup_branch=wanted[rid])), ids))
        assert {h.record_id: h.pickup_branch for h in changed} == wanted
        assert {h.record_id: h.pickup_branch for h in adapter.holds(s)} == wanted


def test_core_writes_take_the_per_patron_lock() -> None:
    # the same lock the account screens use (WinjHttp._serial), not a copy of it
    src = {name: (ROOT / "adapters" / "winj" / f"{name}.py").read_text(encoding="utf-8")
           for name in ("loans", "holds", "adapter", "account")}
    writes = {"loans": ["renew"], "holds": ["place_holds", "cancel_hold", "update_hold", "cart_add", "cart_remove"],
              "adapter": ["change_password"]}
    for module, methods in writes.items():
        tree = ast.parse(src[module])
        fns = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        for m in methods:
            assert "self._serial(session)" in ast.unparse(fns[m]), f"{module}.{m} does not take the lock"
    assert "threading.Lock" not in src["account"] and "_acct_serial" not in src["account"]


# ------------------------------------------------------------------ 4. selectors are named constants
SELECTOR_CALLS = {"css", "css_first"}


@pytest.mark.parametrize("module", ["pages", "account_pages", "account", "account_base", "profile", "history", "shelves",
                                    "alerts", "holds", "loans", "catalog", "adapter", "http", "layout"])
def test_no_inline_selectors(module: str) -> None:
    tree = ast.parse((ROOT / "adapters" / "winj" / f"{module}.py").read_text(encoding="utf-8"))
    inline = [f"line {n.lineno}: {ast.unparse(n)}" for n in ast.walk(tree)
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in SELECTOR_CALLS
              and n.args and isinstance(n.args[0], (ast.Constant, ast.JoinedStr))]
    assert inline == [], "selectors belong in named constants at the top of the module"


# ------------------------------------------------------------------ 6. no catalog stand-in
def test_the_simulator_serves_the_shared_sample_set_itself() -> None:
    from fixtures.catalog import CatalogRecord, holdings
    from fixtures.winj.state import Catalog

    assert importlib.util.find_spec("fixtures.winj.catalog") is None
    cat = Catalog("kumamoto-city")
    assert cat.held and all(isinstance(r, CatalogRecord) for r in cat.held)
    assert set(cat.copies) == set(holdings("kumamoto-city"))
    assert cat.search(title="さんたくろーす")  # the shared set's kana-insensitive search


# ------------------------------------------------------------------ 7. history vs loans
@pytest.mark.e2e
@pytest.mark.parametrize("library", ["kumamoto-city", "kagoshima-pref"])
def test_history_entries_without_a_return_date_are_the_current_loans(library: str) -> None:
    from tests.adapters.winj.test_account_flows import ACCOUNTS

    with live_adapter(library) as (adapter, _st):
        s = adapter.login(*ACCOUNTS[library])
        loans = adapter.loans(s)
        out = []
        for page in range(1, 11):
            out += adapter.history(s, page, 100).entries
        assert len(out) == 1000
        still_out = sorted(e.record_id for e in out if e.returned_on is None)
        assert still_out == sorted(loan.record_id for loan in loans)
        assert all(e.returned_on is None or e.loaned_on <= e.returned_on <= adapter.today() for e in out)


# ------------------------------------------------------------------ 5. README examples paste as they are
@pytest.mark.parametrize("doc", ["winj.md", "winj-account.md"])
def test_readme_examples_need_no_editing(doc: str) -> None:
    text = (ROOT / "docs" / "readme" / doc).read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:sh|bash|shell)?\n(.*?)```", text, re.DOTALL)
    code = "\n".join(blocks)
    assert "curl" in code
    # no placeholder to fill in by hand: ids come from shell variables set by earlier commands
    placeholders = set(re.findall(r"(?<![$\w{])([A-Z][A-Z0-9_]*_ID)\b", code))
    assert placeholders <= set(re.findall(r"\b([A-Z][A-Z0-9_]*_ID)=", code)), placeholders
    for var in set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)\}?", code)):
        assert re.search(rf"\b{var}=", code), f"${var} is never set"
    assert not re.search(r"/(shelves|alerts)/1\d\d\b", code), "ids of a fresh sandbox only"
    if doc != "winj.md":
        return
    # the password-change example must not lock the first demo account (2377570/0808,
    # used by every other example) out: it uses 0000001234567/1225 and sets it back
    assert '"current_password":"0808"' not in code
    assert '"card_number":"0000001234567","password":"1225"' in code
    assert '"current_password":"1225"' in code and '"new_password":"1225"' in code
