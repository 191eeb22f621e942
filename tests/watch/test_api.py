"""The subscriptions API's edges: ownership, validation, the event stream, rotation."""

from __future__ import annotations

import json
from typing import Any

from tests.watch.test_scenario import _login, _tick, world  # noqa: F401  (the fixture)
from gateway.watch.worker import Watcher


def test_ownership_validation_rotation_and_stream(world: Any) -> None:  # noqa: F811
    app, sim, receiver = world
    client = app.test_client()
    h = _login(client)
    assert client.post("/v1/subscriptions", headers=h, json={"consent": True, "libraries": ["amami"]}).status_code \
        in (400, 404)
    bad = client.post("/v1/subscriptions", headers=h, json={"consent": True, "webhook_url": "ftp://x/y"})
    assert bad.status_code == 400 and bad.get_json()["errors"][0]["field"] == "webhook_url"
    assert client.post("/v1/subscriptions", headers=h, json={"consent": True, "due_soon_days": 15}).status_code == 400
    assert client.post("/v1/subscriptions", headers=h,
                       json={"consent": True, "auto_renew": {"days_before": 8}}).status_code == 400
    assert client.post("/v1/subscriptions", headers=h, json={"consent": True, "events": ["nope"]}).status_code == 400
    sub = client.post("/v1/subscriptions", headers=h, json={"consent": True}).get_json()
    assert len(sub["events"]) == 13 and sub["libraries"] == ["kagoshima-pref"]
    assert [s["id"] for s in client.get("/v1/subscriptions", headers=h).get_json()["subscriptions"]] == [sub["id"]]

    # no token: 401; a session without the account: 404
    assert client.get(f"/v1/subscriptions/{sub['id']}").status_code == 401
    other = client.post("/v1/sessions", json={"library": "kagoshima-pref", "card_number": "9999999999",
                                              "password": "20211030"})
    oh = {"Authorization": f"Bearer {other.get_json()['token']}"}
    assert client.get(f"/v1/subscriptions/{sub['id']}", headers=oh).status_code == 404
    assert client.delete(f"/v1/subscriptions/{sub['id']}", headers=oh).status_code == 404
    assert client.get("/v1/subscriptions", headers=oh).get_json()["subscriptions"] == []

    patched = client.patch(f"/v1/subscriptions/{sub['id']}", headers=h, json={"events": ["loan.due_soon"],
                                                                            "due_soon_days": 14}).get_json()
    assert patched["events"] == ["loan.due_soon"] and patched["due_soon_days"] == 14

    _tick(Watcher(app.extensions["opacgw"]), app.extensions["opacgw"].settings.database)
    page = client.get(f"/v1/subscriptions/{sub['id']}/events", headers=h).get_json()
    assert [e["type"] for e in page["events"]] == ["loan.due_soon"]
    assert client.get(f"/v1/subscriptions/{sub['id']}/events?after=x", headers=h).status_code == 400

    # the stream resumes after Last-Event-ID: from 0 it sends the event, from its id nothing
    r = client.get(f"/v1/subscriptions/{sub['id']}/events?timeout=1",
                   headers={**h, "Accept": "text/event-stream", "Last-Event-ID": "0"})
    assert r.mimetype == "text/event-stream"
    text = r.get_data(as_text=True)
    data = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert [e["id"] for e in data] == [page["events"][0]["id"]]
    r = client.get(f"/v1/subscriptions/{sub['id']}/events?timeout=1",
                   headers={**h, "Accept": "text/event-stream", "Last-Event-ID": page["next"]})
    assert "data: " not in r.get_data(as_text=True)

    old = sub["calendar_url"].split("/", 3)[3]
    assert client.get("/" + old).status_code == 200
    new = client.post(f"/v1/subscriptions/{sub['id']}/calendar-url", headers=h).get_json()["calendar_url"]
    assert client.get("/" + old).status_code == 404
    assert client.get("/" + new.split("/", 3)[3]).status_code == 200
