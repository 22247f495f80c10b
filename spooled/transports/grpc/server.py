"""The grpclib server (QueueService, WorkerService, grpc.health.v1.Health) inside the one trio_asyncio loop.

Started by the supervisor in its edge nursery. Shutdown (the `shutting_down` event): health turns NOT_SERVING
(load balancers stop routing here), streams end themselves with OK, new calls get UNAVAILABLE, calls in
progress get up to `grace` seconds; then the server closes (cancelling whatever is left) in a shielded finally.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import trio
import trio_asyncio
from grpclib.health.check import ServiceStatus
from grpclib.health.service import Health
from grpclib.protocol import H2Protocol
from grpclib.server import Server

from spooled.services.container import Services
from spooled.transports.grpc.calls import Rpc
from spooled.transports.grpc.observe import measured
from spooled.transports.grpc.queue_service import QueueService
from spooled.transports.grpc.worker_service import WorkerService

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_SECS = 10.0


class _CoalescedWrites:
    """An asyncio transport whose writes within one loop iteration leave as one `send`.

    grpclib writes each HTTP/2 step of a call as it happens: a unary answer is three writes (headers, data,
    trailers), each a syscall that on loopback also runs the peer's receive path. Gathered until the loop's next
    turn they are one; the order and the bytes are unchanged, and flow control (the real transport's buffer,
    pause/resume) is untouched. `close` sends what is gathered first; everything else is the real transport's."""

    def __init__(self, transport, loop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if data:
            if not self._pending:
                self._loop.call_soon(self.flush)
            self._pending.append(data)

    def writelines(self, chunks) -> None:
        for data in chunks:
            self.write(data)

    def flush(self) -> None:
        """Send what is gathered now (streams.py: a job sent from Trio leaves without waiting for the loop)."""
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class _Protocol(H2Protocol):
    def connection_made(self, transport) -> None:
        super().connection_made(_CoalescedWrites(transport, asyncio.get_running_loop()))


GC_INTERVAL = 100      # calls accepted between two sweeps of a connection's finished call tasks (grpclib: 10)


class _Server(Server):
    def _protocol_factory(self) -> H2Protocol:
        plain = super()._protocol_factory()
        # grpclib's Handler rebuilds its dict of the connection's call tasks every __gc_interval__ accepted calls
        # to drop the finished ones: every 10 by default, ~1 % of a unary call's CPU with 20 calls in flight
        # on one connection. Every 100 keeps at most ~100 finished tasks (small: their frames are gone).
        plain.handler.__gc_interval__ = GC_INTERVAL
        return _Protocol(plain.handler, plain.config, plain.h2_config)


def bind(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening socket bound here (port 0: any free port, read back from the socket).

    Made from getaddrinfo's (family, type, proto) as asyncio's own create_server does: asyncio sets
    TCP_NODELAY on accepted connections only when the socket's proto is IPPROTO_TCP, and without it every
    unary call waits ~40 ms on Nagle + delayed ACK (`socket.create_server` leaves proto 0)."""
    family, type_, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                       proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(addr)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def address_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(svc: Services, host: str, port: int, *, grace: float, fd: int | None = None,
                task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve gRPC until `svc.shutting_down`; `task_status.started("host:port")` with the real port. `fd`: a
    listening socket to serve instead of binding one (inherited from `--processes`)."""
    rpc = Rpc(svc)
    sock = bind(host, port) if fd is None else socket.socket(fileno=fd)

    async def start() -> tuple[Server, ServiceStatus]:
        # built inside asyncio: grpclib takes the running loop (the one trio_asyncio loop)
        serving = ServiceStatus()
        serving.set(True)
        queues, workers = QueueService(rpc), WorkerService(rpc)
        server = _Server(measured([queues, workers, Health({queues: [serving], workers: [serving]})],
                                  svc.metrics, access_log=svc.settings.access_log))
        await server.start(sock=sock)
        return server, serving

    async def not_serving() -> None:
        serving.set(False)

    rpc.open(trio_asyncio.current_loop.get())
    try:
        server, serving = await trio_asyncio.aio_as_trio(start)()
    except BaseException:
        sock.close()
        raise
    try:
        address = address_of(sock)
        log.info("gRPC listening on %s", address)
        task_status.started(address)
        await svc.shutting_down.wait()
        await trio_asyncio.aio_as_trio(not_serving)()
        with trio.move_on_after(grace):
            await rpc.wait_idle()
    finally:
        with trio.CancelScope(shield=True):
            server.close()
            with trio.move_on_after(CLOSE_TIMEOUT_SECS):
                await trio_asyncio.aio_as_trio(server.wait_closed)()
