"""Connection limits at the HTTP edge (docs/api-notes.md "HTTP connections"): what hypercorn 0.18 does not bound.

hypercorn's `read_timeout` is per `recv` (a client sending one byte a second never trips it), and its keep-alive
timer is the only bound on a request head. `GuardedTCPServer` (installed in place of hypercorn's trio
`TCPServer`, reading its limits from the `GuardedConfig` of the server it serves) adds, per connection:

- a **head timeout**: the request line and headers must arrive within `header_timeout_secs` of the connection
  opening, or of the first byte of a later request on a keep-alive connection; else a JSON 408 and a close;
- a **send stall bound**: a response (or stream) the client does not read for `body_timeout_secs` closes the
  connection (hypercorn's sends are shielded and unbounded: a client that never reads held its task forever);
- a **count**: beyond `max_connections` open connections a connection is *overflow*: `EdgeApp` answers its one
  request — health probes (`/health…`) normally, anything else 503 with `Retry-After` — and closes it. Past
  `max_connections + OVERFLOW` a new connection is closed at once, unread.

The body timeout is the app's (quart's `BODY_TIMEOUT`, a 408) and the edge's (an early answer waits at most that
long for the body, edge.py); the idle keep-alive timeout is hypercorn's own `keep_alive_timeout`.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

import attrs
import hypercorn.trio.run
import orjson
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, RawData, Updated
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.utils import parse_socket_addr

from spooled.transports.http.errors import error_body

log = logging.getLogger(__name__)

OVERFLOW = 64              # connections past the limit that still get an answer (a 503, or a health probe's)
SEND_CHUNK = 64 * 1024     # the stall bound applies per chunk: progress, not total time


@attrs.frozen
class ConnectionLimits:
    max_connections: int = 10_000
    header_timeout_secs: float = 10.0
    body_timeout_secs: float = 60.0


class Connections:
    """The open connections of one HTTP server, and which of them are over the limit (by client address)."""

    def __init__(self, limits: ConnectionLimits):
        self.limits = limits
        self.open = 0
        self.overflow: set[tuple] = set()
        self.stopping = False
        self.waiting: set[trio.CancelScope] = set()    # fast-path connections waiting for a request head
        self.fast_requests = 0                          # requests the fast path answered (fastpath.py)

    def is_overflow(self, client) -> bool:
        return client is not None and tuple(client) in self.overflow

    def stop(self) -> None:
        """Shutting down: fast-path connections waiting for a request close now; one answering closes after its
        answer (hypercorn closes its own idle connections on its `terminated` event)."""
        self.stopping = True
        for scope in list(self.waiting):
            scope.cancel()


class GuardedConfig(HypercornConfig):
    connections: Connections | None = None
    fast_path: Any = None       # a fastpath.FastPath: serves the hot routes of a connection until it hands over


def _timeout_response() -> bytes:
    body = orjson.dumps(error_body(408, "The request was not received in time"))
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)


TIMEOUT_RESPONSE = _timeout_response()


class GuardedTCPServer(TCPServer):
    def __init__(self, app, config, context, state, stream) -> None:
        super().__init__(app, config, context, state, stream)
        self.guard: Connections | None = getattr(config, "connections", None)
        self._awaiting_head = True
        self._head_deadline = math.inf

    async def run(self) -> None:
        guard = self.guard
        if guard is None:
            await super().run()
            return
        guard.open += 1
        client = None
        try:
            if guard.open > guard.limits.max_connections + OVERFLOW:
                return      # closed unread (finally): past the overflow allowance
            if guard.open > guard.limits.max_connections:
                try:
                    sock = self.stream.socket
                    client = parse_socket_addr(sock.family, sock.getpeername())
                except OSError:
                    return
                guard.overflow.add(client)
            self._head_deadline = trio.current_time() + guard.limits.header_timeout_secs
            fast = getattr(self.config, "fast_path", None)
            # an overflow connection is EdgeApp's to answer; TLS is hypercorn's
            if fast is not None and client is None and isinstance(self.stream, trio.SocketStream):
                try:
                    handed = await fast.run(self.stream, guard, self._head_deadline)
                except OSError:
                    return
                except Exception:      # a bug must cost one connection, not the server (serve_listeners' nursery)
                    log.exception("the HTTP fast path failed on a connection")
                    return
                if handed is None:
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError,
                                             trio.BusyResourceError):
                        await self.stream.send_eof()
                    return
                self.stream, self._head_deadline = handed
            await super().run()
        finally:
            guard.open -= 1
            if client is not None:
                guard.overflow.discard(client)
            with trio.CancelScope(shield=True):
                await self.stream.aclose()

    def _timing_head(self) -> bool:
        """An HTTP/1.1 connection waiting for a request head (HTTP/2 multiplexes: its streams are not timed)."""
        return self._awaiting_head and isinstance(getattr(self.protocol, "protocol", None), H11Protocol)

    async def _read_data(self) -> None:
        if self.guard is None:
            await super()._read_data()
            return
        while True:
            deadline = self._head_deadline if self._timing_head() else math.inf
            try:
                with trio.fail_at(deadline):
                    data = await self.stream.receive_some(MAX_RECV)
            except trio.TooSlowError:
                async with self.send_lock:
                    await self._send_raw(TIMEOUT_RESPONSE)
                break
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            if data and self._awaiting_head and self._head_deadline == math.inf:
                # the first byte of a request on a keep-alive connection: its head has this long to arrive
                self._head_deadline = trio.current_time() + self.guard.limits.header_timeout_secs
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
        await self.protocol.handle(Closed())

    async def protocol_send(self, event) -> None:
        if self.guard is None:
            await super().protocol_send(event)
            return
        if isinstance(event, Updated):
            # idle: the connection waits for the next request (hypercorn's keep-alive timer runs); not idle: a
            # request head was read
            self._awaiting_head = event.idle
            self._head_deadline = math.inf
        if isinstance(event, RawData):
            async with self.send_lock:
                if not await self._send_raw(event.data):
                    await self.protocol.handle(Closed())
                    with trio.CancelScope(shield=True):
                        await self.stream.aclose()   # ends the reader too
            return
        await super().protocol_send(event)

    async def _send_raw(self, data: bytes) -> bool:
        """Send `data`, shielded (as hypercorn does) but giving up when a chunk makes no progress for the body
        timeout; whether it was all sent."""
        return await send_bounded(self.stream, data,
                                  self.guard.limits.body_timeout_secs if self.guard is not None else math.inf)


async def send_bounded(stream, data: bytes, stall: float, *, shield: bool = True) -> bool:
    """Send `data`, giving up when a chunk makes no progress for `stall` seconds; whether it was all sent.
    Shielded from cancellation, as hypercorn's sends are, unless `shield` is False (the fast path closes a
    connection whose send was cut short)."""
    try:
        if len(data) <= SEND_CHUNK:
            with trio.CancelScope(shield=shield, deadline=trio.current_time() + stall) as chunk:
                await stream.send_all(data)
            return not chunk.cancelled_caught
        view = memoryview(data)
        with trio.CancelScope(shield=shield):
            for start in range(0, len(view), SEND_CHUNK):
                with trio.CancelScope(deadline=trio.current_time() + stall) as chunk:
                    await stream.send_all(view[start:start + SEND_CHUNK])
                if chunk.cancelled_caught:
                    return False
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
        return False
    return True


def install() -> None:
    """Serve hypercorn's trio connections with `GuardedTCPServer` (idempotent; a server whose config is not a
    `GuardedConfig` with `connections` set behaves as before)."""
    hypercorn.trio.run.TCPServer = GuardedTCPServer
