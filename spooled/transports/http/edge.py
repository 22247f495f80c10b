"""The edge between hypercorn and the quart app: every HTTP/1.1 connection ends in a known state.

hypercorn 0.18 (h11) recycles a keep-alive connection only once both sides have finished their message. When the
app answers before the request body has arrived (401, 404, 405, 413, an outage's 503), hypercorn closes the
connection from inside the app's final `send`, and quart-trio cancels that task as soon as hypercorn reports the
disconnect: the close is cut short at its first checkpoint. The socket is then never closed, the next request on
it is never read (h11 stays paused), and once the client leaves it sits in CLOSE-WAIT holding a descriptor.

`EdgeApp` wraps the ASGI app so that the final `send` of every response
- first waits, at most `drain_secs` (the body timeout) and `drain_bytes`, for the rest of the request body, so the
  connection is recycled and keeps serving; a body that does not finish in time gets the connection closed;
- then runs shielded from cancellation (with its own bound), so the recycle or the close always completes.

It also answers the requests of connections over the server's limit (connections.py): a health probe or a
metrics scrape normally, anything else 503 with `Retry-After`; either way the connection then closes.

And it times every request and hands (scope, status, seconds, body bytes) to `observe` once the response has
gone: `http_observer` counts it in /metrics by route template and writes the access log line. The app puts the
route template, request id and organization into the scope (`app.py: _stamp`) so nothing here parses paths.

`json_protocol_errors()` makes the answers hypercorn itself sends (h11 protocol errors: malformed requests,
oversized headers) carry the API's JSON error body instead of an empty one.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import h11
import orjson
import trio
from hypercorn.protocol.h11 import H11Protocol

from spooled.services.metrics import Metrics
from spooled.transports.http.connections import Connections
from spooled.transports.http.errors import error_body

SEND_BOUND_SECS = 10.0  # how long the shielded final send may take (the client is not reading)
OVERLOADED = orjson.dumps(error_body(503, "This server has as many connections as it allows: retry shortly"))


Observer = Callable[[dict, int, float, int], None]
NO_RESPONSE = 499           # the status recorded when the client left before any response was sent
SCOPE_KEY = "spooled"       # scope[SCOPE_KEY] = (route template, request id, organization id or None)


class EdgeApp:
    def __init__(self, app: Any, drain_bytes: int, observe: Observer | None = None, drain_secs: float = 60.0,
                 connections: Connections | None = None):
        self.app = app
        self.drain_bytes = drain_bytes
        self.observe = observe
        self.drain_secs = drain_secs
        self.connections = connections

    async def __call__(self, scope: dict, receive, send) -> None:
        if self.connections is not None and self.connections.is_overflow(scope.get("client")):
            if scope["type"] == "http" and _answered_at_capacity(scope.get("path", "")):
                send = _closing(send)
            else:
                await _refuse(scope, send)
                return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status, sent, observed = NO_RESPONSE, 0, False
        # settled: the body has ended, the client left, or more arrived than is worth draining; the body has until
        # `drain_by` (the body timeout, from the start of the request) either way
        settled = trio.Event()
        drain_by = trio.current_time() + self.drain_secs
        declared = _content_length(scope)
        if declared is not None and declared > self.drain_bytes:
            settled.set()
        received = 0

        async def tracked_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if not message.get("more_body", False) or received > self.drain_bytes:
                    settled.set()
            elif message["type"] == "http.disconnect":
                settled.set()
            return message

        def done() -> None:
            nonlocal observed
            if not observed and self.observe is not None:
                observed = True
                self.observe(scope, status, time.perf_counter() - t0, sent)

        async def guarded_send(message: dict) -> None:
            nonlocal status, sent
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body":
                sent += len(message.get("body", b""))
            if kind != "http.response.body" or message.get("more_body", False):
                await send(message)
                return
            with trio.move_on_at(drain_by):
                await settled.wait()
            done()          # before the last send: the figures are in before the client has its answer
            with trio.CancelScope(shield=True, deadline=trio.current_time() + SEND_BOUND_SECS):
                await send(message)

        try:
            await self.app(scope, tracked_receive, guarded_send)
        finally:
            done()


def http_observer(metrics: Metrics, *, access_log: bool) -> Observer:
    """Count each request in /metrics by method, route template and status; with `access_log`, log one line
    (`spooled.access`, INFO) with the request id and organization. The path is logged without its query
    string (which may carry a token)."""
    access = logging.getLogger("spooled.access")

    def observe(scope: dict, status: int, secs: float, sent: int) -> None:
        route, rid, org = scope.get(SCOPE_KEY) or ("unmatched", None, None)
        method = scope["method"]
        metrics.http(method, route, status, secs)
        if access_log and access.isEnabledFor(logging.INFO):
            ms = round(secs * 1000, 2)
            access.info("%s %s %d %.2fms", method, scope["path"], status, ms,
                        extra={"request_id": rid, "org": org, "method": method, "route": route,
                               "path": scope["path"], "status": status, "duration_ms": ms, "bytes": sent,
                               "transport": "http"})
    return observe


def _answered_at_capacity(path: str) -> bool:
    """Health probes and metrics scrapes: an instance at its connection limit still reports on itself."""
    return path in ("/health", "/metrics") or path.startswith("/health/")


def _closing(send):
    """`send` with `Connection: close` on the response: an overflow connection serves one request."""
    async def closing_send(message: dict) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
        await send(message)
    return closing_send


async def _refuse(scope: dict, send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1013})     # try again later
        return
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(OVERLOADED)).encode()),
        (b"retry-after", b"1"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": OVERLOADED})


def _content_length(scope: dict) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json_error_response(self: H11Protocol, status_code: int) -> None:
    body = orjson.dumps(error_body(status_code, "The request could not be read as HTTP/1.1"))
    await self._send_h11_event(h11.Response(status_code=status_code, headers=[
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"), *self.config.response_headers("h11")]))
    await self._send_h11_event(h11.Data(data=body))
    await self._send_h11_event(h11.EndOfMessage())


def json_protocol_errors() -> None:
    """hypercorn's own HTTP/1.1 error answers get the API's JSON error body (idempotent)."""
    H11Protocol._send_error_response = _send_json_error_response
