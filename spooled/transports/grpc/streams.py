"""The two streaming RPCs, written in Trio (the asyncio grpclib stream is read with `aio_as_trio`, and written with
`island.run_here`: a message is framed and written from the Trio task itself, docs/architecture.md "A stream's
job leaves from its Trio task").

StreamJobs: whenever a job is available (woken by NOTIFY, never polling) and the stream's window has room,
lease up to the free slots in one claim, send them, repeat. Ends cleanly (status OK) on server shutdown; a
client cancel cancels it. Unsent leases are released (delivery.py).

ProcessJobs: one reader feeds two kinds of work running side by side, so a waiting dequeue never blocks the
completes behind it:
- a `dequeue` runs in its own task: it is answered with 0..batch_size `job` responses, waiting (woken by
  NOTIFY) while nothing is available. A newer dequeue supersedes one still waiting for its first job (that one is
  answered with zero jobs, as an official server would have answered it), so a client that re-sends dequeues
  keeps at most one waiting and is never answered for more than it asked last. `wait_ms` > 0 bounds the wait.
- `complete` / `fail` / `renew_lease` are answered in request order (responses carry no job id, so order is
  how a client matches them); consecutive completes are grouped into one `complete_many` statement.
Errors come back as `error` responses (errors.py table) and the stream stays open. When the client half-closes,
queued requests are answered, a waiting dequeue ends, and the stream ends with OK; on server shutdown it ends
at once with OK. All sends go through one lock: grpclib stream writes must not interleave.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import attrs
import trio
from trio_asyncio import aio_as_trio

from spooled import island
from spooled.domain import errors
from spooled.domain.inputs import RegisterWorker
from spooled.domain.scope import Scope
from spooled.services.admission import require_queue
from spooled.services.auth import Principal
from spooled.services.streams import STREAM
from spooled.transports.grpc import messages
from spooled.transports.grpc.calls import Rpc
from spooled.transports.grpc.delivery import LeaseWindow, send_or_release
from spooled.transports.grpc.errors import error_response
from spooled.transports.grpc.gen import spooled_pb2 as pb

DEFAULT_WINDOW = attrs.fields(RegisterWorker).max_concurrency.default   # an unregistered worker: the default
OPS_BUFFER = 1000          # complete/fail/renew requests read ahead of processing (back-pressure beyond)
MAX_COMPLETE_GROUP = 100   # completes grouped into one statement


async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _recv_while(stream, take: Callable[[Any], bool]) -> Any:
    """(asyncio) Receive messages, handing each to `take` (sync), until it refuses one (returned) or the client
    half-closes (None): one crossing for all the messages a stream receives, instead of one per message."""
    while (msg := await stream.recv_message()) is not None:
        if not take(msg):
            return msg
    return None


async def _send_all(stream, msgs: list, sent: list[int], flush: bool = False) -> None:
    """(asyncio, driven from Trio by `island.run_here`) send messages in order, counting the delivered ones. With
    `flush` (jobs), hand what they wrote to the socket at once (`server._CoalescedWrites.flush`) rather than on
    the loop's next pass: a job waits for nothing queued on the loop (another call's answer) before it leaves.
    Other messages (a group's complete responses) are gathered with the pass's writes, as every write is."""
    for m in msgs:
        await stream.send_message(m)
        sent[0] += 1
    if flush:
        now = getattr(getattr(stream._stream, "_transport", None), "flush", None)
        if now is not None:
            now()


# -- StreamJobs ---------------------------------------------------------------------------------------------
async def stream_jobs(rpc: Rpc, stream) -> None:
    svc = rpc.svc
    req: pb.StreamJobsRequest = await aio_as_trio(stream.recv_message)()
    scope = await rpc.scope(stream.metadata, queues=[req.queue_name])
    claim = messages.claim(req.queue_name, req.worker_id, req.lease_duration_secs, 1)
    with svc.streams.open(scope.org, STREAM):
        await _stream_jobs(rpc, stream, scope, claim)


async def _stream_jobs(rpc: Rpc, stream, scope: Scope, claim) -> None:
    svc = rpc.svc
    try:
        size = (await svc.workers.get(scope, claim.worker_id)).max_concurrency
    except errors.NotFound:
        size = DEFAULT_WINDOW
    window = LeaseWindow(rpc.tracker, svc.jobs, scope, size)
    await aio_as_trio(stream.send_initial_metadata)()   # the client sees the stream open before any job
    try:
        with trio.CancelScope() as ended:               # server shutdown: end with OK, not an error
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on, svc.shutting_down, ended)
                while True:
                    room = await window.wait_for_room()
                    jobs = await svc.jobs.claim(scope, attrs.evolve(claim, limit=min(room, messages.MAX_BATCH)),
                                                deadline=math.inf, long_poll=False)
                    if not jobs:
                        break                           # shutting down
                    for j in jobs:   # before sending: a Complete may come back before this task resumes
                        window.add(str(j.id), str(j.lease_id))
                    sent = [0]
                    await send_or_release(svc.jobs, scope, jobs,
                                          lambda js: island.run_here(_send_all(stream, [messages.job(j) for j in js],
                                                                               sent, True)), sent)
                nursery.cancel_scope.cancel()
    finally:
        window.close()


# -- ProcessJobs --------------------------------------------------------------------------------------------
async def process_jobs(rpc: Rpc, stream) -> None:
    principal = await rpc.principal(stream.metadata)
    with rpc.svc.streams.open(principal.organization_id, STREAM):
        await aio_as_trio(stream.send_initial_metadata)()
        await _Session(rpc, stream, principal).run()


class _Session:
    def __init__(self, rpc: Rpc, stream, principal: Principal):
        self.rpc = rpc
        self.svc = rpc.svc
        self.stream = stream
        self.principal = principal
        self.scope = principal.scope
        self._send_lock = trio.Lock()
        self._waiting: trio.CancelScope | None = None   # the dequeue that may still be waiting

    async def send(self, msgs: list, sent: list[int] | None = None, flush: bool = False) -> None:
        lock = self._send_lock
        try:
            lock.acquire_nowait()           # no checkpoint when free (the usual case): the job leaves now
        except trio.WouldBlock:
            await lock.acquire()
        try:
            await island.run_here(_send_all(self.stream, msgs, sent if sent is not None else [0], flush))
        finally:
            lock.release()

    async def run(self) -> None:
        with trio.CancelScope() as ended:
            async with trio.open_nursery() as outer:
                outer.start_soon(_cancel_on, self.svc.shutting_down, ended)
                ops_in, ops_out = trio.open_memory_channel(OPS_BUFFER)
                async with trio.open_nursery() as work:
                    work.start_soon(self._ops, ops_out)
                    async with ops_in:
                        take = functools.partial(self._take, work, ops_in)
                        while (req := await aio_as_trio(_recv_while)(self.stream, take)) is not None:
                            if req.WhichOneof("request") == "dequeue":   # refused by _take: answer its error
                                await self._dequeue(work, req.dequeue)
                            else:
                                await ops_in.send(req)                  # the ops queue is full: wait for room
                    # half-closed by the client: the ops task drains the queue; a waiting dequeue ends
                    if self._waiting is not None:
                        self._waiting.cancel()
                outer.cancel_scope.cancel()

    def _take(self, nursery: trio.Nursery, ops: trio.MemorySendChannel, req: pb.ProcessRequest) -> bool:
        """(sync, called from the asyncio reader) Start a valid dequeue or queue an op without waiting; False
        when that needs an await (a dequeue's error to send, a full ops queue): the reader hands it back."""
        if req.WhichOneof("request") == "dequeue":
            try:
                self._start_dequeue(nursery, req.dequeue)
            except errors.DomainError:
                return False
            return True
        try:
            ops.send_nowait(req)
        except trio.WouldBlock:
            return False
        return True

    # dequeues -----------------------------------------------------------------------------------------
    async def _dequeue(self, nursery: trio.Nursery, req: pb.DequeueRequest) -> None:
        try:
            self._start_dequeue(nursery, req)
        except errors.DomainError as exc:
            await self.send([error_response(exc)])

    def _start_dequeue(self, nursery: trio.Nursery, req: pb.DequeueRequest) -> None:
        """Start answering a dequeue in its own task; the request's DomainError, starting nothing."""
        claim = messages.claim(req.queue_name, req.worker_id, req.lease_duration_secs, req.batch_size)
        wait = messages.wait_secs(req.wait_ms)
        require_queue(self.principal, claim.queue_name)
        if self._waiting is not None:
            self._waiting.cancel()                      # superseded (cancel-safe: see delivery.py)
        scope = self._waiting = trio.CancelScope()
        deadline = trio.current_time() + wait if wait > 0 else math.inf
        nursery.start_soon(self._run_dequeue, claim, scope, deadline)

    async def _run_dequeue(self, claim, scope: trio.CancelScope, deadline: float) -> None:
        jobs: list = []
        try:
            with scope:
                jobs = await self.svc.jobs.claim(self.scope, claim, deadline=deadline, long_poll=False)
        except errors.DomainError as exc:
            await self.send([error_response(exc)])
            return
        finally:
            if self._waiting is scope:
                self._waiting = None
        if jobs:
            sent = [0]
            await send_or_release(self.svc.jobs, self.scope, jobs,
                                  lambda js: self.send([pb.ProcessResponse(job=messages.job(j)) for j in js], sent,
                                                       True),
                                  sent)

    # complete / fail / renew, in request order --------------------------------------------------------
    async def _ops(self, ops: trio.MemoryReceiveChannel) -> None:
        held = None
        async with ops:
            while True:
                if held is None:
                    try:
                        held = await ops.receive()
                    except trio.EndOfChannel:
                        return
                op, held = held, None
                kind = op.WhichOneof("request")
                if kind == "complete":
                    group = [op.complete]
                    while len(group) < MAX_COMPLETE_GROUP:
                        try:
                            nxt = ops.receive_nowait()
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                        if nxt.WhichOneof("request") == "complete":
                            group.append(nxt.complete)
                        else:
                            held = nxt
                            break
                    responses = await self._complete(group)
                else:
                    responses = [await self._one(kind, op)]
                await self.send(responses)

    async def _complete(self, group: list[pb.CompleteRequest]) -> list[pb.ProcessResponse]:
        out: list[pb.ProcessResponse | None] = [None] * len(group)
        todo = []
        items = []
        for i, c in enumerate(group):
            try:
                items.append(messages.completion(c))
                todo.append(i)
            except errors.DomainError as exc:
                out[i] = error_response(exc)
        if todo:
            try:
                results = await self.svc.jobs.complete_many(self.scope, items)
            except errors.DomainError as exc:
                return [o or error_response(exc) for o in out]
            for i, r in zip(todo, results):
                if r.success:
                    out[i] = pb.ProcessResponse(complete=pb.CompleteResponse(success=True))
                elif r.error == "NOT_FOUND":
                    out[i] = error_response(errors.NotFound("Job not found"))
                else:
                    out[i] = error_response(errors.LeaseExpired())
            self.rpc.tracker.finished([group[i].job_id for i in todo])
        return out  # type: ignore[return-value]

    async def _one(self, kind: str | None, op: pb.ProcessRequest) -> pb.ProcessResponse:
        try:
            if kind == "fail":
                spec = messages.fail(op.fail)
                try:
                    r = await self.svc.jobs.fail(self.scope, op.fail.job_id, spec)
                finally:
                    self.rpc.tracker.finished([op.fail.job_id])
                return pb.ProcessResponse(fail=pb.FailResponse(
                    success=True, will_retry=r.will_retry,
                    next_retry_delay_secs=r.next_retry_delay_secs if r.will_retry else 0))
            if kind == "renew_lease":
                spec = messages.renew(op.renew_lease)
                expires = await self.svc.jobs.heartbeat(self.scope, op.renew_lease.job_id, spec.lease_id,
                                                        spec.lease_duration_secs, worker_id=spec.worker_id)
                resp = pb.RenewLeaseResponse(success=True)
                resp.new_expires_at.FromDatetime(expires)
                return pb.ProcessResponse(renew_lease=resp)
            raise errors.invalid("request", "must be one of dequeue, complete, fail, renew_lease")
        except errors.DomainError as exc:
            return error_response(exc)
