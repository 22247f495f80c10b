"""Time-driven transitions, safe with many instances (the store's statements pick rows FOR UPDATE SKIP LOCKED):
expire jobs past `expires_at`, release expired leases to the retry path, promote due scheduled jobs."""

from __future__ import annotations

import datetime as dt

import attrs

from spooled.store.maintenance import MaintenanceStore

LEASE_EXPIRED = "lease expired"


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
    def __init__(self, store: MaintenanceStore):
        self._store = store

    async def run_once(self, now: dt.datetime | None = None, limit: int = 1000) -> ReapResult:
        """One bounded batch of each transition; `now=None` means the database clock."""
        expired = await self._store.expire_jobs(now=now, limit=limit)
        released = await self._store.release_expired_leases(LEASE_EXPIRED, now=now, limit=limit)
        promoted = await self._store.promote_scheduled(now=now, limit=limit)
        return ReapResult(expired, released, promoted)
