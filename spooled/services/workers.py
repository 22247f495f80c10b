"""Workers: registration, heartbeats, deregistration and the heartbeat expirer (api.md "Workers").

A worker that deregisters, or stays silent for 3 heartbeat intervals, is `offline` and its processing jobs go
back to the retry path at once (`maintenance.sql: reap_leases` with the worker ids, reason "worker lost"),
instead of each waiting for its lease to expire.

Also here: the two statements streaming delivery needs around leases it hands out (`release_unsent`,
`leases_held`); they live in workers.sql, next to the other worker-side lease handling.
"""

from __future__ import annotations

import datetime as dt
import typing
import uuid

import attrs

from spooled.domain import errors
from spooled.domain.ids import try_id
from spooled.domain.inputs import RegisterWorker, WorkerHeartbeat
from spooled.services.jobs import dumps
from spooled.services.quotas import Quotas
from spooled.store.db import Database
from spooled.store.sql import Q

Now = dt.datetime | None

WORKER_LOST = "worker lost"
RELEASE_BATCH = 1000          # reap_leases rows per statement when releasing one worker's jobs
@attrs.frozen
class ExpireResult:
    workers: int      # workers declared offline
    released: int     # their jobs released to the retry path

    @property
    def total(self) -> int:
        return self.workers

    def full(self, limit: int) -> bool:
        return self.workers >= limit


class Workers:
    def __init__(self, db: Database, *, quotas: Quotas, heartbeat_interval_secs: int, lease_duration_secs: int = 30):
        self._db = db
        self._quotas = quotas
        self._heartbeat_interval = heartbeat_interval_secs
        self._lease_secs = lease_duration_secs

    async def register(self, org: str, spec: RegisterWorker, *, now: Now = None) -> typing.Any:
        """Register a worker (its id: the client's `worker_id` as is, else a new one); registering an existing
        id updates it. The row, with `created` telling which happened."""
        await self._quotas.check(org, "workers", 1, excluding=spec.worker_id)
        worker_id = spec.worker_id or str(uuid.uuid4())
        return await self._db.fetchrow(
            Q.worker_register, id=worker_id, org=uuid.UUID(org), queue_names=spec.all_queues,
            hostname=spec.hostname, worker_type=spec.worker_type or None, version=spec.version or None,
            max_concurrency=spec.max_concurrency,
            metadata=dumps(spec.metadata) if spec.metadata is not None else None,
            heartbeat_interval_secs=self._heartbeat_interval, lease_duration_secs=self._lease_secs, now=now)

    async def list(self, org: str, *, status: str | None = None, queue_name: str | None = None) -> list:
        """The organization's workers (offline ones too), oldest registration first."""
        return await self._db.fetch(Q.worker_list, org=uuid.UUID(org), status=status, queue=queue_name)

    async def get(self, org: str, worker_id: str) -> typing.Any:
        """One worker of the organization; another organization's id is not found."""
        row = await self._db.fetchrow(Q.worker_get, org=uuid.UUID(org), id=worker_id)
        if row is None:
            raise errors.NotFound("Worker not found")
        return row

    async def heartbeat(self, org: str, worker_id: str, beat: WorkerHeartbeat, *, now: Now = None) -> bool:
        """Record a heartbeat (reviving an offline worker); whether the worker should drain."""
        status = await self._db.fetchval(
            Q.worker_heartbeat, org=uuid.UUID(org), id=worker_id, current_jobs=beat.current_jobs,
            status=beat.status, metadata=dumps(beat.metadata) if beat.metadata is not None else None, now=now)
        if status is None:
            raise errors.NotFound("Worker not found")
        return status == "draining"

    async def deregister(self, org: str, worker_id: str, *, now: Now = None) -> int:
        """Mark the worker offline and release its processing jobs to the retry path now (one transaction);
        how many jobs were released."""
        org_id = uuid.UUID(org)

        async def unit(con):
            stmt = Q.worker_deregister
            if await con.fetchval(stmt.sql, *stmt.args(org=org_id, id=worker_id, now=now)) is None:
                raise errors.NotFound("Worker not found")
            return await _release_jobs(con, org_id, [worker_id], now)
        return await self._db.transaction(unit)

    async def expire(self, now: Now = None, limit: int = 100) -> ExpireResult:
        """One bounded batch: workers whose last heartbeat is older than 3 of their intervals -> offline, and
        their processing jobs released to the retry path, in one transaction. Safe with several instances:
        workers and jobs are picked FOR UPDATE SKIP LOCKED (a job locked by a concurrent transaction is left
        to the lease reaper)."""
        async def unit(con):
            stmt = Q.worker_expire
            rows = await con.fetch(stmt.sql, *stmt.args(now=now, limit=limit))
            by_org: dict[uuid.UUID, list[str]] = {}
            for r in rows:
                by_org.setdefault(r["organization_id"], []).append(r["id"])
            released = 0
            for org_id, ids in by_org.items():
                released += await _release_jobs(con, org_id, ids, now)
            return ExpireResult(len(rows), released)
        return await self._db.transaction(unit)

    # -- streaming delivery ------------------------------------------------------------------------------
    async def release_unsent(self, org: str, leased: list[tuple[str, str]], *, now: Now = None) -> int:
        """Return jobs that were leased for a stream but could not be sent to pending, as if never claimed
        (no retry counted); `leased` holds (job_id, lease_id). Each is fenced by its lease. How many."""
        pairs = [(j, lease) for j, lease in ((try_id(a), try_id(b)) for a, b in leased) if j and lease]
        if not pairs:
            return 0
        row = await self._db.fetchrow(Q.job_release_unsent, org=uuid.UUID(org), ids=[p[0] for p in pairs],
                                      leases=[p[1] for p in pairs], now=now)
        return row["released"]

    async def leases_held(self, org: str, leased: list[tuple[str, str]]) -> set[str]:
        """The job ids among (job_id, lease_id) pairs whose lease is still current and unexpired."""
        pairs = [(j, lease) for j, lease in ((try_id(a), try_id(b)) for a, b in leased) if j and lease]
        if not pairs:
            return set()
        rows = await self._db.fetch(Q.job_leases_held, org=uuid.UUID(org), ids=[p[0] for p in pairs],
                                    leases=[p[1] for p in pairs])
        return {str(r["id"]) for r in rows}


async def _release_jobs(con, org_id: uuid.UUID, worker_ids: list[str], now: Now) -> int:
    """Release every processing job of these workers (reap_leases in batches, inside the caller's transaction)."""
    stmt = Q.reap_leases
    total = 0
    while True:
        row = await con.fetchrow(stmt.sql, *stmt.args(worker_ids=worker_ids, org=org_id, reason=WORKER_LOST,
                                                      now=now, limit=RELEASE_BATCH))
        total += row["released"]
        if row["released"] < RELEASE_BATCH:
            return total
