"""A small TCP proxy for network faults between a server and PostgreSQL (loopback only).

    proxy = Proxy(target)            # target: ("127.0.0.1", port) or the path of a Unix socket
    port = await nursery.start(proxy.serve)
    proxy.stall()    # every connection (and every new one) stops forwarding bytes, but stays open
    proxy.resume()   # bytes flow again
    proxy.drop()     # every open connection is reset; with refuse=True new ones are reset at once too
    proxy.accept()   # new connections are forwarded again
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import trio


class Proxy:
    def __init__(self, target: tuple[str, int] | str | Path):
        self.target = target
        self.port = 0
        self.connections = 0          # accepted so far
        self.dropped = 0              # reset by drop() or refused
        self._flowing = trio.Event()
        self._flowing.set()
        self._refusing = False
        self._open: set[_Pair] = set()

    # -- faults --------------------------------------------------------------------------------------
    def stall(self) -> None:
        if self._flowing.is_set():
            self._flowing = trio.Event()

    def resume(self) -> None:
        self._flowing.set()

    def drop(self, *, refuse: bool = False) -> int:
        """Reset every open connection (RST, like a dead middlebox); how many."""
        self._refusing = refuse
        pairs, self._open = list(self._open), set()
        for pair in pairs:
            pair.reset()
        self.dropped += len(pairs)
        return len(pairs)

    def accept(self) -> None:
        self._refusing = False

    @property
    def open_connections(self) -> int:
        return len(self._open)

    # -- serving -------------------------------------------------------------------------------------
    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    async def _connect(self) -> trio.SocketStream:
        if isinstance(self.target, tuple):
            return await trio.open_tcp_stream(*self.target)
        return await trio.open_unix_socket(str(self.target))

    async def _handle(self, client: trio.SocketStream) -> None:
        self.connections += 1
        if self._refusing:
            _reset(client)
            self.dropped += 1
            return
        try:
            upstream = await self._connect()
        except OSError:
            _reset(client)
            return
        pair = _Pair(client, upstream)
        self._open.add(pair)
        try:
            async with trio.open_nursery() as nursery:
                pair.scope = nursery.cancel_scope
                nursery.start_soon(self._pipe, client, upstream, nursery.cancel_scope)
                nursery.start_soon(self._pipe, upstream, client, nursery.cancel_scope)
        finally:
            self._open.discard(pair)
            if not pair.was_reset:
                with trio.CancelScope(shield=True):
                    await client.aclose()
                    await upstream.aclose()

    async def _pipe(self, src: trio.SocketStream, dst: trio.SocketStream, scope: trio.CancelScope) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await src.receive_some(65536)
                if not data:
                    break
                await self._flowing.wait()        # a stall that began while we were reading holds this too
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        scope.cancel()


class _Pair:
    def __init__(self, client: trio.SocketStream, upstream: trio.SocketStream):
        self.client, self.upstream = client, upstream
        self.scope: trio.CancelScope | None = None
        self.was_reset = False

    def reset(self) -> None:
        self.was_reset = True
        _reset(self.client)
        _reset(self.upstream)
        if self.scope is not None:
            self.scope.cancel()


def _reset(stream: trio.SocketStream) -> None:
    """Close with RST (SO_LINGER 0), as a connection torn down by the network looks to both ends."""
    sock = stream.socket
    try:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def unix_socket(dsn: str) -> Path:
    """The Unix socket of a `postgresql://…?host=DIR&port=N` DSN (what the proxy forwards to)."""
    q = parse_qs(urlsplit(dsn).query)
    return Path(q["host"][0]) / f".s.PGSQL.{q.get('port', ['5432'])[0]}"


def via_proxy(dsn: str, port: int) -> str:
    """The same database over TCP through a proxy on `port`."""
    return f"postgresql://postgres@127.0.0.1:{port}{urlsplit(dsn).path}"
