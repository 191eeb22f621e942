"""winj account screens: flows replayed from cassettes (``recorded/winj/account/``).

The same flow functions run live against the simulator in
``test_winj_account_live.py``.  Re-record the cassettes and the saved pages of
``fixtures/winj/pages/account/`` (simulator on loopback) with::

    python -m tests.adapters.winj.test_account_flows

Cassettes are scrubbed when recorded (``winj_flows.winj_scrubber``): password fields
dropped, cookies, Host, Date and Server headers removed,
``hid_session`` replaced, card numbers masked, loopback host:port → ``winj.test``.
"""

from __future__ import annotations

from fixtures.winj import base_path

import re
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, time
from pathlib import Path
from typing import Any

import pytest

from adapters.winj.adapter import WinjAdapter
from core.errors import Conflict, InvalidRequest, NotFound
from fixtures.cassettes import vcr_for
from gateway.config import sandbox_config
from gateway.models import (
    AlertCondition,
    AlertCreate,
    AlertUpdate,
    DueReminder,
    Email,
    NotificationsUpdate,
    ProfileUpdate,
    Toggle,
)
from tests.adapters.winj.flows import live_app, winj_scrubber

ROOT = Path(__file__).resolve().parents[3]
CASSETTES = ROOT / "recorded" / "winj" / "account"
PAGES = ROOT / "fixtures" / "winj" / "pages" / "account"
HOST = "winj.test"
LIBRARIES = ("kumamoto-city", "kagoshima-pref", "amami", "niigata-city")
#: the demo account of each library whose account screens the flows use
ACCOUNTS = {
    "kumamoto-city": ("0000002377570", "0808"),
    "kagoshima-pref": ("9999999999", "20211030"),
    "amami": ("2000654321", "amami2022"),
    "niigata-city": ("0300000001", "niigata1"),
}
FRESH = {"kumamoto-city": ("0000001234567", "1225")}  # never opted in to history, no e-mail
CARDS = sorted({c for c, _ in ACCOUNTS.values()} | {c for c, _ in FRESH.values()}, key=len, reverse=True)


# ================================================================== the flows
def flow_profile(a: WinjAdapter, card: str, password: str) -> None:
    s = a.login(card, password)
    before = a.profile(s)
    assert before.card_number_masked.endswith(card[-4:]) and card not in before.card_number_masked
    assert before.emails and before.keep_history is True
    assert (before.notifications.checkout is not None) == (a.library.id in ("kagoshima-pref", "amami"))
    assert (before.card_expires_on is not None) == (a.library.id == "niigata-city")
    target = a.library.branches[-1]
    after = a.update_profile(s, ProfileUpdate(
        emails=[Email(address="reader@example.jp", kind="pc"), Email(address="keitai@example.jp", kind="mobile")],
        pickup_branch=target.id,
        notifications=NotificationsUpdate(due_reminder=DueReminder(enabled=True, days_before=3),
                                          registration=Toggle(enabled=True)),
    ), None)
    assert [(e.address, e.kind) for e in after.emails] == [("reader@example.jp", "pc"),
                                                           ("keitai@example.jp", "mobile")]
    assert after.pickup_branch == target.name
    assert after.notifications.due_reminder == DueReminder(enabled=True, days_before=3)
    assert after.notifications.registration.enabled is True
    assert after.contact_method == before.contact_method  # untouched settings stay
    with pytest.raises(InvalidRequest) as bad:
        a.update_profile(s, ProfileUpdate(emails=[Email(address="no-at-sign.example.jp", kind="pc")]), None)
    assert "E-mail1" in bad.value.extra["upstream_message"]
    assert a.profile(s).emails == after.emails  # the refused change stored nothing


def flow_history(a: WinjAdapter, card: str, password: str) -> None:
    s = a.login(card, password)
    first = a.history(s, 1, 20)
    assert first.total == 1000  # more were kept; the portal shows at most 1,000
    assert len(first.entries) == 20
    assert [e.loaned_on for e in first.entries] == sorted((e.loaned_on for e in first.entries), reverse=True)
    # 30 per page straddles the portal's 100-entry pages: entries 91–120
    odd = a.history(s, 4, 30)
    assert odd.total == 1000 and len(odd.entries) == 30
    tail = a.history(s, 10, 100)
    assert len(tail.entries) == 100
    assert a.history(s, 11, 100).entries == []


def flow_messages(a: WinjAdapter, card: str, password: str) -> None:
    s = a.login(card, password)
    unread = a.messages(s, False)
    everything = a.messages(s, True)
    assert unread and all(not m.read for m in unread)
    assert len(everything) > len(unread) and any(m.read for m in everything)
    assert {m.id for m in unread} <= {m.id for m in everything}
    assert everything[0].sent_at >= everything[-1].sent_at  # newest first


def flow_shelves(a: WinjAdapter, card: str, password: str) -> None:
    s = a.login(card, password)
    seeded = a.shelves(s)
    assert [x.name for x in seeded] == ["明治維新"]
    meiji = seeded[0]
    items = a.shelf_items(s, meiji.id)
    assert len(items) == meiji.item_count == 2
    assert "赤松小三郎ともう一つの明治維新" in {i.title for i in items}
    new = a.create_shelf(s, "読みたい本")
    assert new.name == "読みたい本" and new.item_count == 0
    with pytest.raises(Conflict) as dup:
        a.create_shelf(s, "読みたい本")
    assert "同じ名称" in dup.value.extra["upstream_message"]
    added = a.add_shelf_item(s, new.id, items[0].record_id)
    assert added.title == items[0].title
    with pytest.raises(Conflict):
        a.add_shelf_item(s, new.id, items[0].record_id)
    a.move_shelf_item(s, meiji.id, items[1].record_id, new.id, False)
    a.move_shelf_item(s, new.id, items[1].record_id, meiji.id, True)  # copy back
    assert {i.record_id for i in a.shelf_items(s, new.id)} == {items[0].record_id, items[1].record_id}
    assert [i.record_id for i in a.shelf_items(s, meiji.id)] == [items[0].record_id, items[1].record_id]
    csv_text = a.export_shelf(s, new.id)
    lines = csv_text.strip().splitlines()
    assert lines[0] == "record_id,title,author,publisher,year,classification,added_on"
    assert len(lines) == 3 and any(items[0].title in ln for ln in lines[1:])
    renamed = a.rename_shelf(s, new.id, "あとで読む")
    assert renamed.id == new.id and renamed.name == "あとで読む" and renamed.item_count == 2
    a.remove_shelf_item(s, new.id, items[0].record_id)
    with pytest.raises(NotFound):
        a.remove_shelf_item(s, new.id, items[0].record_id)
    a.delete_shelf(s, new.id)
    assert [x.id for x in a.shelves(s)] == [meiji.id]
    with pytest.raises(NotFound):
        a.shelf_items(s, new.id)


def flow_alerts(a: WinjAdapter, card: str, password: str) -> None:
    s = a.login(card, password)
    seeded = a.alerts(s)
    assert [(x.name, x.active, x.source) for x in seeded] == [("パソコン", True, "library")]
    assert seeded[0].conditions == [AlertCondition(field="title", op="contains", value="パソコン")]
    created = a.create_alert(s, AlertCreate(
        name="サンタクロースの本", memo="クリスマス用",
        conditions=[AlertCondition(field="title", value="サンタクロース"),
                    AlertCondition(field="author", value="やなせ")],
        max_results=20, active=False))
    assert created.active is False and created.source == "library"
    listed = {x.id: x for x in a.alerts(s)}
    assert listed[created.id].conditions == created.conditions
    assert listed[created.id].max_results == 20 and listed[created.id].memo == "クリスマス用"
    assert listed[created.id].active is False
    resumed = a.update_alert(s, created.id, AlertUpdate(active=True))
    assert resumed.active is True and resumed.conditions == created.conditions
    edited = a.update_alert(s, created.id, AlertUpdate(
        conditions=[AlertCondition(field="subject", value="クリスマス")], max_results=10))
    assert edited.conditions == [AlertCondition(field="subject", op="contains", value="クリスマス")]
    assert edited.active is True
    with pytest.raises(InvalidRequest) as refused:  # 出版者 alone is a 補足項目
        a.create_alert(s, AlertCreate(name="作品社", conditions=[AlertCondition(field="publisher", value="作品社")]))
    assert "補足項目" in refused.value.extra["upstream_message"]
    a.delete_alert(s, created.id)
    assert [x.id for x in a.alerts(s)] == [seeded[0].id]
    with pytest.raises(NotFound):
        a.delete_alert(s, created.id)


FLOWS: dict[str, Callable[[WinjAdapter, str, str], None]] = {
    "profile": flow_profile,
    "history": flow_history,
    "messages": flow_messages,
    "shelves": flow_shelves,
    "alerts": flow_alerts,
}


# ================================================================== live simulator
def noon_today(library: str) -> datetime:
    lib = sandbox_config().libraries[library]
    return datetime.combine(datetime.now(lib.tz).date(), time(12, 0), tzinfo=lib.tz)


@contextmanager
def live_adapter(library: str) -> Iterator[tuple[WinjAdapter, Any]]:
    """(adapter, simulator app) on loopback; the simulator's clock is frozen at noon
    today (outside Kumamoto's 04:00–05:00 maintenance window)."""
    with live_app(library, noon_today(library)) as pair:
        yield pair


def replay_adapter(library: str) -> WinjAdapter:
    lib = sandbox_config().libraries[library].model_copy(update={"base_url": f"http://{HOST}" + base_path(library)})
    return WinjAdapter(lib)


# ================================================================== scrubbing
#: the winj scrubbing (tests/adapters/winj/flows.py) with this file's demo cards
SCRUBBER = winj_scrubber(CARDS)
scrub_bytes = SCRUBBER.bytes_


def account_vcr(record_mode: str = "none") -> Any:
    return vcr_for(CASSETTES, record_mode=record_mode, scrubber=SCRUBBER)


# ================================================================== replay tests
def _cassette(library: str, flow: str) -> str:
    return f"{library}-{flow}.yaml"


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("flow", list(FLOWS))
def test_flow_replayed_from_cassette(library: str, flow: str) -> None:
    name = _cassette(library, flow)
    if not (CASSETTES / name).exists():
        pytest.fail(f"missing cassette {name}: run python -m tests.adapters.winj.test_account_flows")
    adapter = replay_adapter(library)
    card, password = ACCOUNTS[library]
    with account_vcr("none").use_cassette(name, allow_playback_repeats=False) as cassette:
        FLOWS[flow](adapter, card, password)
    assert cassette.play_count == len(cassette) and adapter.request_count == cassette.play_count


def test_cassettes_hold_no_secrets() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert len(files) == len(LIBRARIES) * len(FLOWS)
    for path in files:
        text = path.read_text(encoding="utf-8")
        for card in CARDS:
            assert card not in text, f"{path.name} holds a full card number"
        for pw in {p for _, p in ACCOUNTS.values()}:
            assert f"txt_password={pw}" not in text
        assert not re.search(r"JSESSIONID=(?!SCRUBBED)", text)
        assert re.search(r"hid_session=(?!SCRUBBED)[0-9a-f]{8}", text) is None
        assert re.search(r'hid_session\\?" value=\\?"(?!SCRUBBED)', text) is None


# ================================================================== recording
def _save_pages(library: str) -> None:
    """The pages the parser tests read, straight from the simulator (scrubbed)."""
    import httpx

    card, password = ACCOUNTS[library]
    out = PAGES / library
    out.mkdir(parents=True, exist_ok=True)
    with live_adapter(library) as (adapter, app):
        s = adapter.login(card, password)
        hid = s.data["hid"]
        codec = {"Shift_JIS": "cp932", "EUC-JP": "euc_jp"}.get(app.extensions["winj"].charset, "utf-8")
        cookies = httpx.Cookies()
        for k, v in s.cookies.items():
            cookies.set(k, v)

        def enc(pairs: list[tuple[str, str]]) -> bytes:
            return urllib.parse.urlencode(pairs + [("hid_session", hid)], encoding=codec).encode("ascii")

        with httpx.Client(base_url=adapter.library.base_url, cookies=cookies) as c:
            hdr = {"Content-Type": "application/x-www-form-urlencoded"}

            def save(name: str, r: httpx.Response) -> None:
                assert r.status_code == 200, (name, r.status_code)
                suffix = "txt" if r.headers.get("content-type", "").startswith("text/plain") else "html"
                (out / f"{name}.{suffix}").write_bytes(scrub_bytes(r.content))

            save("profile_form", c.get("user-info-change.do"))
            from adapters.winj.account_pages import find_profile_form

            form = find_profile_form(c.get("user-info-change.do").content.decode(codec))
            bad = [(k, "bad@" if k == "txt_mail1" else v) for k, v in form.fields]
            save("profile_form_error", c.post("user-info-confirm.do", content=enc(bad), headers=hdr))
            save("profile_confirm", c.post("user-info-confirm.do", content=enc(form.fields), headers=hdr))
            save("profile_result", c.post("user-info-update.do", content=enc([("btn_update", "更新")]), headers=hdr))
            save("history", c.get("lend-history.do?page=2&disp=20"))
            save("messages_unread", c.get("message-list.do"))
            save("messages_all", c.get("message-list.do?chk_read=1"))
            save("shelves", c.get("bookshelf-list.do"))
            shelf = adapter.shelves(s)[0].id
            save("shelf_items", c.get(f"bookshelf-detail.do?shelf={shelf}"))
            save("shelf_download", c.get(f"bookshelf-download.do?shelf={shelf}"))
            save("shelf_delete_confirm", c.post("bookshelf-delete-confirm.do",
                                                content=enc([("chk_shelf", shelf)]), headers=hdr))
            save("shelf_missing", c.get("bookshelf-detail.do?shelf=999999"))
            save("sdi_list", c.get("sdi-list.do"))
            no = adapter.alerts(s)[0].id
            save("sdi_form", c.get(f"sdi-input.do?no={no}"))
        if library in FRESH:
            fcard, fpw = FRESH[library]
            s2 = adapter.login(fcard, fpw)
            with httpx.Client(base_url=adapter.library.base_url, cookies=dict(s2.cookies)) as c:
                save("history_off", c.get("lend-history.do"))
                save("shelves_empty", c.get("bookshelf-list.do"))
                save("sdi_empty", c.get("sdi-list.do"))
                save("profile_form_fresh", c.get("user-info-change.do"))
    print("saved pages", out.relative_to(ROOT))


def _record(library: str) -> None:
    CASSETTES.mkdir(parents=True, exist_ok=True)
    for flow, fn in FLOWS.items():
        path = CASSETTES / _cassette(library, flow)
        path.unlink(missing_ok=True)
        card, password = ACCOUNTS[library]
        with live_adapter(library) as (adapter, _app), account_vcr("all").use_cassette(path.name):
            fn(adapter, card, password)
        print("recorded", path.relative_to(ROOT))


def main() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    for library in LIBRARIES:
        _save_pages(library)
        _record(library)


if __name__ == "__main__":
    main()
