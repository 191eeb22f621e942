"""POST /mcp: the gateway's tools for hosted assistants, over MCP streamable HTTP.

The MCP SDK's streamable HTTP app (stateless, JSON answers) runs on its own asyncio loop
(gateway.mcp_tools.HttpEndpoint); this view hands it the request, so the gateway's own
request hooks (client key, rate limit, request id, log line) apply to /mcp as to any
path.  The tools call the API in process with the caller's own Authorization header.
"""

from __future__ import annotations

import io
import threading

from flask import Blueprint, Response, current_app, request

from gateway.http import spec
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
    wsgi = endpoint().wsgi  # type: ignore[attr-defined]
    raw = request.get_data(cache=True)  # the body may have been read already (Idempotency-Key)
    environ = {**request.environ, "wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw))}
    return Response.from_app(wsgi, environ, buffered=True)
