"""What every gRPC handler shares: admission (services/admission.py: credential, key rules, queue
restriction, rate limit), the trio<->asyncio crossing, the error table, and a count of the calls in progress
(so shutdown can let them finish under the grace period). Handlers get the caller's `Scope` (domain/scope.py)
and hand it to the services, which keep other queues' jobs, workers and workflows out of sight.

Handlers are asyncio coroutines (grpclib runs in the one trio_asyncio loop); the work runs in Trio, ONE Trio
task per call started from the handler itself (`island.start_trio`, in the island loop's nursery). A cancelled
handler (client gone, deadline, server closing) cancels that Trio task and waits for it to end.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Awaitable, Callable, Iterable

import trio
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from spooled import island
from spooled.domain import errors
from spooled.domain.scope import Scope
from spooled.services.admission import require_queue
from spooled.services.auth import Principal
from spooled.services.container import Services
from spooled.transports.grpc.delivery import LeaseTracker, Undelivered
from spooled.transports.grpc.errors import grpc_error
from spooled.transports.grpc.observe import note_org, note_status

Queues = Callable[[Any], Iterable[str]]


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
        self._loop = None

    def open(self, loop) -> None:
        """The island's loop, whose nursery runs the calls' Trio tasks; before the server takes calls."""
        self._loop = loop

    def _trio(self, fn, *args):
        """(asyncio) `await fn(*args)` in a Trio task started now."""
        return island.start_trio(self._loop, fn, *args)

    async def principal(self, metadata, *, safe: bool = False, queues: Iterable[str] = ()) -> Principal:
        """Admit the call (`safe`: it only reads) and check the queues it names; Unavailable once the server
        is shutting down."""
        if self.svc.shutting_down.is_set():
            raise errors.Unavailable("The server is shutting down")
        p, _ = await self.svc.admission.admit(api_key(metadata), safe=safe)
        note_org(p.organization_id)
        for queue in queues:
            if queue:
                require_queue(p, queue)
        return p

    async def scope(self, metadata, *, safe: bool = False, queues: Iterable[str] = ()) -> Scope:
        """What the admitted caller may reach (its organization, or some queues of it)."""
        return (await self.principal(metadata, safe=safe, queues=queues)).scope

    def _begin(self) -> None:
        self.active += 1

    def _end(self) -> None:
        self.active -= 1
        if not self.active and self._idle is not None:
            self._idle.set()

    async def wait_idle(self) -> None:
        """(Trio) return once no call is in progress."""
        while self.active:
            self._idle = trio.Event()
            await self._idle.wait()

    async def unary(self, stream: Stream, fn: Callable[..., Awaitable[Any]], *, safe: bool = False,
                    queues: Queues | None = None, metadata: bool = False) -> None:
        """(asyncio) request -> admission -> `fn(scope, request)` in Trio -> response. `queues(request)` names
        the queues the call uses (checked against the key's restriction); `safe` calls only read; with
        `metadata`, `fn(scope, request, metadata)`."""
        self._begin()       # a plain try, not a generator context manager: this runs twice per job
        try:
            request = await stream.recv_message()
            if metadata:
                fn = partial(_and, fn, stream.metadata)
            try:
                response = await self._trio(self._call, stream.metadata, fn, request, safe, queues)
            except GRPCError:
                raise
            except errors.RateLimited as exc:
                await rate_limited(stream, exc)
                return
            except Exception as exc:
                raise grpc_error(exc) from None
            await stream.send_message(response)
        finally:
            self._end()

    async def leasing(self, stream: Stream, fn: Callable[..., Awaitable[Any]], *, queues: Queues) -> None:
        """(asyncio) `unary` for a call whose answer carries jobs leased for it: `fn(scope, request, held)` leases
        them, `held.hold`s them at once and returns the answer. If the answer is not written (client gone,
        stream reset, cancelled, an error after the claim), they go back to pending (delivery.py)."""
        held = Undelivered(self.svc.jobs)
        try:
            await self.unary(stream, partial(_and, fn, held), queues=queues)
            held.delivered()
        finally:
            if held.leased:
                await self._trio(held.release)

    async def _call(self, metadata, fn, request, safe, queues):
        scope = await self.scope(metadata, safe=safe, queues=queues(request) if queues else ())
        return await fn(scope, request)

    async def in_trio(self, stream: Stream, fn: Callable[[Stream], Awaitable[None]]) -> None:
        """(asyncio) run `fn(stream)` in Trio: it receives and sends itself (the streams, which release the
        jobs they could not send: delivery.send_or_release)."""
        self._begin()
        try:
            await self._trio(fn, stream)
        except GRPCError:
            raise
        except errors.RateLimited as exc:
            await rate_limited(stream, exc)
        except Exception as exc:
            raise grpc_error(exc) from None
        finally:
            self._end()


async def _and(fn, extra, scope: Scope, request):
    """`fn(scope, request, extra)` called as `_call` calls every `fn` (the metadata, an `Undelivered`)."""
    return await fn(scope, request, extra)


async def rate_limited(stream: Stream, exc: errors.RateLimited) -> None:
    """(asyncio) end the call RESOURCE_EXHAUSTED with `retry-after` (whole seconds) in the trailing metadata."""
    note_status(Status.RESOURCE_EXHAUSTED.name)
    await stream.send_trailing_metadata(status=Status.RESOURCE_EXHAUSTED, status_message=exc.message,
                                        metadata={"retry-after": str(exc.retry_after)})
