#!/usr/bin/env python3
"""PostgreSQL cost of the claim and complete statements for plain jobs (no dependencies), measured in the
backend itself: CPU from /proc/<backend>/stat around many executions, and buffers from EXPLAIN (ANALYZE,
BUFFERS) of one claim and one batch completion on a large backlog.

    .venv/bin/python scripts/bench/statement_cost.py                   # this checkout's schema and statements
    .venv/bin/python scripts/bench/statement_cost.py --repo ../../main # another checkout's (read only)

It starts a throwaway PostgreSQL cluster (or uses --dsn, a superuser DSN of a server on this machine), loads the
checkout's schema.sql, fills --jobs pending jobs into one queue, then runs --cycles cycles of "claim 100, complete
the 100 in one batch" and as many of "claim 1, complete 1", through the checkout's own named statements
(store/queries/*.sql) on one connection, as the server runs them (prepared). The machine is shared and noisy:
run it a few times, compare runs made side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
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


async def measure(dsn: str, repo: Path, jobs: int, cycles: int, extra_sql: str = "") -> dict:
    q = load(repo / "spooled" / "store" / "queries")
    con = await asyncpg.connect(dsn)
    try:
        await con.execute((repo / "schema.sql").read_text())
        if extra_sql:
            await con.execute(extra_sql)
        org = await con.fetchval("INSERT INTO organizations (name, slug) VALUES ('bench', 'bench') RETURNING id")
        await con.execute(FILL, org, "other", 20_000)
        await con.execute("ANALYZE jobs")
        await con.execute(FILL, org, "big", jobs)      # a backlog the statistics have not seen (worst case)
        pid = await con.fetchval("SELECT pg_backend_pid()")

        def claim_args(n):
            return q["job_claim"].args(org=org, queue="big", worker_id="w", limit=n, lease_secs=30.0, now=None)

        def complete_args(rows):
            return q["job_complete"].args(org=org, ids=[r["id"] for r in rows], leases=[r["lease_id"] for r in rows],
                                          workers=["w"] * len(rows), results=['{"ok": true}'] * len(rows), now=None)

        out: dict = {}
        # plans first: one claim of 100, then (claim committed, as in the server) the batch completion of those
        # 100, with buffers; EXPLAIN ANALYZE really runs the completion: rolled back
        out["claim100_plan"] = [r[0] for r in await con.fetch("EXPLAIN (ANALYZE, BUFFERS) " + q["job_claim"].sql,
                                                              *claim_args(100))]
        rows = await con.fetch("SELECT id, lease_id FROM jobs WHERE queue_name = 'big' AND status = 'processing'")
        tr = con.transaction()
        await tr.start()
        out["complete100_plan"] = [r[0] for r in await con.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) " + q["job_complete"].sql, *complete_args(rows))]
        await tr.rollback()
        await con.fetch(q["job_complete"].sql, *complete_args(rows))
        for label, n in (("claim100", 100), ("claim1", 1)):
            runs = cycles if n == 100 else cycles * 20
            claim_cpu = complete_cpu = 0.0
            done = 0
            wall = time.perf_counter()
            for _ in range(runs):
                c0 = cpu_secs(pid)
                rows = await con.fetch(q["job_claim"].sql, *claim_args(n))
                c1 = cpu_secs(pid)
                await con.fetch(q["job_complete"].sql, *complete_args(rows))
                c2 = cpu_secs(pid)
                claim_cpu += c1 - c0
                complete_cpu += c2 - c1
                done += len(rows)
            out[label] = {"jobs": done, "claim_us_per_job": claim_cpu / done * 1e6,
                          "complete_us_per_job": complete_cpu / done * 1e6,
                          "wall_s": time.perf_counter() - wall}
        return out
    finally:
        await con.close()


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", type=Path, default=HERE, help="the checkout whose schema and statements to measure")
    p.add_argument("--dsn", help="superuser DSN of an existing server (default: a throwaway cluster)")
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--cycles", type=int, default=300, help="claim-100 cycles (claim-1 runs 20x as many)")
    p.add_argument("--extra-sql", type=Path, help="SQL run after the schema (e.g. a trigger to price it)")
    a = p.parse_args()
    cluster = None if a.dsn else Cluster()
    admin_dsn = a.dsn or cluster.dsn
    name = f"cost_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        dsn = (re.sub(r"/postgres\?", f"/{name}?", admin_dsn) if "?" in admin_dsn
               else admin_dsn.rsplit("/", 1)[0] + "/" + name)
        r = await measure(dsn, a.repo.resolve(), a.jobs, a.cycles, a.extra_sql.read_text() if a.extra_sql else "")
    finally:
        if cluster:
            cluster.stop()
    print(f"checkout: {a.repo.resolve()}  backlog: {a.jobs:,} pending jobs")
    for key in ("claim100_plan", "complete100_plan"):
        print(f"--- EXPLAIN (ANALYZE, BUFFERS) {key[:-5]}")
        print("\n".join(r[key]))
    for label in ("claim100", "claim1"):
        m = r[label]
        print(f"{label}: {m['jobs']:,} jobs, PG CPU per job: claim {m['claim_us_per_job']:.1f} us, "
              f"complete {m['complete_us_per_job']:.1f} us ({m['wall_s']:.1f} s wall)")


if __name__ == "__main__":
    asyncio.run(main())
