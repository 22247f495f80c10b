"""spooled.v1.QueueService: parse the message, call the service method REST uses, build the message."""

from __future__ import annotations

import trio

from spooled.domain import errors
from spooled.domain.scope import Scope
from spooled.transports.grpc import messages, streams
from spooled.transports.grpc.calls import Rpc
from spooled.transports.grpc.delivery import Undelivered
from spooled.transports.grpc.gen import spooled_pb2 as pb
from spooled.transports.grpc.gen.spooled_grpc import QueueServiceBase


class QueueService(QueueServiceBase):
    def __init__(self, rpc: Rpc):
        self.rpc = rpc
        self.svc = rpc.svc

    # -- enqueue ---------------------------------------------------------------------------------------
    async def Enqueue(self, stream) -> None:
        await self.rpc.unary(stream, self._enqueue, queues=lambda r: [r.queue_name], metadata=True)

    async def _enqueue(self, scope: Scope, req: pb.EnqueueRequest, metadata) -> pb.EnqueueResponse:
        spec = messages.job_spec(req, req.queue_name)
        (res,) = await self.svc.jobs.enqueue(scope, spec.queue_name, [spec], trace=messages.trace(metadata))
        return pb.EnqueueResponse(job_id=res.job_id, created=res.created)

    async def EnqueueBulk(self, stream) -> None:
        await self.rpc.unary(stream, self._enqueue_bulk,
                             queues=lambda r: [r.queue_name, *(j.queue_name for j in r.jobs)], metadata=True)

    async def _enqueue_bulk(self, scope: Scope, req: pb.EnqueueBulkRequest, metadata) -> pb.EnqueueBulkResponse:
        if not 1 <= len(req.jobs) <= messages.MAX_BULK:
            raise errors.invalid("jobs", f"must hold 1 to {messages.MAX_BULK} jobs")
        queue = req.queue_name or req.jobs[0].queue_name
        for i, j in enumerate(req.jobs):
            if j.queue_name and j.queue_name != queue:
                raise errors.invalid(f"jobs[{i}].queue_name", "must be empty or the request's queue_name")
        specs = [messages.job_spec(j, queue) for j in req.jobs]
        results = await self.svc.jobs.enqueue(scope, queue, specs, trace=messages.trace(metadata))
        return pb.EnqueueBulkResponse(results=[pb.EnqueueResponse(job_id=r.job_id, created=r.created)
                                               for r in results])

    # -- dequeue ---------------------------------------------------------------------------------------
    async def Dequeue(self, stream) -> None:
        # leased jobs whose answer cannot be sent are released (Rpc.leasing)
        await self.rpc.leasing(stream, self._dequeue, queues=lambda r: [r.queue_name])

    async def _dequeue(self, scope: Scope, req: pb.DequeueRequest, held: Undelivered) -> pb.DequeueResponse:
        claim = messages.claim(req.queue_name, req.worker_id, req.lease_duration_secs, req.batch_size)
        wait = messages.wait_secs(req.wait_ms)
        jobs = await self.svc.jobs.claim(scope, claim, deadline=trio.current_time() + wait)
        held.hold(scope, jobs)
        return pb.DequeueResponse(jobs=[messages.job(j) for j in jobs])

    # -- complete / fail / renew -----------------------------------------------------------------------
    async def Complete(self, stream) -> None:
        await self.rpc.unary(stream, self._complete)

    async def _complete(self, scope: Scope, req: pb.CompleteRequest) -> pb.CompleteResponse:
        job_id, lease, worker, result = messages.completion(req)
        try:
            await self.svc.jobs.complete(scope, job_id, lease, result, worker_id=worker)
        except (errors.NotFound, errors.LeaseExpired):
            self.rpc.tracker.finished([req.job_id])
            raise
        self.rpc.tracker.finished([req.job_id])
        return pb.CompleteResponse(success=True)

    async def CompleteBatch(self, stream) -> None:
        await self.rpc.unary(stream, self._complete_batch)

    async def _complete_batch(self, scope: Scope, req: pb.CompleteBatchRequest) -> pb.CompleteBatchResponse:
        if not 1 <= len(req.completions) <= messages.MAX_BULK:
            raise errors.invalid("completions", f"must hold 1 to {messages.MAX_BULK} items")
        # an item with neither lease_id nor worker_id (its own or the batch's) fails the call, as on REST
        items = []
        for i, c in enumerate(req.completions):
            try:
                items.append(messages.completion(c, req.worker_id))
            except errors.ValidationFailed:
                raise errors.invalid(f"completions[{i}].lease_id", "is required (or worker_id)") from None
        results = await self.svc.jobs.complete_many(scope, items)
        self.rpc.tracker.finished([c.job_id for c in req.completions])
        return pb.CompleteBatchResponse(success=[r.success for r in results])

    async def Fail(self, stream) -> None:
        await self.rpc.unary(stream, self._fail)

    async def _fail(self, scope: Scope, req: pb.FailRequest) -> pb.FailResponse:
        spec = messages.fail(req)
        try:
            r = await self.svc.jobs.fail(scope, req.job_id, spec)
        except (errors.NotFound, errors.LeaseExpired):
            self.rpc.tracker.finished([req.job_id])
            raise
        self.rpc.tracker.finished([req.job_id])
        return pb.FailResponse(success=True, will_retry=r.will_retry,
                               next_retry_delay_secs=r.next_retry_delay_secs if r.will_retry else 0)

    async def RenewLease(self, stream) -> None:
        await self.rpc.unary(stream, self._renew)

    async def _renew(self, scope: Scope, req: pb.RenewLeaseRequest) -> pb.RenewLeaseResponse:
        spec = messages.renew(req)
        expires = await self.svc.jobs.heartbeat(scope, req.job_id, spec.lease_id, spec.lease_duration_secs,
                                                worker_id=spec.worker_id)
        resp = pb.RenewLeaseResponse(success=True)
        resp.new_expires_at.FromDatetime(expires)
        return resp

    # -- reads -----------------------------------------------------------------------------------------
    async def GetJob(self, stream) -> None:
        await self.rpc.unary(stream, self._get_job, safe=True)

    async def _get_job(self, scope: Scope, req: pb.GetJobRequest) -> pb.GetJobResponse:
        return pb.GetJobResponse(job=messages.job(await self.svc.jobs.get(scope, req.job_id)))

    async def GetQueueStats(self, stream) -> None:
        await self.rpc.unary(stream, self._queue_stats, safe=True, queues=lambda r: [r.queue_name])

    async def _queue_stats(self, scope: Scope, req: pb.GetQueueStatsRequest) -> pb.GetQueueStatsResponse:
        if not req.queue_name:
            raise errors.invalid("queue_name", "is required")
        return messages.queue_stats(req.queue_name, await self.svc.queues.stats(scope.org, req.queue_name))

    # -- streams ---------------------------------------------------------------------------------------
    async def StreamJobs(self, stream) -> None:
        await self.rpc.in_trio(stream, lambda s: streams.stream_jobs(self.rpc, s))

    async def ProcessJobs(self, stream) -> None:
        await self.rpc.in_trio(stream, lambda s: streams.process_jobs(self.rpc, s))
