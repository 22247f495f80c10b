"""Schedules and their runs in the database (queries/schedules.sql); returns domain models.

The transactions that need a rule in the middle (which fires are due, what a partial update merges to) take it
as a plain function from the service and run it while holding the rows' locks.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Callable, Sequence

import attrs

from spooled.convert import from_row, from_rows
from spooled.domain.firing import FirePlan
from spooled.domain.ids import new_job_id
from spooled.domain.models import RunToEnqueue, Schedule, ScheduleRun
from spooled.store.db import Database
from spooled.store.sql import Q

# A fired run's job is retried by any instance this long after the fire (or the last attempt) when its job was
# never recorded: far longer than an enqueue takes, so the firing instance normally does it.
RETRY_SECS = 30.0


@attrs.frozen
class ScheduleValues:
    """Every mutable column of a schedule (JSON columns as text)."""
    name: str
    description: str | None
    cron_expression: str
    timezone: str
    queue_name: str
    payload_template: str
    priority: int
    max_retries: int
    timeout_seconds: int
    tags: str | None
    metadata: str | None
    catch_up: str
    overlap: str
    is_active: bool
    next_run_at: dt.datetime | None


@attrs.frozen
class Due:
    """A due schedule, locked for this pass, with what the overlap rule needs."""
    schedule: Schedule
    previous_active: bool


@attrs.frozen
class FiredPass:
    runs: list[RunToEnqueue]      # fired runs to enqueue now
    schedules: int                # schedules taken this pass
    skipped: int
    still_due: bool               # a schedule has more due fires than one pass takes


class ScheduleStore:
    def __init__(self, db: Database):
        self._db = db

    async def create(self, org: uuid.UUID, v: ScheduleValues, now: dt.datetime | None) -> Schedule:
        row = await self._db.fetchrow(Q.schedule_create, id=new_job_id(), org=org, now=now, **attrs.asdict(v))
        return from_row(Schedule, row)

    async def get(self, org: uuid.UUID, schedule_id: uuid.UUID, queues: Sequence[str]) -> Schedule | None:
        row = await self._db.fetchrow(Q.schedule_get, org=org, id=schedule_id, queues=queues)
        return from_row(Schedule, row) if row is not None else None

    async def update(self, org: uuid.UUID, schedule_id: uuid.UUID, queues: Sequence[str],
                     merge: Callable[[Schedule], ScheduleValues], now: dt.datetime | None) -> Schedule | None:
        """Lock the schedule, `merge` it into new values (may raise: nothing changes) and store them; None when
        there is no such schedule (in `queues`)."""
        async def unit(con):
            row = await con.fetchrow(*Q.schedule_lock.bind(org=org, id=schedule_id,
                                                                                 queues=queues))
            if row is None:
                return None
            v = merge(from_row(Schedule, row))
            return await con.fetchrow(Q.schedule_update.sql, *Q.schedule_update.args(
                org=org, id=schedule_id, now=now, **attrs.asdict(v)))
        row = await self._db.transaction(unit)
        return from_row(Schedule, row) if row is not None else None

    async def list(self, org: uuid.UUID, queues: Sequence[str], *, queue_name: str | None, is_active: bool | None,
                   limit: int, offset: int) -> list[Schedule]:
        return from_rows(Schedule, await self._db.fetch(Q.schedule_list, org=org, queue_name=queue_name,
                                                        is_active=is_active, limit=limit, offset=offset,
                                                        queues=queues))

    async def delete(self, org: uuid.UUID, schedule_id: uuid.UUID, queues: Sequence[str]) -> bool:
        return await self._db.fetchval(Q.schedule_delete, org=org, id=schedule_id, queues=queues) is not None

    async def fire_due(self, now: dt.datetime | None, limit: int,
                       plan: Callable[[Due, dt.datetime], FirePlan]) -> FiredPass:
        """One transaction: lock up to `limit` due schedules (SKIP LOCKED), `plan` each at the database's `now`,
        advance them and record their runs. Fired runs are promises: the caller enqueues their jobs next
        (`enqueued`), and if it never does, `unfilled` hands them to another caller after RETRY_SECS."""
        async def unit(con):
            rows = await con.fetch(Q.schedule_lock_due.sql, *Q.schedule_lock_due.args(now=now, limit=limit))
            if not rows:
                return FiredPass([], 0, 0, False)
            at = rows[0]["db_now"]
            ids, nexts, lasts, counts = [], [], [], []
            run_ids, run_sids, run_orgs, fire_times, states = [], [], [], [], []
            to_enqueue: dict[uuid.UUID, RunToEnqueue] = {}
            skipped, still_due = 0, False
            for row in rows:
                s = from_row(Schedule, row)
                fires = plan(Due(s, bool(row["previous_active"])), at)
                ids.append(s.id)
                nexts.append(fires.next_run_at)
                lasts.append(fires.run[-1] if fires.run else None)
                counts.append(len(fires.run))
                still_due |= fires.still_due(at)
                skipped += len(fires.skipped)
                for state, times in (("fired", fires.run), ("skipped", fires.skipped)):
                    for t in times:
                        run_id = new_job_id()
                        run_ids.append(run_id)
                        run_sids.append(s.id)
                        run_orgs.append(s.organization_id)
                        fire_times.append(t)
                        states.append(state)
                        if state == "fired":
                            to_enqueue[run_id] = RunToEnqueue(
                                run_id, s.id, s.organization_id, t, False, s.queue_name, s.payload_template,
                                s.priority, s.max_retries, s.timeout_seconds, s.tags)
            recorded = await con.fetch(Q.schedule_record_fires.sql, *Q.schedule_record_fires.args(
                ids=ids, next_run_ats=nexts, last_run_ats=lasts, fired=counts, run_ids=run_ids,
                run_schedule_ids=run_sids, run_orgs=run_orgs, fire_times=fire_times, states=states, now=at,
                retry_secs=RETRY_SECS))
            kept = {r["id"] for r in recorded}
            runs = sorted((r for i, r in to_enqueue.items() if i in kept), key=lambda r: r.fire_time)
            return FiredPass(runs, len(rows), skipped, still_due)
        return await self._db.transaction(unit)

    async def trigger(self, org: uuid.UUID, schedule_id: uuid.UUID, queues: Sequence[str], now: dt.datetime | None
                      ) -> RunToEnqueue | None:
        """Record a manual fire (run_count + 1); None when there is no such schedule (in `queues`)."""
        row = await self._db.fetchrow(Q.schedule_trigger, org=org, id=schedule_id, run_id=new_job_id(), now=now,
                                      retry_secs=RETRY_SECS, queues=queues)
        return from_row(RunToEnqueue, row) if row is not None else None

    async def unfilled(self, now: dt.datetime | None, limit: int) -> list[RunToEnqueue]:
        """Fired runs whose job was never recorded, past their retry time (taken for another RETRY_SECS)."""
        return from_rows(RunToEnqueue, await self._db.fetch(Q.schedule_runs_unfilled, now=now, limit=limit,
                                                            retry_secs=RETRY_SECS))

    async def enqueued(self, run_id: uuid.UUID, job_id: uuid.UUID) -> bool:
        """Record the run's job; False when it already had one (or the schedule is gone)."""
        return await self._db.fetchval(Q.schedule_run_enqueued, run_id=run_id, job_id=job_id) is not None

    async def refused(self, run_id: uuid.UUID, error: str, now: dt.datetime | None) -> None:
        """The run's job cannot be enqueued (the template no longer fits): the run ends `failed`."""
        await self._db.fetchval(Q.schedule_run_refused, run_id=run_id, error=error, now=now)

    async def history(self, org: uuid.UUID, schedule_id: uuid.UUID, queues: Sequence[str], limit: int, offset: int
                      ) -> list[ScheduleRun]:
        return from_rows(ScheduleRun, await self._db.fetch(Q.schedule_history, org=org, id=schedule_id,
                                                           limit=limit, offset=offset, queues=queues))
