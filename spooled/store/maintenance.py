"""The reaper's statements (queries/maintenance.sql): each picks a bounded batch FOR UPDATE SKIP LOCKED, so
any number of instances can run them at once."""

from __future__ import annotations

import datetime as dt

from spooled.store.db import Database
from spooled.store.sql import Q

Now = dt.datetime | None


class MaintenanceStore:
    def __init__(self, db: Database):
        self._db = db

    async def expire_jobs(self, *, now: Now, limit: int) -> int:
        """pending/scheduled jobs past expires_at -> cancelled; how many."""
        return await self._db.fetchval(Q.reap_expired_jobs, now=now, limit=limit)

    async def release_expired_leases(self, reason: str, *, now: Now, limit: int) -> int:
        """processing jobs whose lease expired -> the retry path (waking claimers); how many."""
        row = await self._db.fetchrow(Q.reap_leases, now=now, limit=limit, reason=reason, worker_ids=None, org=None)
        return row["released"]

    async def promote_scheduled(self, *, now: Now, limit: int) -> int:
        """due scheduled jobs -> pending (waking claimers); how many."""
        return (await self._db.fetchrow(Q.promote_scheduled, now=now, limit=limit))["promoted"]
