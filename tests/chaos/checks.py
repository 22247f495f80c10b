"""What a scenario's ledger and its database say afterwards (and, sampled during the run, the lease overlap).

The database side reads `jobs` and the `job_events` view: every job's history rows plus the events its row
records (created, and the started/completed of its current or completing lease; schema.sql). Every transition
is recorded by the statement that makes it, and those statements are serialized per job by its row lock, so per
job the events in view order (`part`, `seq`) are the sequence of its states. Leases are visible there: a lease
begins with a `started` event and ends with the next event that leaves `processing` (complete, fail, a reaper or
worker-lost release, cancel).

- **two leases at once**: a job with a lease that began before the previous one ended (by event order or by
  the events' times): SELECTed from the database every half second during the run (`OVERLAP_SQL`).
- **released before expiry**: a lease the reaper released ("lease expired") before the expiry its holder was
  last told (by the claim or a heartbeat's answer, from the workers' records).
- **history chain**: each event's old status is the status the previous event left (so no transition ran
  twice or from a wrong state: a reaper or expirer processing a job twice breaks it), and the job's status is
  its last event's.
- **completed twice**: the workers were told "completed" for one job under two different leases, or its
  history holds two `completed` events.
"""

from __future__ import annotations

import collections
import datetime as dt
from typing import Any

import asyncpg
import attrs
import trio
import trio_asyncio

from tests.chaos.load import Ledger, unexpected

# Every job's events numbered in order (n), the lease checks' input.
EVENTS = """
ev AS (SELECT e.*, row_number() OVER (PARTITION BY e.job_id ORDER BY e.part, e.seq) AS n FROM job_events e)
"""

OVERLAP_SQL = """
WITH """ + EVENTS + """, s AS (
    SELECT h.job_id, h.n, h.created_at AS began,
           (SELECT e.n FROM ev e WHERE e.job_id = h.job_id AND e.n > h.n
                AND e.old_status = 'processing' ORDER BY e.n LIMIT 1) AS end_n
    FROM ev h WHERE h.event_type = 'started'
), l AS (
    SELECT s.*, e.created_at AS ended FROM s LEFT JOIN ev e ON e.job_id = s.job_id AND e.n = s.end_n
)
SELECT DISTINCT a.job_id::text AS job_id FROM l a JOIN l b ON b.job_id = a.job_id AND b.n > a.n
WHERE a.end_n IS NULL OR a.end_n > b.n OR a.ended > b.began
"""

CHAIN_SQL = """
WITH """ + EVENTS + """
SELECT job_id::text AS job_id, n, event_type, old_status::text AS old_status, prev::text AS prev FROM (
    SELECT job_id, n, event_type, old_status, lag(new_status) OVER w AS prev FROM ev WINDOW w AS (PARTITION BY job_id ORDER BY n)
) e
WHERE (n = 1 AND (event_type <> 'created' OR old_status IS NOT NULL))
   OR (n > 1 AND old_status IS DISTINCT FROM prev)
"""

LAST_STATE_SQL = """
SELECT j.id::text AS job_id, j.status::text AS status, last.new_status::text AS last FROM jobs j
LEFT JOIN LATERAL (SELECT new_status FROM job_events h WHERE h.job_id = j.id ORDER BY h.part DESC, h.seq DESC LIMIT 1)
       last ON true
WHERE last.new_status IS DISTINCT FROM j.status
"""

COMPLETED_TWICE_SQL = """
SELECT job_id::text AS job_id FROM job_events WHERE event_type = 'completed' GROUP BY job_id HAVING count(*) > 1
"""

JOBS_SQL = "SELECT id::text AS id, status::text AS status FROM jobs"

STUCK_SQL = """
SELECT id::text AS id FROM jobs
WHERE status = 'processing' AND lease_expires_at < now() - make_interval(secs => $1::float8)
"""

REAPED_SQL = """
WITH """ + EVENTS + """
SELECT h.job_id::text AS job_id, h.created_at AS released,
       (SELECT s.created_at FROM ev s WHERE s.job_id = h.job_id AND s.n < h.n
            AND s.event_type = 'started' ORDER BY s.n DESC LIMIT 1) AS began
FROM ev h WHERE h.old_status = 'processing' AND h.details->>'error' = 'lease expired'
"""

RELEASE_REASONS_SQL = """
SELECT h.job_id::text AS job_id, h.details->>'error' AS reason, h.created_at AS at FROM job_history h
WHERE h.old_status = 'processing' AND h.event_type <> 'completed'
"""


async def fetch(dsn: str, sql: str, *args: Any, timeout: float = 30) -> list:
    """One query on a connection of its own (direct to PostgreSQL, not through any proxy)."""
    async def q():
        con = await asyncpg.connect(dsn, timeout=5)
        try:
            return await con.fetch(sql, *args, timeout=timeout)
        finally:
            await con.close()
    return await trio_asyncio.aio_as_trio(q)()


async def sample_overlaps(dsn: str, stop: trio.Event, seen: set[str], interval: float = 0.5) -> None:
    """Every `interval`, the jobs whose history shows two overlapping leases (added to `seen`); skipped while
    the database is away."""
    while not stop.is_set():
        try:
            seen.update(r["job_id"] for r in await fetch(dsn, OVERLAP_SQL, timeout=10))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            pass
        with trio.move_on_after(interval):
            await stop.wait()


@attrs.define
class Result:
    scenario: str
    acknowledged: int = 0
    present: int = 0
    completed: int = 0
    lost: int = 0
    double: int = 0
    stuck: int = 0
    overlaps: int = 0
    recover_secs: float | None = None
    duration_secs: float = 0.0
    checks: dict[str, tuple[bool, str]] = attrs.Factory(dict)     # name -> (passed, detail)
    figures: dict[str, str] = attrs.Factory(dict)                 # name -> value (reported, not judged)
    examples: dict[str, list[str]] = attrs.Factory(dict)          # what failed, a few ids each
    error: str | None = None                                      # the scenario itself broke

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.checks[name] = (bool(passed), detail)
        return bool(passed)

    @property
    def passed(self) -> bool:
        return (self.error is None and self.lost == 0 and self.double == 0 and self.stuck == 0
                and self.overlaps == 0 and all(ok for ok, _ in self.checks.values()))

    @property
    def failures(self) -> list[str]:
        out = [f"{n}: {d}" for n, (ok, d) in self.checks.items() if not ok]
        for name in ("lost", "double", "stuck", "overlaps"):
            if getattr(self, name):
                out.append(f"{name} = {getattr(self, name)} (e.g. {', '.join(self.examples.get(name, [])[:3])})")
        if self.error:
            out.append(f"error: {self.error}")
        return out


async def verify(result: Result, dsn: str, ledger: Ledger, *, stuck_after_secs: float,
                 sampled_overlaps: set[str]) -> Result:
    """Fill `result` from the ledger and the database (call after the drain, with a server still up so the
    reaper runs, or after the last lease could have been reaped)."""
    jobs = {r["id"]: r["status"] for r in await fetch(dsn, JOBS_SQL)}
    acked = set(ledger.acked.values())
    result.acknowledged = len(acked)
    present = {j for j in acked if j in jobs}
    result.present = len(present)
    result.completed = sum(1 for j in acked if jobs.get(j) == "completed")
    done_jobs = {d.job for d in ledger.done}
    lost = (acked - present) | {j for j in done_jobs if jobs.get(j) != "completed"}
    result.lost = len(lost)
    result.examples["lost"] = sorted(lost)[:5]

    leases_done: dict[str, set[str]] = collections.defaultdict(set)
    for d in ledger.done:
        leases_done[d.job].add(d.lease)
    double = {j for j, ls in leases_done.items() if len(ls) > 1}
    double |= {r["job_id"] for r in await fetch(dsn, COMPLETED_TWICE_SQL)}
    result.double = len(double)
    result.examples["double"] = sorted(double)[:5]

    stuck = [r["id"] for r in await fetch(dsn, STUCK_SQL, stuck_after_secs)]
    result.stuck = len(stuck)
    result.examples["stuck"] = stuck[:5]

    overlaps = sampled_overlaps | {r["job_id"] for r in await fetch(dsn, OVERLAP_SQL)}
    result.overlaps = len(overlaps)
    result.examples["overlaps"] = sorted(overlaps)[:5]

    chain = await fetch(dsn, CHAIN_SQL)
    last = await fetch(dsn, LAST_STATE_SQL)
    result.check("history chain", not chain and not last,
                 f"{len(chain)} events from a wrong state, {len(last)} jobs whose status is not their last event's"
                 + (f" (e.g. {chain[0]['job_id']} {chain[0]['event_type']} from {chain[0]['old_status']} after "
                    f"{chain[0]['prev']})" if chain else ""))
    premature = await released_before_expiry(dsn, ledger)
    result.check("released only after expiry", not premature,
                 f"{len(premature)} leases released before the expiry their worker was told"
                 + (f" (e.g. {premature[0]})" if premature else ""))
    result.check("idempotency keys", not ledger.key_conflicts,
                 f"{len(ledger.key_conflicts)} keys acknowledged with two job ids")
    result.check("all acknowledged jobs completed", result.completed == result.acknowledged,
                 f"{result.acknowledged - result.completed} not completed at the end: "
                 + ", ".join(f"{s} {n}" for s, n in collections.Counter(
                     jobs.get(j, "absent") for j in acked if jobs.get(j) != "completed").most_common()))
    bad = collections.Counter(f"{c.op} {c.outcome}" for c in ledger.calls if unexpected(c.outcome))
    result.check("no unexpected responses", not bad, ", ".join(f"{k} x{n}" for k, n in bad.most_common(5)))
    result.figures["calls"] = str(len(ledger.calls))
    result.figures["completes refused (lease expired)"] = str(len(ledger.refused))
    return result


async def released_before_expiry(dsn: str, ledger: Ledger) -> list[str]:
    """Reaper releases ("lease expired") that came before the lease's expiry as last told to its worker."""
    by_start: dict[tuple[str, dt.datetime], Any] = {}
    for lease in ledger.leases:
        by_start[(lease.job, lease.started_at)] = lease
    out = []
    for r in await fetch(dsn, REAPED_SQL):
        lease = by_start.get((r["job_id"], r["began"]))
        if lease is None:
            continue       # leased by a claim whose answer never arrived (the server was killed)
        expiry = ledger.expiry(lease)
        if r["released"] < expiry:
            out.append(f"{r['job_id']} released at {r['released'].isoformat()} < expiry {expiry.isoformat()}")
    return out


async def releases(dsn: str) -> list:
    """Every lease that ended other than by completion: (job_id, reason, at)."""
    return await fetch(dsn, RELEASE_REASONS_SQL)


def recover_after(ledger: Ledger, t: float) -> float | None:
    """Seconds from `t` until both an enqueue and a complete were acknowledged again (None: never)."""
    enq, done = ledger.first_ok_after("enqueue", t), ledger.first_ok_after("complete", t)
    if enq is None or done is None:
        return None
    return max(enq, done) - t
