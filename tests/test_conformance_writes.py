"""The write cases of the contract, one table over every adapter family (#11.3, #16.7).

Each row is a sandbox library with its simulator; each test is one write case run at
every row through the HTTP API: renew ok, refused with each reason the family can
produce, the answer of the last step lost (and then the re-read failing too, so that
the retry must learn what happened, with and without the same Idempotency-Key), the
last step never sent; hold ok, duplicate, blocked, and the same lost answers.

Faults sit in the adapter's transport: the matched request (the write's last step:
延長/予約 confirm, 実行, RenewItem/RequestItem, the SOAP renew/place operation) is either
forwarded to the simulator and its answer lost (the library acted: a timeout, a reset,
or an HTML 502 page in its place), or not sent.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from adapters.winj import pages as winj_pages
from fixtures.registry import RunningServer, serve_app, simulators
from gateway.config import GatewayConfig, sandbox_config
from tests.test_conformance import _rewired

Match = Callable[[httpx.Request, Any], bool]


def _form_post(path: str, needle: bytes | None = None) -> Match:
    def match(request: httpx.Request, adapter: Any) -> bool:
        return (request.method == "POST" and request.url.path.endswith(path)
                and (needle is None or needle in request.read()))
    return match


def _ncip(message: str) -> Match:
    pattern = re.compile(rb"[<:]" + message.encode() + rb"[\s>]")
    return lambda request, adapter: request.method == "POST" and bool(pattern.search(request.read()))


def _soap(role: str) -> Match:
    def match(request: httpx.Request, adapter: Any) -> bool:
        name = getattr(adapter.options.operations, role).operation
        return request.method == "POST" and bool(re.search(rb"[<:]" + name.encode() + rb"[\s>/]", request.read()))
    return match


@dataclass(frozen=True)
class Row:
    library: str
    family: str
    #: a patron with renewable and refused loans, and one who may place holds
    renewer: tuple[str, str]
    holder: tuple[str, str]
    #: a patron the library refuses holds to (None: the simulator has none)
    blocked: tuple[str, str] | None
    #: every refusal reason the renewer's loans produce
    reasons: frozenset[str]
    renew_step: Match
    hold_step: Match
    #: candidate record ids to place holds on (world) → ids
    records: Callable[[Any], list[str]] = field(repr=False, default=lambda w: [])


def _searched(title: str) -> Callable[[Any], list[str]]:
    def records(w: Any) -> list[str]:
        ids: list[str] = []
        for page in (1, 2):
            r = w.app.test_client().get(f"{w.base}/records", query_string={"title": title, "page": page})
            assert r.status_code == 200, r.get_json()
            ids += [x["id"] for x in r.get_json()["records"]]
        return ids
    return records


def _ncip_records(w: Any) -> list[str]:
    return [b.id for b in w.sim_app.config["ncip_state"].bibs]


def _soap_records(library: str) -> Callable[[Any], list[str]]:
    from fixtures.soap.data import holdable_record_id

    return lambda w: [holdable_record_id(library, n) for n in range(6)]


ROWS = [
    Row("kagoshima-pref", "winj", ("9999999999", "20211030"), ("8000000001", "19800101"),
        ("9999999999", "20211030"), frozenset({"overdue", "reserved", "already_renewed"}),
        _form_post("", b"hid_lenid"), _form_post(winj_pages.RESERVE_CONFIRM_PATH), _searched("サンタクロース")),
    Row("yamaguchi-pref", "wo", ("1000000002", "Suou-Hanako2026"), ("1000000002", "Suou-Hanako2026"),
        ("1000000003", "Choshu!1868"), frozenset({"already_renewed", "reserved"}),
        _form_post("usr_lend_ext", b"btn_exe"), _form_post("rsv_entry", b"btn_exe"), _searched("の")),
    Row("ncip-consortium", "ncip", ("00052", "ncip-pass"), ("00052", "ncip-pass"), ("00053", "ncip-pass"),
        frozenset({"reserved", "overdue", "renewal_limit"}),
        _ncip("RenewItem"), _ncip("RequestItem"), _ncip_records),
    Row("soap-demo", "soap", ("2000000001", "soap-pass"), ("2000000001", "soap-pass"), None,
        frozenset({"reserved", "overdue", "already_renewed"}),
        _soap("renew"), _soap("place_hold"), _soap_records("soap-demo")),
    Row("soap-kita", "soap", ("3100000002", "kita-pass"), ("3100000002", "kita-pass"), None,
        frozenset({"reserved", "overdue", "renewal_limit"}),
        _soap("renew"), _soap("place_hold"), _soap_records("soap-kita")),
]


def test_every_family_has_a_row() -> None:
    from adapters import registry

    families = {name for name in registry.families() if name != "fake"}
    assert families <= {row.family for row in ROWS}, families - {row.family for row in ROWS}


# ---------------------------------------------------------------- faults
class Faults(httpx.BaseTransport):
    """The adapter's transport with one armed fault for the request ``match`` picks."""

    def __init__(self, inner: httpx.BaseTransport, adapter: Any) -> None:
        self.inner = inner
        self.adapter = adapter
        self.match: Match | None = None
        self.mode = ""
        self.hit = 0
        #: after the fault fired, every later request fails too (the re-read cannot help)
        self.then_down = False
        self.down = False

    def arm(self, match: Match, mode: str, *, then_down: bool = False) -> None:
        self.match, self.mode, self.then_down, self.down = match, mode, then_down, False

    def clear(self) -> None:
        self.match, self.down = None, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("the library is gone", request=request)
        if self.match is not None and self.match(request, self.adapter):
            self.match = None
            self.hit += 1
            self.down = self.then_down
            if self.mode == "not_sent":
                raise httpx.ReadTimeout("no answer (never reached the library)", request=request)
            response = self.inner.handle_request(request)  # the library acts ...
            response.read()
            response.close()
            if self.mode == "reset":
                raise httpx.RemoteProtocolError("connection reset after the request", request=request)
            if self.mode == "error_page":  # e.g. a proxy's 502, or the portal crashing after it acted
                return httpx.Response(502, headers={"Content-Type": "text/html"},
                                      content=b"<html><body>502 Bad Gateway</body></html>", request=request)
            raise httpx.ReadTimeout("the answer was lost", request=request)  # ... the answer is lost
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@dataclass
class World:
    row: Row
    app: Any
    sim: RunningServer
    sim_app: Any
    faults: Faults

    @property
    def base(self) -> str:
        return f"/v1/libraries/{self.row.library}"

    def login(self, who: tuple[str, str]) -> dict[str, str]:
        r = self.app.test_client().post("/v1/sessions", json={"library": self.row.library, "card_number": who[0],
                                                              "password": who[1]})
        assert r.status_code == 201, r.get_json()
        return {"Authorization": f"Bearer {r.get_json()['token']}"}


SANDBOX = sandbox_config()
SIMS = simulators()


@pytest.fixture(params=ROWS, ids=[r.library for r in ROWS])
def world(request: Any, tmp_path: Any, monkeypatch: Any) -> Iterator[World]:
    row: Row = request.param
    monkeypatch.setenv("OPACGW_SIM_NO_MAINTENANCE", "1")
    sim_app = SIMS[row.library](row.library)
    server = serve_app(sim_app, name=row.library)
    lib = _rewired(SANDBOX.libraries[row.library], server.port)
    settings = SANDBOX.gateway.model_copy(update={"database": str(tmp_path / "gw.sqlite3"), "read_cache_seconds": 0})
    cfg = GatewayConfig(gateway=settings, libraries={row.library: lib})
    from gateway.app import create_app

    app = create_app(cfg, secret_key=Fernet.generate_key().decode())
    adapter = app.extensions["opacgw"].adapter(row.library)
    faults = Faults(adapter._transport, adapter)
    adapter._transport = faults
    yield World(row, app, server, sim_app, faults)
    app.extensions["opacgw"].close()
    server.stop()


def _loans(w: World, h: dict[str, str]) -> dict[str, dict[str, Any]]:
    r = w.app.test_client().get(f"{w.base}/loans", headers=h)
    assert r.status_code == 200, r.get_json()
    return {x["id"]: x for x in r.get_json()["loans"]}


def _renewable(w: World, h: dict[str, str]) -> dict[str, Any]:
    loans = [x for x in _loans(w, h).values() if x["renewable"]]
    assert loans, f"{w.row.library}: the renewer should have a renewable loan"
    return loans[0]


def _holdable(w: World, h: dict[str, str], n: int = 0) -> str:
    c = w.app.test_client()
    held = {x["record_id"] for x in c.get(f"{w.base}/holds", headers=h).get_json()["holds"]}
    loaned = {x["record_id"] for x in _loans(w, h).values()}
    ids = [i for i in dict.fromkeys(w.row.records(w)) if i not in held and i not in loaned]
    assert len(ids) > n, f"{w.row.library}: not enough holdable records"
    return ids[n]


def _holds_on(w: World, h: dict[str, str], record_id: str) -> list[dict[str, Any]]:
    holds = w.app.test_client().get(f"{w.base}/holds", headers=h).get_json()["holds"]
    return [x for x in holds if x["record_id"] == record_id and x["status"] not in ("cancelled", "expired")]


# ---------------------------------------------------------------- renewals
def test_renew_ok_and_refused_with_every_reason(world: World) -> None:
    w, c = world, world.app.test_client()
    h = w.login(w.row.renewer)
    before = _loans(w, h)
    r = c.post(f"{w.base}/renewals", json={"all": True}, headers=h)
    assert r.status_code == 200, r.get_json()
    results = r.get_json()["results"]
    assert {x["loan_id"] for x in results} == set(before)
    reasons = set()
    for x in results:
        if x["ok"]:
            assert x["error"] is None and x["loan"]["id"] == x["loan_id"]
            assert x["loan"]["due_on"] > before[x["loan_id"]]["due_on"] or \
                (x["loan"]["times_renewed"] or 0) > (before[x["loan_id"]]["times_renewed"] or 0)
        else:
            # one shape at every family: the problem, and no loan
            assert x.get("loan") is None, x
            assert x["error"]["code"] == "not_renewable" and x["error"]["status"] == 422, x
            reasons.add(x["error"]["reason"])
    assert any(x["ok"] for x in results), results
    assert reasons == set(w.row.reasons)
    refused = next((x["loan_id"] for x in results if not x["ok"]), None)
    if refused is not None:
        one = c.post(f"{w.base}/loans/{refused}/renewal", headers=h)
        assert one.status_code == 422 and one.get_json()["code"] == "not_renewable", one.get_json()


@pytest.mark.parametrize("mode", ["timeout", "reset", "error_page"])
def test_renewal_whose_answer_is_lost_is_learned_by_re_reading(world: World, mode: str) -> None:
    w, c = world, world.app.test_client()
    h = w.login(w.row.renewer)
    loan = _renewable(w, h)
    w.faults.arm(w.row.renew_step, mode)
    r = c.post(f"{w.base}/loans/{loan['id']}/renewal", headers=h)
    assert w.faults.hit == 1
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["loan"]["due_on"] > loan["due_on"]


@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "same-key"])
def test_retry_after_an_unknown_renewal_outcome_is_told_it_renewed(world: World, keyed: bool) -> None:
    w, c = world, world.app.test_client()
    h = w.login(w.row.renewer)
    loan = _renewable(w, h)
    if keyed:
        h = {**h, "Idempotency-Key": "renew-1"}
    w.faults.arm(w.row.renew_step, "reset", then_down=True)
    first = c.post(f"{w.base}/loans/{loan['id']}/renewal", headers=h)
    assert w.faults.hit == 1
    assert first.status_code in (503, 504), first.get_json()
    w.faults.clear()
    again = c.post(f"{w.base}/loans/{loan['id']}/renewal", headers=h)
    assert again.status_code == 200, again.get_json()  # not 422 already_renewed
    assert again.get_json()["loan"]["due_on"] > loan["due_on"]
    assert w.faults.hit == 1  # the retry did not send the renewal again
    now = _loans(w, h)[loan["id"]]
    assert now["due_on"] == again.get_json()["loan"]["due_on"]


def test_renewal_never_sent_is_reported_and_can_be_retried(world: World) -> None:
    w, c = world, world.app.test_client()
    h = w.login(w.row.renewer)
    loan = _renewable(w, h)
    w.faults.arm(w.row.renew_step, "not_sent")
    r = c.post(f"{w.base}/loans/{loan['id']}/renewal", headers=h)
    assert r.status_code == 504 and r.get_json()["code"] == "upstream_timeout", r.get_json()
    assert _loans(w, h)[loan["id"]]["due_on"] == loan["due_on"]
    again = c.post(f"{w.base}/loans/{loan['id']}/renewal", headers=h)
    assert again.status_code == 200 and again.get_json()["loan"]["due_on"] > loan["due_on"], again.get_json()


# ---------------------------------------------------------------- holds
def test_hold_ok_duplicate_and_blocked(world: World) -> None:
    w, c = world, world.app.test_client()
    h = w.login(w.row.holder)
    rid = _holdable(w, h)
    r = c.post(f"{w.base}/holds", json={"record_ids": [rid]}, headers=h)
    assert r.status_code == 201, r.get_json()
    [ok] = r.get_json()["results"]
    assert ok["ok"] and ok["error"] is None and ok["hold"]["record_id"] == rid, ok
    dup = c.post(f"{w.base}/holds", json={"record_ids": [rid]}, headers=h)
    assert dup.status_code == 201, dup.get_json()
    [refused] = dup.get_json()["results"]
    assert not refused["ok"] and refused.get("hold") is None and refused["error"]["code"] == "conflict", refused
    assert len(_holds_on(w, h, rid)) == 1
    if w.row.blocked is not None:
        hb = w.login(w.row.blocked)
        blocked = c.post(f"{w.base}/holds", json={"record_ids": [_holdable(w, hb, 1)]}, headers=hb)
        assert blocked.status_code == 403 and blocked.get_json()["code"] == "account_blocked", blocked.get_json()


@pytest.mark.parametrize("mode", ["timeout", "reset", "error_page"])
def test_hold_whose_answer_is_lost_is_learned_by_re_reading(world: World, mode: str) -> None:
    w, c = world, world.app.test_client()
    h = w.login(w.row.holder)
    rid = _holdable(w, h)
    w.faults.arm(w.row.hold_step, mode)
    r = c.post(f"{w.base}/holds", json={"record_ids": [rid]}, headers=h)
    assert w.faults.hit == 1
    assert r.status_code == 201, r.get_json()
    [res] = r.get_json()["results"]
    assert res["ok"] and res["hold"]["record_id"] == rid, res
    assert len(_holds_on(w, h, rid)) == 1


@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "same-key"])
def test_retry_after_an_unknown_hold_outcome_gets_its_own_hold(world: World, keyed: bool) -> None:
    w, c = world, world.app.test_client()
    h = w.login(w.row.holder)
    rid = _holdable(w, h)
    hk = {**h, "Idempotency-Key": "hold-1"} if keyed else h
    w.faults.arm(w.row.hold_step, "reset", then_down=True)
    first = c.post(f"{w.base}/holds", json={"record_ids": [rid]}, headers=hk)
    assert w.faults.hit == 1
    if first.status_code == 201:  # a batch answer: that item's outcome is unknown (a 5xx problem)
        [res] = first.get_json()["results"]
        assert not res["ok"] and res["error"]["status"] >= 500, res
    else:
        assert first.status_code in (503, 504), first.get_json()
    w.faults.clear()
    again = c.post(f"{w.base}/holds", json={"record_ids": [rid]}, headers=hk)
    assert again.status_code == 201, again.get_json()
    [res] = again.get_json()["results"]
    assert res["ok"] and res["hold"]["record_id"] == rid, res  # not 409 "already reserved"
    assert w.faults.hit == 1
    assert len(_holds_on(w, h, rid)) == 1  # placed once


def test_hold_never_sent_is_reported_and_can_be_retried(world: World) -> None:
    w, c = world, world.app.test_client()
    h = w.login(w.row.holder)
    rid = _holdable(w, h)
    w.faults.arm(w.row.hold_step, "not_sent")
    r = c.post(f"{w.base}/holds", json={"record_ids": [rid]}, headers=h)
    assert r.status_code == 201, r.get_json()
    [res] = r.get_json()["results"]
    assert not res["ok"] and res["error"]["code"] == "upstream_timeout", res
    assert _holds_on(w, h, rid) == []
    again = c.post(f"{w.base}/holds", json={"record_ids": [rid]}, headers=h)
    [res] = again.get_json()["results"]
    assert res["ok"] and res["hold"]["record_id"] == rid, res


# ---------------------------------------------------------------- a process dies mid-confirm
class Hang(httpx.BaseTransport):
    """Forwards the matched request (the library acts), then never answers until released:
    from the other processes' side, the process running the request died mid-confirm."""

    def __init__(self, inner: httpx.BaseTransport, adapter: Any, match: Match) -> None:
        self.inner, self.adapter, self.match = inner, adapter, match
        self.reached = threading.Event()
        self.release = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.match is not None and self.match(request, self.adapter):
            self.match = None  # type: ignore[assignment]
            self.inner.handle_request(request).read()
            self.reached.set()
            self.release.wait(30)
            raise httpx.ReadTimeout("the process died", request=request)
        return self.inner.handle_request(request)


@pytest.mark.parametrize("op", ["hold", "renewal"])
def test_a_key_whose_process_died_mid_confirm_answers_what_happened(world: World, op: str, tmp_path: Any) -> None:
    """Two gateway processes over one database: the first dies (hangs) right after the
    library acted; after the key's lease, the second answers the same keyed POST from a
    re-read — the hold placed / the loan renewed — not 409 "in progress" (#16.7).
    (winj's per-card write lock is per process, so two apps in one test process would
    queue behind it: the other families stand for the rule here; the rule is the same.)"""
    w = world
    if w.row.family == "winj":
        pytest.skip("winj serialises a card's writes with an in-process lock")
    from gateway.app import create_app

    gw_a = w.app.extensions["opacgw"]
    settings = gw_a.settings.model_copy(update={"idempotency_lease_seconds": 0.5})
    cfg = GatewayConfig(gateway=settings, libraries=gw_a.config.libraries)
    key = Fernet.generate_key().decode()
    proc_a, proc_b = create_app(cfg, secret_key=key), create_app(cfg, secret_key=key)
    try:
        adapter = proc_a.extensions["opacgw"].adapter(w.row.library)
        hang = Hang(adapter._transport, adapter, w.row.hold_step if op == "hold" else w.row.renew_step)
        adapter._transport = hang
        a, b = proc_a.test_client(), proc_b.test_client()
        who = w.row.holder if op == "hold" else w.row.renewer
        r = a.post("/v1/sessions", json={"library": w.row.library, "card_number": who[0], "password": who[1]})
        h = {"Authorization": f"Bearer {r.get_json()['token']}", "Idempotency-Key": f"{op}-died"}
        if op == "hold":
            held = {x["record_id"] for x in b.get(f"{w.base}/holds", headers=h).get_json()["holds"]}
            loaned = {x["record_id"] for x in b.get(f"{w.base}/loans", headers=h).get_json()["loans"]}
            target = next(i for i in w.row.records(w) if i not in held and i not in loaned)
            path, body = f"{w.base}/holds", {"record_ids": [target]}
        else:
            loans = b.get(f"{w.base}/loans", headers=h).get_json()["loans"]
            loan = next(x for x in loans if x["renewable"])
            path, body = f"{w.base}/loans/{loan['id']}/renewal", None
        first: dict[str, Any] = {}
        t = threading.Thread(target=lambda: first.setdefault("r", a.post(path, json=body, headers=h)))
        t.start()
        assert hang.reached.wait(30), "the write's last step was never sent"
        busy = b.post(path, json=body, headers=h)
        assert busy.status_code == 409 and busy.get_json()["code"] == "conflict", busy.get_json()
        time.sleep(0.6)  # the lease is over; the first process never answers
        answer = b.post(path, json=body, headers=h)
        if op == "hold":
            assert answer.status_code == 201, answer.get_json()
            [res] = answer.get_json()["results"]
            assert res["ok"] and res["hold"]["record_id"] == target, res
            holds = b.get(f"{w.base}/holds", headers=h).get_json()["holds"]
            assert [x["record_id"] for x in holds].count(target) == 1
        else:
            assert answer.status_code == 200, answer.get_json()
            assert answer.get_json()["loan"]["due_on"] > loan["due_on"]
        hang.release.set()
        t.join(30)
        replay = b.post(path, json=body, headers=h)
        assert replay.headers.get("Idempotent-Replayed") == "true"
        assert replay.get_json() == answer.get_json()
    finally:
        hang_release = locals().get("hang")
        if hang_release is not None:
            hang_release.release.set()
        proc_a.extensions["opacgw"].close()
        proc_b.extensions["opacgw"].close()
