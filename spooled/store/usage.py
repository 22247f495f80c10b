"""Usage counts for plan quotas and the registry of live server instances (queries/usage.sql)."""

from __future__ import annotations

import datetime as dt
import uuid

import attrs

from spooled.convert import from_row, from_rows
from spooled.domain.models import Instance, Usage
from spooled.store.db import Database
from spooled.store.sql import Q


@attrs.frozen
class OrgCounts:
    jobs_today: int
    active_jobs: int | None                # None where it was not asked for


class UsageStore:
    def __init__(self, db: Database):
        self._db = db

    async def add_jobs(self, day: dt.date, counts: dict[uuid.UUID, int]) -> dict[uuid.UUID, int]:
        """Add jobs created to today's counters (one statement); each organization's new total."""
        rows = await self._db.fetch(Q.usage_add_jobs, day=day, orgs=list(counts), counts=list(counts.values()))
        return {r["organization_id"]: r["jobs_created"] for r in rows}

    async def read(self, day: dt.date, orgs: list[uuid.UUID], count_active: list[uuid.UUID]
                   ) -> dict[uuid.UUID, OrgCounts]:
        """Today's jobs created for `orgs`, and their active jobs for those in `count_active`."""
        rows = await self._db.fetch(Q.usage_read, day=day, orgs=orgs, count_active=count_active)
        return {r["organization_id"]: OrgCounts(r["jobs_today"], r["active_jobs"]) for r in rows}

    async def counts(self, org: uuid.UUID, day: dt.date) -> Usage:
        return from_row(Usage, await self._db.fetchrow(Q.usage_counts, org=org, day=day))

    async def count(self, org: uuid.UUID, resource: str, *, excluding: str | None = None) -> int:
        """How many of `resource` the organization has now: statement `usage_count_<resource>` of usage.sql
        (queues, workers, webhooks, api_keys; a new countable resource adds its statement there)."""
        stmt = getattr(Q, f"usage_count_{resource}", None)
        if stmt is None:
            raise LookupError(f"no usage_count_{resource} statement in store/queries/usage.sql")
        values = {"org": org, "excluding": excluding} if "excluding" in stmt.params else {"org": org}
        return await self._db.fetchval(stmt, **values)

    async def queue_exists(self, org: uuid.UUID, name: str) -> bool:
        return await self._db.fetchval(Q.usage_queue_exists, org=org, name=name)

    async def reset(self, org: uuid.UUID, day: dt.date) -> None:
        await self._db.execute(Q.usage_reset, org=org, day=day)

    # -- instances -----------------------------------------------------------------------------------------
    async def heartbeat(self, instance: uuid.UUID, hostname: str, *, live_secs: float, forget_secs: float,
                        version: str | None = None, loops: str | None = None) -> int:
        """Record this instance alive (`loops`: its loop health as JSON text); how many instances are alive
        (itself included)."""
        return await self._db.fetchval(Q.instance_heartbeat, id=instance, hostname=hostname, version=version,
                                       loops=loops, live_secs=float(live_secs), forget_secs=float(forget_secs))

    async def instances(self, live_secs: float) -> list[Instance]:
        return from_rows(Instance, await self._db.fetch(Q.instance_list, live_secs=float(live_secs)))

    async def remove_instance(self, instance: uuid.UUID) -> None:
        await self._db.execute(Q.instance_remove, id=instance)
