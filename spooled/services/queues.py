"""Queues: configuration, pause/resume, stats. Queues are also created on first enqueue (jobs.sql)."""

from __future__ import annotations

import datetime as dt
import json
import math

from spooled.domain import errors, inputs
from spooled.domain.ids import parse_id
from spooled.domain.models import Paused, Queue, QueueStats, ThroughputBucket
from spooled.domain.scope import Scope
from spooled.services.quotas import Quotas
from spooled.store.queues import QueueStore, QueueValues


def _values(c: inputs.QueueConfig, present: set[str] = frozenset()) -> QueueValues:
    return QueueValues(
        max_retries=c.max_retries, default_timeout=c.default_timeout, rate_limit=c.rate_limit,
        concurrency_limit=c.concurrency_limit, dead_letter=c.dead_letter, backoff_base=c.retry_backoff_base_secs,
        backoff_max=c.retry_backoff_max_secs, settings=json.dumps(c.settings) if c.settings is not None else None,
        enabled=c.enabled, set_rate_limit="rate_limit" in present,
        set_concurrency_limit="concurrency_limit" in present)


def _missing(name: str) -> errors.NotFound:
    return errors.NotFound(f"Queue {name} not found")


THROUGHPUT_MINUTES = (1, 1440)      # GET /queues/{name}/throughput: the window, and the width of one bucket
BUCKET_SECS = (10, 3600)
MAX_BUCKETS = 1440

class Queues:
    def __init__(self, store: QueueStore, quotas: Quotas):
        self._store = store
        self._quotas = quotas

    async def create(self, org: str, c: inputs.QueueConfig) -> Queue:
        """POST /queues: a new queue; Conflict when it exists."""
        if c.name is None:
            raise errors.invalid("name", "is required")
        await self._quotas.check(org, "queues", 1)
        queue = await self._store.create(parse_id(org), c.name, _values(c))
        if queue is None:
            raise errors.Conflict(f"Queue {c.name} already exists")
        return queue

    async def update(self, org: str, name: str, c: inputs.QueueConfig, present: set[str]) -> Queue:
        """Partial update; `present` are the keys the client sent (to tell `null` from absent)."""
        queue = await self._store.update(parse_id(org), name, _values(c, present))
        if queue is None:
            raise _missing(name)
        return queue

    async def upsert(self, org: str, name: str, c: inputs.QueueConfig, present: set[str]) -> Queue:
        """PUT /queues/{name}/config: create with these settings, or update the existing queue."""
        await self._quotas.check(org, "queues", 1, excluding=name)
        queue = await self._store.create(parse_id(org), name, _values(c))
        return queue if queue is not None else await self.update(org, name, c, present)

    async def get(self, org: str, name: str) -> Queue:
        queue = await self._store.get(parse_id(org), name)
        if queue is None:
            raise _missing(name)
        return queue

    async def list(self, scope: Scope) -> list[Queue]:
        """The queues of the scope (a restricted key: only its queues), by name."""
        return await self._store.list(parse_id(scope.org), scope.queues)

    async def delete(self, org: str, name: str, *, delete_jobs: bool) -> None:
        """Delete a queue; Conflict while it has active jobs unless `delete_jobs` (which deletes all its jobs)."""
        outcome = await self._store.delete(parse_id(org), name, with_jobs=delete_jobs)
        if not outcome.found:
            raise _missing(name)
        if not outcome.deleted:
            raise errors.Conflict(f"Queue {name} has {outcome.active_jobs} active jobs; pass delete_jobs=true")

    async def pause(self, org: str, name: str, reason: str | None) -> Paused:
        paused = await self._store.pause(parse_id(org), name, reason)
        if paused is None:
            raise _missing(name)
        return paused

    async def resume(self, org: str, name: str) -> float:
        """Resume; how long it was paused (0 if it was not)."""
        secs = await self._store.resume(parse_id(org), name)
        if secs is None:
            raise _missing(name)
        return secs

    async def stats(self, org: str, name: str, *, must_exist: bool = True) -> QueueStats:
        if must_exist:
            await self.get(org, name)
        return await self._store.stats(parse_id(org), name)

    async def throughput(self, org: str, name: str, *, minutes: int = 60, bucket_secs: int = 60,
                         now: dt.datetime | None = None) -> list[ThroughputBucket]:
        """Finished jobs per `bucket_secs` over the last `minutes`, oldest first, one entry per bucket (zeros
        included, at most `MAX_BUCKETS`: the latest ones); buckets are aligned to multiples of `bucket_secs`
        since the epoch, the last one holds now."""
        lo, hi = THROUGHPUT_MINUTES
        if not lo <= minutes <= hi:
            raise errors.invalid("minutes", f"must be between {lo} and {hi}")
        lo, hi = BUCKET_SECS
        if not lo <= bucket_secs <= hi:
            raise errors.invalid("bucket_secs", f"must be between {lo} and {hi}")
        count = min(max(1, minutes * 60 // bucket_secs), MAX_BUCKETS)
        await self.get(org, name)
        now = now or dt.datetime.now(dt.timezone.utc)
        last = math.floor(now.timestamp() / bucket_secs) * bucket_secs
        first = last - (count - 1) * bucket_secs
        start = dt.datetime.fromtimestamp(first, dt.timezone.utc)
        seen = {int(b.start.timestamp()): b for b in await self._store.throughput(parse_id(org), name, start,
                                                                                  bucket_secs)}
        return [seen.get(t) or ThroughputBucket(dt.datetime.fromtimestamp(t, dt.timezone.utc), 0, 0)
                for t in range(first, last + 1, bucket_secs)]
