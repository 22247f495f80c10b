"""The dashboard summary's reads (queries/dashboard.sql): bounded index range scans, one unit of work.

Each count stops at a cap instead of scanning an organization's history; a maintained counter (shared with the
Prometheus metrics) would make the large ones exact and free — it would replace this one method.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Sequence

from spooled.convert import from_row, from_rows
from spooled.domain.models import JobCounts, QueueLoad, Summary, WorkerCounts
from spooled.store.db import Database
from spooled.store.sql import Q

COUNT_CAP = 10_000         # per organization-wide count (and the running jobs scanned for the queues)
QUEUE_COUNT_CAP = 1_000    # per queue count of ready jobs
MAX_QUEUES = 50

# Pin the plans (as spooled_ready_jobs does for the claim): with sorts, bitmap and sequential scans off, the only
# plans left walk an index in the order of the count's ORDER BY and stop at its LIMIT, whatever the statistics
# say. Without this, a range the statistics think small is read whole (bitmap scan, then sort) even when it is
# not. JIT compilation would cost more than these short scans.
PLAN_SETTINGS = ("SET LOCAL enable_sort = off", "SET LOCAL enable_bitmapscan = off",
                 "SET LOCAL enable_seqscan = off", "SET LOCAL jit = off")


class DashboardStore:
    def __init__(self, db: Database):
        self._db = db

    async def summary(self, org: uuid.UUID, queues: Sequence[str] = (), now: dt.datetime | None = None) -> Summary:
        """Job counts, the first MAX_QUEUES queues' load and the worker counts (three statements, one crossing),
        of `queues` only when it is not empty (a restricted caller's scope: dashboard_jobs_in_queues)."""
        async def unit(con):
            async with con.transaction(isolation="repeatable_read", readonly=True):   # one snapshot
                await con.execute("; ".join(PLAN_SETTINGS))
                return await reads(con)

        async def reads(con):
            if queues:
                jobs = await con.fetchrow(Q.dashboard_jobs_in_queues.sql, *Q.dashboard_jobs_in_queues.args(
                    org=org, now=now, cap=COUNT_CAP, queues=queues))
            else:
                jobs = await con.fetchrow(Q.dashboard_jobs.sql, *Q.dashboard_jobs.args(org=org, now=now,
                                                                                       cap=COUNT_CAP))
            loads = await con.fetch(*Q.dashboard_queues.bind(
                org=org, cap=QUEUE_COUNT_CAP, running_cap=COUNT_CAP, max_queues=MAX_QUEUES, queues=queues))
            workers = await con.fetchrow(*Q.dashboard_workers.bind(org=org, now=now,
                                                                                          queues=queues))
            return jobs, loads, workers
        jobs, loads, workers = await self._db.run(unit)
        return Summary(from_row(JobCounts, jobs), from_rows(QueueLoad, loads), from_row(WorkerCounts, workers),
                       COUNT_CAP)
