"""What the event pipeline costs PostgreSQL per job, measured at the statement level (no HTTP, no server).

Runs the server's own named statements (store/queries/*.sql) on one connection against a throwaway cluster (the
test rig's) or --dsn, and reads that backend's CPU time from /proc before and after each phase:

    enqueue   job_insert, 100 jobs per statement
    claim1    job_claim with limit 1, then job_complete of that one job (the per-job REST/gRPC path)
    claim100  job_claim with limit 100, then one job_complete of the 100 (the batched path)

in these configurations of the event trigger on job_history (schema.sql "Events"):

    off         the trigger disabled (nothing is emitted: the floor)
    idle        the trigger on, nobody subscribed (what every server pays)
    realtime    an instance registered as listening for the org (NOTIFY per statement)
    webhook     a webhook subscribed to every job event (one outbox row per event)

    .venv/bin/python scripts/bench/events_cost.py [--jobs 5000] [--rounds 3] [--dsn DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from spooled.domain.ids import new_job_id  # noqa: E402
from spooled.store.schema import schema_sql  # noqa: E402
from spooled.store.sql import Q  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_secs(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def enqueue(con, org, queue: str, n: int) -> None:
    for start in range(0, n, 100):
        k = min(100, n - start)
        await con.fetch(Q.job_insert.sql, *Q.job_insert.args(
            org=org, queue=queue, now=None, ids=[new_job_id() for _ in range(k)], payloads=['{"n":1}'] * k,
            priorities=[0] * k, max_retries=[None] * k, timeouts=[None] * k, tags=[None] * k,
            idempotency_keys=[None] * k, webhooks=[None] * k, webhook_secrets=[None] * k, parents=[None] * k,
            scheduled_ats=[None] * k, expires_ats=[None] * k, traceparents=[None] * k, tracestates=[None] * k,
            rows=False))


async def drain(con, org, queue: str, n: int, batch: int) -> None:
    done = 0
    while done < n:
        rows = await con.fetch(Q.job_claim.sql, *Q.job_claim.args(org=org, queue=queue, worker_id="w", limit=batch,
                                                                  lease_secs=60.0, now=None))
        if not rows:
            raise RuntimeError("ran out of jobs")
        await con.fetch(Q.job_complete.sql, *Q.job_complete.args(
            org=org, ids=[r["id"] for r in rows], leases=[r["lease_id"] for r in rows], results=[None] * len(rows),
            workers=["w"] * len(rows), now=None))
        done += len(rows)


async def measure(con, pid, org, mode: str, n: int) -> dict[str, float]:
    out = {}
    queue = f"q-{mode}-{uuid.uuid4().hex[:6]}"
    t0 = cpu_secs(pid)
    await enqueue(con, org, queue, n)
    t1 = cpu_secs(pid)
    await drain(con, org, queue, n, 1)
    t2 = cpu_secs(pid)
    await enqueue(con, org, queue, n)
    t3 = cpu_secs(pid)
    await drain(con, org, queue, n, 100)
    t4 = cpu_secs(pid)
    out["enqueue"] = (t1 - t0 + t3 - t2) / (2 * n) * 1e6
    out["claim1"] = (t2 - t1) / n * 1e6
    out["claim100"] = (t4 - t3) / n * 1e6
    return out


async def configure(con, org, mode: str) -> None:
    await con.execute("ALTER TABLE job_history ENABLE TRIGGER job_history_events")
    await con.execute("DELETE FROM event_listeners")
    await con.execute("DELETE FROM webhooks")
    if mode == "off":
        await con.execute("ALTER TABLE job_history DISABLE TRIGGER job_history_events")
    elif mode == "realtime":
        await con.execute("INSERT INTO event_listeners VALUES ($1, gen_random_uuid(), now() + interval '1 day')", org)
    elif mode == "webhook":
        await con.execute("""INSERT INTO webhooks (organization_id, name, url, events) VALUES ($1, 'all',
                             'https://example.com/hook', ARRAY['job.created', 'job.started', 'job.completed'])""", org)


async def main(args) -> None:
    cluster = None
    dsn = args.dsn
    if dsn is None:
        from tests.conftest import Cluster
        cluster = Cluster()
        dsn = cluster.dsn
    try:
        admin = await asyncpg.connect(dsn)
        name = f"events_cost_{uuid.uuid4().hex[:8]}"
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        con = await asyncpg.connect(dsn.replace("/postgres?", f"/{name}?") if "/postgres?" in dsn else dsn)
        await con.execute(schema_sql())
        org = await con.fetchval("INSERT INTO organizations (name, slug) VALUES ('bench', 'bench') RETURNING id")
        pid = await con.fetchval("SELECT pg_backend_pid()")
        modes = ["off", "idle", "realtime", "webhook"]
        results: dict[str, list[dict]] = {m: [] for m in modes}
        await configure(con, org, "idle")
        await measure(con, pid, org, "warmup", 1000)
        for _ in range(args.rounds):
            for mode in modes:
                await configure(con, org, mode)
                results[mode].append(await measure(con, pid, org, mode, args.jobs))
                await con.execute("DELETE FROM webhook_deliveries")
        print(f"PostgreSQL backend CPU, microseconds per job (median of {args.rounds} rounds, {args.jobs} jobs each)")
        print(f"| trigger | {' | '.join(('enqueue (100/stmt)', 'claim 1 + complete 1', 'claim 100 + complete 100'))} |")
        print("|---|---:|---:|---:|")
        summary = {}
        for mode in modes:
            med = {k: statistics.median(r[k] for r in results[mode]) for k in ("enqueue", "claim1", "claim100")}
            summary[mode] = med
            print(f"| {mode} | {med['enqueue']:.1f} | {med['claim1']:.1f} | {med['claim100']:.1f} |")
        print("RESULT " + json.dumps(summary))
        await con.close()
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dsn", default=None)
    asyncio.run(main(p.parse_args()))
