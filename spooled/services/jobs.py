"""Jobs: the only writer of job state transitions (each one SQL statement guarded by the current state).

Every method takes the caller's `Scope` (domain/scope.py): a job of a queue outside it is not found and not
counted, exactly as another organization's job."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from functools import partial
from typing import Any

import attrs
import orjson
import trio

from spooled.convert import nul_path
from spooled.domain import errors, inputs
from spooled.domain.ids import db_id, new_job_ids, parse_id, try_id
from spooled.domain.models import HistoryEntry, Job, JobBrief, ListedJob
from spooled.domain.scope import Scope
from spooled.domain.states import RETRYABLE, JobStatus
from spooled.domain.tracecontext import TraceContext, from_carrier
from spooled.services.grouping import Grouper
from spooled.services.metrics import Metrics
from spooled.services.quotas import Quotas
from spooled.services.streams import POLL, Streams
from spooled.services.tracing import Tracing
from spooled.services.wakeups import Waiter, Wakeups
from spooled.store.jobs import Claimed, JobStore, NewJobs

Now = dt.datetime | None
log = logging.getLogger(__name__)


def _encode(value: Any) -> bytes:
    """User JSON as UTF-8 text, compact, key order kept. orjson (~10x the stdlib's speed); the stdlib for what
    orjson refuses: integers beyond 64 bits (kept exact), keys that are not strings. Values
    come from parsed JSON (REST refuses NaN and Infinity; gRPC's Struct gives them as strings), so orjson's
    null for a non-finite float never stands in for one; the stdlib fallback still refuses them."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _checked(value: Any, data: bytes) -> str:
    """`data` as text; a NUL character is refused whatever the transport: PostgreSQL stores it in `json` but
    cannot read it back as text (listings break)."""
    if b"\\u0000" in data:
        where = nul_path(value)
        if where is not None:
            raise errors.invalid(where or "json", "must not contain NUL (\\u0000) characters")
    return data.decode()


def dumps(value: Any) -> str:
    """User JSON to text for a `json` column (`_encode`, `_checked`)."""
    return _checked(value, _encode(value))


def sized_json(value: Any, limit: int, field: str) -> tuple[str, int]:
    """User JSON as stored text and its size in bytes; PayloadTooLarge naming `field` when over `limit`."""
    data = _encode(value)
    if len(data) > limit:
        raise errors.PayloadTooLarge(f"{field} is over the {limit} byte limit")
    return _checked(value, data), len(data)


@attrs.frozen
class Enqueued:
    job_id: str
    created: bool
    job: Job | None = None   # the inserted job, for a call of one job (None when its idempotency key matched one)


@attrs.frozen
class CompleteResult:
    job_id: str
    success: bool
    error: str | None = None   # "NOT_FOUND" | "LEASE_EXPIRED"


@attrs.frozen
class FailResult:
    will_retry: bool
    next_retry_delay_secs: int
    status: str


GIVE_BACK_TIMEOUT_SECS = 5.0    # bound on giving back the jobs of a cancelled claim
NO_LEASE = uuid.UUID(int=0)     # stands for a lease_id that is not a UUID: never a job's lease (those are random)
Completion = tuple[str, "str | None", "str | None", Any]    # (job_id, lease_id, worker_id, result)


@attrs.frozen
class _NewJob:
    """One validated job to insert: its column values (user JSON as text), its trace context and the prefix
    of its fields in error messages (`jobs[2].` in a bulk call)."""
    id: uuid.UUID
    payload: str
    priority: int
    max_retries: int | None
    timeout: int | None
    tags: str | None
    key: str | None
    webhook: str | None
    secret: str | None
    parent: uuid.UUID | None
    scheduled_at: dt.datetime | None
    expires_at: dt.datetime | None
    trace: TraceContext | None
    at: str


class Jobs:
    def __init__(self, store: JobStore, wakeups: Wakeups, *, quotas: Quotas, streams: Streams,
                 max_payload_bytes: int = 1024 * 1024, metrics: Metrics | None = None, tracing: Tracing | None = None):
        self._store = store
        self._quotas = quotas
        self._wakeups = wakeups
        self._streams = streams
        self._max_payload = max_payload_bytes
        self._completions = Grouper(self.complete_many)
        self._claims = Grouper(self._claim_group, concurrency=2, abandoned=self._give_back)
        self._enqueues = Grouper(self._enqueue_group)
        self._metrics = metrics if metrics is not None else Metrics(None)
        self._tracing = tracing if tracing is not None else Tracing()

    # -- enqueue ---------------------------------------------------------------------------------------
    async def enqueue(self, scope: Scope, queue: str, specs: list[inputs.JobSpec], *,
                      default_priority: int | None = None, default_max_retries: int | None = None,
                      default_timeout: int | None = None, trace: TraceContext | None = None, now: Now = None
                      ) -> list[Enqueued]:
        """Insert jobs into one queue in one statement. A known idempotency key returns the original id with
        created=False and changes nothing (also when identical requests race). A payload over the limit or a
        parent_job_id that is not a job of the organization (in scope) rejects the whole call, writing nothing.
        Each job keeps its own trace context, else the request's `trace` (services/tracing.py).

        A call of one job shares its statement with the concurrent calls of one job into the same queue and
        scope (`Grouper`, docs/architecture.md "Grouped enqueues"); each still gets its own answer or error."""
        scope.require(queue)
        many = len(specs) > 1
        rows, largest, ids = [], 0, new_job_ids(len(specs))
        for i, s in enumerate(specs):
            at = f"jobs[{i}]." if many else ""
            text, size = sized_json(s.payload, self._max_payload, at + "payload")
            largest = max(largest, size)
            if s.expires_at and s.scheduled_at and s.expires_at <= s.scheduled_at:
                raise errors.invalid(at + "expires_at", "must be after scheduled_at")
            parent = None
            if s.parent_job_id is not None:
                parent = try_id(s.parent_job_id)
                if parent is None:
                    raise _no_parent(at + "parent_job_id")
            rows.append(_NewJob(
                ids[i], text, s.priority if s.priority is not None else (default_priority or 0),
                s.max_retries if s.max_retries is not None else default_max_retries,
                s.timeout_seconds if s.timeout_seconds is not None else default_timeout,
                dumps(s.tags) if s.tags is not None else None, s.idempotency_key, s.completion_webhook,
                s.completion_webhook_secret, parent, s.scheduled_at, s.expires_at,
                from_carrier(s.traceparent, s.tracestate) or trace, at))
        await self._quotas.check_enqueue(scope.org, queue, len(specs), largest)
        key = (scope.org, queue, tuple(scope.queues), now)
        if not many:
            return [await self._enqueues.submit(key, rows[0])]
        results = await self._insert(key, rows, bulk=True)
        return results      # type: ignore[return-value]

    async def _enqueue_group(self, key: tuple, rows: list[_NewJob]) -> list[Enqueued | Exception]:
        """The grouped single enqueues of one key: one statement for all; when it fails with an error that is
        about the input (not the database being unavailable), each job alone, so that only its own caller sees
        it (nothing of the failed statement was kept)."""
        try:
            return await self._insert(key, rows, bulk=False)
        except errors.DomainError as exc:
            if len(rows) == 1 or isinstance(exc, errors.Unavailable):
                raise
        out: list[Enqueued | Exception] = []
        for row in rows:
            try:
                out += await self._insert(key, [row], bulk=False)
            except errors.DomainError as exc:
                out.append(exc)
        return out

    async def _insert(self, key: tuple, rows: list[_NewJob], *, bulk: bool) -> list[Enqueued | Exception]:
        """Insert `rows` in one statement. A parent that is not a job of the organization (in scope) rejects
        a `bulk` call (raised, nothing inserted), else only its own rows (their error in the result). A bulk
        call answers with ids only (no `Enqueued.job`)."""
        org, queue, queues, now = key
        out: list[Enqueued | Exception | None] = [None] * len(rows)
        todo = list(range(len(rows)))
        while todo:
            batch = [rows[i] for i in todo]
            takers = ([] if bulk or now is not None or any(r.parent is not None for r in batch)
                      else self._wakeups.reserve(org, queue, _due(batch)))
            try:
                with self._tracing.publishing(org, queue, [r.trace for r in batch]) as stored:
                    outcome = await self._store.insert(parse_id(org), queue, NewJobs(
                        ids=[r.id for r in batch], payloads=[r.payload for r in batch],
                        priorities=[r.priority for r in batch], max_retries=[r.max_retries for r in batch],
                        timeouts=[r.timeout for r in batch], tags=[r.tags for r in batch],
                        idempotency_keys=[r.key for r in batch], webhooks=[r.webhook for r in batch],
                        webhook_secrets=[r.secret for r in batch], parents=[r.parent for r in batch],
                        scheduled_ats=[r.scheduled_at for r in batch], expires_ats=[r.expires_at for r in batch],
                        traceparents=[c.traceparent if c else None for c in stored],
                        tracestates=[c.tracestate if c else None for c in stored]),
                        queues=queues, now=now, rows=not bulk, claimers=[w.handoff.claimer for w in takers],
                        handed=partial(_deliver, takers) if takers else None)
            finally:        # (the statement failed: no claim ran, each claims itself)
                for w in takers:
                    w.deliver(None)
            if outcome.missing_parents:     # nothing was inserted
                gone = [i for i in todo if rows[i].parent in outcome.missing_parents]
                if bulk:
                    raise _no_parent(rows[gone[0]].at + "parent_job_id")
                for i in gone:
                    out[i] = _no_parent(rows[i].at + "parent_job_id")
                todo = [i for i in todo if out[i] is None]
                continue
            created = len(outcome.inserted)
            self._quotas.enqueued(org, created)
            if created:
                self._metrics.series(org, queue).enqueued.inc(created)
            for i in todo:
                jid = rows[i].id
                out[i] = (Enqueued(str(jid), True, outcome.inserted[jid]) if jid in outcome.inserted
                          else Enqueued(str(outcome.existing[rows[i].key]), False))
            break
        return out      # type: ignore[return-value]

    # -- claim -----------------------------------------------------------------------------------------
    async def claim(self, scope: Scope, c: inputs.Claim, *, deadline: float | None = None, now: Now = None,
                    long_poll: bool = True) -> list[Job]:
        """Lease up to `c.limit` jobs, waiting (woken by LISTEN/NOTIFY through the wakeups, never polling) until
        at least one is available, `deadline` passes (Trio clock; default: now + `c.wait_secs`) or the server
        shuts down (then `[]`, without claiming).

        A waiting claim is a long poll: it holds a `POLL` slot (services/streams.py) while it waits; when this
        server or the organization is at its cap it does not wait (one claim, answered at once). Streams, which
        hold a `STREAM` slot of their own, claim with `long_poll=False`.

        Concurrent claims of one queue (and scope) share one claim statement (services/grouping.py): jobs go
        to them in arrival order, each its own.

        Cancel-safe: a cancellation before the claim returns ends it with nothing leased (jobs a shared claim
        statement took for it go back to pending as if never claimed, `_give_back`); once it has returned the
        caller holds the jobs (which it must then deliver, or release)."""
        scope.require(c.queue_name)
        started = trio.current_time()
        if deadline is None:
            deadline = started + c.wait_secs
        slot = None
        if long_poll and deadline > trio.current_time():
            slot = self._streams.try_open(scope.org, POLL)
            if slot is None:
                deadline = trio.current_time()      # at the cap: claim once, do not wait
        try:
            return await self._claim(scope, c, deadline, now, started)
        finally:
            if slot is not None:
                slot.release()

    async def _claim(self, scope: Scope, c: inputs.Claim, deadline: float, now: Now, started: float) -> list[Job]:
        org, queue = scope.org, c.queue_name
        group, claimer = (scope, queue, now), (c.worker_id, c.limit, float(c.lease_duration_secs))
        while True:
            await trio.lowlevel.checkpoint_if_cancelled()
            if self._wakeups.closed:
                return []
            with self._wakeups.waiting(org, queue) as w:   # registered before the claim: no lost wakeups
                claimed = await self._claims.submit(group, claimer)
                if not claimed.jobs:
                    if trio.current_time() >= deadline:
                        self._metrics.claim_waited(trio.current_time() - started, False)
                        return []
                    claimed = await self._idle(w, group, claimer, deadline)
                    if claimed is None or not claimed.jobs:
                        continue        # woken, the deadline (or a handoff found nothing for us): claim
                jobs = claimed.jobs
                pass_on = w.woken or (len(jobs) == c.limit and claimed.more)
            if pass_on:   # woken while claiming, or a full batch with jobs left: for the next waiter
                self._wakeups.notify(org, queue)
            m = self._metrics   # no checkpoint from the claim to the return (see above)
            m.claim_waited(trio.current_time() - started, True)
            m.series(org, queue).claimed.inc(len(jobs))
            m.queued(claimed.queued_secs)
            return self._tracing.delivered(queue, jobs, claimed.queued_secs)

    async def _idle(self, w: Waiter, group: tuple[Scope, str, Now], claimer: tuple[str, int, float],
                    deadline: float) -> Claimed | None:
        """Wait until woken or `deadline`; meanwhile an enqueue may claim for us (a handoff, only without an
        explicit `now`): then what it claimed for us, once its statement is over, else None. Cancelled with a
        handoff under way: its outcome is awaited (shielded) and what it claimed for us goes back to pending, as
        a cancelled shared claim's (`_give_back`)."""
        scope, queue, now = group
        if now is None:
            w.offer = claimer
        try:
            with trio.move_on_at(deadline):
                await w.event.wait()
            w.offer = None
            if w.handoff is None:
                return None
            if not w.handoff.done.is_set():     # (no checkpoint when it is)
                await w.handoff.done.wait()     # bounded by the enqueue's statement timeout
            return w.handoff.claimed
        except trio.Cancelled:
            w.offer = None
            if w.handoff is not None:
                with trio.CancelScope(shield=True):
                    await w.handoff.done.wait()
                    if w.handoff.claimed is not None:
                        await self._give_back(group, w.handoff.claimed)
            if w.woken:
                self._wakeups.notify(scope.org, queue)   # we will not claim: pass the wake on
            raise

    async def _claim_group(self, group: tuple[Scope, str, Now], claimers: list[tuple[str, int, float]]
                           ) -> list[Claimed]:
        """One claim statement for concurrent claimers (worker_id, limit, lease_secs) of one queue and scope."""
        scope, queue, now = group
        return await self._store.claim(parse_id(scope.org), queue, claimers, now=now)

    async def _give_back(self, group: tuple[Scope, str, Now], claimed: Claimed) -> None:
        """The jobs a shared claim took for a claimer cancelled meanwhile: back to pending, as if never claimed
        (bounded; if that fails their leases expire)."""
        if not claimed.jobs:
            return
        scope, _, now = group
        with trio.move_on_after(GIVE_BACK_TIMEOUT_SECS):
            try:
                await self._store.release_unsent(parse_id(scope.org), [j.id for j in claimed.jobs],
                                                 [j.lease_id for j in claimed.jobs], now=now)
            except Exception:
                log.exception("could not give back %d job(s) of a cancelled claim; their leases will expire",
                              len(claimed.jobs))

    # -- complete / fail / heartbeat -------------------------------------------------------------------
    async def complete_many(self, scope: Scope, items: list[Completion], *, now: Now = None
                            ) -> list[CompleteResult]:
        """Complete (job_id, lease_id, worker_id, result) items in one statement, each fenced by its own lease,
        or by its worker when it has no lease (api.md "Lease fencing"). Replaying a completion under the same
        fence succeeds again without changing anything."""
        results: list[CompleteResult | None] = [None] * len(items)
        ids, leases, workers, res, slots = [], [], [], [], []
        for i, (job_id, lease_id, worker_id, result) in enumerate(items):
            jid = db_id(job_id)
            if jid is None:
                results[i] = CompleteResult(str(job_id), False, "NOT_FOUND")
            elif not lease_id and not worker_id:
                results[i] = CompleteResult(str(job_id), False, "LEASE_EXPIRED")
            else:
                ids.append(jid)
                leases.append((db_id(lease_id) or NO_LEASE) if lease_id else None)
                workers.append(worker_id or None)
                res.append(dumps(result) if result is not None else None)
                slots.append(i)
        if ids:
            outcomes = await self._store.complete(parse_id(scope.org), ids, leases, workers, res, scope.queues,
                                                  now=now)
            done: dict[str, int] = {}      # completed per queue: one counter update per queue, not per job
            for i, o in zip(slots, outcomes, strict=True):
                ok = o.done or o.replay
                err = None if ok else "NOT_FOUND" if o.prior_status is None else "LEASE_EXPIRED"
                results[i] = CompleteResult(str(items[i][0]), ok, err)
                if o.done:
                    done[o.queue] = done.get(o.queue, 0) + 1
            for queue, n in done.items():
                self._metrics.series(scope.org, queue).completed.inc(n)
        return results  # type: ignore[return-value]

    async def complete(self, scope: Scope, job_id: str, lease_id: str | None, result: Any = None, *,
                       worker_id: str | None = None) -> None:
        """Complete one job held by `lease_id` (or by `worker_id`). Concurrent calls of one scope share one
        statement (services/grouping.py)."""
        parse_id(job_id)
        r = await self._completions.submit(scope, (job_id, lease_id, worker_id, result))
        if r.error == "NOT_FOUND":
            raise errors.NotFound("Job not found")
        if r.error:
            raise errors.LeaseExpired()

    async def fail(self, scope: Scope, job_id: str, f: inputs.Fail, *, now: Now = None) -> FailResult:
        jid = parse_id(job_id)
        lease = _fence(f.lease_id, f.worker_id)
        o = await self._store.fail(parse_id(scope.org), jid, lease, f.worker_id if lease is None else None, f.error,
                                   scope.queues, retry=f.retry is not False, now=now)
        if not o.done:
            raise _not_held(o.prior_status)
        s = self._metrics.series(scope.org, o.queue)
        (s.retried if o.will_retry else s.deadletter if o.status == "deadletter" else s.failed).inc()
        return FailResult(o.will_retry, int(round(o.delay)) if o.delay is not None else 0, o.status)

    async def heartbeat(self, scope: Scope, job_id: str, lease_id: str | None, lease_secs: int, *,
                        worker_id: str | None = None, now: Now = None) -> dt.datetime:
        """Extend a lease (given, or the one `worker_id` holds) to expire `lease_secs` from now; the new expiry."""
        jid = parse_id(job_id)
        lease = _fence(lease_id, worker_id)
        o = await self._store.heartbeat(parse_id(scope.org), jid, lease, worker_id if lease is None else None,
                                        float(lease_secs), scope.queues, now=now)
        if not o.done:
            raise _not_held(o.prior_status)
        return o.lease_expires_at  # type: ignore[return-value]

    # -- streaming delivery ----------------------------------------------------------------------------
    async def release_unsent(self, scope: Scope, leased: list[tuple[str, str]], *, now: Now = None) -> int:
        """Return jobs that were leased for a stream but could not be sent to pending, as if never claimed
        (no retry counted); `leased` holds (job_id, lease_id) of the caller's own claim (so in its scope). Each
        is fenced by its lease. How many."""
        pairs = _pairs(leased)
        if not pairs:
            return 0
        return await self._store.release_unsent(parse_id(scope.org), [p[0] for p in pairs], [p[1] for p in pairs],
                                                now=now)

    async def leases_held(self, scope: Scope, leased: list[tuple[str, str]]) -> set[str]:
        """The job ids among (job_id, lease_id) pairs whose lease is still current and unexpired (the caller's
        own leases: a lease id is a secret only its claim returned)."""
        pairs = _pairs(leased)
        if not pairs:
            return set()
        held = await self._store.leases_held(parse_id(scope.org), [p[0] for p in pairs], [p[1] for p in pairs])
        return {str(i) for i in held}

    # -- reads and manual transitions ------------------------------------------------------------------
    async def get(self, scope: Scope, job_id: str) -> Job:
        job = await self._store.get(parse_id(scope.org), parse_id(job_id), scope.queues)
        if job is None:
            raise errors.NotFound("Job not found")
        return job

    async def _conflict_or_missing(self, scope: Scope, jid: uuid.UUID, what: str) -> errors.DomainError:
        status = await self._store.status_of(parse_id(scope.org), jid, scope.queues)
        if status is None:
            return errors.NotFound("Job not found")
        return errors.Conflict(f"Cannot {what} a job that is {status}")

    async def retry(self, scope: Scope, job_id: str, *, now: Now = None) -> Job:
        """failed/deadletter/cancelled -> pending with a fresh retry budget; Conflict for a job whose dependencies
        can never be met any more (docs/api-notes.md "Workflows and job dependencies")."""
        jid, org_id = parse_id(job_id), parse_id(scope.org)
        job = await self._store.retry(org_id, jid, scope.queues, now=now)
        if job is None:
            status = await self._store.status_of(org_id, jid, scope.queues)
            if status is None:
                raise errors.NotFound("Job not found")
            if JobStatus(status) in RETRYABLE:      # refused by its dependencies
                raise errors.Conflict("Cannot retry this job: a dependency of it ended without completing, so it "
                                      "could never run; retry that dependency (its dependents come back with "
                                      "it) or the workflow")
            raise errors.Conflict(f"Cannot retry a job that is {status}")
        return job

    async def cancel(self, scope: Scope, job_id: str, *, now: Now = None) -> None:
        jid = parse_id(job_id)
        if not await self._store.cancel(parse_id(scope.org), jid, scope.queues, now=now):
            raise await self._conflict_or_missing(scope, jid, "cancel")

    async def set_priority(self, scope: Scope, job_id: str, priority: int) -> tuple[int, int]:
        jid = parse_id(job_id)
        changed = await self._store.set_priority(parse_id(scope.org), jid, priority, scope.queues)
        if changed is None:
            raise await self._conflict_or_missing(scope, jid, "change the priority of")
        return changed

    async def statuses(self, scope: Scope, ids: list[str]) -> list[JobBrief]:
        valid = [u for u in (try_id(i) for i in ids) if u is not None]
        return await self._store.statuses(parse_id(scope.org), valid, scope.queues) if valid else []

    async def history(self, scope: Scope, job_id: str, *, desc: bool = False, limit: int = 1000, offset: int = 0
                      ) -> list[HistoryEntry]:
        """The job's recorded transitions, oldest first (or newest first with `desc`)."""
        jid, org_id = parse_id(job_id), parse_id(scope.org)
        entries = await self._store.history(org_id, jid, scope.queues, desc=desc, limit=limit, offset=offset)
        if not entries and await self._store.status_of(org_id, jid, scope.queues) is None:
            raise errors.NotFound("Job not found")
        return entries

    async def counts(self, scope: Scope) -> dict[str, int]:
        counts = {s.value: 0 for s in JobStatus}
        counts.update(await self._store.counts(parse_id(scope.org), scope.queues))
        counts["total"] = sum(counts.values())
        return counts

    async def dlq_retry(self, scope: Scope, spec: inputs.DlqRetry) -> list[str]:
        """Dead-lettered jobs back to pending: those named (`job_ids`), or the oldest of `queue_name` (or of every
        queue in scope)."""
        scope.require(spec.queue_name)
        ids = None
        if spec.job_ids is not None:
            ids = [u for u in (try_id(i) for i in spec.job_ids) if u is not None]
        return [str(i) for i in await self._store.dlq_retry(parse_id(scope.org), spec.queue_name, ids, spec.limit,
                                                            scope.queues)]

    async def dlq_count(self, scope: Scope, queue: str | None = None) -> int:
        """How many dead letters the scope has (in `queue`, or in all its queues)."""
        scope.require(queue)
        return await self._store.dlq_count(parse_id(scope.org), queue, scope.queues)

    async def dlq_purge(self, scope: Scope, spec: inputs.DlqPurge) -> int:
        scope.require(spec.queue_name)
        return await self._store.dlq_purge(parse_id(scope.org), spec.queue_name, spec.older_than, spec.limit,
                                           scope.queues)

    async def list(self, scope: Scope, f: inputs.JobFilter, *, order_by: str = "created_at", desc: bool = True,
                   cursor: str | None = None, offset: int = 0, limit: int = 20) -> tuple[list[ListedJob], str | None]:
        """One page of jobs (of the scope's queues) and the cursor of the next page (None on the last page)."""
        if order_by not in inputs.JOB_ORDER_COLUMNS:
            raise errors.invalid("order_by", f"must be one of {', '.join(inputs.JOB_ORDER_COLUMNS)}")
        scope.require(f.queue_name)
        return await self._store.list(parse_id(scope.org), f, scope.queues, order_by=order_by, desc=desc,
                                      cursor=cursor, offset=offset, limit=limit)


def _deliver(takers: list[Waiter], shares: list[Claimed]) -> None:
    """Each reserved waiter its share of a handoff, as soon as the statement is back: called on the asyncio side
    (JobStore.insert's `handed`), so each waiter runs (and its worker is answered) without waiting for the
    enqueue's crossing back into Trio; setting a Trio event there is safe (the island runs in a Trio task)."""
    for w, claimed in zip(takers, shares):
        w.deliver(claimed)


def _due(rows: list[_NewJob]) -> int:
    """How many of the jobs are claimable at once (not scheduled for later): the waiters a handoff may serve."""
    now = dt.datetime.now(dt.timezone.utc)
    return sum(1 for r in rows if r.scheduled_at is None or r.scheduled_at <= now)


def _no_parent(field: str) -> errors.ValidationFailed:
    return errors.invalid(field, "must be the id of a job of this organization")


def _fence(lease_id: str | None, worker_id: str | None) -> uuid.UUID | None:
    """The lease to fence by (None: fence by the worker). A lease that is not a UUID holds nothing."""
    if not lease_id:
        if not worker_id:
            raise errors.invalid("lease_id", "is required (or worker_id)")
        return None
    return try_id(lease_id) or NO_LEASE


def _not_held(prior_status: str | None) -> errors.DomainError:
    return errors.NotFound("Job not found") if prior_status is None else errors.LeaseExpired()


def _pairs(leased: list[tuple[str, str]]) -> list[tuple[uuid.UUID, uuid.UUID]]:
    return [(j, lease) for j, lease in ((try_id(a), try_id(b)) for a, b in leased) if j and lease]
