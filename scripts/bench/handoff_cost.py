#!/usr/bin/env python3
"""PostgreSQL backend CPU of the handoff's statement against the two it replaces, on one connection to a throwaway
cluster (fsync off: CPU, not the flush) with this checkout's schema.sql and statements:

    .venv/bin/python scripts/bench/handoff_cost.py [cycles]      # default 1000

Per cycle: (A) job_insert of one job, then job_claim_group for one claimer (two statements, the path without a
handoff); (B) job_insert_claim of one job for one claimer (one statement, docs/architecture.md "Handoff"); and an
empty job_claim_group (what the insert's NOTIFY costs when it wakes a second idle waiter). Medians and means of
the backend's CPU per cycle (/proc/<pid>/schedstat), the first 50 cycles left out (plans being made).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from statement_cost import Cluster, cpu_secs, load, organization_database  # noqa: E402


async def main(cycles: int) -> None:
    cluster = Cluster()
    try:
        con, org, _ = await organization_database(cluster.dsn, HERE)
        q = load(HERE / "spooled" / "store" / "queries")
        pid = await con.fetchval("SELECT pg_backend_pid()")
        claimer = dict(workers=["w"], limits=[1], lease_secs=[30.0])

        def job() -> dict:
            return dict(org=org, queue="q", now=None, ids=[uuid.uuid4()], payloads=['{"n": 1}'], priorities=[0],
                        max_retries=[None], timeouts=[None], tags=[None], idempotency_keys=[None], webhooks=[None],
                        webhook_secrets=[None], scheduled_ats=[None], expires_ats=[None], traceparents=[None],
                        tracestates=[None])

        async def cpu(sql: str, args: list, rows: int) -> float:
            c0 = cpu_secs(pid)
            got = await con.fetch(sql, *args)
            c1 = cpu_secs(pid)
            assert len(got) == rows, got
            return c1 - c0
        res: dict[str, list[float]] = {"A: job_insert + job_claim_group": [], "B: job_insert_claim": [],
                                       "an empty job_claim_group": []}
        claim_sql, *claim_args = q["job_claim_group"].bind(org=org, queue="q", now=None, **claimer)
        for i in range(cycles):
            sql, *args = q["job_insert"].bind(rows=True, parents=[None], **job())
            a = await cpu(sql, args, 1)
            a += await cpu(claim_sql, claim_args, 1)
            res["A: job_insert + job_claim_group"].append(a)
            sql, *args = q["job_insert_claim"].bind(**job(), **claimer)
            res["B: job_insert_claim"].append(await cpu(sql, args, 2))
            res["an empty job_claim_group"].append(await cpu(claim_sql, claim_args, 0))
            if i % 200 == 199:
                await con.execute("DELETE FROM jobs")
        for name, xs in res.items():
            xs = xs[50:]
            print(f"{name}: median {statistics.median(xs) * 1e6:.0f} us, mean {statistics.mean(xs) * 1e6:.0f} us")
    finally:
        cluster.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
