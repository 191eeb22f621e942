"""winj upstream economy: upstream HTTP requests per operation with a warm session,
for each winj library, paging included (REAL_WINJ.md's portal: lists of 10 a page,
the two-step renewal, the four-screen reservation).

Each library's simulator runs on loopback; the adapter logs in once (its cost is
shown), then every operation is counted on its own.  The ``25 loans`` rows use
kumamoto-city's heavy reader (25 loans, 12 holds): the first read of a long list asks
once for the largest page size (it sticks in the upstream session), later reads are
one request.

Run: python bench/winj_economy.py
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.models import HoldRequest, SearchQuery  # noqa: E402
from tests.adapters.winj.flows import CASES, LIBRARIES, live_adapter  # noqa: E402

HEAVY = ("0000000002525", "2525")


def count(a: Any, fn: Callable[[], Any]) -> int:
    before = a.request_count
    fn()
    return a.request_count - before


def measure(library: str) -> dict[str, int]:
    case = CASES[library]
    out: dict[str, int] = {}
    with live_adapter(library) as (a, _st):
        before = a.request_count
        s = a.login(case.hold_card, case.hold_password)
        out["login"] = a.request_count - before
        a.loans(s)
        out["loans"] = count(a, lambda: a.loans(s))
        out["holds"] = count(a, lambda: a.holds(s))
        out["cart"] = count(a, lambda: a.cart(s))
        out["search"] = count(a, lambda: a.search(SearchQuery(title="サンタクロース")))
        out["search p2"] = count(a, lambda: a.search(SearchQuery(title="サンタクロース", page=2)))
        found = a.search(SearchQuery(title="サンタクロース", page=3)).records
        out["record"] = count(a, lambda: a.record(found[0].id))
        mine = {l.record_id for l in a.loans(s)} | {h.record_id for h in a.holds(s)}
        free = [r.id for r in found if r.id not in mine]
        renewable = [l.id for l in a.loans(s) if l.renewable]
        if renewable:
            out["renew 1"] = count(a, lambda: a.renew(s, renewable[:1]))
        placed: list[Any] = []
        out["hold 1"] = count(a, lambda: placed.extend(a.place_holds(s, HoldRequest(record_ids=free[:1]))))
        out["hold 2 ord"] = count(a, lambda: a.place_holds(s, HoldRequest(record_ids=free[1:3], ordered=True)))
        hold = placed[0].hold
        if hold is not None:
            out["cancel"] = count(a, lambda: a.cancel_hold(s, hold.id))
        out["cart add"] = count(a, lambda: a.cart_add(s, free[4]))
        out["cart rm"] = count(a, lambda: a.cart_remove(s, free[4]))
    return out


def heavy() -> dict[str, int]:
    out: dict[str, int] = {}
    with live_adapter("kumamoto-city") as (a, _st):
        s = a.login(*HEAVY)
        loans: list[Any] = []
        out["25 loans 1st"] = count(a, lambda: loans.extend(a.loans(s)))
        out["25 loans"] = count(a, lambda: a.loans(s))
        holds: list[Any] = []
        out["12 holds"] = count(a, lambda: holds.extend(a.holds(s)))
        assert len(loans) == 25 and len(holds) == 12, (len(loans), len(holds))
        out["renew 1 of 25"] = count(a, lambda: a.renew(s, [next(l.id for l in loans if l.renewable)]))
        fresh = [l.id for l in a.loans(s) if l.renewable][:3]
        out["renew 3 of 25"] = count(a, lambda: a.renew(s, fresh))
    return out


def main() -> None:
    os.environ["OPACGW_SIM_NO_MAINTENANCE"] = "1"
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    rows = {lib: measure(lib) for lib in LIBRARIES}
    ops = list(dict.fromkeys(k for r in rows.values() for k in r))
    print("winj: upstream HTTP requests per operation, warm session (login shown once)")
    print(f"  {'operation':<14}" + "".join(f"{lib:>16}" for lib in LIBRARIES))
    for op in ops:
        print(f"  {op:<14}" + "".join(f"{rows[lib].get(op, '-')!s:>16}" for lib in LIBRARIES))
    h = heavy()
    print("kumamoto-city, the 25-loan / 12-hold patron (10 rows a page upstream):")
    for op, n in h.items():
        print(f"  {op:<14}{n:>16}")


if __name__ == "__main__":
    main()
