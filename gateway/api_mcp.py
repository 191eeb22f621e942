"""POST /mcp: the gateway's tools for hosted assistants, over MCP streamable HTTP.

The MCP SDK's streamable HTTP app (stateless, JSON answers) runs on its own asyncio loop
(gateway.mcp_tools.HttpEndpoint); this view hands it the request, so the gateway's own
request hooks (client key, rate limit, request id, log line) apply to /mcp as to any
path.  The tools call the API in process with the caller's own Authorization header.
"""

from __future__ import annotations

import io
import json
import threading
from typing import Any

from flask import Blueprint, Response, current_app, request

from core.errors import InvalidRequest
from gateway.http import body, spec
from gateway.models import JsonRpcRequest

bp = Blueprint("mcp", __name__)
_lock = threading.Lock()


def endpoint() -> object:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _lock:
        found = app.extensions.get("opacgw_mcp")
        if found is None:
            from gateway.mcp_tools import HttpEndpoint, build_server, in_process_client_factory

            found = HttpEndpoint(build_server(in_process_client_factory(app)))
            app.extensions["opacgw_mcp"] = found
    return found


@bp.route("/mcp", methods=["POST"])
@spec(auth="patron-or-client", body=JsonRpcRequest, summary="Model Context Protocol (streamable HTTP, JSON-RPC): the gateway's tools "
      "for assistants; send the session token as Authorization: Bearer", content_type="application/json")
def mcp() -> Response:
    body(JsonRpcRequest)  # a bad body is a 400 problem here, before the SDK sees it
    raw = request.get_data(cache=True)  # the body may have been read already (Idempotency-Key)
    answer = Response.from_app(endpoint().wsgi, _transport_environ(raw), buffered=True)  # type: ignore[attr-defined]
    if answer.status_code >= 400:  # the transport's own refusals (Accept, protocol version) as problems
        raise InvalidRequest(f"MCP: {_transport_message(answer) or answer.status}")
    return answer


def _transport_environ(raw: bytes) -> dict[str, Any]:
    """The request as the MCP transport reads it: only the forwarded headers, in a form any
    ASGI bridge can encode, the body replayed."""
    environ = {key: value for key, value in request.environ.items()
               if not key.startswith("HTTP_") or key in _FORWARDED}
    for key in _FORWARDED:
        value = environ.get(key)
        if isinstance(value, str) and not value.isascii():
            del environ[key]
    environ.update({"wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw)), "QUERY_STRING": "",
                    "CONTENT_TYPE": "application/json", "PATH_INFO": "/mcp", "SCRIPT_NAME": ""})
    return environ


def _transport_message(answer: Response) -> str | None:
    try:
        message = json.loads(answer.get_data()).get("error", {}).get("message")
    except (ValueError, AttributeError):
        return None
    return message if isinstance(message, str) else None


_FORWARDED = frozenset({"HTTP_AUTHORIZATION", "HTTP_ACCEPT", "HTTP_MCP_PROTOCOL_VERSION", "HTTP_MCP_SESSION_ID",
                        "HTTP_X_API_KEY", "HTTP_X_REQUEST_ID", "HTTP_HOST", "HTTP_ORIGIN", "HTTP_ACCEPT_LANGUAGE"})
