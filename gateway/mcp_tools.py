"""The gateway as Model Context Protocol tools, for assistants (official `mcp` SDK).

Every tool calls the gateway's own HTTP API, so an assistant sees exactly what an app
sees (the same validation, problems, sessions and logs):

- `opacgw mcp` serves the tools over stdio for desktop assistants; it calls the gateway
  at ``OPACGW_URL`` (default ``http://127.0.0.1:8080``) with the session token of
  ``OPACGW_TOKEN``;
- ``POST /mcp`` on the gateway serves them over streamable HTTP (stateless, JSON
  answers) for hosted assistants; each call carries the caller's own
  ``Authorization: Bearer`` token, and the tools call the API in process.

No tool takes a card number or a password: the assistant works with a session token
obtained by ``POST /v1/sessions``.  Writes (``renew``, ``place_hold``) act only with
``confirm: true``; without it they answer what they would do.  A problem of the API comes
back as a tool error whose text starts with its ``code`` and whose structured content is
the problem itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent
from pydantic import Field

DEFAULT_URL = "http://127.0.0.1:8080"
_FORWARDED = ("authorization", "x-api-key", "x-request-id", "accept-language")


class ApiProblem(Exception):
    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail") or problem.get("title") or "error")
        self.problem = problem


def _problem_result(problem: dict[str, Any]) -> CallToolResult:
    code = problem.get("code", "upstream_error")
    text = f"{code}: {problem.get('detail') or problem.get('title') or ''}".strip()
    if problem.get("library"):
        text += f" (library {problem['library']})"
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=problem, is_error=True)


ClientFactory = Callable[[Context | None], httpx.Client]


def stdio_client_factory(url: str | None = None, token: str | None = None) -> ClientFactory:
    """Calls over HTTP to the gateway at `url` with the session token `token`."""
    base = (url or os.environ.get("OPACGW_URL") or DEFAULT_URL).rstrip("/")
    tok = token if token is not None else os.environ.get("OPACGW_TOKEN", "")
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    if os.environ.get("OPACGW_API_KEY"):
        headers["X-API-Key"] = os.environ["OPACGW_API_KEY"]

    def make(_ctx: Context | None) -> httpx.Client:
        return httpx.Client(base_url=base, headers=headers, timeout=60)

    return make


def in_process_client_factory(wsgi_app: Any) -> ClientFactory:
    """Calls the gateway's WSGI app in process with the MCP caller's own headers."""

    def make(ctx: Context | None) -> httpx.Client:
        incoming = (ctx.headers if ctx is not None else None) or {}
        headers = {k: v for k, v in incoming.items() if k.lower() in _FORWARDED}
        return httpx.Client(transport=httpx.WSGITransport(app=wsgi_app), base_url="http://gateway",
                            headers=headers, timeout=60)

    return make


class Api:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def call(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.client.request(method, path, **kw)
        if resp.status_code >= 400:
            try:
                problem = resp.json()
            except ValueError:
                problem = {"code": "upstream_error", "status": resp.status_code, "detail": resp.text[:200]}
            raise ApiProblem(problem)
        if resp.status_code == 204 or not resp.content:
            return None
        if resp.headers.get("content-type", "").startswith("application/json"):
            return resp.json()
        return resp.text


def _server() -> MCPServer:
    # MCPServer() calls logging.basicConfig with a rich handler; the gateway's logging
    # (JSON lines, its own handlers) must stay as configured, so the root logger is given
    # a handler for the duration, which makes basicConfig a no-op.
    root = logging.getLogger()
    guard = logging.NullHandler() if not root.handlers else None
    if guard is not None:
        root.addHandler(guard)
    try:
        return MCPServer(
            "opac-gateway", title="OPAC Gateway", version="1.0.0",
            instructions="Library loans, holds, renewals and catalogue search across the patron's libraries. "
                         "Writes (renew, place_hold) only act with confirm=true: call them first without it, "
                         "tell the patron what would happen, and confirm only when they agree.")
    finally:
        if guard is not None:
            root.removeHandler(guard)


def build_server(make_client: ClientFactory) -> MCPServer:
    server = _server()

    @contextmanager
    def api(ctx: Context | None) -> Iterator[Api]:
        with make_client(ctx) as client:
            yield Api(client)

    def tool(fn: Callable[..., Any]) -> Callable[..., Any]:
        """Register `fn`; an ApiProblem becomes a tool error carrying the problem's code."""
        import functools

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except ApiProblem as exc:
                return _problem_result(exc.problem)
            except httpx.TransportError as exc:
                return _problem_result({"code": "upstream_unavailable", "status": 503,
                                        "detail": f"the gateway cannot be reached: {type(exc).__name__}"})

        server.add_tool(wrapper, name=fn.__name__, description=(fn.__doc__ or "").strip(),
                        structured_output=False)
        return fn

    @tool
    def libraries(ctx: Context) -> dict[str, Any]:
        """The libraries this gateway serves: id, name, capabilities, branches. Needs no session."""
        with api(ctx) as a:
            return a.call("GET", "/v1/libraries")

    @tool
    def loans(ctx: Context) -> dict[str, Any]:
        """The patron's current loans at every library of the session, merged and sorted by due date;
        `sources` says which library answered."""
        with api(ctx) as a:
            return a.call("GET", "/v1/loans")

    @tool
    def holds(ctx: Context) -> dict[str, Any]:
        """The patron's holds (reservations) at every library of the session, ready ones first."""
        with api(ctx) as a:
            return a.call("GET", "/v1/holds")

    @tool
    def summary(ctx: Context, lang: Literal["ja", "en"] = "ja") -> dict[str, Any]:
        """A short paragraph to read aloud: loans, what is overdue or due soon, holds ready to collect."""
        with api(ctx) as a:
            return a.call("GET", "/v1/summary", params={"lang": lang})

    @tool
    def renew(ctx: Context, library: str,
              loan_id: Annotated[str | None, Field(description="one loan; omit with all=true")] = None,
              all: Annotated[bool, Field(description="every renewable loan at this library")] = False,
              confirm: Annotated[bool, Field(description="true to act; otherwise only say what would happen")]
              = False) -> dict[str, Any]:
        """Renew one loan, or all loans at a library. Without confirm=true nothing is renewed: the answer
        lists what would be renewed and what cannot be (with the reason)."""
        if (loan_id is None) == (not all):
            return _problem_result({"code": "invalid_request", "status": 400,
                                    "detail": "give either loan_id or all=true"})
        with api(ctx) as a:
            current = a.call("GET", f"/v1/libraries/{library}/loans")["loans"]
            chosen = current if all else [l for l in current if l["id"] == loan_id]
            if not chosen:
                raise ApiProblem({"code": "not_found", "status": 404, "library": library,
                                  "detail": f"no current loan {loan_id!r}"})
            if not confirm:
                return {"confirmed": False, "library": library,
                        "would_renew": [{"loan_id": l["id"], "title": l["title"], "due_on": l["due_on"]}
                                        for l in chosen if l.get("renewable")],
                        "cannot_renew": [{"loan_id": l["id"], "title": l["title"],
                                          "reason": l.get("not_renewable_reason")}
                                         for l in chosen if not l.get("renewable")],
                        "next": "call renew again with confirm=true to renew"}
            if all:
                done = a.call("POST", f"/v1/libraries/{library}/renewals", json={"all": True})
            else:
                done = {"results": [{"loan_id": loan_id, "ok": True, **a.call(
                    "POST", f"/v1/libraries/{library}/loans/{loan_id}/renewal")}]}
            return {"confirmed": True, "library": library, **done}

    @tool
    def search_catalog(ctx: Context, library: str, q: str | None = None, title: str | None = None,
                       author: str | None = None, isbn: str | None = None,
                       page: Annotated[int, Field(ge=1, le=1000)] = 1) -> dict[str, Any]:
        """Search one library's catalogue by keyword, title, author or ISBN (at least one)."""
        params = {k: v for k, v in {"q": q, "title": title, "author": author, "isbn": isbn}.items() if v}
        with api(ctx) as a:
            return a.call("GET", f"/v1/libraries/{library}/records", params={**params, "page": page})

    @tool
    def availability(ctx: Context, isbn: str,
                     libraries: Annotated[list[str] | None, Field(description="default: every library")] = None,
                     timeout: Annotated[float, Field(ge=0.1, le=60)] = 5.0) -> dict[str, Any]:
        """Where an ISBN is on the shelf, per library and branch. Needs no session."""
        params: dict[str, Any] = {"isbn": isbn, "timeout": timeout}
        if libraries:
            params["libraries"] = ",".join(libraries)
        with api(ctx) as a:
            return a.call("GET", "/v1/availability", params=params)

    @tool
    def place_hold(ctx: Context, library: str, record_ids: Annotated[list[str], Field(min_length=1, max_length=10)],
                   pickup_branch: str | None = None, contact_method: str | None = None,
                   confirm: Annotated[bool, Field(description="true to act; otherwise only say what would happen")]
                   = False) -> dict[str, Any]:
        """Place holds on records at a library, for pickup at a branch. Without confirm=true nothing is
        placed: the answer names the records and the pickup branch it would use."""
        with api(ctx) as a:
            if not confirm:
                a.call("GET", f"/v1/libraries/{library}")  # an unknown library is a problem here already
                would = []
                for rid in record_ids:
                    try:
                        title = a.call("GET", f"/v1/libraries/{library}/records/{rid}")["title"]
                    except ApiProblem as exc:  # a system without record lookup still takes holds
                        if exc.problem.get("code") != "not_supported":
                            raise
                        title = None
                    would.append({"record_id": rid, "title": title})
                return {"confirmed": False, "library": library, "pickup_branch": pickup_branch,
                        "would_hold": would, "next": "call place_hold again with confirm=true to place the holds"}
            body = {"record_ids": record_ids, "pickup_branch": pickup_branch, "contact_method": contact_method}
            done = a.call("POST", f"/v1/libraries/{library}/holds",
                          json={k: v for k, v in body.items() if v is not None})
            return {"confirmed": True, "library": library, **done}

    return server


class HttpEndpoint:
    """The streamable HTTP transport of `server` as a WSGI app (stateless, JSON answers),
    its asyncio loop and session manager running in a daemon thread."""

    def __init__(self, server: MCPServer) -> None:
        from a2wsgi import ASGIMiddleware
        from mcp.server.transport_security import TransportSecuritySettings

        # The gateway authenticates every call by its bearer token (and X-API-Key), and is
        # often behind a proxy: the SDK's Host/Origin allow-list for local servers is off.
        self.asgi = server.streamable_http_app(
            streamable_http_path="/mcp", stateless_http=True, json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        started = threading.Event()

        async def run() -> None:
            self._stop = asyncio.Event()
            async with server.session_manager.run():
                started.set()
                await self._stop.wait()

        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(run(),), daemon=True,
                                        name="mcp-http")
        self._thread.start()
        started.wait(10)
        self.wsgi = ASGIMiddleware(self.asgi, loop=self.loop)

    def close(self) -> None:
        if self._stop is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=5)


def run_stdio(url: str | None = None, token: str | None = None) -> None:
    build_server(stdio_client_factory(url, token)).run("stdio")
