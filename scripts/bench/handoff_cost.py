#!/usr/bin/env python3
"""PostgreSQL backend CPU of the one-job statements (the handoff's insert-and-claim and the single insert, claim
and completion), on one connection per subject to a throwaway cluster (fsync off: CPU, not the flush):

    .venv/bin/python scripts/bench/handoff_cost.py [cycles]                        # this checkout, 1000 cycles
    .venv/bin/python scripts/bench/handoff_cost.py --repo /tmp/main --repo . --rounds 4 --cycles 300
    .venv/bin/python scripts/bench/handoff_cost.py --extra-sql a.sql --extra-sql b.sql --rounds 4

Subjects: each --repo's schema.sql and statements, and for each repo one more database per --extra-sql (that SQL
run after the schema: a variant to price). Within a round the subjects take turns every 10 cycles (the order
reversed every other turn), so drift on a shared machine hits them alike; each round ends with the jobs deleted
and vacuumed. Per cycle: (B) job_insert_claim of one job for one claimer (one statement,
docs/architecture.md "Handoff"); an empty job_claim_group (what the insert's NOTIFY costs when it wakes a second
idle waiter); (A) job_insert of one job, then job_claim_group for one claimer (the path without a handoff, each
priced on its own too); and job_complete of one job. The backend's CPU per statement from /proc/<pid>/schedstat;
medians over every cycle of every round (each subject's first 50 cycles run unmeasured first: plans made).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from statement_cost import Cluster, cpu_secs, load, organization_database, unrestricted_args  # noqa: E402

MEASURES = ("B: job_insert_claim", "empty job_claim_group", "A: job_insert + job_claim_group", "job_insert (1)",
            "job_claim_group (1)", "job_complete (1)")


class Subject:
    def __init__(self, label: str, con, org: uuid.UUID, q: dict, pid: int):
        self.label, self.con, self.org, self.q, self.pid = label, con, org, q, pid
        self.res: dict[str, list[float]] = {m: [] for m in MEASURES}
        self.claimer = dict(workers=["w"], limits=[1], lease_secs=[30.0])

    def job(self) -> dict:
        return dict(org=self.org, queue="q", now=None, ids=[uuid.uuid4()], payloads=['{"n": 1}'], priorities=[0],
                    max_retries=[None], timeouts=[None], tags=[None], idempotency_keys=[None], webhooks=[None],
                    webhook_secrets=[None], scheduled_ats=[None], expires_ats=[None], traceparents=[None],
                    tracestates=[None])

    async def cpu(self, sql: str, args: list, rows: int) -> tuple[float, list]:
        c0 = cpu_secs(self.pid)
        got = await self.con.fetch(sql, *args)
        c1 = cpu_secs(self.pid)
        assert len(got) == rows, (sql[:60], got)
        return c1 - c0, got

    async def complete(self, id_: uuid.UUID, lease: uuid.UUID) -> float:
        args = unrestricted_args(self.q["job_complete"], org=self.org, ids=[id_], leases=[lease], workers=["w"],
                                 results=['{"ok": true}'], now=None)
        c, _ = await self.cpu(self.q["job_complete"].sql, args, 1)
        return c

    async def cycles(self, n: int, record: bool) -> None:
        q = self.q
        claim_sql, *claim_args = q["job_claim_group"].bind(org=self.org, queue="q", now=None, **self.claimer)
        for _ in range(n):
            sql, *args = q["job_insert_claim"].bind(**self.job(), **self.claimer)
            b, rows = await self.cpu(sql, args, 2)
            claimed = next(r["job"] for r in rows if r["claimer"] == 1)
            e, _ = await self.cpu(claim_sql, claim_args, 0)
            await self.complete(claimed["id"], claimed["lease_id"])
            sql, *args = q["job_insert"].bind(rows=True, parents=[None], **self.job())
            i, _ = await self.cpu(sql, args, 1)
            c, rows = await self.cpu(claim_sql, claim_args, 1)
            d = await self.complete(rows[0]["id"], rows[0]["lease_id"])
            if record:
                for m, v in zip(MEASURES, (b, e, i + c, i, c, d)):
                    self.res[m].append(v)

    async def clean(self) -> None:
        await self.con.execute("DELETE FROM jobs")
        await self.con.execute("VACUUM jobs, job_list, job_history")


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cycles_pos", nargs="?", type=int, help="cycles (one round), the old form")
    p.add_argument("--repo", type=Path, action="append", help="a checkout to measure (repeat to compare)")
    p.add_argument("--extra-sql", type=Path, action="append", default=[], help="a variant (repeatable)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--cycles", type=int, default=1000, help="cycles per round and subject")
    a = p.parse_args()
    cycles = a.cycles_pos or a.cycles
    cluster = Cluster()
    subjects: list[Subject] = []
    try:
        for repo in [r.resolve() for r in (a.repo or [HERE])]:
            for extra in [None, *a.extra_sql]:
                con, org, _ = await organization_database(cluster.dsn, repo, extra.read_text() if extra else "")
                s = Subject(f"{repo}" + (f" + {extra}" if extra else ""), con, org,
                            load(repo / "spooled" / "store" / "queries"), await con.fetchval("SELECT pg_backend_pid()"))
                subjects.append(s)
                await s.cycles(50, record=False)
                await s.clean()
        for r in range(a.rounds):
            for block in range(0, cycles, 10):     # subjects interleaved by 10 cycles: drift hits them alike
                for s in subjects if (r + block // 10) % 2 == 0 else subjects[::-1]:
                    await s.cycles(min(10, cycles - block), record=True)
            for s in subjects:
                await s.clean()
    finally:
        for s in subjects:
            await s.con.close()
        cluster.stop()
    print(f"{a.rounds} alternating rounds of {cycles} cycles; PostgreSQL backend CPU per statement, median (mean) us")
    print("| subject | " + " | ".join(MEASURES) + " |")
    print("|---|" + "---:|" * len(MEASURES))
    for s in subjects:
        print(f"| {s.label} | " + " | ".join(f"{statistics.median(s.res[m]) * 1e6:.0f} ({statistics.mean(s.res[m]) * 1e6:.0f})"
                                            for m in MEASURES) + " |")


if __name__ == "__main__":
    asyncio.run(main())
