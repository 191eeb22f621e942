"""Fan-out, summary, calendar and availability across libraries."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta

from icalendar import Calendar

from gateway.api_across import summary_text
from gateway.models import Hold, Loan
from tests import fakes
from tests.conftest import bearer, login
from tests.gateway.test_errors import assert_problem


def two(client) -> str:
    return login(client, ("alpha", "12345", fakes.PASSWORD), ("beta", "12345678", fakes.PASSWORD))


def test_merged_loans_with_sources(client) -> None:
    token = two(client)
    body = client.get("/v1/loans", headers=bearer(token)).get_json()
    assert {l["library"] for l in body["loans"]} == {"alpha", "beta"}
    assert len(body["loans"]) == 4
    assert [s["ok"] for s in body["sources"]] == [True, True]
    dues = [l["due_on"] for l in body["loans"]]
    assert dues == sorted(dues)


def test_one_broken_library_never_hides_the_others(client) -> None:
    token = two(client)
    fakes.upstream("beta").down = True
    body = client.get("/v1/loans", headers=bearer(token)).get_json()
    assert {l["library"] for l in body["loans"]} == {"alpha"}
    beta = next(s for s in body["sources"] if s["library"] == "beta")
    assert beta["ok"] is False and beta["error"]["code"] == "upstream_unavailable"


def test_one_slow_library_is_cut_at_its_deadline(client) -> None:
    token = two(client)
    fakes.upstream("beta").delay = 3.0  # fan-out deadline is 1 s in the test config
    t0 = time.perf_counter()
    body = client.get("/v1/loans", headers=bearer(token)).get_json()
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.8
    beta = next(s for s in body["sources"] if s["library"] == "beta")
    assert beta["error"]["code"] == "upstream_timeout"
    assert len(body["loans"]) == 2


def test_fanout_is_concurrent(client) -> None:
    token = two(client)
    fakes.upstream("alpha").delay = 0.3
    fakes.upstream("beta").delay = 0.3
    t0 = time.perf_counter()
    client.get("/v1/loans", headers=bearer(token))
    assert time.perf_counter() - t0 < 0.55


def test_summary_en_and_ja(client) -> None:
    token = two(client)
    en = client.get("/v1/summary?lang=en", headers=bearer(token)).get_json()
    assert en["text"].startswith("You have four loans at two libraries.")
    assert "overdue" in en["text"] and "悪意" in en["text"]
    assert len(en["overdue"]) == 2 and len(en["due_soon"]) == 2
    ja = client.get("/v1/summary?lang=ja", headers=bearer(token)).get_json()
    assert ja["text"].startswith("いま2館で合わせて4冊借りています。")
    assert "返却期限を過ぎています" in ja["text"]
    assert_problem(client.get("/v1/summary?lang=fr", headers=bearer(token)), 400, "invalid_request")


def test_summary_text_reads_naturally() -> None:
    today = date(2026, 11, 23)
    loan = Loan(id="1", library="kumamoto-city", record_id="r", title="悪意", due_on=today + timedelta(days=1),
                overdue=False, renewable=True)
    hold = Hold(id="h", library="kumamoto-city", record_id="r2", title="赤い蝋燭と人魚", status="ready",
                pickup_branch="龍田")
    names = {"kumamoto-city": "熊本市立図書館", "niigata-city": "新潟市立図書館"}
    en = summary_text("en", today, [loan], [loan], [], [hold], ["niigata-city"], names, names)
    assert en == ("You have one loan at 熊本市立図書館. “悪意” is due tomorrow. "
                  "Ready to collect: “赤い蝋燭と人魚” at 龍田. "
                  "I couldn't reach 新潟市立図書館 just now.")
    ja = summary_text("ja", today, [loan], [loan], [], [hold], [], names, names)
    assert ja == ("いま熊本市立図書館で1冊借りています。3日以内に返却期限が来るのは「悪意」（明日まで）です。"
                  "予約の「赤い蝋燭と人魚」（龍田）が受け取れます。")
    assert summary_text("en", today, [], [], [], [], [], names, names) == "You have no loans right now."
    many = [loan.model_copy(update={"id": str(i), "title": t, "due_on": today - timedelta(days=2), "overdue": True})
            for i, t in enumerate(["a", "b", "c", "d", "e"])]
    en = summary_text("en", today, many, [], many, [], [], names, names)
    assert en == ("You have five loans at 熊本市立図書館. “a”, “b”, “c” and two more are overdue; "
                  "please return them soon.")


def test_calendar_is_valid_icalendar(client) -> None:
    token = two(client)
    r = client.get("/v1/calendar.ics", headers=bearer(token))
    assert r.mimetype == "text/calendar"
    cal = Calendar.from_ical(r.data)
    events = [c for c in cal.walk("VEVENT")]
    assert len(events) == 4
    assert all(str(e["SUMMARY"]).startswith("返却期限: ") for e in events)
    assert len({str(e["UID"]) for e in events}) == 4


def test_availability_json(client) -> None:
    r = client.get("/v1/availability?isbn=978-4-10-101001-4&libraries=alpha,beta")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["isbn"] == "9784101010014"
    assert [l["state"] for l in body["libraries"]] == ["ok", "ok"]
    assert_problem(client.get("/v1/availability?isbn=12345"), 400, "invalid_request")
    assert_problem(client.get("/v1/availability?isbn=9784101010014&libraries=nowhere"), 400, "invalid_request")


def test_availability_timeout_and_stream(client) -> None:
    fakes.upstream("beta").delay = 1.5
    t0 = time.perf_counter()
    body = client.get("/v1/availability?isbn=9784101010014&libraries=alpha,beta&timeout=0.5").get_json()
    assert time.perf_counter() - t0 < 1.2
    assert [l["state"] for l in body["libraries"]] == ["ok", "timeout"]
    fakes.upstream("beta").delay = 0.2
    r = client.get("/v1/availability?isbn=9784101010014&libraries=beta,alpha&timeout=3",
                   headers={"Accept": "text/event-stream"})
    assert r.mimetype == "text/event-stream"
    events = [blk for blk in r.get_data(as_text=True).split("\n\n") if blk.startswith("event:")]
    kinds = [e.split("\n")[0] for e in events]
    assert kinds == ["event: library", "event: library", "event: done"]
    first = json.loads(events[0].split("data: ", 1)[1])
    assert first["library"] == "alpha"  # the fast one arrives first
    final = json.loads(events[-1].split("data: ", 1)[1])
    assert [l["library"] for l in final["libraries"]] == ["beta", "alpha"]


def test_openapi_covers_the_contract(client) -> None:
    doc = client.get("/openapi.json").get_json()
    paths = doc["paths"]
    for p in ["/v1/libraries", "/v1/libraries/{library}", "/v1/sessions", "/v1/sessions/current",
              "/v1/libraries/{library}/password", "/v1/libraries/{library}/patron",
              "/v1/libraries/{library}/loans", "/v1/libraries/{library}/loans/{loan_id}/renewal",
              "/v1/libraries/{library}/renewals", "/v1/libraries/{library}/holds",
              "/v1/libraries/{library}/holds/{hold_id}", "/v1/libraries/{library}/cart",
              "/v1/libraries/{library}/cart/{record_id}", "/v1/libraries/{library}/history",
              "/v1/libraries/{library}/messages", "/v1/libraries/{library}/shelves",
              "/v1/libraries/{library}/shelves/{shelf_id}/items/{record_id}/move",
              "/v1/libraries/{library}/shelves/{shelf_id}/export", "/v1/libraries/{library}/records",
              "/v1/libraries/{library}/records/{record_id}", "/v1/availability", "/v1/loans", "/v1/holds",
              "/v1/summary", "/v1/calendar.ics", "/healthz", "/readyz", "/openapi.json", "/docs"]:
        assert p in paths, p
    loan = doc["components"]["schemas"]["Loan"]
    assert {"id", "library", "record_id", "title", "due_on", "overdue", "renewable"} <= set(loan["properties"])
    assert client.get("/docs").status_code == 200
    assert client.get("/docs/static/swagger-ui-bundle.js").status_code == 200
    assert b"opacgw_requests_total" in client.get("/metrics").data


def test_metrics_show_upstream_state(client) -> None:
    token = two(client)
    client.get("/v1/loans", headers=bearer(token))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'opacgw_circuit_open{library="alpha"} 0.0' in text
    assert 'opacgw_upstream_in_flight{library="beta"} 0.0' in text
    assert 'opacgw_requests_total{method="GET",route="/v1/loans",status="200"} 1.0' in text
