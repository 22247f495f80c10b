"""What every gRPC handler shares: authentication, the trio<->asyncio crossing, the error table, and a count
of the calls in progress (so shutdown can let them finish under the grace period).

Handlers are asyncio coroutines (grpclib runs in the one trio_asyncio loop); the work runs in Trio, reached
with ONE `trio_as_aio` crossing per call. A cancelled handler (client gone, deadline, server closing) cancels
that Trio task.
"""

from __future__ import annotations

import contextlib
from typing import Any, Awaitable, Callable, Iterator

import trio
from grpclib.exceptions import GRPCError
from grpclib.server import Stream
from trio_asyncio import trio_as_aio

from spooled.domain import errors
from spooled.services.container import Services
from spooled.transports.grpc.delivery import LeaseTracker
from spooled.transports.grpc.errors import grpc_error


def api_key(metadata) -> str | None:
    """`x-api-key` (grpc.md); `authorization: Bearer <key>` is accepted too."""
    if metadata is None:
        return None
    key = metadata.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, token = (metadata.get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Rpc:
    def __init__(self, svc: Services):
        self.svc = svc
        self.tracker = LeaseTracker()
        self.active = 0
        self._idle: trio.Event | None = None

    async def org(self, metadata) -> str:
        """The caller's organization id, or Unauthorized; Unavailable once the server is shutting down."""
        if self.svc.shutting_down.is_set():
            raise errors.Unavailable("The server is shutting down")
        return (await self.svc.auth.authenticate(api_key(metadata))).organization_id

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            if not self.active and self._idle is not None:
                self._idle.set()

    async def wait_idle(self) -> None:
        """(Trio) return once no call is in progress."""
        while self.active:
            self._idle = trio.Event()
            await self._idle.wait()

    async def unary(self, stream: Stream, fn: Callable[[str, Any], Awaitable[Any]]) -> None:
        """(asyncio) request -> `fn(org, request)` in Trio -> response."""
        with self._counted():
            request = await stream.recv_message()
            try:
                response = await trio_as_aio(self._call)(stream.metadata, fn, request)
            except GRPCError:
                raise
            except Exception as exc:
                raise grpc_error(exc) from None
            await stream.send_message(response)

    async def _call(self, metadata, fn, request):
        return await fn(await self.org(metadata), request)

    async def in_trio(self, stream: Stream, fn: Callable[[Stream], Awaitable[None]]) -> None:
        """(asyncio) run `fn(stream)` in Trio: it receives and sends itself (streams, and calls that lease jobs
        and must release them if the response cannot be sent)."""
        with self._counted():
            try:
                await trio_as_aio(fn)(stream)
            except GRPCError:
                raise
            except Exception as exc:
                raise grpc_error(exc) from None
