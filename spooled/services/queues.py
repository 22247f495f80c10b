"""Queues: configuration, pause/resume, stats. Queues are also created on first enqueue (jobs.sql)."""

from __future__ import annotations

import json

from spooled.domain import errors, inputs
from spooled.domain.ids import parse_id
from spooled.store.db import Database
from spooled.store.sql import Q


def _config_args(c: inputs.QueueConfig) -> dict:
    return dict(max_retries=c.max_retries, default_timeout=c.default_timeout, dead_letter=c.dead_letter,
                backoff_base=c.retry_backoff_base_secs, backoff_max=c.retry_backoff_max_secs,
                settings=json.dumps(c.settings) if c.settings is not None else None, enabled=c.enabled)


class Queues:
    def __init__(self, db: Database):
        self._db = db

    async def create(self, org: str, c: inputs.QueueConfig):
        if c.name is None:
            raise errors.invalid("name", "is required")
        row = await self._db.fetchrow(Q.queue_create, org=parse_id(org), name=c.name, rate_limit=c.rate_limit,
                                      concurrency_limit=c.concurrency_limit, **_config_args(c))
        if row is None:
            raise errors.Conflict(f"Queue {c.name} already exists")
        return row

    async def update(self, org: str, name: str, c: inputs.QueueConfig, present: set[str]):
        """Partial update; `present` are the keys the client sent (to tell `null` from absent)."""
        row = await self._db.fetchrow(
            Q.queue_update, org=parse_id(org), name=name, rate_limit=c.rate_limit,
            set_rate_limit="rate_limit" in present, concurrency_limit=c.concurrency_limit,
            set_concurrency_limit="concurrency_limit" in present, **_config_args(c))
        if row is None:
            raise errors.NotFound(f"Queue {name} not found")
        return row

    async def upsert(self, org: str, name: str, c: inputs.QueueConfig, present: set[str]):
        """PUT /queues/{name}/config: create with these settings, or update the existing queue."""
        row = await self._db.fetchrow(Q.queue_create, org=parse_id(org), name=name, rate_limit=c.rate_limit,
                                      concurrency_limit=c.concurrency_limit, **_config_args(c))
        return row if row is not None else await self.update(org, name, c, present)

    async def get(self, org: str, name: str):
        row = await self._db.fetchrow(Q.queue_get, org=parse_id(org), name=name)
        if row is None:
            raise errors.NotFound(f"Queue {name} not found")
        return row

    async def list(self, org: str) -> list:
        return await self._db.fetch(Q.queue_list, org=parse_id(org))

    async def delete(self, org: str, name: str, *, delete_jobs: bool) -> None:
        """Delete a queue; 409 while it has active jobs unless `delete_jobs` (which deletes all its jobs)."""
        org_id = parse_id(org)

        async def unit(con):
            async with con.transaction():
                if await con.fetchrow(Q.queue_get.sql, *Q.queue_get.args(org=org_id, name=name)) is None:
                    raise errors.NotFound(f"Queue {name} not found")
                active = await con.fetchval(Q.queue_active_jobs.sql, *Q.queue_active_jobs.args(org=org_id, name=name))
                if active and not delete_jobs:
                    raise errors.Conflict(f"Queue {name} has {active} active jobs; pass delete_jobs=true")
                await con.execute(Q.queue_delete_jobs.sql, *Q.queue_delete_jobs.args(org=org_id, name=name))
                await con.execute(Q.queue_delete.sql, *Q.queue_delete.args(org=org_id, name=name))
        await self._db.run(unit)

    async def pause(self, org: str, name: str, reason: str | None):
        row = await self._db.fetchrow(Q.queue_pause, org=parse_id(org), name=name, reason=reason)
        if row is None:
            raise errors.NotFound(f"Queue {name} not found")
        return row

    async def resume(self, org: str, name: str) -> float:
        """Resume; how long it was paused (0 if it was not)."""
        row = await self._db.fetchrow(Q.queue_resume, org=parse_id(org), name=name)
        if row is None:
            raise errors.NotFound(f"Queue {name} not found")
        return float(row["paused_secs"] or 0)

    async def stats(self, org: str, name: str, *, must_exist: bool = True):
        if must_exist:
            await self.get(org, name)
        return await self._db.fetchrow(Q.queue_stats, org=parse_id(org), name=name)
