"""Cron schedules: CRUD, pause/resume, manual triggers, run history, and the scheduler pass (`run_once`).

Exactly once per fire time, with any number of instances and across crashes (docs/architecture.md "The
scheduler"):
1. one transaction locks the due schedules (FOR UPDATE SKIP LOCKED), advances `next_run_at` and records each fire
   as a run: a promise to enqueue one job (a fire time is recorded at most once: a unique index);
2. the job is enqueued through `Jobs.enqueue` with the run's id in its idempotency key;
3. the run records its job id.
A crash after 1 leaves a run without a job, which any instance retries after `RETRY_SECS` (store/schedules.py);
the key makes a retry after a crash between 2 and 3 return the job already enqueued instead of a second one.

Requests reach schedules through the caller's `Scope` (domain/scope.py): a schedule of a queue outside it is not
found, as another organization's. The scheduler itself fires every schedule.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import uuid

import attrs

from spooled.domain import cron as cron_mod
from spooled.domain import errors, firing, inputs
from spooled.domain.ids import parse_id
from spooled.domain.models import RunToEnqueue, Schedule, ScheduleRun
from spooled.domain.scope import Scope
from spooled.services.jobs import Jobs, dumps, sized_json
from spooled.services.quotas import Quotas
from spooled.store.schedules import Due, ScheduleStore, ScheduleValues

log = logging.getLogger(__name__)
UTC = dt.timezone.utc


@attrs.frozen
class SchedulerResult:
    schedules: int     # due schedules taken
    fired: int         # runs that enqueued a job this pass
    skipped: int       # fires recorded as skipped (overlap)
    retried: int       # runs from an earlier pass whose job was enqueued now
    still_due: bool = False

    @property
    def total(self) -> int:
        return self.fired + self.skipped + self.retried

    def full(self, limit: int) -> bool:
        return self.still_due or self.schedules >= limit or self.retried >= limit


@functools.lru_cache(maxsize=1024)
def _cron(expression: str, timezone: str) -> cron_mod.Cron:
    return cron_mod.parse(expression, timezone)


def _missing() -> errors.NotFound:
    return errors.NotFound("Schedule not found")


def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(UTC)


def idempotency_key(run: RunToEnqueue) -> str:
    """The key of a run's job: one job per run, however often its enqueue is retried."""
    return f"schedule:{run.schedule_id}:run:{run.run_id}"


class Schedules:
    def __init__(self, store: ScheduleStore, jobs: Jobs, *, quotas: Quotas, max_payload_bytes: int = 1024 * 1024):
        self._store = store
        self._jobs = jobs
        self._quotas = quotas
        self._max_payload = max_payload_bytes

    def _template(self, value: object) -> str:
        return sized_json(value, self._max_payload, "payload_template")[0]

    # -- CRUD --------------------------------------------------------------------------------------------
    async def create(self, scope: Scope, c: inputs.CreateSchedule, *, now: dt.datetime | None = None) -> Schedule:
        """A new active schedule; ValidationFailed (nothing stored) for a bad cron expression or zone,
        QuotaExceeded when the plan's schedules are all taken."""
        scope.require(c.queue_name)
        cron = _cron(c.cron_expression, c.timezone)
        template = self._template(c.payload_template)
        await self._quotas.check(scope.org, "schedules", 1)
        v = ScheduleValues(
            name=c.name, description=c.description, cron_expression=cron.expression, timezone=c.timezone,
            queue_name=c.queue_name, payload_template=template, priority=c.priority,
            max_retries=c.max_retries, timeout_seconds=c.timeout_seconds,
            tags=dumps(c.tags) if c.tags is not None else None,
            metadata=dumps(c.metadata) if c.metadata is not None else None, catch_up=c.catch_up,
            overlap=c.overlap, is_active=True, next_run_at=cron.next_after(_now(now)))
        return await self._store.create(parse_id(scope.org), v, now)

    async def get(self, scope: Scope, schedule_id: str) -> Schedule:
        s = await self._store.get(parse_id(scope.org), parse_id(schedule_id, "Schedule"), scope.queues)
        if s is None:
            raise _missing()
        return s

    async def list(self, scope: Scope, *, queue_name: str | None = None, is_active: bool | None = None,
                   limit: int = 50, offset: int = 0) -> list[Schedule]:
        scope.require(queue_name)
        return await self._store.list(parse_id(scope.org), scope.queues, queue_name=queue_name,
                                      is_active=is_active, limit=limit, offset=offset)

    async def update(self, scope: Scope, schedule_id: str, u: inputs.UpdateSchedule, *,
                     now: dt.datetime | None = None) -> Schedule:
        """Partial update; a new cron expression or zone recomputes next_run_at (from now)."""
        scope.require(u.queue_name)
        template = self._template(u.payload_template) if u.payload_template is not None else None
        # Validate what was sent before taking the lock (the merge below then cannot fail).
        if u.cron_expression is not None:
            _cron(u.cron_expression, "UTC")
        if u.timezone is not None:
            cron_mod.zone(u.timezone)
        at = _now(now)

        def merge(s: Schedule) -> ScheduleValues:
            expression = u.cron_expression if u.cron_expression is not None else s.cron_expression
            timezone = u.timezone if u.timezone is not None else s.timezone
            next_run_at = s.next_run_at
            if u.cron_expression is not None or u.timezone is not None:
                cron = _cron(expression, timezone)
                expression = cron.expression
                next_run_at = cron.next_after(at) if s.is_active else None
            return ScheduleValues(
                name=_pick(u.name, s.name), description=_pick(u.description, s.description),
                cron_expression=expression, timezone=timezone, queue_name=_pick(u.queue_name, s.queue_name),
                payload_template=_pick(template, s.payload_template), priority=_pick(u.priority, s.priority),
                max_retries=_pick(u.max_retries, s.max_retries),
                timeout_seconds=_pick(u.timeout_seconds, s.timeout_seconds),
                tags=dumps(u.tags) if u.tags is not None else s.tags,
                metadata=dumps(u.metadata) if u.metadata is not None else s.metadata,
                catch_up=_pick(u.catch_up, s.catch_up), overlap=_pick(u.overlap, s.overlap), is_active=s.is_active,
                next_run_at=next_run_at)
        return await self._change(scope, schedule_id, merge, now)

    async def _change(self, scope: Scope, schedule_id, merge, now) -> Schedule:
        s = await self._store.update(parse_id(scope.org), parse_id(schedule_id, "Schedule"), scope.queues, merge,
                                     now)
        if s is None:
            raise _missing()
        return s

    async def delete(self, scope: Scope, schedule_id: str) -> None:
        if not await self._store.delete(parse_id(scope.org), parse_id(schedule_id, "Schedule"), scope.queues):
            raise _missing()

    async def pause(self, scope: Scope, schedule_id: str, *, now: dt.datetime | None = None) -> Schedule:
        """Stop firing (next_run_at becomes null); manual triggers still work."""
        return await self._change(scope, schedule_id,
                                  lambda s: attrs.evolve(_values(s), is_active=False, next_run_at=None), now)

    async def resume(self, scope: Scope, schedule_id: str, *, now: dt.datetime | None = None) -> Schedule:
        """Fire again from the next fire time after now (fires missed while paused are not caught up)."""
        at = _now(now)

        def merge(s: Schedule) -> ScheduleValues:
            if s.is_active:
                return _values(s)
            return attrs.evolve(_values(s), is_active=True,
                                next_run_at=_cron(s.cron_expression, s.timezone).next_after(at))
        return await self._change(scope, schedule_id, merge, now)

    async def history(self, scope: Scope, schedule_id: str, *, limit: int = 20, offset: int = 0
                      ) -> list[ScheduleRun]:
        """The schedule's runs, newest first; each fired run's status is its job's."""
        org_id, sid = parse_id(scope.org), parse_id(schedule_id, "Schedule")
        runs = await self._store.history(org_id, sid, scope.queues, limit, offset)
        if not runs and await self._store.get(org_id, sid, scope.queues) is None:
            raise _missing()
        return runs

    # -- firing ------------------------------------------------------------------------------------------
    async def trigger(self, scope: Scope, schedule_id: str, *, now: dt.datetime | None = None
                      ) -> tuple[str, dt.datetime]:
        """Enqueue the template now (also while paused; run_count + 1): (job id, trigger time)."""
        run = await self._store.trigger(parse_id(scope.org), parse_id(schedule_id, "Schedule"), scope.queues, now)
        if run is None:
            raise _missing()
        job_id = await self._enqueue(run, now)
        if job_id is None:
            raise errors.Conflict("The schedule's template could not be enqueued (see its run history)")
        return job_id, run.fire_time

    async def run_once(self, now: dt.datetime | None = None, limit: int = 100) -> SchedulerResult:
        """One scheduler pass: fire up to `limit` due schedules, then retry up to `limit` fired runs whose job
        an earlier pass never recorded. `now=None` means the database clock."""
        fired = await self._store.fire_due(now, limit, self._plan)
        for run in fired.runs:
            await self._enqueue(run, now)
        retried = await self._store.unfilled(now, limit)
        for run in retried:
            await self._enqueue(run, now)
        return SchedulerResult(fired.schedules, len(fired.runs), fired.skipped, len(retried), fired.still_due)

    @staticmethod
    def _plan(due: Due, at: dt.datetime) -> firing.FirePlan:
        s = due.schedule
        try:
            cron = _cron(s.cron_expression, s.timezone)
        except errors.ValidationFailed as exc:   # e.g. a zone the system's tz database no longer has
            log.warning("schedule %s stops: %s", s.id, exc.message)
            return firing.FirePlan([], [], None)
        return firing.plan(cron, s.next_run_at, at, catch_up=s.catch_up, overlap=s.overlap,
                           previous_active=due.previous_active)

    async def _enqueue(self, run: RunToEnqueue, now: dt.datetime | None) -> str | None:
        """Enqueue a fired run's job (idempotent per run) and record it on the run; None when refused."""
        spec = inputs.JobSpec(
            payload=json.loads(run.payload_template), priority=run.priority, max_retries=run.max_retries,
            timeout_seconds=run.timeout_seconds, tags=json.loads(run.tags) if run.tags is not None else None,
            idempotency_key=idempotency_key(run))
        try:
            (res,) = await self._jobs.enqueue(Scope(str(run.organization_id)), run.queue_name, [spec], now=now)
        except errors.Unavailable:
            raise
        except errors.DomainError as exc:
            log.warning("schedule %s: run %s refused: %s", run.schedule_id, run.run_id, exc.message)
            await self._store.refused(run.run_id, exc.message, now)
            return None
        await self._store.enqueued(run.run_id, uuid.UUID(res.job_id))
        return res.job_id


def _pick(new, old):
    return new if new is not None else old


def _values(s: Schedule) -> ScheduleValues:
    return ScheduleValues(**{f.name: getattr(s, f.name) for f in attrs.fields(ScheduleValues)})
