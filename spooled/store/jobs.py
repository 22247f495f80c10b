"""Jobs in the database: each method runs named statements (queries/jobs.sql) and returns domain models or a
plain outcome; the rules ("that is a 404", "a stale lease is 409") stay in `services/jobs.py`.

Every state transition is one statement guarded by the current state and recording job history in the same
statement (docs/architecture.md). The claim and complete statements are the hot path: one statement per batch.

`queues` is the caller's scope (domain/scope.py; empty: every queue): a job of another queue is not found and not
counted, as another organization's. Claim and insert name their queue (checked before they run).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Callable, Iterable, Mapping, Sequence

import attrs

from spooled.convert import from_row, from_rows
from spooled.domain.inputs import JobFilter
from spooled.domain.models import HistoryEntry, Job, JobBrief, ListedJob
from spooled.store.db import Database
from spooled.store.listing import decode_cursor, encode_cursor, list_jobs_sql
from spooled.store.sql import Q, pinned

Now = dt.datetime | None
_JOB_FIELDS = [a.name for a in attrs.fields(Job)]
_STARTED_AT, _UPDATED_AT = _JOB_FIELDS.index("started_at"), _JOB_FIELDS.index("updated_at")


@attrs.frozen
class NewJobs:
    """Column values for one enqueue (one element per job); user JSON already as text."""
    ids: list[uuid.UUID]
    payloads: list[str]
    priorities: list[int]
    max_retries: list[int | None]      # None: the queue's default
    timeouts: list[int | None]
    tags: list[str | None]
    idempotency_keys: list[str | None]
    webhooks: list[str | None]
    webhook_secrets: list[str | None]
    parents: list[uuid.UUID | None]
    scheduled_ats: list[dt.datetime | None]
    expires_ats: list[dt.datetime | None]
    traceparents: list[str | None]
    tracestates: list[str | None]


@attrs.frozen
class InsertOutcome:
    inserted: dict[uuid.UUID, Job | None]           # by the caller's id (the job: only when asked for its rows)
    existing: dict[str, uuid.UUID]                  # idempotency key -> the job that already had it
    missing_parents: frozenset[uuid.UUID] = frozenset()   # nothing was inserted when this is not empty
    claimed: list[Claimed] = attrs.Factory(list)          # with `claimers`: what each got (JobStore.insert)


@attrs.frozen
class Claimed:
    jobs: list[Job]
    queued_secs: list[float]    # per job: from when it became due (run_at) to its start
    more: bool = False          # ready jobs were left after this claim (or held by other claimers at that moment)


@attrs.frozen
class CompleteOutcome:
    done: bool                  # completed by this statement under the item's fence
    prior_status: str | None    # None: no such job in the organization
    replay: bool                # already completed under the same fence (an idempotent replay)
    queue: str | None = None    # the job's queue, when done


@attrs.frozen
class FailOutcome:
    done: bool
    prior_status: str | None
    status: str | None = None
    will_retry: bool = False
    delay: float | None = None
    queue: str | None = None


@attrs.frozen
class HeartbeatOutcome:
    done: bool
    prior_status: str | None
    lease_expires_at: dt.datetime | None = None


def _claim_values(claimers: Sequence[tuple[str, int, float]]) -> dict:
    """The claim statements' arrays for claimers (worker_id, limit, lease_secs)."""
    return dict(workers=[c[0] for c in claimers], limits=[c[1] for c in claimers],
                lease_secs=[c[2] for c in claimers])


def _claimed(claimers: int, shares: Iterable[tuple[int, Job, float, bool]]) -> list[Claimed]:
    """What each of `claimers` got from a claim's rows (claimer 1-based, job, queued_secs, more), in row order;
    `more` is the statement's, the same on every row (False with no rows)."""
    got: list[tuple[list[Job], list[float]]] = [([], []) for _ in range(claimers)]
    more = False
    for claimer, job, queued_secs, more in shares:
        jobs, queued = got[claimer - 1]
        jobs.append(job)
        queued.append(queued_secs)
    return [Claimed(jobs, queued, more) for jobs, queued in got]


async def _existing(con, org: uuid.UUID, new: NewJobs, inserted: Mapping[uuid.UUID, Any]) -> dict[str, uuid.UUID]:
    """(in a unit, after the insert) idempotency key -> the job that has it, for the keys of `new` whose job was not
    inserted: same connection, a fresh snapshot, so rows another transaction committed while we ran are seen."""
    lost = [k for k, i in zip(new.idempotency_keys, new.ids) if k is not None and i not in inserted]
    if not lost:
        return {}
    return {r["idempotency_key"]: r["id"] for r in
            await con.fetch(Q.job_ids_by_idempotency_key.sql, *Q.job_ids_by_idempotency_key.args(org=org, keys=lost))}


class JobStore:
    def __init__(self, db: Database):
        self._db = db

    # -- enqueue -------------------------------------------------------------------------------------------
    async def insert(self, org: uuid.UUID, queue: str, new: NewJobs, *, queues: Sequence[str],
                     now: Now = None, rows: bool = True, claimers: Sequence[tuple[str, int, float]] = (),
                     handed: Callable[[list[Claimed]], None] | None = None) -> InsertOutcome:
        """Insert the jobs into one queue in one statement (creating the queue on first use); a job whose
        idempotency key is taken is not inserted and the key's job is reported instead. When a parent_job_id is
        not a job of the organization (in `queues`) nothing is inserted. The inserted jobs are returned when
        `rows`, else only their ids (the values of `inserted` are None).

        With `claimers` (worker_id, limit, lease_secs; a handoff, services/wakeups.py; jobs without parents,
        `rows`), the same statement then claims for them as `claim` does, after the insert, in one commit
        (`InsertOutcome.claimed`, one per claimer); `handed` is called with the same list as soon as the statement
        is back (committed), on the asyncio side before the crossing back to Trio, and must not raise or block."""
        if claimers:
            return await self._insert_claim(org, queue, new, now, claimers, handed)
        parents = sorted({p for p in new.parents if p is not None})
        # a column with no value for any of the jobs goes as one NULL, not an array of NULLs: unnest pads it with
        # NULLs just the same, and the driver encodes an array element by element (~0.2 us each: most of a bulk
        # call's 14 columns are empty)
        columns = {k: (None if v.count(None) == len(v) else v) for k, v in attrs.asdict(new, recurse=False).items()}
        args = Q.job_insert.args(org=org, queue=queue, now=now, rows=rows, **columns)
        missing = Q.job_missing_parents.bind(org=org, ids=parents, queues=queues)

        async def unit(con):
            if parents:
                gone = frozenset(r["id"] for r in await con.fetch(*missing))
                if gone:
                    return InsertOutcome({}, {}, gone)
            got = await con.fetch(Q.job_insert.sql, *args)
            inserted = {r["id"]: from_row(Job, r["job"]) if rows else None for r in got}
            return InsertOutcome(inserted, await _existing(con, org, new, inserted))
        return await self._db.run(unit)

    async def _insert_claim(self, org: uuid.UUID, queue: str, new: NewJobs, now: Now,
                            claimers: Sequence[tuple[str, int, float]],
                            handed: Callable[[list[Claimed]], None] | None) -> InsertOutcome:
        assert not any(new.parents), "a handoff inserts no job with a parent"
        values = attrs.asdict(new, recurse=False)
        del values["parents"]
        sql, *args = Q.job_insert_claim.bind(org=org, queue=queue, now=now, **values,
                                             **_claim_values(claimers))

        async def unit(con):
            got = await con.fetch(sql, *args)
            inserted = {}
            shares = []     # (claimer, job, queued_secs, more), as `claim` reads job_claim_group's rows
            for claimer, row, more in got:
                job = from_row(Job, row)
                if claimer == 0:
                    inserted[job.id] = job
                else:
                    shares.append((claimer, job, (job.started_at - row["run_at"]).total_seconds(), more))
            claimed = _claimed(len(claimers), shares)
            if handed is not None:
                handed(claimed)
            return InsertOutcome(inserted, await _existing(con, org, new, inserted), claimed=claimed)
        return await self._db.whole(unit)

    # -- claim and settle ----------------------------------------------------------------------------------
    async def claim(self, org: uuid.UUID, queue: str, claimers: Sequence[tuple[str, int, float]], *,
                    now: Now = None) -> list[Claimed]:
        """Lease pending jobs of the queue to each claimer (worker_id, limit, lease_secs) in one statement, in claim
        order, claimer after claimer in the order given; what each claimer got (`more`: whether ready jobs were
        left, the same for all)."""
        rows = await self._db.fetch(Q.job_claim_group, org=org, queue=queue, now=now, **_claim_values(claimers))

        def shares():
            for r in rows:  # the columns: Job's fields in order, then queued_secs, claimer, more (job_claim_group)
                *fields, queued_secs, claimer, more = r
                fields[_UPDATED_AT] = fields[_STARTED_AT]      # the claim set both to its time (job_claim_group)
                yield claimer, Job(*fields), queued_secs, more
        return _claimed(len(claimers), shares())

    async def complete(self, org: uuid.UUID, ids: list[uuid.UUID | str], leases: list[uuid.UUID | str | None],
                       workers: list[str | None], results: list[str | None], queues: Sequence[str], *,
                       now: Now = None) -> list[CompleteOutcome]:
        """Complete every item in one statement, each fenced by its lease (or, without one, its worker); the
        outcomes in item order."""
        rows = await self._db.fetch(Q.job_complete, org=org, ids=ids, leases=leases, workers=workers,
                                    results=results, queues=queues, now=now)
        return [CompleteOutcome(*r) for r in rows]     # the columns are its fields, in order (job_complete)

    async def fail(self, org: uuid.UUID, job_id: uuid.UUID, lease: uuid.UUID | None, worker: str | None,
                   error: str, queues: Sequence[str], *, retry: bool, now: Now = None) -> FailOutcome:
        row = await self._db.fetchrow(Q.job_fail, org=org, id=job_id, lease=lease, worker=worker, error=error,
                                      retry=retry, queues=queues, now=now)
        if not row["done"]:
            return FailOutcome(False, row["prior_status"])
        return FailOutcome(True, row["prior_status"], row["status"], bool(row["will_retry"]), row["delay"],
                           row["queue_name"])

    async def heartbeat(self, org: uuid.UUID, job_id: uuid.UUID, lease: uuid.UUID | None, worker: str | None,
                        lease_secs: float, queues: Sequence[str], *, now: Now = None) -> HeartbeatOutcome:
        row = await self._db.fetchrow(Q.job_heartbeat, org=org, id=job_id, lease=lease, worker=worker,
                                      lease_secs=lease_secs, queues=queues, now=now)
        return HeartbeatOutcome(row["done"], row["prior_status"], row["lease_expires_at"])

    async def release_unsent(self, org: uuid.UUID, ids: list[uuid.UUID], leases: list[uuid.UUID], *,
                             now: Now = None) -> int:
        """Back to pending as if never claimed (fenced by each lease); how many."""
        row = await self._db.fetchrow(Q.job_release_unsent, org=org, ids=ids, leases=leases, now=now)
        return row["released"]

    async def leases_held(self, org: uuid.UUID, ids: list[uuid.UUID], leases: list[uuid.UUID]) -> set[uuid.UUID]:
        rows = await self._db.fetch(Q.job_leases_held, org=org, ids=ids, leases=leases)
        return {r["id"] for r in rows}

    # -- reads and manual transitions ----------------------------------------------------------------------
    async def get(self, org: uuid.UUID, job_id: uuid.UUID, queues: Sequence[str]) -> Job | None:
        row = await self._db.fetchrow(Q.job_get, org=org, id=job_id, queues=queues)
        return from_row(Job, row) if row is not None else None

    async def status_of(self, org: uuid.UUID, job_id: uuid.UUID, queues: Sequence[str]) -> str | None:
        return await self._db.fetchval(Q.job_status_of, org=org, id=job_id, queues=queues)

    async def retry(self, org: uuid.UUID, job_id: uuid.UUID, queues: Sequence[str], *, now: Now = None
                    ) -> Job | None:
        """failed/deadletter/cancelled -> pending; None when the job is missing or in another state."""
        row = await self._db.fetchrow(Q.job_retry, org=org, id=job_id, queues=queues, now=now)
        return from_row(Job, row) if row is not None else None

    async def cancel(self, org: uuid.UUID, job_id: uuid.UUID, queues: Sequence[str], *, now: Now = None) -> bool:
        return await self._db.fetchval(Q.job_cancel, org=org, id=job_id, queues=queues, now=now) is not None

    async def set_priority(self, org: uuid.UUID, job_id: uuid.UUID, priority: int, queues: Sequence[str]
                           ) -> tuple[int, int] | None:
        row = await self._db.fetchrow(Q.job_set_priority, org=org, id=job_id, priority=priority, queues=queues)
        return (row["old_priority"], row["new_priority"]) if row is not None else None

    async def statuses(self, org: uuid.UUID, ids: list[uuid.UUID], queues: Sequence[str]) -> list[JobBrief]:
        return from_rows(JobBrief, await self._db.fetch(Q.job_statuses, org=org, ids=ids, queues=queues))

    async def history(self, org: uuid.UUID, job_id: uuid.UUID, queues: Sequence[str], *, desc: bool, limit: int,
                      offset: int) -> list[HistoryEntry]:
        return from_rows(HistoryEntry, await self._db.fetch(Q.job_history, org=org, id=job_id, queues=queues,
                                                            desc=desc, limit=limit, offset=offset))

    async def counts(self, org: uuid.UUID, queues: Sequence[str]) -> dict[str, int]:
        """Jobs by status (states without jobs are absent). Sequential scans off: when the organization is most of
        the table (one tenant) the planner would read every row rather than the partial indexes (index-only)."""
        rows = await self._db.run(lambda con: pinned(con, Q.job_counts, "fetch", org=org, queues=queues))
        return {r["status"]: r["n"] for r in rows}

    async def dlq_retry(self, org: uuid.UUID, queue: str | None, ids: list[uuid.UUID] | None, limit: int,
                        queues: Sequence[str]) -> list[uuid.UUID]:
        rows = await self._db.fetch(Q.dlq_retry, org=org, queue=queue, ids=ids, limit=limit, queues=queues)
        return [r["id"] for r in rows]

    async def dlq_count(self, org: uuid.UUID, queue: str | None, queues: Sequence[str]) -> int:
        return await self._db.fetchval(Q.dlq_count, org=org, queue=queue, queues=queues)

    async def dlq_purge(self, org: uuid.UUID, queue: str | None, older_than: dt.datetime | None, limit: int,
                        queues: Sequence[str]) -> int:
        return len(await self._db.fetch(Q.dlq_purge, org=org, queue=queue, older_than=older_than, limit=limit,
                                        queues=queues))

    async def list(self, org: uuid.UUID, f: JobFilter, queues: Sequence[str], *, order_by: str, desc: bool,
                   cursor: str | None, offset: int, limit: int) -> tuple[list[ListedJob], str | None]:
        """One page and the cursor of the next (None on the last page). A cursor from another ordering is a
        ValidationFailed naming `cursor`."""
        after = decode_cursor(cursor, order_by) if cursor else None
        sql, args = list_jobs_sql(f, order_by, desc, after, 0 if after else offset, limit, org, queues)
        rows: Any = await self._db.run(lambda con: con.fetch(sql, *args))
        page = [from_row(ListedJob, r) for r in rows[:limit]]
        if len(rows) <= limit:
            return page, None
        last = rows[limit - 1]
        return page, encode_cursor(last[order_by], last["id"])
