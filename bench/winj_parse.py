"""winj benchmark: parse time per page (selectolax vs BeautifulSoup) and upstream
requests per API call with a warm session.

    python bench/winj_parse.py [--library kumamoto-city] [--repeat 200]

Parse: each saved page of ``fixtures/winj/pages/<library>/`` is parsed by the
adapter's own ``parse_*`` function (selectolax/lexbor) and by a BeautifulSoup
(``html.parser`` and ``lxml``) extraction of the same rows and cells with the same
CSS selectors; the table gives microseconds per page and the ratio.
Requests: each adapter operation runs against the simulator on loopback with a
logged-in (warm) session; the table gives the upstream HTTP requests it cost.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bs4 import BeautifulSoup

from adapters.winj import pages as P
from tests.adapters.winj.flows import CASES, PAGES, TODAY, live_adapter


def _bs_items(html: str, parser: str, item_sel: str = "ol.list-book > li") -> list[dict[str, Any]]:
    """The same extraction as the adapter's list parsers: per item the title, the
    labelled lines of div.column.info and the links (for the ids)."""
    soup = BeautifulSoup(html, parser)
    soup.select_one(".nav-hdg")
    out = []
    for li in soup.select(item_sel):
        title = li.select_one("span.title")
        out.append({"title": " ".join(title.get_text(" ").split()) if title else "",
                    "lines": [" ".join(p.get_text(" ").split()) for p in li.select("div.column.info p")],
                    "links": [a.get("href") or "" for a in li.select("a[href]")]})
    return out


def _bs_detail(html: str, parser: str) -> tuple[dict[str, str], list[list[str]]]:
    soup = BeautifulSoup(html, parser)
    fields = {" ".join(tr.th.get_text().split()): " ".join(tr.td.get_text().split())
              for tr in soup.select("table.tbl-04 tr") if tr.th and tr.td}
    holdings = [[td.get_text(strip=True) for td in tr.find_all("td")] for tr in soup.select("table.tbl-holding tr")]
    return fields, holdings


def _bs_result(html: str, parser: str) -> list[Any]:
    soup = BeautifulSoup(html, parser)
    first = soup.select_one("div#main form p")
    return [first.get_text() if first else ""] + _bs_items(html, parser, "div#main form ol.list-book > li") + \
        [" ".join(r.get_text(" ").split()) for r in soup.select("div.report")]


# operation → (page file, selectolax parse, BeautifulSoup extraction(html, parser))
OPERATIONS: dict[str, tuple[str, Callable[[str], Any], Callable[[str, str], Any]]] = {
    "loans": ("lend_list", lambda h: P.parse_loans(h, "x", TODAY), _bs_items),
    "renew (result)": ("lend_result", P.parse_extension_result, _bs_result),
    "holds": ("reserve_list", lambda h: P.parse_holds(h, "x"), _bs_items),
    "cart": ("basket", P.parse_basket, _bs_items),
    "place hold (result)": ("reserve_result", P.parse_reserve_result, _bs_result),
    "search": ("search_list", lambda h: P.parse_search(h, 1), lambda h, p: _bs_items(h, p, "div.report")),
    "record": ("detail", lambda h: P.parse_record(h, "x"), _bs_detail),
}


def _time(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    # the minimum: on a shared machine, load only ever adds time (as timeit advises)
    return min(samples) * 1e6


def bench_parse(library: str, repeat: int) -> list[tuple[str, int, float, float, float]]:
    rows = []
    for op, (name, ours, bs) in OPERATIONS.items():
        path = PAGES / library / f"{name}.html"
        if not path.exists():
            continue
        html = P.decode_html(path.read_bytes(), None)
        ours(html)  # warm up / must parse
        sel = _time(lambda ours=ours, html=html: ours(html), repeat)
        bs_html = _time(lambda bs=bs, html=html: bs(html, "html.parser"), max(10, repeat // 4))
        bs_lxml = _time(lambda bs=bs, html=html: bs(html, "lxml"), max(10, repeat // 4))
        rows.append((op, len(html.encode()), sel, bs_html, bs_lxml))
    return rows


def bench_requests(library: str) -> list[tuple[str, int]]:
    from gateway.models import HoldRequest, HoldUpdate, SearchQuery

    case = CASES[library]
    out = []
    with live_adapter(library) as (a, _st):
        def cost(label: str, fn: Callable[[], Any]) -> Any:
            before = a.request_count
            result = fn()
            out.append((label, a.request_count - before))
            return result

        s = cost("login", lambda: a.login(case.hold_card, case.hold_password))
        cost("loans", lambda: a.loans(s))
        cost("holds", lambda: a.holds(s))
        cost("cart", lambda: a.cart(s))
        found = cost("search", lambda: a.search(SearchQuery(title="サンタクロース", page=2)))
        cost("record", lambda: a.record(found.records[0].id))
        rec = a.record(found.records[0].id)
        if rec.isbn:
            cost("availability (1 record)", lambda: a.availability(rec.isbn))
        loans = a.loans(s)
        cost("renew 1 loan", lambda: a.renew(s, [loans[0].id]))
        ids = [r.id for r in found.records]
        cost("cart add", lambda: a.cart_add(s, ids[5]))
        cost("cart remove", lambda: a.cart_remove(s, ids[5]))
        r1 = cost("place 1 hold (not in cart)", lambda: a.place_holds(s, HoldRequest(record_ids=ids[:1])))
        cost("place 2 holds ordered", lambda: a.place_holds(s, HoldRequest(record_ids=ids[1:3], ordered=True)))
        a.cart_add(s, ids[3])
        cost("place 1 hold (already in cart)", lambda: a.place_holds(s, HoldRequest(record_ids=ids[3:4])))
        hid = r1[0].hold.id
        cost("update hold pickup", lambda: a.update_hold(s, hid, HoldUpdate(pickup_branch=a.library.branches[-1].id)))
        cost("cancel hold", lambda: a.cancel_hold(s, hid))
        cost("change password", lambda: a.change_password(s, case.hold_card, case.hold_password, "bench2026x"))
        cost("logout", lambda: a.logout(s))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--library", default="kumamoto-city", choices=sorted(CASES))
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    print(f"# winj parse time per page — {args.library} (best of {args.repeat} runs)\n")
    print("| operation | page bytes | selectolax µs | BS4 html.parser µs | ratio | BS4 lxml µs | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for op, size, sel, bsh, bsl in bench_parse(args.library, args.repeat):
        print(f"| {op} | {size} | {sel:.0f} | {bsh:.0f} | {bsh / sel:.1f}× | {bsl:.0f} | {bsl / sel:.1f}× |")
    print(f"\n# upstream requests per API call, warm session — {args.library}\n")
    print("| operation | upstream requests |")
    print("|---|---:|")
    for label, n in bench_requests(args.library):
        print(f"| {label} | {n} |")


if __name__ == "__main__":
    main()
