"""spooled.v1.WorkerService: the same Workers service methods as the REST routes."""

from __future__ import annotations

from spooled.domain.scope import Scope
from spooled.transports.grpc import messages
from spooled.transports.grpc.calls import Rpc
from spooled.transports.grpc.gen import spooled_pb2 as pb
from spooled.transports.grpc.gen.spooled_grpc import WorkerServiceBase


class WorkerService(WorkerServiceBase):
    def __init__(self, rpc: Rpc):
        self.rpc = rpc
        self.workers = rpc.svc.workers

    async def Register(self, stream) -> None:
        await self.rpc.unary(stream, self._register, queues=lambda r: [r.queue_name])

    async def _register(self, scope: Scope, req: pb.RegisterWorkerRequest) -> pb.RegisterWorkerResponse:
        w, _ = await self.workers.register(scope, messages.register(req))
        return pb.RegisterWorkerResponse(worker_id=w.id, lease_duration_secs=w.lease_duration_secs,
                                         heartbeat_interval_secs=w.heartbeat_interval_secs)

    async def Heartbeat(self, stream) -> None:
        await self.rpc.unary(stream, self._heartbeat)

    async def _heartbeat(self, scope: Scope, req: pb.HeartbeatRequest) -> pb.HeartbeatResponse:
        should_drain = await self.workers.heartbeat(scope, req.worker_id, messages.heartbeat(req))
        return pb.HeartbeatResponse(acknowledged=True, should_drain=should_drain)

    async def Deregister(self, stream) -> None:
        await self.rpc.unary(stream, self._deregister)

    async def _deregister(self, scope: Scope, req: pb.DeregisterRequest) -> pb.DeregisterResponse:
        await self.workers.deregister(scope, req.worker_id)
        return pb.DeregisterResponse(success=True)
