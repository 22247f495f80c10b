"""Retention's deletes (queries/retention.sql): each statement removes one bounded batch picked FOR UPDATE SKIP
LOCKED, so several instances pruning at once take disjoint rows. Each runs with sequential scans off (`pinned`):
a generic plan made while the tables were small would otherwise keep scanning jobs whole once they have grown.
And with JIT off: the organizations scan (no alternative to a sequential scan there) then costs 10^10, and JIT
compiled every statement for 1.2 s (measured by scripts/bench/growth.py: 1.4 s a batch, against 40 ms)."""

from __future__ import annotations

import datetime as dt

from spooled.domain.plans import RetentionWindows as Windows
from spooled.store.db import Database
from spooled.store.sql import Q, Statement, pinned

Now = dt.datetime | None


class RetentionStore:
    def __init__(self, db: Database):
        self._db = db

    async def _delete(self, stmt: Statement, **values) -> int:
        return await self._db.run(lambda con: pinned(con, stmt, **values))

    async def schedule_runs(self, w: Windows, now: Now, limit: int) -> int:
        return await self._delete(Q.retention_schedule_runs, now=now, limit=limit, tiers=list(w.tiers),
                                  history_days=list(w.history_days))

    async def jobs(self, w: Windows, now: Now, limit: int) -> int:
        return await self._delete(Q.retention_jobs, now=now, limit=limit, tiers=list(w.tiers),
                                  job_days=list(w.job_days), deadletter_days=w.deadletter_days)

    async def workflows(self, w: Windows, now: Now, limit: int) -> int:
        return await self._delete(Q.retention_workflows, now=now, limit=limit, tiers=list(w.tiers),
                                  job_days=list(w.job_days), deadletter_days=w.deadletter_days)

    async def webhook_deliveries(self, w: Windows, now: Now, limit: int) -> int:
        return await self._delete(Q.retention_webhook_deliveries, now=now, limit=limit, tiers=list(w.tiers),
                                  history_days=list(w.history_days))

    async def inbound_webhooks(self, w: Windows, now: Now, limit: int) -> int:
        return await self._delete(Q.retention_inbound_webhooks, now=now, limit=limit, tiers=list(w.tiers),
                                  history_days=list(w.history_days))

    async def refresh_tokens(self, *, now: Now, limit: int) -> int:
        return await self._delete(Q.retention_refresh_tokens, now=now, limit=limit)

    async def email_codes(self, *, now: Now, limit: int) -> int:
        return await self._delete(Q.retention_email_codes, now=now, limit=limit)

    async def stripe_events(self, *, now: Now, limit: int) -> int:
        return await self._delete(Q.retention_stripe_events, now=now, limit=limit)

    async def usage_days(self, *, now: Now, limit: int) -> int:
        return await self._delete(Q.retention_usage_days, now=now, limit=limit)

    async def workers(self, *, now: Now, limit: int) -> int:
        return await self._delete(Q.retention_workers, now=now, limit=limit)
