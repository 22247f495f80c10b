"""The edge between hypercorn and the quart app: every HTTP/1.1 connection ends in a known state.

hypercorn 0.18 (h11) recycles a keep-alive connection only once both sides have finished their message. When the
app answers before the request body has arrived (401, 404, 405, 413, an outage's 503), hypercorn closes the
connection from inside the app's final `send`, and quart-trio cancels that task as soon as hypercorn reports the
disconnect: the close is cut short at its first checkpoint. The socket is then never closed, the next request on
it is never read (h11 stays paused), and once the client leaves it sits in CLOSE-WAIT holding a descriptor.

`EdgeApp` wraps the ASGI app so that the final `send` of every response
- first waits, at most `DRAIN_SECS` and `drain_bytes`, for the rest of the request body, so the connection is
  recycled and keeps serving; a body that does not finish in time gets the connection closed instead;
- then runs shielded from cancellation (with its own bound), so the recycle or the close always completes.

`json_protocol_errors()` makes the answers hypercorn itself sends (h11 protocol errors: malformed requests,
oversized headers) carry the API's JSON error body instead of an empty one.
"""

from __future__ import annotations

from typing import Any

import h11
import orjson
import trio
from hypercorn.protocol.h11 import H11Protocol

from spooled.transports.http.errors import error_body

DRAIN_SECS = 30.0       # how long an early answer waits for the rest of the request body
SEND_BOUND_SECS = 10.0  # how long the shielded final send may take (the client is not reading)


class EdgeApp:
    def __init__(self, app: Any, drain_bytes: int):
        self.app = app
        self.drain_bytes = drain_bytes

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # settled: the body has ended, the client left, or more arrived than is worth draining
        settled = trio.Event()
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

        async def guarded_send(message: dict) -> None:
            if message["type"] != "http.response.body" or message.get("more_body", False):
                await send(message)
                return
            with trio.move_on_after(DRAIN_SECS):
                await settled.wait()
            with trio.CancelScope(shield=True, deadline=trio.current_time() + SEND_BOUND_SECS):
                await send(message)

        await self.app(scope, tracked_receive, guarded_send)


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
