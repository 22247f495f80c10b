"""Workers in the database (queries/workers.sql): registration, heartbeats, and the two transactions that take
a worker offline and release its processing jobs (deregister, the heartbeat expirer)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Sequence

import attrs

from spooled.convert import from_row, from_rows
from spooled.domain.models import Worker
from spooled.store.db import Database
from spooled.store.sql import Q

Now = dt.datetime | None

RELEASE_BATCH = 1000          # reap_leases rows per statement when releasing one worker's jobs


@attrs.frozen
class WorkerValues:
    """A registration's columns; user JSON already as text."""
    queue_names: list[str]
    hostname: str
    worker_type: str | None
    version: str | None
    max_concurrency: int
    metadata: str | None
    heartbeat_interval_secs: int
    lease_duration_secs: int


@attrs.frozen
class ExpireResult:
    workers: int      # workers declared offline
    released: int     # their jobs released to the retry path

    @property
    def total(self) -> int:
        return self.workers

    def full(self, limit: int) -> bool:
        return self.workers >= limit


class WorkerStore:
    def __init__(self, db: Database):
        self._db = db

    async def register(self, org: uuid.UUID, worker_id: str, v: WorkerValues, queues: Sequence[str], *,
                       now: Now = None) -> tuple[Worker, bool] | None:
        """Insert the worker, or update it when the id is registered already; (worker, created). None when the
        id is a worker outside `queues` (the caller's scope), which is left unchanged."""
        row = await self._db.fetchrow(Q.worker_register, id=worker_id, org=org, now=now, queues=queues,
                                      **attrs.asdict(v))
        return (from_row(Worker, row), row["created"]) if row is not None else None

    async def list(self, org: uuid.UUID, queues: Sequence[str], *, status: str | None, queue: str | None
                   ) -> list[Worker]:
        return from_rows(Worker, await self._db.fetch(Q.worker_list, org=org, status=status, queue=queue,
                                                      queues=queues))

    async def get(self, org: uuid.UUID, worker_id: str, queues: Sequence[str]) -> Worker | None:
        row = await self._db.fetchrow(Q.worker_get, org=org, id=worker_id, queues=queues)
        return from_row(Worker, row) if row is not None else None

    async def heartbeat(self, org: uuid.UUID, worker_id: str, queues: Sequence[str], *, current_jobs: int,
                        status: str | None, metadata: str | None, now: Now = None) -> str | None:
        """Record a heartbeat; the worker's status after it (None when there is no such worker)."""
        return await self._db.fetchval(Q.worker_heartbeat, org=org, id=worker_id, current_jobs=current_jobs,
                                       status=status, metadata=metadata, queues=queues, now=now)

    async def take_offline(self, org: uuid.UUID, worker_id: str, reason: str, queues: Sequence[str], *,
                           now: Now = None) -> int | None:
        """Mark the worker offline and release its processing jobs to the retry path, in one transaction; how
        many jobs were released (None when there is no such worker in `queues`)."""
        async def unit(con):
            if await con.fetchval(*Q.worker_deregister.bind(org=org, id=worker_id, queues=queues, now=now)) is None:
                return None
            return await _release_jobs(con, org, [worker_id], reason, now)
        return await self._db.transaction(unit)

    async def expire(self, reason: str, *, now: Now = None, limit: int = 100) -> ExpireResult:
        """One bounded batch: workers whose last heartbeat is older than 3 of their intervals -> offline, and
        their processing jobs released, in one transaction. Safe with several instances: workers and jobs are
        picked FOR UPDATE SKIP LOCKED (a job locked by a concurrent transaction is left to the lease reaper)."""
        async def unit(con):
            stmt = Q.worker_expire
            rows = await con.fetch(stmt.sql, *stmt.args(now=now, limit=limit))
            by_org: dict[uuid.UUID, list[str]] = {}
            for r in rows:
                by_org.setdefault(r["organization_id"], []).append(r["id"])
            released = 0
            for org_id, ids in by_org.items():
                released += await _release_jobs(con, org_id, ids, reason, now)
            return ExpireResult(len(rows), released)
        return await self._db.transaction(unit)


async def _release_jobs(con, org: uuid.UUID, worker_ids: list[str], reason: str, now: Now) -> int:
    """Release every processing job of these workers (reap_leases in batches, inside the caller's transaction)."""
    stmt = Q.reap_leases
    total = 0
    while True:
        row = await con.fetchrow(stmt.sql, *stmt.args(worker_ids=worker_ids, org=org, reason=reason, now=now,
                                                      limit=RELEASE_BATCH))
        total += row["released"]
        if row["released"] < RELEASE_BATCH:
            return total
