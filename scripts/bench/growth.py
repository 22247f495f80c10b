"""Bounded growth (docs/benchmarks.md "Bounded growth"): a million jobs through the queue, with and without the
retention loop, on a throwaway embedded PostgreSQL (default autovacuum settings; a temp dir, removed afterwards).

    .venv/bin/python scripts/bench/growth.py [--jobs 1000000] [--mode both|retention|keep] [--probe 2000]

For each mode, in a fresh database, one organization pushes `--jobs` jobs through enqueue (1,000 per
statement) -> claim (100 per statement) -> complete (1,000 per statement), two pipelines at once, through the
services the REST and gRPC routes call. In `retention` mode the retention loop runs alongside (as the
supervisor runs it: again at once while a batch comes back full, else every second here), with the
organization's `job_retention_days` at 1 and its clock 2 days ahead, so every finished job is prunable at once:
the deletes run at full speed against the inserts. In `keep` mode nothing is pruned: the table ends with a
million finished rows.

Measured: every 100,000 jobs the size of `jobs` (heap, indexes) and `job_history`, live and dead tuples and
autovacuum runs; and the **claim cost** (claiming one job of a queue holding `--probe` pending jobs) on the
fresh table, after the run, and once autovacuum has been through after it: PostgreSQL backend CPU per claim
statement (from /proc/<backend>/schedstat, robust to other load on the machine) and the buffers one claim
touches (EXPLAIN (ANALYZE, BUFFERS), median of 21), and of those the buffers of picking the job
(spooled_ready_jobs: the search; the rest is the update, its index entries and the history row). Prints JSON
lines; the last one is the summary.

`--mode backlog` instead measures the claim with 10,000 and with `--backlog` (1,000,000) pending jobs in a queue.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import trio
import trio_asyncio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from spooled.domain import inputs  # noqa: E402
from spooled.domain.scope import Scope  # noqa: E402
from spooled.embedded_pg import EmbeddedPostgres  # noqa: E402
from spooled.services.container import Services  # noqa: E402
from spooled.settings import Settings  # noqa: E402
from spooled.store.db import open_database  # noqa: E402
from spooled.store.schema import ensure_schema  # noqa: E402
from spooled.store.sql import Q  # noqa: E402

BATCH = 1000
CLAIM = 100
CHECKPOINT = 100_000

SIZES = """
SELECT pg_relation_size('jobs') AS jobs_heap, pg_indexes_size('jobs') AS jobs_indexes,
       pg_total_relation_size('job_history') AS history_total,
       (SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'jobs') AS live,
       (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'jobs') AS dead,
       (SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'jobs') AS autovacuums,
       (SELECT count(*) FROM jobs) AS rows,
       (SELECT count(*) FROM jobs WHERE status = 'completed') AS finished
"""


def emit(obj: dict) -> None:
    print(json.dumps(obj, default=str), flush=True)


def mib(n: int) -> float:
    return round(n / 2**20, 1)


def on_cpu_ns(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


async def sizes(db) -> dict:
    row = dict(await db.run(lambda con: con.fetchrow(SIZES)))
    for k in ("jobs_heap", "jobs_indexes", "history_total"):
        row[k + "_mib"] = mib(row.pop(k))
    return row


async def claim_cost(svc: Services, org: str, probe: int, tag: str, *, claims: int | None = None,
                     settle: bool = True) -> dict:
    """Claim one job at a time from a queue holding `probe` pending jobs: backend CPU per claim statement (over
    `claims` claims, default half the queue), and the buffers of one claim (EXPLAIN ANALYZE in a rolled-back
    transaction). `settle`: then finish every job of the queue."""
    queue = f"probe-{tag}"
    for i in range(0, probe, BATCH):
        await svc.jobs.enqueue(Scope(org), queue,
                               [inputs.JobSpec(payload={"p": j}) for j in range(min(BATCH, probe - i))])
    org_id = uuid.UUID(org)
    # the statement the server runs for a lone claimer (one claimer of job_claim_group)
    args = Q.job_claim_group.args(org=org_id, queue=queue, workers=["probe"], limits=[1], lease_secs=[300.0],
                                  now=None)

    def blocks(plan: str) -> int:
        top = json.loads(plan)[0]["Plan"]
        return top["Shared Hit Blocks"] + top["Shared Read Blocks"]

    async def unit(con):
        pid = await con.fetchval("SELECT pg_backend_pid()")
        buffers, picks = [], []
        for _ in range(21):
            tx = con.transaction()
            await tx.start()
            buffers.append(blocks(await con.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + Q.job_claim_group.sql,
                                                     *args)))
            await tx.rollback()
            tx = con.transaction()
            await tx.start()
            picks.append(blocks(await con.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM spooled_ready_jobs($1, $2, 1, now())",
                org_id, queue)))
            await tx.rollback()
        n = claims or probe // 2
        start = on_cpu_ns(pid)
        for _ in range(n):
            rows = await con.fetch(Q.job_claim_group.sql, *args)
            assert len(rows) == 1
        cpu = (on_cpu_ns(pid) - start) / n / 1000
        return {"claim_cpu_us": round(cpu, 1), "claim_buffers": statistics.median(buffers),
                "claim_buffers_range": [min(buffers), max(buffers)], "pick_buffers": statistics.median(picks)}
    result = await svc.db.run(unit)
    if not settle:
        return result
    # settle the probe: complete what was claimed, claim and complete the rest
    while True:
        jobs = await svc.jobs.claim(Scope(org), inputs.Claim(queue_name=queue, worker_id="probe", limit=100))
        if not jobs:
            break
        await svc.jobs.complete_many(Scope(org), [(str(j.id), str(j.lease_id), None, None) for j in jobs])
    held = await svc.db.run(lambda con: con.fetch(
        "SELECT id::text, lease_id::text FROM jobs WHERE queue_name = $1 AND status = 'processing'", queue))
    for i in range(0, len(held), BATCH):
        await svc.jobs.complete_many(Scope(org), [(r["id"], r["lease_id"], None, None) for r in held[i:i + BATCH]])
    return result


async def pipeline(svc: Services, org: str, jobs: int, progress: list) -> None:
    specs = [inputs.JobSpec(payload={"n": i, "data": "x" * 64}) for i in range(BATCH)]
    while progress[0] < jobs:
        progress[0] += BATCH
        await svc.jobs.enqueue(Scope(org), "work", specs)
        claimed = []
        while len(claimed) < BATCH:
            got = await svc.jobs.claim(Scope(org), inputs.Claim(queue_name="work", worker_id="w", limit=CLAIM,
                                                         lease_duration_secs=600))
            if not got:
                break
            claimed += got
        results = await svc.jobs.complete_many(Scope(org), [(str(j.id), str(j.lease_id), None, {"ok": True})
                                                     for j in claimed])
        assert all(r.success for r in results)
        progress[1] += len(claimed)


async def retention_loop(svc: Services, done: trio.Event, deleted: list) -> None:
    while not done.is_set():
        r = await svc.retention.run_once(now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2), limit=1000)
        deleted[0] += r.deleted["jobs"]
        if not r.full(1000):
            with trio.move_on_after(1):
                await done.wait()


async def wait_for_autovacuum(db, before: int, limit_secs: float) -> bool:
    with trio.move_on_after(limit_secs):
        while True:
            now = await db.run(lambda con: con.fetchval(
                "SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'jobs'"))
            if now > before:
                return True
            await trio.sleep(1)
    return False


async def run_mode(mode: str, dsn: str, args) -> dict:
    settings = Settings(data_dir=Path(tempfile.gettempdir()), jwt_secret="b" * 48, default_plan="enterprise")
    async with open_database(dsn, min_size=2, max_size=8) as db:
        await db.run(ensure_schema)
        svc = Services.build(settings, db)
        created = await svc.orgs.create(inputs.CreateOrg(name=f"growth {mode}"))
        org = str(created.org.id)
        await db.run(lambda con: con.execute(
            "UPDATE organizations SET custom_limits = '{\"job_retention_days\": 1}' WHERE id = $1", created.org.id))
        fresh = await claim_cost(svc, org, args.probe, "fresh")
        emit({"mode": mode, "phase": "fresh", **fresh, **await sizes(db)})
        progress, deleted = [0, 0], [0]
        done = trio.Event()
        start = time.monotonic()
        samples = []
        async with trio.open_nursery() as nursery:
            if mode == "retention":
                nursery.start_soon(retention_loop, svc, done, deleted)

            async def work():
                async with trio.open_nursery() as inner:
                    for _ in range(2):
                        inner.start_soon(pipeline, svc, org, args.jobs, progress)
                done.set()
            nursery.start_soon(work)
            mark = CHECKPOINT
            while not done.is_set():
                await trio.sleep(0.5)
                if progress[1] >= mark or done.is_set():
                    s = {"mode": mode, "processed": progress[1], "deleted": deleted[0],
                         "elapsed_s": round(time.monotonic() - start, 1),
                         "jobs_per_s": round(progress[1] / (time.monotonic() - start)), **await sizes(db)}
                    samples.append(s)
                    emit(s)
                    mark += CHECKPOINT
        after = await claim_cost(svc, org, args.probe, "after")
        emit({"mode": mode, "phase": "after", **after, **await sizes(db)})
        av = (await sizes(db))["autovacuums"]
        vacuumed = await wait_for_autovacuum(db, av, args.autovacuum_wait)
        settled = await claim_cost(svc, org, args.probe, "settled")
        emit({"mode": mode, "phase": "after autovacuum" if vacuumed else "no autovacuum yet", **settled,
              **await sizes(db)})
        return {"mode": mode, "fresh": fresh, "after": after, "settled": settled, "autovacuumed": vacuumed,
                "samples": samples}


async def backlog_mode(dsn: str, args) -> dict:
    """Claim cost with a 10,000-job backlog and with a `--backlog` one (default 1,000,000), in one queue each of a
    fresh database: the same 5,000 single claims measured on each (the rest stays pending)."""
    settings = Settings(data_dir=Path(tempfile.gettempdir()), jwt_secret="b" * 48, default_plan="enterprise")
    async with open_database(dsn, min_size=2, max_size=8) as db:
        await db.run(ensure_schema)
        svc = Services.build(settings, db)
        org = str((await svc.orgs.create(inputs.CreateOrg(name="growth backlog"))).org.id)
        small = await claim_cost(svc, org, 10_000, "10k", claims=5000, settle=False)
        emit({"mode": "backlog", "pending": 10_000, **small, **await sizes(db)})
        t0 = time.monotonic()
        big = await claim_cost(svc, org, args.backlog, "big", claims=5000, settle=False)
        emit({"mode": "backlog", "pending": args.backlog, "fill_and_probe_s": round(time.monotonic() - t0, 1),
              **big, **await sizes(db)})
        return {"mode": "backlog", "pending_10k": small, f"pending_{args.backlog}": big,
                "ratio_cpu": round(big["claim_cpu_us"] / small["claim_cpu_us"], 3)}


async def main(args) -> dict:
    base = tempfile.mkdtemp(prefix="spooled-growth-", dir="/tmp")
    os.chmod(base, 0o755)
    pg = EmbeddedPostgres(Path(base))
    try:
        dsn = pg.start()
        out = {"jobs": args.jobs, "probe": args.probe, "modes": []}
        modes = ["retention", "keep"] if args.mode == "both" else [args.mode]
        async with trio_asyncio.open_loop():
            for mode in modes:
                name = f"growth_{mode}"
                async with open_database(dsn, min_size=1, max_size=1) as admin:
                    await admin.run(lambda con: con.execute(f'CREATE DATABASE "{name}"'))
                db_dsn = dsn.replace("/spooled?", f"/{name}?")
                out["modes"].append(await backlog_mode(db_dsn, args) if mode == "backlog"
                                    else await run_mode(mode, db_dsn, args))
        emit({"summary": out})
        return out
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--mode", choices=["both", "retention", "keep", "backlog"], default="both")
    p.add_argument("--backlog", type=int, default=1_000_000, help="--mode backlog: the big backlog's size")
    p.add_argument("--probe", type=int, default=2000)
    p.add_argument("--autovacuum-wait", type=float, default=180.0)
    trio.run(main, p.parse_args())
