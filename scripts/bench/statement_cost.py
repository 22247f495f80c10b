#!/usr/bin/env python3
"""PostgreSQL cost of the claim and complete statements for plain jobs (no dependencies), measured in the
backend itself, side by side for one or more checkouts:

    .venv/bin/python scripts/bench/statement_cost.py                              # this checkout
    .venv/bin/python scripts/bench/statement_cost.py --repo /work/main --repo .   # before / after (read only)

For each checkout: a database in one throwaway PostgreSQL cluster (or --dsn, a superuser DSN of a server on this
machine) with that checkout's schema.sql (and with --extra-sql, a second one with that SQL run after the schema,
to price it), --jobs pending jobs in one queue that the
statistics have not seen (the claim-plan test's worst case), and EXPLAIN (ANALYZE, BUFFERS) of one claim of 100
and of the batch completion of those 100. Then --rounds rounds, alternating the checkouts (so drift on a shared
machine hits them alike): per round and checkout, --cycles cycles of "claim 1, complete 1" and --cycles/10 of
"claim 100, complete the 100 in one batch", through that checkout's own named statements (store/queries/*.sql),
prepared, on one connection; and --cycles/10 cycles of a job's whole life in batches of 100 ("enqueue 100 into a
fresh queue, claim the 100, complete them in one batch"), then one VACUUM of jobs and job_history (the dead rows
they left). Reported: the backend's CPU per job (from /proc/<pid>/schedstat) and, for the lifecycle, the WAL per
job (pg_current_wal_insert_lsn before and after each statement), median and minimum over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import asyncpg

HERE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(HERE))

from spooled.embedded_pg import find_bindir  # noqa: E402
from spooled.store.sql import load  # noqa: E402

FILL = ("INSERT INTO jobs (id, organization_id, queue_name, status, payload, priority, max_retries, timeout_seconds, "
        "run_at, created_at, updated_at) SELECT gen_random_uuid(), $1, $2, 'pending', '{\"n\": 1}', (g % 5) - 2, 3, "
        "300, now() + g * interval '1 microsecond', now(), now() FROM generate_series(1, $3) g")
SHAPES = (("claim1", 1), ("claim100", 100))
LIFE = ("enqueue", "claim", "complete", "vacuum")


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Cluster:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="spooled-cost-pg-")
        os.chmod(self.dir, 0o755)
        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("no PostgreSQL server binaries found (or pass --dsn)")
        self.bindir = bindir
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.pgdata = os.path.join(self.dir, "data")
        subprocess.run(as_postgres([str(bindir / "initdb"), "-D", self.pgdata, "-U", "postgres", "--auth=trust",
                                    "-E", "UTF8", "--no-instructions"]), check=True, capture_output=True)
        opts = f"-k {self.dir} -c listen_addresses='' -p 5432 -c shared_buffers=256MB -c fsync=off"
        subprocess.run(as_postgres([str(bindir / "pg_ctl"), "start", "-D", self.pgdata, "-w", "-l",
                                    os.path.join(self.dir, "log"), "-o", opts]), check=True, capture_output=True)
        self.dsn = f"postgresql://postgres@/postgres?host={self.dir}&port=5432"

    def stop(self) -> None:
        subprocess.run(as_postgres([str(self.bindir / "pg_ctl"), "stop", "-D", self.pgdata, "-m", "fast"]),
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def cpu_secs(pid: int) -> float:
    """CPU time the backend has run, in seconds (schedstat: nanoseconds on a CPU; /proc/stat ticks are 10 ms)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def dsn_for(admin_dsn: str, name: str) -> str:
    if "?" in admin_dsn:
        return re.sub(r"/postgres\?", f"/{name}?", admin_dsn)
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


def unrestricted_args(stmt, **values) -> list:
    """The arguments of `stmt` for a caller without a queue restriction; a checkout whose statements are scoped
    (store/sql.py) runs the same text (`stmt.sql`) then (scripts/bench/scope_cost.py measures both texts)."""
    if getattr(stmt, "scoped", None) is not None:
        return list(stmt.bind(queues=[], **values)[1:])
    return stmt.args(**values)


async def organization_database(admin_dsn: str, repo: Path, extra_sql: str = "", prefix: str = "cost"
                                ) -> tuple[asyncpg.Connection, uuid.UUID, str]:
    """A new database with `repo`'s schema (and `extra_sql`) and one organization: its connection, the
    organization and the database's DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = dsn_for(admin_dsn, name)
    con = await asyncpg.connect(dsn)
    await con.execute((repo / "schema.sql").read_text())
    if extra_sql:
        await con.execute(extra_sql)
    org = await con.fetchval("INSERT INTO organizations (name, slug) VALUES ('bench', 'bench') RETURNING id")
    return con, org, dsn


async def backlog_database(admin_dsn: str, repo: Path, jobs: int, extra_sql: str
                           ) -> tuple[asyncpg.Connection, uuid.UUID, str]:
    """`organization_database` with 20,000 analyzed jobs in queue 'other' and `jobs` more in 'big' that the
    statistics have not seen (the worst case)."""
    con, org, dsn = await organization_database(admin_dsn, repo, extra_sql)
    await con.execute(FILL, org, "other", 20_000)
    await con.execute("ANALYZE jobs")
    await con.execute(FILL, org, "big", jobs)
    return con, org, dsn


class Subject:
    """One checkout's database, statements and connection."""

    def __init__(self, repo: Path, con: asyncpg.Connection, org: uuid.UUID, pid: int, label: str):
        self.repo, self.con, self.org, self.pid, self.label = repo, con, org, pid, label
        self.q = load(repo / "spooled" / "store" / "queries")
        self.plans: dict[str, list[str]] = {}
        self.cpu: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in SHAPES}
        # lifecycle rounds: stage -> [(CPU us per job, WAL bytes per job)]
        self.life: dict[str, list[tuple[float, float]]] = {stage: [] for stage in LIFE}

    @classmethod
    async def create(cls, admin_dsn: str, repo: Path, jobs: int, extra_sql: str, label: str) -> "Subject":
        con, org, _ = await backlog_database(admin_dsn, repo, jobs, extra_sql)
        await con.execute("VACUUM jobs, job_history")  # the backlog all-visible: the lifecycle's VACUUM prices its own
        return cls(repo, con, org, await con.fetchval("SELECT pg_backend_pid()"), label)

    def claim_args(self, n: int) -> list:
        return self.q["job_claim"].args(org=self.org, queue="big", worker_id="w", limit=n, lease_secs=30.0,
                                        now=None)

    def complete_args(self, rows) -> list:
        return unrestricted_args(self.q["job_complete"], org=self.org, ids=[r["id"] for r in rows],
                                 leases=[r["lease_id"] for r in rows], workers=["w"] * len(rows),
                                 results=['{"ok": true}'] * len(rows), now=None)

    def insert_args(self, n: int) -> list:
        """job_insert of n plain jobs into the lifecycle queue (whatever parameters this checkout's statement has)."""
        none = [None] * n
        values = dict(org=self.org, queue="life", now=None, ids=[uuid.uuid4() for _ in range(n)],
                      payloads=['{"n": 1}'] * n, priorities=[0] * n, max_retries=none, timeouts=none, tags=none,
                      idempotency_keys=none, webhooks=none, webhook_secrets=none, parents=none,
                      scheduled_ats=none, expires_ats=none, traceparents=none, tracestates=none, rows=True)
        st = self.q["job_insert"]
        return st.args(**{k: v for k, v in values.items() if k in st.params})

    async def measured(self, sql: str, *args) -> tuple[list, float, int]:
        """Run one statement (its own transaction); its rows, backend CPU seconds and WAL bytes."""
        lsn0 = await self.con.fetchval("SELECT pg_current_wal_insert_lsn()")
        c0 = cpu_secs(self.pid)
        rows = await self.con.fetch(sql, *args) if args else await self.con.execute(sql)
        c1 = cpu_secs(self.pid)
        wal = await self.con.fetchval("SELECT pg_current_wal_insert_lsn() - $1::pg_lsn", lsn0)
        return rows, c1 - c0, int(wal)

    async def lifecycle(self, cycles: int, n: int = 100) -> None:
        cpu = dict.fromkeys(LIFE, 0.0)
        wal = dict.fromkeys(LIFE, 0)
        done = 0
        await self.con.execute("VACUUM jobs, job_history")    # the other shapes' dead rows, not priced here
        for _ in range(cycles):
            _, c, w = await self.measured(self.q["job_insert"].sql, *self.insert_args(n))
            cpu["enqueue"] += c; wal["enqueue"] += w
            claim_args = self.q["job_claim"].args(org=self.org, queue="life", worker_id="w", limit=n,
                                                  lease_secs=30.0, now=None)
            rows, c, w = await self.measured(self.q["job_claim"].sql, *claim_args)
            cpu["claim"] += c; wal["claim"] += w
            _, c, w = await self.measured(self.q["job_complete"].sql, *self.complete_args(rows))
            cpu["complete"] += c; wal["complete"] += w
            done += len(rows)
        _, c, w = await self.measured("VACUUM jobs, job_history")
        cpu["vacuum"] += c; wal["vacuum"] += w
        for stage in LIFE:
            self.life[stage].append((cpu[stage] / done * 1e6, wal[stage] / done))

    async def explain(self) -> None:
        """One claim of 100, then (the claim committed, as in the server) the completion of those 100, rolled
        back (EXPLAIN ANALYZE really runs it), then completed for real."""
        con, sql = self.con, self.q
        self.plans["claim100"] = [r[0] for r in await con.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql["job_claim"].sql,
                                                                *self.claim_args(100))]
        rows = await con.fetch("SELECT id, lease_id FROM jobs WHERE queue_name = 'big' AND status = 'processing'")
        tr = con.transaction()
        await tr.start()
        self.plans["complete100"] = [r[0] for r in await con.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) " + sql["job_complete"].sql, *self.complete_args(rows))]
        await tr.rollback()
        await con.fetch(sql["job_complete"].sql, *self.complete_args(rows))

    async def round(self, label: str, n: int, cycles: int) -> None:
        claim_cpu = complete_cpu = 0.0
        done = 0
        for _ in range(cycles):
            c0 = cpu_secs(self.pid)
            rows = await self.con.fetch(self.q["job_claim"].sql, *self.claim_args(n))
            c1 = cpu_secs(self.pid)
            await self.con.fetch(self.q["job_complete"].sql, *self.complete_args(rows))
            c2 = cpu_secs(self.pid)
            claim_cpu += c1 - c0
            complete_cpu += c2 - c1
            done += len(rows)
        self.cpu[label].append((claim_cpu / done * 1e6, complete_cpu / done * 1e6))


def top_buffers(plan: list[str]) -> str:
    """The statement's own buffer line (the first `Buffers:` of the plan, under its top node)."""
    return next((line.strip() for line in plan if line.strip().startswith("Buffers:")), "?")


def arguments(doc: str) -> argparse.Namespace:
    """The command line both statement scripts take (this one and scope_cost.py)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", type=Path, action="append", help="a checkout to measure (repeat to compare)")
    p.add_argument("--dsn", help="superuser DSN of an existing server (default: a throwaway cluster)")
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--cycles", type=int, default=200, help="claim-1 cycles per round (claim-100: a tenth)")
    p.add_argument("--extra-sql", type=Path, help="also measure each checkout with this SQL run after its schema")
    p.add_argument("--plans", action="store_true", help="print the whole EXPLAIN output")
    return p.parse_args()


async def add_subjects(subjects: list, a: argparse.Namespace, admin_dsn: str, create) -> None:
    """One subject per checkout (and per checkout + `--extra-sql`), explained, appended to `subjects` as each
    is made (so the caller closes the ones made before a failure)."""
    extra = a.extra_sql.read_text() if a.extra_sql else ""
    for repo in [r.resolve() for r in (a.repo or [HERE])]:
        for sql, label in ((("", str(repo)),) + (((extra, f"{repo} + {a.extra_sql}"),) if extra else ())):
            s = await create(admin_dsn, repo, a.jobs, sql, label)
            await s.explain()
            subjects.append(s)


def print_shapes(s, show_plans: bool) -> None:
    """A subject's EXPLAIN lines and its claim/complete PG CPU per job for each shape."""
    for key in ("claim100", "complete100"):
        print(f"   EXPLAIN {key}: {top_buffers(s.plans[key])}; "
              f"{next((x for x in s.plans[key] if x.startswith('Execution Time')), '')}")
        if show_plans:
            print("\n".join("      " + x for x in s.plans[key]))
    for label, _ in SHAPES:
        claims = [c for c, _ in s.cpu[label]]
        completes = [d for _, d in s.cpu[label]]
        print(f"   {label:8s} PG CPU per job: claim {statistics.median(claims):7.1f} us (min {min(claims):7.1f}),"
              f" complete {statistics.median(completes):7.1f} us (min {min(completes):7.1f})")


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
                await s.lifecycle(max(1, a.cycles // 10))
    finally:
        for s in subjects:
            await s.con.close()
        if cluster:
            cluster.stop()
    print(f"backlog: {a.jobs:,} pending jobs (statistics not seen); {a.rounds} alternating rounds")
    for s in subjects:
        print(f"== {s.label}")
        print_shapes(s, a.plans)
        print("   lifecycle of 100 (enqueue, claim, complete, vacuum) per job:")
        for stage in LIFE:
            cpu = [c for c, _ in s.life[stage]]
            wal = [w for _, w in s.life[stage]]
            print(f"     {stage:8s} PG CPU {statistics.median(cpu):7.1f} us (min {min(cpu):7.1f}),"
                  f" WAL {statistics.median(wal):7.0f} bytes (min {min(wal):7.0f})")
        totals = [sum(s.life[stage][r][0] for stage in LIFE) for r in range(len(s.life["claim"]))]
        wals = [sum(s.life[stage][r][1] for stage in LIFE) for r in range(len(s.life["claim"]))]
        print(f"     {'total':8s} PG CPU {statistics.median(totals):7.1f} us (min {min(totals):7.1f}),"
              f" WAL {statistics.median(wals):7.0f} bytes (min {min(wals):7.0f})")


if __name__ == "__main__":
    asyncio.run(main())
