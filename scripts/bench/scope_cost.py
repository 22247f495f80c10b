#!/usr/bin/env python3
"""What a key's queue restriction costs: PostgreSQL cost of the hot job statements (claim, complete, insert,
heartbeat, fail) for plain jobs, for an unrestricted and a restricted caller, measured in the backend itself,
side by side for one or more checkouts (scripts/bench/statement_cost.py: the claim path and the job lifecycle):

    .venv/bin/python scripts/bench/scope_cost.py                              # this checkout
    .venv/bin/python scripts/bench/scope_cost.py --repo /work/main --repo .   # before / after (read only)

For each checkout: a database in one throwaway PostgreSQL cluster (or --dsn, a superuser DSN of a server on this
machine) with that checkout's schema.sql (and with --extra-sql, a second one with that SQL run after the schema,
to price it), --jobs pending jobs in one queue that the
statistics have not seen (the claim-plan test's worst case), and EXPLAIN (ANALYZE, BUFFERS) of one claim of 100
and of the batch completion of those 100. Then --rounds rounds, alternating the checkouts (so drift on a shared
machine hits them alike): per round and checkout, --cycles cycles of "claim 1, complete 1" and --cycles/10 of
"claim 100, complete the 100 in one batch", through that checkout's own named statements (store/queries/*.sql),
prepared, on one connection; then --cycles/2 cycles of "insert 1, claim 1, heartbeat it, fail it" (job_insert,
job_heartbeat, job_fail). A checkout whose statements are scoped (a key's queue restriction, store/sql.py) is
also measured through the restricted texts: --cycles/2 cycles of "claim 1, heartbeat, complete" and "claim 1,
fail" with `queues` = the job's queue, and the same cycles with no restriction. Last, per checkout, a new
connection that only ever completes one job at a time (--cycles cycles of "claim 1, complete 1"): whether
PostgreSQL plans job_complete once or on every call depends on the first five calls of a connection, and the
plan counts of pg_prepared_statements are printed with the figures. Reported: the backend's CPU per job (from
/proc/<pid>/schedstat), median and minimum over the rounds.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import uuid
from pathlib import Path

import asyncpg

HERE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from spooled.store.sql import load  # noqa: E402
from statement_cost import (SHAPES, Cluster, add_subjects, arguments, backlog_database, cpu_secs,  # noqa: E402
                            print_shapes)  # (the shared rig)

SINGLES = ("insert", "heartbeat", "fail")                        # per statement, one job each
RESTRICTED = ("heartbeat", "complete", "fail")                   # through the restricted texts


class Subject:
    """One checkout's database, statements and connection."""

    def __init__(self, repo: Path, con: asyncpg.Connection, org: uuid.UUID, pid: int, label: str):
        self.repo, self.con, self.org, self.pid, self.label = repo, con, org, pid, label
        self.dsn = ""                         # the database's, for `fresh_single_completes`
        self.fresh: tuple[float, str] | None = None
        self.q = load(repo / "spooled" / "store" / "queries")
        self.plans: dict[str, list[str]] = {}
        self.cpu: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in SHAPES}
        self.single: dict[str, list[float]] = {name: [] for name in SINGLES}
        self.restricted: dict[tuple[bool, str], list[float]] = {(r, n): [] for r in (False, True) for n in RESTRICTED}
        self.scoped = self.q["job_complete"].scoped is not None

    @classmethod
    async def create(cls, admin_dsn: str, repo: Path, jobs: int, extra_sql: str, label: str) -> "Subject":
        con, org, dsn = await backlog_database(admin_dsn, repo, jobs, extra_sql)
        subject = cls(repo, con, org, await con.fetchval("SELECT pg_backend_pid()"), label)
        subject.dsn = dsn
        return subject

    def claim_args(self, n: int) -> tuple:
        return self.bound("job_claim", org=self.org, queue="big", worker_id="w", limit=n, lease_secs=30.0, now=None)

    def bound(self, name: str, queues: list[str] | None = None, **values) -> tuple:
        """(sql, *args) of a statement: a scoped one (this checkout has them) for an unrestricted caller, or with
        `queues` for a restricted one."""
        stmt = self.q[name]
        if stmt.scoped is not None:
            return stmt.bind(queues=queues or [], **values)
        assert queues is None
        return stmt.sql, *stmt.args(**values)

    def complete_args(self, rows, queues: list[str] | None = None) -> tuple:
        return self.bound("job_complete", queues, org=self.org, ids=[r["id"] for r in rows],
                          leases=[r["lease_id"] for r in rows], workers=["w"] * len(rows),
                          results=['{"ok": true}'] * len(rows), now=None)

    def insert_args(self) -> tuple:
        columns = {"priorities": [0], "payloads": ['{"n": 1}'], "rows": True}     # every other column: one NULL
        return self.bound("job_insert", org=self.org, queue="big", now=None, ids=[uuid.uuid4()],
                          **{p: columns.get(p, [None]) for p in self.q["job_insert"].params
                             if p not in ("org", "queue", "now", "ids")})

    def lease_args(self, name: str, row, queues: list[str] | None = None, **values) -> tuple:
        return self.bound(name, queues, org=self.org, id=row["id"], lease=row["lease_id"], worker=None, now=None,
                          **values)

    async def explain(self) -> None:
        """One claim of 100, then (the claim committed, as in the server) the completion of those 100, rolled
        back (EXPLAIN ANALYZE really runs it), then completed for real."""
        con = self.con
        text, *args = self.claim_args(100)
        self.plans["claim100"] = [r[0] for r in await con.fetch("EXPLAIN (ANALYZE, BUFFERS) " + text, *args)]
        rows = await con.fetch("SELECT id, lease_id FROM jobs WHERE queue_name = 'big' AND status = 'processing'")
        tr = con.transaction()
        await tr.start()
        text, *args = self.complete_args(rows)
        self.plans["complete100"] = [r[0] for r in await con.fetch("EXPLAIN (ANALYZE, BUFFERS) " + text, *args)]
        await tr.rollback()
        await con.fetch(*self.complete_args(rows))

    async def round(self, label: str, n: int, cycles: int) -> None:
        claim_cpu = complete_cpu = 0.0
        done = 0
        for _ in range(cycles):
            c0 = cpu_secs(self.pid)
            rows = await self.con.fetch(*self.claim_args(n))
            c1 = cpu_secs(self.pid)
            await self.con.fetch(*self.complete_args(rows))
            c2 = cpu_secs(self.pid)
            claim_cpu += c1 - c0
            complete_cpu += c2 - c1
            done += len(rows)
        self.cpu[label].append((claim_cpu / done * 1e6, complete_cpu / done * 1e6))

    async def timed(self, spent: dict[str, float], name: str, bound: tuple):
        c0 = cpu_secs(self.pid)
        rows = await self.con.fetch(*bound)
        spent[name] = spent.get(name, 0.0) + cpu_secs(self.pid) - c0
        return rows

    async def singles(self, cycles: int) -> None:
        """insert 1, claim 1, heartbeat it, fail it (dead-lettered: it leaves the backlog as a completion does)."""
        spent: dict[str, float] = {}
        for _ in range(cycles):
            await self.timed(spent, "insert", self.insert_args())
            (row,) = await self.con.fetch(*self.claim_args(1))
            await self.timed(spent, "heartbeat", self.lease_args("job_heartbeat", row, lease_secs=30.0))
            await self.timed(spent, "fail", self.lease_args("job_fail", row, error="x", retry=False))
        for name in SINGLES:
            self.single[name].append(spent[name] / cycles * 1e6)

    async def restricted_round(self, cycles: int, restricted: bool) -> None:
        """Claim 1, heartbeat, complete; claim 1, fail: through the restricted texts (queues = the job's queue),
        or the unrestricted ones. (PostgreSQL keeps planning a prepared statement on every call when its first
        five custom plans were all cheaper than its generic plan, as 1-id completions are: the generic plan assumes
        10 ids for the unnest. The unrestricted job_complete first ran with 100 ids (`explain`), the restricted one
        with 1: `plan_counts` shows which of them went generic.)"""
        spent: dict[str, float] = {}
        mine = ["big"] if restricted else None
        for _ in range(cycles):
            (row,) = await self.con.fetch(*self.claim_args(1))
            await self.timed(spent, "heartbeat", self.lease_args("job_heartbeat", row, mine, lease_secs=30.0))
            done = await self.timed(spent, "complete", self.complete_args([row], mine))
            assert done[0]["done"], "the restricted complete did not complete"
            (row,) = await self.con.fetch(*self.claim_args(1))
            failed = await self.timed(spent, "fail", self.lease_args("job_fail", row, mine, error="x", retry=False))
            assert failed[0]["done"], "the restricted fail did not fail"
        for name in RESTRICTED:
            self.restricted[restricted, name].append(spent[name] / cycles * 1e6)


async def plan_counts(s: Subject, name: str) -> str:
    """How often the connection ran each text of statement `name` with a generic and with a custom plan."""
    stmt = s.q[name]
    rows = {r["statement"]: r for r in await s.con.fetch(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")}
    out = []
    for label, text in (("unrestricted", stmt.sql), ("restricted", stmt.scoped.sql if stmt.scoped else None)):
        if text in rows:
            out.append(f"{label} {rows[text]['generic_plans']} generic / {rows[text]['custom_plans']} custom")
    return ", ".join(out)


async def fresh_single_completes(s: Subject, cycles: int) -> None:
    """On a new connection: claim 1, complete 1, `cycles` times (no batch ever): the completion's CPU per job."""
    con = await asyncpg.connect(s.dsn)
    try:
        fresh = Subject(s.repo, con, s.org, await con.fetchval("SELECT pg_backend_pid()"), s.label)
        await fresh.round("claim1", 1, cycles)
        s.fresh = fresh.cpu["claim1"][0][1], await plan_counts(fresh, "job_complete")
    finally:
        await con.close()


async def main() -> None:
    a = arguments(__doc__)
    cluster = None if a.dsn else Cluster()
    subjects: list[Subject] = []
    try:
        await add_subjects(subjects, a, a.dsn or cluster.dsn, Subject.create)
        for r in range(a.rounds):
            for s in subjects if r % 2 == 0 else subjects[::-1]:
                for label, n in SHAPES:
                    await s.round(label, n, a.cycles if n == 1 else max(1, a.cycles // 10))
                await s.singles(max(1, a.cycles // 2))
                if s.scoped:
                    for restricted in ((False, True) if r % 2 == 0 else (True, False)):
                        await s.restricted_round(max(1, a.cycles // 2), restricted)
        for s in subjects:
            await fresh_single_completes(s, a.cycles)
        counts = {s.label: {n: await plan_counts(s, n) for n in ("job_complete", "job_heartbeat", "job_fail")}
                  for s in subjects}
    finally:
        for s in subjects:
            await s.con.close()
        if cluster:
            cluster.stop()
    print(f"backlog: {a.jobs:,} pending jobs (statistics not seen); {a.rounds} alternating rounds")
    for s in subjects:
        print(f"== {s.label}")
        print_shapes(s, a.plans)
        for name in SINGLES:
            v = s.single[name]
            print(f"   {name:9s} (1 job)  PG CPU: {statistics.median(v):7.1f} us (min {min(v):7.1f})")
        if s.scoped:
            print("   claim 1, heartbeat, complete; claim 1, fail: PG CPU per statement, unrestricted -> restricted key")
            for name in RESTRICTED:
                u, v = s.restricted[False, name], s.restricted[True, name]
                print(f"   {name:9s} {statistics.median(u):7.1f} us (min {min(u):7.1f}) -> "
                      f"{statistics.median(v):7.1f} us (min {min(v):7.1f})")
        for name, text in counts[s.label].items():
            print(f"   plans of {name}: {text}")
        print(f"   new connection, 1-job completions only: complete {s.fresh[0]:7.1f} us; plans: {s.fresh[1]}")


if __name__ == "__main__":
    asyncio.run(main())
