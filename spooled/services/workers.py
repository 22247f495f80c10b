"""Workers: registration, heartbeats, deregistration and the heartbeat expirer (api.md "Workers").

A worker that deregisters, reports itself `offline`, or stays silent for 3 heartbeat intervals is `offline`
and its processing jobs go back to the retry path at once (reason "worker lost"), instead of each waiting for
its lease to expire.

A caller restricted to some queues (`Scope`, domain/scope.py) reaches only the workers all of whose queues it
may use; any other worker is not found, as another organization's.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

from spooled.domain import errors
from spooled.domain.ids import parse_id
from spooled.domain.inputs import RegisterWorker, WorkerHeartbeat
from spooled.domain.models import Worker
from spooled.domain.scope import Scope
from spooled.services.quotas import Quotas
from spooled.store.workers import ExpireResult, WorkerStore, WorkerValues

Now = dt.datetime | None

WORKER_LOST = "worker lost"

__all__ = ["ExpireResult", "Workers", "WORKER_LOST"]


def _json(value) -> str | None:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False) if value is not None else None


def _missing() -> errors.NotFound:
    return errors.NotFound("Worker not found")


class Workers:
    def __init__(self, store: WorkerStore, *, quotas: Quotas, heartbeat_interval_secs: int,
                 lease_duration_secs: int = 30):
        self._store = store
        self._quotas = quotas
        self._heartbeat_interval = heartbeat_interval_secs
        self._lease_secs = lease_duration_secs

    async def register(self, scope: Scope, spec: RegisterWorker, *, now: Now = None) -> tuple[Worker, bool]:
        """Register a worker (its id: the client's `worker_id` as is, else a new one); registering an existing
        id updates it. (worker, created). A restricted caller cannot take over the id of a worker it may not
        reach: Conflict."""
        for queue in spec.all_queues:
            scope.require(queue)
        await self._quotas.check(scope.org, "workers", 1, excluding=spec.worker_id)
        done = await self._store.register(
            parse_id(scope.org), spec.worker_id or str(uuid.uuid4()),
            WorkerValues(queue_names=spec.all_queues, hostname=spec.hostname, worker_type=spec.worker_type or None,
                         version=spec.version or None, max_concurrency=spec.max_concurrency,
                         metadata=_json(spec.metadata), heartbeat_interval_secs=self._heartbeat_interval,
                         lease_duration_secs=self._lease_secs), scope.queues, now=now)
        if done is None:
            raise errors.Conflict("worker_id is taken by a worker of queues this API key may not use")
        return done

    async def list(self, scope: Scope, *, status: str | None = None, queue_name: str | None = None
                   ) -> list[Worker]:
        """The organization's workers in scope (offline ones too), oldest registration first."""
        scope.require(queue_name)
        return await self._store.list(parse_id(scope.org), scope.queues, status=status, queue=queue_name)

    async def get(self, scope: Scope, worker_id: str) -> Worker:
        """One worker of the organization; another organization's id (or a worker outside the scope) is not
        found."""
        worker = await self._store.get(parse_id(scope.org), worker_id, scope.queues)
        if worker is None:
            raise _missing()
        return worker

    async def heartbeat(self, scope: Scope, worker_id: str, beat: WorkerHeartbeat, *, now: Now = None) -> bool:
        """Record a heartbeat; whether the worker should drain. A heartbeat revives an offline worker; one that
        reports `offline` is taken offline as a deregistration is (its jobs released); `draining` stays until
        the worker re-registers."""
        if beat.status == "offline":                 # the worker says it is stopping: as a deregistration
            await self.deregister(scope, worker_id, now=now)
            return False
        status = await self._store.heartbeat(parse_id(scope.org), worker_id, scope.queues,
                                             current_jobs=beat.current_jobs, status=beat.status,
                                             metadata=_json(beat.metadata), now=now)
        if status is None:
            raise _missing()
        return status == "draining"

    async def deregister(self, scope: Scope, worker_id: str, *, now: Now = None) -> int:
        """Mark the worker offline and release its processing jobs to the retry path now (one transaction);
        how many jobs were released."""
        released = await self._store.take_offline(parse_id(scope.org), worker_id, WORKER_LOST, scope.queues,
                                                  now=now)
        if released is None:
            raise _missing()
        return released

    async def expire(self, now: Now = None, limit: int = 100) -> ExpireResult:
        """One bounded batch of the heartbeat expirer (WorkerStore.expire)."""
        return await self._store.expire(WORKER_LOST, now=now, limit=limit)
