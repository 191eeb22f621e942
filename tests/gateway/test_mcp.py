"""The MCP server, through the official SDK's own client, against the sandbox: over stdio
(`opacgw mcp` in a subprocess, calling the gateway at OPACGW_URL with OPACGW_TOKEN) and
over streamable HTTP (POST /mcp on the gateway, with the caller's bearer token)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from fixtures.registry import serve_app
from gateway.cli import sandbox_on_free_ports

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TOOLS = {"libraries", "loans", "holds", "summary", "renew", "search_catalog", "availability", "place_hold"}
KAGOSHIMA = {"library": "kagoshima-pref", "card_number": "9999999999", "password": "20211030"}
AMAMI = {"library": "amami", "card_number": "2000654321", "password": "amami2022"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from gateway.app import create_app
    from gateway.config import sandbox_config

    cfg = sandbox_config()
    db = str(tmp_path_factory.mktemp("mcp") / "gw.sqlite3")
    cfg = cfg.model_copy(update={"gateway": cfg.gateway.model_copy(update={"database": db})})
    fleet, cfg, _ = sandbox_on_free_ports(cfg)
    app = create_app(cfg)
    server = serve_app(app, name="gateway")
    yield server.url
    server.stop()
    app.extensions["opacgw"].close()
    for sim in fleet.status():
        fleet.stop(sim["name"])


def _token(base: str, *accounts: dict[str, str]) -> str:
    r = httpx.post(base + "/v1/sessions", json={"accounts": list(accounts)}, timeout=30)
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def _data(result: Any) -> Any:
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)


async def _walk(session: Any) -> dict[str, Any]:
    """What both transports must do: list the tools, read a summary, refuse to act unconfirmed."""
    await session.initialize()
    tools = (await session.list_tools()).tools
    names = {t.name for t in tools}
    for tool in tools:  # never a card number or a password as a tool argument
        props = set(tool.input_schema.get("properties", {}))
        assert not props & {"card_number", "password", "token"}, (tool.name, props)
    summary = _data(await session.call_tool("summary", {"lang": "en"}))
    ja = _data(await session.call_tool("summary", {"lang": "ja"}))
    loans = _data(await session.call_tool("loans", {}))
    preview = _data(await session.call_tool("renew", {"library": "kagoshima-pref", "all": True}))
    bad = await session.call_tool("renew", {"library": "atlantis", "all": True})
    return {"names": names, "summary": summary, "ja": ja, "loans": loans, "preview": preview, "bad": bad}


def _check_walk(out: dict[str, Any]) -> None:
    assert out["names"] == TOOLS
    assert out["summary"]["text"].startswith("You have six loans at two libraries.")
    assert "悪意" in out["summary"]["text"]
    assert out["ja"]["text"].startswith("いま2館で合わせて6冊借りています。")
    assert {l["library"] for l in out["loans"]["loans"]} == {"kagoshima-pref", "amami"}
    preview = out["preview"]
    assert preview["confirmed"] is False and preview["would_renew"]
    assert {x["reason"] for x in preview["cannot_renew"]} >= {"overdue"}
    assert out["bad"].is_error and out["bad"].content[0].text.startswith("not_found:")
    assert out["bad"].structured_content["code"] == "not_found"


def test_stdio_server_with_the_sdk_client(gateway: str) -> None:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    token = _token(gateway, KAGOSHIMA, AMAMI)
    env = {**os.environ, "OPACGW_URL": gateway, "OPACGW_TOKEN": token, "PYTHONPATH": str(ROOT)}
    params = StdioServerParameters(command=sys.executable, args=["-m", "gateway.cli", "mcp"], env=env, cwd=ROOT)

    async def main() -> tuple[dict[str, Any], Any, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            out = await _walk(session)
            # nothing was renewed by the preview: the loans' due dates are unchanged
            again = _data(await session.call_tool("loans", {}))
            libraries = _data(await session.call_tool("libraries", {}))
            return out, again, libraries

    out, again, libraries = anyio.run(main)
    _check_walk(out)
    assert again["loans"] == out["loans"]["loans"] or [l["due_on"] for l in again["loans"]] == [
        l["due_on"] for l in out["loans"]["loans"]]
    assert "kumamoto-city" in {l["id"] for l in libraries["libraries"]}


def test_stdio_without_a_token_answers_the_problem(gateway: str) -> None:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    env = {k: v for k, v in os.environ.items() if k != "OPACGW_TOKEN"}
    env.update({"OPACGW_URL": gateway, "PYTHONPATH": str(ROOT)})
    params = StdioServerParameters(command=sys.executable, args=["-m", "gateway.cli", "mcp"], env=env, cwd=ROOT)

    async def main() -> Any:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await session.call_tool("loans", {})

    result = anyio.run(main)
    assert result.is_error
    assert result.content[0].text.startswith("unauthenticated:")
    assert result.structured_content["status"] == 401


def test_streamable_http_on_the_gateway(gateway: str) -> None:
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    token = _token(gateway, KAGOSHIMA, AMAMI)

    async def session_with(headers: dict[str, str], work: Any) -> Any:
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http, \
                streamable_http_client(gateway + "/mcp", http_client=http) as (read, write), \
                ClientSession(read, write) as session:
            return await work(session)

    async def confirmed(session: Any) -> Any:
        await session.initialize()
        loans = _data(await session.call_tool("loans", {}))
        renewable = next(l for l in loans["loans"] if l["library"] == "kagoshima-pref" and l["renewable"])
        done = _data(await session.call_tool("renew", {"library": "kagoshima-pref", "loan_id": renewable["id"],
                                                       "confirm": True}))
        found = _data(await session.call_tool("search_catalog", {"library": "kagoshima-pref", "q": "悪意"}))
        record = found["records"][0]
        hold_preview = _data(await session.call_tool("place_hold", {"library": "kagoshima-pref",
                                                                    "record_ids": [record["id"]]}))
        holds_after = _data(await session.call_tool("holds", {}))
        # this patron has an overdue loan: the library refuses holds, and the tool says so by code
        refused = await session.call_tool("place_hold", {"library": "kagoshima-pref", "record_ids": [record["id"]],
                                                         "confirm": True})
        assert refused.is_error and refused.structured_content["code"] == "account_blocked"
        assert refused.content[0].text.startswith("account_blocked:")
        return renewable, done, (record, hold_preview, holds_after)

    async def anonymous(session: Any) -> Any:
        await session.initialize()
        libs = _data(await session.call_tool("libraries", {}))
        found = _data(await session.call_tool("search_catalog", {"library": "kagoshima-pref", "q": "悪意"}))
        loans = await session.call_tool("loans", {})
        return libs, found, loans

    out = anyio.run(session_with, {"Authorization": f"Bearer {token}"}, _walk)
    _check_walk(out)
    renewable, done, hold_preview = anyio.run(session_with, {"Authorization": f"Bearer {token}"}, confirmed)
    assert done["confirmed"] is True and done["results"][0]["ok"]
    assert done["results"][0]["loan"]["due_on"] > renewable["due_on"]
    record, preview, holds_after = hold_preview
    assert preview["confirmed"] is False
    assert preview["would_hold"] == [{"record_id": record["id"], "title": record["title"]}]
    assert record["id"] not in {h["record_id"] for h in holds_after["holds"]}  # nothing placed unconfirmed

    libs, found, loans = anyio.run(session_with, {}, anonymous)
    assert {"kagoshima-pref", "amami"} <= {l["id"] for l in libs["libraries"]}
    assert found["records"]
    assert loans.is_error and loans.content[0].text.startswith("unauthenticated:")


def test_mcp_is_in_the_openapi(gateway: str) -> None:
    doc = httpx.get(gateway + "/openapi.json").json()
    op = doc["paths"]["/mcp"]["post"]
    assert op["requestBody"]["content"]["application/json"]["example"]["method"] == "tools/call"
    assert op["tags"] == ["mcp"]


def test_bad_mcp_requests_are_problems(client) -> None:
    """What the transport refuses is a problem+json like any bad input, never a 500."""
    from tests.gateway.test_errors import assert_problem

    accept = {"Accept": "application/json, text/event-stream"}
    assert_problem(client.post("/mcp", data=b"{oops", content_type="application/json"), 400, "invalid_request")
    assert_problem(client.post("/mcp", json=[{"jsonrpc": "2.0"}]), 400, "invalid_request")
    assert_problem(client.post("/mcp", json={"jsonrpc": "1.0", "method": "x"}, headers=accept), 400,
                   "invalid_request")
    body = assert_problem(client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}), 400,
                          "invalid_request")
    assert body["detail"].startswith("MCP: ")  # no Accept of both JSON and event streams
    listed = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                         headers={**accept, "Idempotency-Key": "Ā-non-latin", "MCP-Protocol-Version": "2025-06-18"})
    assert listed.status_code == 200 and {t["name"] for t in listed.get_json()["result"]["tools"]} == TOOLS
    assert_problem(client.get("/mcp"), 405, "method_not_allowed")
