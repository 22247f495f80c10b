"""Plan quotas (api.md "Billing"): checked by the services that create things, before they create them.

    await quotas.check_enqueue(org, queue, n, largest_payload)   # Jobs.enqueue, before the insert
    quotas.enqueued(org, created)                                # Jobs.enqueue, after it
    await quotas.check(org, "queues" | "workers" | "webhooks" | "schedules" | "api_keys", 1)

Over a limit: `QuotaExceeded` (REST 429 QUOTA_EXCEEDED, gRPC RESOURCE_EXHAUSTED "... limit reached") and nothing
is created. A payload over the plan's size: `PayloadTooLarge` (413).

Cost on the hot path (enqueue):
- a plan without job limits (enterprise): one dict lookup (the organization's limits, primed by the
  authentication that admitted the request), nothing else;
- with limits: in-memory arithmetic on a cached per-organization count; no statement per enqueue, except the
  first enqueue of an organization on this instance (one read) and the first enqueue into a queue this
  instance has not seen for that organization when the plan limits queues (one probe).

How the counts stay fresh (`run_once`, every `quota_sync_secs`, off the hot path): jobs created are counted in
memory and added to `org_usage_daily` (one upsert for all organizations); then, for the organizations that
enqueued here recently, today's total (all instances) and, where the plan limits active jobs, their active
jobs are read back. Accuracy: an instance sees its own enqueues at once and other instances' within about
two sync intervals, so with N instances a limit can be overshot by what the other N-1 instances accept in that
time; jobs that finish are noticed at the next sync (a full organization may be refused for up to one interval
after its jobs complete). Counts of queues, workers, webhooks, schedules and API keys are read at create time
(small tables; concurrent creates can overshoot by their concurrency).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Callable

import attrs

from spooled.domain import errors
from spooled.domain.ids import parse_id
from spooled.domain.models import Usage
from spooled.domain.plans import Limits, resolve
from spooled.store.orgs import OrgStore
from spooled.store.usage import UsageStore

CACHE_TTL_SECS = 5.0        # limits of an organization: as long as the API-key cache
IDLE_SECS = 60.0            # an organization that stopped enqueueing here is no longer refreshed


def limits_of(plan_tier: str, custom_limits_text: str | None, operator: dict | None) -> Limits:
    return resolve(plan_tier, json.loads(custom_limits_text) if custom_limits_text else None, operator)


def utc_day(epoch: float) -> dt.date:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).date()


@attrs.define
class _Tracked:
    day: dt.date
    today: int                       # jobs created today, all instances, as last read
    active: int                      # active jobs, as last counted (0 when the plan does not limit them)
    added_active: int = 0            # enqueued here since that count
    queues: set = attrs.Factory(set)  # queue names known to exist
    used: float = 0.0


@attrs.frozen
class SyncResult:
    flushed: int
    refreshed: int

    @property
    def total(self) -> int:
        return 0        # routine: nothing worth a log line

    def full(self, limit: int) -> bool:
        return False


class Quotas:
    def __init__(self, orgs: OrgStore, usage: UsageStore, *, operator: dict | None = None,
                 clock: Callable[[], float] = time.time):
        self._orgs = orgs
        self._usage = usage
        self._operator = operator
        self.clock = clock
        self._limits: dict[str, tuple[Limits, float]] = {}
        self._tracked: dict[str, _Tracked] = {}
        self._pending: dict[str, int] = {}       # jobs created here, not yet added to the counters
        self._inflight: dict[str, int] = {}      # being added right now (still counted until read back)

    # -- limits ------------------------------------------------------------------------------------------
    def prime(self, org: str, limits: Limits) -> None:
        """Remember an organization's limits (the authenticator calls this with what it just loaded)."""
        if len(self._limits) > 10_000:
            self._limits.clear()
        self._limits[org] = (limits, self.clock() + CACHE_TTL_SECS)

    def forget(self, org: str) -> None:
        """The plan or limits changed: reload them on next use (other instances: within the cache period)."""
        self._limits.pop(org, None)
        self._tracked.pop(org, None)

    async def limits(self, org: str) -> Limits:
        hit = self._limits.get(org)
        if hit is not None and hit[1] > self.clock():
            return hit[0]
        found = await self._orgs.get(parse_id(org, "Organization"))
        if found is None:
            raise errors.NotFound("Organization not found")
        limits = limits_of(found.plan_tier, found.custom_limits, self._operator)
        self.prime(org, limits)
        return limits

    def limits_for_tier(self, tier: str, custom_limits_text: str | None = None) -> Limits:
        return limits_of(tier, custom_limits_text, self._operator)

    # -- jobs --------------------------------------------------------------------------------------------
    async def check_enqueue(self, org: str, queue: str, n: int, largest_payload: int = 0) -> None:
        """Before inserting `n` jobs into `queue`: the plan's payload size, jobs per day, active jobs and (for a
        queue the enqueue would create) queue count."""
        lim = await self.limits(org)
        if largest_payload > lim.max_payload_size_bytes:
            raise errors.PayloadTooLarge(f"payload is over the {lim.tier} plan's {lim.max_payload_size_bytes} "
                                         "byte limit")
        if lim.max_jobs_per_day is None and lim.max_active_jobs is None and lim.max_queues is None:
            return
        t = await self._track(org, lim)
        if lim.max_jobs_per_day is not None:
            today = t.today + self._inflight.get(org, 0) + self._pending.get(org, 0)
            if today + n > lim.max_jobs_per_day:
                raise errors.QuotaExceeded("jobs_per_day", today, lim.max_jobs_per_day, lim.tier, lim.upgrade_to)
        if lim.max_active_jobs is not None:
            active = t.active + t.added_active
            if active + n > lim.max_active_jobs:
                raise errors.QuotaExceeded("active_jobs", active, lim.max_active_jobs, lim.tier, lim.upgrade_to)
        if lim.max_queues is not None and queue not in t.queues:
            org_id = parse_id(org)
            if not await self._usage.queue_exists(org_id, queue):
                await self._check_count(org, lim, "queues", 1)
            t.queues.add(queue)

    def enqueued(self, org: str, n: int) -> None:
        """After inserting: `n` jobs were created (idempotent replays not included)."""
        if n:
            self._pending[org] = self._pending.get(org, 0) + n
            t = self._tracked.get(org)
            if t is not None:
                t.added_active += n

    async def _track(self, org: str, lim: Limits) -> _Tracked:
        now = self.clock()
        t = self._tracked.get(org)
        if t is None or t.day != utc_day(now):
            day = utc_day(now)
            counts = (await self._usage.read(day, [parse_id(org)],
                                             [parse_id(org)] if lim.max_active_jobs is not None else [])).get(
                parse_id(org))
            t = _Tracked(day, counts.jobs_today if counts else 0,
                         (counts.active_jobs or 0) if counts else 0)
            self._tracked[org] = t
        t.used = now
        return t

    # -- other resources ---------------------------------------------------------------------------------
    async def check(self, org: str, resource: str, n: int = 1, *, excluding: str | None = None,
                    current: int | None = None) -> None:
        """Before creating `n` of `resource` (queues, workers, webhooks, schedules, workflows, api_keys): refuse
        when the plan's limit would be passed. The count is read now (store/usage.py: `usage_count_<resource>`)
        unless the caller passes `current`; `excluding` is a worker id that re-registers (not counted twice)."""
        lim = await self.limits(org)
        if lim.limit_of(resource) is None:
            return
        await self._check_count(org, lim, resource, n, excluding=excluding, current=current)

    async def _check_count(self, org: str, lim: Limits, resource: str, n: int, *, excluding: str | None = None,
                           current: int | None = None) -> None:
        limit = lim.limit_of(resource)
        if limit is None:
            return
        if current is None:
            current = await self._usage.count(parse_id(org), resource, excluding=excluding)
        if current + n > limit:
            raise errors.QuotaExceeded(resource, current, limit, lim.tier, lim.upgrade_to)

    # -- reports -----------------------------------------------------------------------------------------
    async def usage(self, org: str) -> tuple[Limits, Usage]:
        """The organization's limits and usage now (jobs created here but not yet counted included)."""
        lim = await self.limits(org)
        u = await self._usage.counts(parse_id(org), utc_day(self.clock()))
        local = self._inflight.get(org, 0) + self._pending.get(org, 0)
        return lim, attrs.evolve(u, jobs_today=u.jobs_today + local) if local else u

    async def reset(self, org: str) -> None:
        """Zero today's job counter (admin `reset-usage`)."""
        await self._usage.reset(parse_id(org), utc_day(self.clock()))
        self._pending.pop(org, None)
        self._tracked.pop(org, None)

    # -- the sync loop -----------------------------------------------------------------------------------
    async def run_once(self, now: dt.datetime | None = None, limit: int = 10_000) -> SyncResult:
        """Add the jobs created here to the shared daily counters, then re-read the counts of the organizations
        that enqueued here recently. Safe with any number of instances (additive upserts)."""
        clock = self.clock()
        day = utc_day(clock)
        self._inflight, self._pending = self._pending, {}
        flushed = sum(self._inflight.values())
        try:
            if self._inflight:
                await self._usage.add_jobs(day, {parse_id(o): n for o, n in self._inflight.items()})
        except BaseException:
            for o, n in self._inflight.items():      # not counted: keep them for the next sync
                self._pending[o] = self._pending.get(o, 0) + n
            self._inflight = {}
            raise
        for org in [o for o, t in self._tracked.items() if clock - t.used > IDLE_SECS or t.day != day]:
            del self._tracked[org]
        refreshed = 0
        try:
            if self._tracked:
                orgs = list(self._tracked)[:limit]
                before = {o: self._tracked[o].added_active for o in orgs}
                active = [parse_id(o) for o in orgs if self._limits.get(o, (None,))[0] is not None
                          and self._limits[o][0].max_active_jobs is not None]
                counts = await self._usage.read(day, [parse_id(o) for o in orgs], active)
                for o in orgs:
                    t = self._tracked.get(o)
                    c = counts.get(parse_id(o))
                    if t is None or c is None:
                        continue
                    t.today = c.jobs_today
                    if c.active_jobs is not None:
                        t.active = c.active_jobs
                        t.added_active -= before[o]
                    refreshed += 1
        finally:
            self._inflight = {}
        return SyncResult(flushed, refreshed)
