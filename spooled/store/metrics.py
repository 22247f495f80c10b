"""The job and worker counts behind /metrics (queries/metrics.sql): one instance per interval counts, every
instance reads the stored result (services/metrics.py)."""

from __future__ import annotations

import json

import attrs

from spooled.store.db import Database
from spooled.store.sql import Q

TIMEOUT_SECS = 30.0        # a count that takes longer is abandoned (the stored one stays, a little older)


@attrs.frozen
class Snapshot:
    taken_at: float                                  # Unix time (0: never taken)
    counts: list[tuple[str, str, str, int]]          # (organization id, queue, state, jobs)
    workers: list[tuple[str, int]]                   # (status, workers)
    recomputed: bool                                 # this call computed it


class MetricsStore:
    def __init__(self, db: Database):
        self._db = db

    async def snapshot(self, interval_secs: float) -> Snapshot:
        """The counts, recomputed here if none were taken within `interval_secs` (and nobody is taking them)."""
        take, read = Q.metrics_snapshot_take, Q.metrics_snapshot_read
        take_args = take.args(interval=float(interval_secs))

        async def unit(con):
            row = await con.fetchrow(take.sql, *take_args, timeout=TIMEOUT_SECS)
            if row is not None:
                return row, True
            return await con.fetchrow(read.sql), False
        row, recomputed = await self._db.run(unit)
        return Snapshot(row["taken_at"], [tuple(c) for c in json.loads(row["counts"])],
                        [tuple(w) for w in json.loads(row["workers"])], recomputed)
