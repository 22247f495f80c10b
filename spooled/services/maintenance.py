"""Time-driven transitions, safe with many instances (each statement picks rows FOR UPDATE SKIP LOCKED):
expire jobs past `expires_at`, release expired leases to the retry path, promote due scheduled jobs."""

from __future__ import annotations

import datetime as dt

import attrs

from spooled.store.db import Database
from spooled.store.sql import Q


@attrs.frozen
class ReapResult:
    expired: int
    released: int
    promoted: int

    @property
    def total(self) -> int:
        return self.expired + self.released + self.promoted

    def full(self, limit: int) -> bool:
        return max(self.expired, self.released, self.promoted) >= limit


class Maintenance:
    def __init__(self, db: Database):
        self._db = db

    async def run_once(self, now: dt.datetime | None = None, limit: int = 1000) -> ReapResult:
        """One bounded batch of each transition; `now=None` means the database clock."""
        expired = await self._db.fetchval(Q.reap_expired_jobs, now=now, limit=limit)
        released = await self._db.fetchrow(Q.reap_leases, now=now, limit=limit, reason="lease expired",
                                           worker_ids=None, org=None)
        promoted = await self._db.fetchrow(Q.promote_scheduled, now=now, limit=limit)
        return ReapResult(expired, released["released"], promoted["promoted"])
