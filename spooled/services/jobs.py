"""Jobs: the only writer of job state transitions (each one SQL statement guarded by the current state)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import attrs
import trio

from spooled.domain import errors, inputs
from spooled.domain.ids import new_job_id, parse_id, try_id
from spooled.domain.states import JobStatus
from spooled.services.grouping import CompletionGrouper
from spooled.services.wakeups import Wakeups
from spooled.store.db import Database
from spooled.store.listing import ORDER_COLUMNS, JobFilter, decode_cursor, encode_cursor, list_jobs_sql
from spooled.store.sql import Q

Now = dt.datetime | None


def dumps(value: Any) -> str:
    """User JSON to text for a `json` column; key order and big integers are kept."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@attrs.frozen
class Enqueued:
    job_id: str
    created: bool
    row: Any = None   # the inserted job (None when an idempotency key matched an existing job)


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


async def _insert(con, stmt_args: list, ids: list[uuid.UUID], keys: list[str | None], key_stmt: str,
                  org: uuid.UUID):
    """job_insert, then (same connection, fresh snapshot) the ids behind idempotency keys that hit a conflict,
    including rows another transaction committed while we ran."""
    rows = await con.fetch(Q.job_insert.sql, *stmt_args)
    inserted = {r["id"]: r for r in rows}
    missing = [k for k, i in zip(keys, ids) if k is not None and i not in inserted]
    existing = {}
    if missing:
        existing = {r["idempotency_key"]: r["id"] for r in await con.fetch(key_stmt, org, missing)}
    return inserted, existing


class Jobs:
    def __init__(self, db: Database, wakeups: Wakeups, *, max_payload_bytes: int = 1024 * 1024):
        self._db = db
        self._wakeups = wakeups
        self._max_payload = max_payload_bytes
        self._completions = CompletionGrouper(self.complete_many)

    # -- enqueue ---------------------------------------------------------------------------------------
    async def enqueue(self, org: str, queue: str, specs: list[inputs.JobSpec], *, default_priority: int | None = None,
                      default_max_retries: int | None = None, default_timeout: int | None = None,
                      now: Now = None) -> list[Enqueued]:
        """Insert jobs into one queue in one statement. A known idempotency key returns the original id with
        created=False and changes nothing (also when identical requests race)."""
        payloads = []
        for i, s in enumerate(specs):
            text = dumps(s.payload)
            if len(text.encode()) > self._max_payload:
                where = f"jobs[{i}].payload" if len(specs) > 1 else "payload"
                raise errors.PayloadTooLarge(f"{where} is over the {self._max_payload} byte limit")
            payloads.append(text)
        for s in specs:
            if s.expires_at and s.scheduled_at and s.expires_at <= s.scheduled_at:
                raise errors.invalid("expires_at", "must be after scheduled_at")
        ids = [new_job_id() for _ in specs]
        keys = [s.idempotency_key for s in specs]
        org_id = parse_id(org)
        args = Q.job_insert.args(
            org=org_id, queue=queue, now=now, ids=ids, payloads=payloads,
            priorities=[s.priority if s.priority is not None else (default_priority or 0) for s in specs],
            max_retries=[s.max_retries if s.max_retries is not None else default_max_retries for s in specs],
            timeouts=[s.timeout_seconds if s.timeout_seconds is not None else default_timeout for s in specs],
            tags=[dumps(s.tags) if s.tags is not None else None for s in specs],
            idempotency_keys=keys, webhooks=[s.completion_webhook for s in specs],
            webhook_secrets=[s.completion_webhook_secret for s in specs],
            scheduled_ats=[s.scheduled_at for s in specs], expires_ats=[s.expires_at for s in specs])
        inserted, existing = await self._db.run(_insert, args, ids, keys, Q.job_ids_by_idempotency_key.sql, org_id)
        out = []
        for job_id, key in zip(ids, keys):
            if job_id in inserted:
                out.append(Enqueued(str(job_id), True, inserted[job_id]))
            else:
                out.append(Enqueued(str(existing[key]), False))
        return out

    # -- claim -----------------------------------------------------------------------------------------
    async def claim(self, org: str, c: inputs.Claim, *, deadline: float | None = None, now: Now = None) -> list:
        """Lease up to `c.limit` jobs, waiting (woken by LISTEN/NOTIFY through the wakeups, never polling) until
        at least one is available, `deadline` passes (Trio clock; default: now + `c.wait_secs`) or the server
        shuts down (then `[]`, without claiming).

        Cancel-safe: the claim statement runs shielded and its rows are returned with no checkpoint after it, so
        a cancellation either ends the wait with nothing leased or lands after the caller holds the rows (which
        it must then deliver, or release)."""
        if deadline is None:
            deadline = trio.current_time() + c.wait_secs
        org_id, queue = parse_id(org), c.queue_name
        while True:
            await trio.lowlevel.checkpoint_if_cancelled()
            if self._wakeups.closed:
                return []
            with self._wakeups.waiting(org, queue) as w:   # registered before the claim: no lost wakeups
                with trio.CancelScope(shield=True):
                    rows = await self._db.fetch(Q.job_claim, org=org_id, queue=queue, worker_id=c.worker_id,
                                                limit=c.limit, lease_secs=float(c.lease_duration_secs), now=now)
                if not rows:
                    if trio.current_time() >= deadline:
                        return []
                    try:
                        with trio.move_on_at(deadline):
                            await w.event.wait()
                    except trio.Cancelled:
                        if w.woken:
                            self._wakeups.notify(org, queue)   # we will not claim: pass the wake on
                        raise
                    continue
                pass_on = w.woken or len(rows) == c.limit
            if pass_on:   # woken while claiming, or a full batch: more may be there for the next waiter
                self._wakeups.notify(org, queue)
            return rows

    # -- complete / fail / heartbeat -------------------------------------------------------------------
    async def complete_many(self, org: str, items: list[tuple[str, str, Any]], *, now: Now = None
                            ) -> list[CompleteResult]:
        """Complete (job_id, lease_id, result) items, each fenced by its own lease, in one statement.
        Replaying a completion with the same lease succeeds again without changing anything."""
        results: list[CompleteResult | None] = [None] * len(items)
        ids, leases, res, slots = [], [], [], []
        for i, (job_id, lease_id, result) in enumerate(items):
            jid, lid = try_id(job_id), try_id(lease_id)
            if jid is None:
                results[i] = CompleteResult(str(job_id), False, "NOT_FOUND")
            elif lid is None:
                results[i] = CompleteResult(str(job_id), False, "LEASE_EXPIRED")
            else:
                ids.append(jid)
                leases.append(lid)
                res.append(dumps(result) if result is not None else None)
                slots.append(i)
        if ids:
            rows = await self._db.fetch(Q.job_complete, org=parse_id(org), ids=ids, leases=leases, results=res,
                                        now=now)
            for row in rows:
                i = slots[row["ord"] - 1]
                ok = row["done"] or (row["prior_status"] == "completed" and bool(row["same_lease"]))
                err = None if ok else "NOT_FOUND" if row["prior_status"] is None else "LEASE_EXPIRED"
                results[i] = CompleteResult(str(items[i][0]), ok, err)
        return results  # type: ignore[return-value]

    async def complete(self, org: str, job_id: str, lease_id: str, result: Any = None) -> None:
        """Complete one job held by `lease_id`. Concurrent calls share one statement (`CompletionGrouper`)."""
        parse_id(job_id)
        r = await self._completions.complete(org, (job_id, lease_id, result))
        if r.error == "NOT_FOUND":
            raise errors.NotFound("Job not found")
        if r.error:
            raise errors.LeaseExpired()

    async def fail(self, org: str, job_id: str, f: inputs.Fail, *, now: Now = None) -> FailResult:
        jid = parse_id(job_id)
        lease = try_id(f.lease_id)
        row = await self._db.fetchrow(Q.job_fail, org=parse_id(org), id=jid, lease=lease, error=f.error,
                                      retry=f.retry is not False, now=now)
        if not row["done"]:
            if row["prior_status"] is None:
                raise errors.NotFound("Job not found")
            raise errors.LeaseExpired()
        delay = row["delay"]
        return FailResult(bool(row["will_retry"]), int(round(delay)) if delay is not None else 0, row["status"])

    async def heartbeat(self, org: str, job_id: str, lease_id: str, lease_secs: int, *, now: Now = None
                        ) -> dt.datetime:
        """Extend a lease to expire `lease_secs` from now; the new expiry."""
        jid = parse_id(job_id)
        row = await self._db.fetchrow(Q.job_heartbeat, org=parse_id(org), id=jid, lease=try_id(lease_id),
                                      lease_secs=float(lease_secs), now=now)
        if not row["done"]:
            if row["prior_status"] is None:
                raise errors.NotFound("Job not found")
            raise errors.LeaseExpired()
        return row["lease_expires_at"]

    # -- reads and manual transitions ------------------------------------------------------------------
    async def get(self, org: str, job_id: str):
        row = await self._db.fetchrow(Q.job_get, org=parse_id(org), id=parse_id(job_id))
        if row is None:
            raise errors.NotFound("Job not found")
        return row

    async def _conflict_or_missing(self, org: str, jid: uuid.UUID, what: str) -> errors.DomainError:
        status = await self._db.fetchval(Q.job_status_of, org=parse_id(org), id=jid)
        if status is None:
            return errors.NotFound("Job not found")
        return errors.Conflict(f"Cannot {what} a job that is {status}")

    async def retry(self, org: str, job_id: str, *, now: Now = None):
        """failed/deadletter/cancelled -> pending with a fresh retry budget."""
        jid = parse_id(job_id)
        row = await self._db.fetchrow(Q.job_retry, org=parse_id(org), id=jid, now=now)
        if row is None:
            raise await self._conflict_or_missing(org, jid, "retry")
        return row

    async def cancel(self, org: str, job_id: str, *, now: Now = None) -> None:
        jid = parse_id(job_id)
        if await self._db.fetchval(Q.job_cancel, org=parse_id(org), id=jid, now=now) is None:
            raise await self._conflict_or_missing(org, jid, "cancel")

    async def set_priority(self, org: str, job_id: str, priority: int) -> tuple[int, int]:
        jid = parse_id(job_id)
        row = await self._db.fetchrow(Q.job_set_priority, org=parse_id(org), id=jid, priority=priority)
        if row is None:
            raise await self._conflict_or_missing(org, jid, "change the priority of")
        return row["old_priority"], row["new_priority"]

    async def statuses(self, org: str, ids: list[str]) -> list:
        valid = [u for u in (try_id(i) for i in ids) if u is not None]
        return await self._db.fetch(Q.job_statuses, org=parse_id(org), ids=valid) if valid else []

    async def history(self, org: str, job_id: str, *, desc: bool = False, limit: int = 1000, offset: int = 0
                      ) -> list:
        """The job's recorded transitions, oldest first (or newest first with `desc`)."""
        jid = parse_id(job_id)
        rows = await self._db.fetch(Q.job_history, org=parse_id(org), id=jid, desc=desc, limit=limit, offset=offset)
        if not rows and await self._db.fetchval(Q.job_status_of, org=parse_id(org), id=jid) is None:
            raise errors.NotFound("Job not found")
        return rows

    async def counts(self, org: str) -> dict[str, int]:
        counts = {s.value: 0 for s in JobStatus}
        for r in await self._db.fetch(Q.job_counts, org=parse_id(org)):
            counts[r["status"]] = r["n"]
        counts["total"] = sum(counts.values())
        return counts

    async def dlq_retry(self, org: str, spec: inputs.DlqRetry) -> list[str]:
        ids = None
        if spec.job_ids is not None:
            ids = [u for u in (try_id(i) for i in spec.job_ids) if u is not None]
        rows = await self._db.fetch(Q.dlq_retry, org=parse_id(org), queue=spec.queue_name, ids=ids,
                                    limit=spec.limit)
        return [str(r["id"]) for r in rows]

    async def dlq_purge(self, org: str, spec: inputs.DlqPurge) -> int:
        rows = await self._db.fetch(Q.dlq_purge, org=parse_id(org), queue=spec.queue_name,
                                    older_than=spec.older_than, limit=spec.limit)
        return len(rows)

    async def list(self, org: str, f: JobFilter, *, order_by: str = "created_at", desc: bool = True,
                   cursor: str | None = None, offset: int = 0, limit: int = 20) -> tuple[list, str | None]:
        """One page of jobs and the cursor of the next page (None on the last page)."""
        if order_by not in ORDER_COLUMNS:
            raise errors.invalid("order_by", f"must be one of {', '.join(ORDER_COLUMNS)}")
        after = decode_cursor(cursor, order_by) if cursor else None
        sql, args = list_jobs_sql(f, order_by, desc, after, 0 if after else offset, limit, parse_id(org))
        rows = await self._db.run(lambda con: con.fetch(sql, *args))
        if len(rows) <= limit:
            return rows, None
        last = rows[limit - 1]
        return rows[:limit], encode_cursor(last[order_by], last["id"])
