"""Queues in the database: each method runs named statements (queries/queues.sql) and returns domain models.

The store is the only layer that sees SQL, records and connections; it answers `None` (or a plain outcome)
where a row is missing and leaves the rule ("that is a 404", "active jobs block a delete") to the service.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Sequence

import attrs

from spooled.convert import from_row, from_rows
from spooled.domain.models import Paused, Queue, QueueStats, ThroughputBucket
from spooled.store.db import Database
from spooled.store.sql import Q, pinned


@attrs.frozen
class QueueValues:
    """Column values for a create or a partial update; None keeps the current value (or the default)."""
    max_retries: int | None = None
    default_timeout: int | None = None
    rate_limit: int | None = None
    concurrency_limit: int | None = None
    dead_letter: bool | None = None
    backoff_base: float | None = None
    backoff_max: float | None = None
    settings: str | None = None            # JSON text
    enabled: bool | None = None            # False pauses, True resumes
    set_rate_limit: bool = False           # update only: rate_limit given (None clears it)
    set_concurrency_limit: bool = False


@attrs.frozen
class DeleteOutcome:
    found: bool
    active_jobs: int = 0
    deleted: bool = False


class QueueStore:
    def __init__(self, db: Database):
        self._db = db

    async def create(self, org: uuid.UUID, name: str, v: QueueValues) -> Queue | None:
        """A new queue with these settings; None when the name is taken."""
        row = await self._db.fetchrow(Q.queue_create, org=org, name=name, **_create_args(v))
        return from_row(Queue, row) if row is not None else None

    async def update(self, org: uuid.UUID, name: str, v: QueueValues) -> Queue | None:
        """Partial update (resuming wakes the queue's claimers); None when there is no such queue."""
        row = await self._db.fetchrow(Q.queue_update, org=org, name=name, set_rate_limit=v.set_rate_limit,
                                      set_concurrency_limit=v.set_concurrency_limit, **_create_args(v))
        return from_row(Queue, row) if row is not None else None

    async def get(self, org: uuid.UUID, name: str) -> Queue | None:
        row = await self._db.fetchrow(Q.queue_get, org=org, name=name)
        return from_row(Queue, row) if row is not None else None

    async def list(self, org: uuid.UUID, queues: Sequence[str]) -> list[Queue]:
        return from_rows(Queue, await self._db.fetch(Q.queue_list, org=org, queues=queues))

    async def delete(self, org: uuid.UUID, name: str, *, with_jobs: bool) -> DeleteOutcome:
        """Delete the queue in one transaction: refused (nothing changed) while it has active jobs, unless
        `with_jobs`, which deletes every job of the queue first."""
        async def unit(con):
            if await con.fetchrow(Q.queue_get.sql, *Q.queue_get.args(org=org, name=name)) is None:
                return DeleteOutcome(found=False)
            active = await con.fetchval(Q.queue_active_jobs.sql, *Q.queue_active_jobs.args(org=org, name=name))
            if active and not with_jobs:
                return DeleteOutcome(found=True, active_jobs=active)
            await con.execute(Q.queue_delete_jobs.sql, *Q.queue_delete_jobs.args(org=org, name=name))
            await con.execute(Q.queue_delete.sql, *Q.queue_delete.args(org=org, name=name))
            return DeleteOutcome(found=True, active_jobs=active, deleted=True)
        return await self._db.transaction(unit)

    async def pause(self, org: uuid.UUID, name: str, reason: str | None) -> Paused | None:
        row = await self._db.fetchrow(Q.queue_pause, org=org, name=name, reason=reason)
        return from_row(Paused, row) if row is not None else None

    async def resume(self, org: uuid.UUID, name: str) -> float | None:
        """Resume (waking the queue's claimers); seconds it was paused (0 if it was not), None if missing."""
        row = await self._db.fetchrow(Q.queue_resume, org=org, name=name)
        return float(row["paused_secs"] or 0) if row is not None else None

    async def stats(self, org: uuid.UUID, name: str) -> QueueStats:
        row = await self._db.run(lambda con: pinned(con, Q.queue_stats, "fetchrow", org=org, name=name))
        return from_row(QueueStats, row)

    async def throughput(self, org: uuid.UUID, name: str, since: dt.datetime, bucket_secs: int
                         ) -> list[ThroughputBucket]:
        """Buckets that saw a finished job, oldest first (empty buckets are absent)."""
        return from_rows(ThroughputBucket, await self._db.fetch(Q.queue_throughput, org=org, name=name,
                                                                since=since, bucket_secs=bucket_secs))


def _create_args(v: QueueValues) -> dict:
    return dict(max_retries=v.max_retries, default_timeout=v.default_timeout, rate_limit=v.rate_limit,
                concurrency_limit=v.concurrency_limit, dead_letter=v.dead_letter, backoff_base=v.backoff_base,
                backoff_max=v.backoff_max, settings=v.settings, enabled=v.enabled)
