#!/usr/bin/env python3
"""EXPLAIN (ANALYZE) of the statements that read `jobs` by organization, queue and state (listing, stats, the
dashboard, DLQ, queue deletion) on a large table, for one or more checkouts side by side:

    .venv/bin/python scripts/bench/index_plans.py --repo /tmp/main-export --repo .

For each checkout: a database in one throwaway cluster with its schema.sql, one organization with --jobs jobs
in 10 queues (one queue holds a tenth of them; states: 90 % completed over the last two days, 4 % pending,
2 % processing, 1 % each scheduled, failed, dead-lettered and cancelled), VACUUM ANALYZE; then each statement
(the checkout's own named statements, or the listing's composed SQL) is run once to warm and once under
EXPLAIN (ANALYZE, BUFFERS). Printed per statement and checkout: execution time, buffers and the indexes the
plan reads. Which indexes the claim and complete write is scripts/bench/statement_cost.py's business.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import uuid
from pathlib import Path

import asyncpg

HERE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from statement_cost import Cluster, organization_database  # noqa: E402
from spooled.store.sql import load  # noqa: E402

FILL = """
INSERT INTO jobs (id, organization_id, queue_name, status, payload, priority, max_retries, timeout_seconds, run_at,
                  created_at, updated_at, started_at, completed_at, lease_id, lease_expires_at, assigned_worker_id,
                  last_worker_id, scheduled_at)
SELECT gen_random_uuid(), $1, CASE WHEN g % 10 = 0 THEN 'small' ELSE 'q' || (g % 9) END, s.status,
       '{"job_type": "bench"}', 0, 3, 300, t.at, t.at, t.at,
       CASE WHEN s.status IN ('processing', 'completed', 'failed', 'deadletter') THEN t.at END,
       CASE WHEN s.status IN ('completed', 'failed', 'deadletter', 'cancelled') THEN t.at + interval '1 second' END,
       CASE WHEN s.status = 'processing' THEN gen_random_uuid() END,
       CASE WHEN s.status = 'processing' THEN now() + interval '1 hour' END,
       CASE WHEN s.status = 'processing' THEN 'w' END, CASE WHEN s.status <> 'pending' THEN 'w' END,
       CASE WHEN s.status = 'scheduled' THEN now() + interval '1 hour' END
FROM generate_series(1, $2) g,
     LATERAL (SELECT (CASE WHEN g % 100 < 90 THEN 'completed' WHEN g % 100 < 94 THEN 'pending'
                           WHEN g % 100 < 96 THEN 'processing' WHEN g % 100 = 96 THEN 'scheduled'
                           WHEN g % 100 = 97 THEN 'failed' WHEN g % 100 = 98 THEN 'deadletter'
                           ELSE 'cancelled' END)::job_status AS status) s,
     LATERAL (SELECT now() - interval '2 days' + (g::float8 / $2) * interval '2 days' AS at) t
"""


# Statements the store runs with sequential scans off (the same settings for every checkout: a plan that walks
# an index already is not changed by them).
PINNED = {"job_counts", "queue_stats"}


def listing_of(repo: Path):
    """`list_jobs_sql` of the checkout `repo` (its own module, not this one's)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"listing_{uuid.uuid4().hex}", repo / "spooled/store/listing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.list_jobs_sql


def statements(q, org: uuid.UUID, list_jobs_sql) -> list[tuple[str, str, list]]:
    """(label, sql, args): the named statements with their arguments, and the listing's default pages."""
    from spooled.domain.inputs import JobFilter

    def named(statement: str, **values):
        stmt = q.get(statement)
        if stmt is None:
            return None
        queues = values.pop("queues", []) if stmt.scoped is not None else values.get("queues", [])
        label = f"{statement} (queues {queues})" if queues else statement
        try:
            sql, *args = stmt.bind(queues=queues, **values) if stmt.scoped is not None else (
                stmt.sql, *stmt.args(**values))
        except (TypeError, KeyError) as exc:
            print(f"{label}: not measured ({exc})")
            return None
        return label, sql, args

    out = [
        named("queue_stats", org=org, name="small"),
        named("queue_throughput", org=org, name="small", bucket_secs=3600,
              since=None),
        named("queue_active_jobs", org=org, name="small"),
        named("job_counts", org=org, queues=[]),
        named("job_counts", org=org, queues=["small"]),
        named("dlq_count", org=org, queue="small", queues=[]),
        named("dashboard_jobs", org=org, cap=10000, now=None),
        named("dashboard_jobs_in_queues", org=org, cap=10000, now=None, queues=["small"]),
        named("queue_delete_jobs", org=org, name="small"),
        named("dashboard_queues", org=org, max_queues=100, cap=10000, running_cap=10000, queues=[]),
        named("usage_counts", org=org, day=None),
        named("org_busy", org=org),
    ]
    for label, f in (("list: org, newest first", JobFilter()),
                     ("list: queue 'small', newest first", JobFilter(queue_name="small")),
                     ("list: status failed", JobFilter(statuses=["failed"])),
                     ("list: queue 'small', status completed", JobFilter(queue_name="small", statuses=["completed"]))):
        sql, args = list_jobs_sql(f, "created_at", True, None, 0, 20, org)
        out.append((label, sql, args))
    return [s for s in out if s is not None]


async def database(admin_dsn: str, repo: Path, jobs: int) -> tuple[asyncpg.Connection, uuid.UUID]:
    con, org, _ = await organization_database(admin_dsn, repo, prefix="plans")
    await con.execute(FILL, org, jobs)
    await con.execute("VACUUM ANALYZE")      # every table (job_list too, where a checkout has it)
    return con, org


def fix_args(sql: str, args: list) -> list:
    import datetime as dt
    return [dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=24) if a is None and "since" in sql else a
            for a in args]


async def main(a) -> None:
    cluster = None if a.dsn else Cluster()
    admin = a.dsn or cluster.dsn
    try:
        subjects = []
        for repo in a.repo:
            con, org = await database(admin, repo.resolve(), a.jobs)
            subjects.append((repo, con, org, load(repo.resolve() / "spooled" / "store" / "queries")))
        print(f"{a.jobs:,} jobs in one organization, 10 queues ('small': a tenth of them)")
        results: dict[str, list[str]] = {}
        for repo, con, org, q in subjects:
            for label, sql, args in statements(q, org, listing_of(repo.resolve())):
                args = fix_args(sql, args)
                tr = con.transaction()                  # rolled back: a statement that writes changes nothing
                await tr.start()
                try:
                    if label.split()[0] in PINNED:      # as the store runs them (store/sql.py `pinned`)
                        await con.execute("SET LOCAL enable_seqscan = off; SET LOCAL jit = off")
                    await con.fetch(sql, *args)
                    plan = "\n".join(r[0] for r in await con.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args))
                finally:
                    await tr.rollback()
                time = re.search(r"Execution Time: ([\d.]+) ms", plan).group(1)
                hits = re.search(r"Buffers: shared hit=(\d+)", plan)
                scans = re.findall(r"Index (?:Only )?Scan (?:Backward )?using (\w+)|Bitmap Index Scan on (\w+)", plan)
                used = sorted({a or b for a, b in scans} | ({"Seq Scan"} if "Seq Scan on job" in plan else set()))
                results.setdefault(label, []).append(
                    f"   {repo}: {float(time):9.2f} ms, {hits.group(1) if hits else '?'} buffers, {', '.join(used)}")
                if a.plans:
                    results[label].append(plan)
        for label, lines in results.items():
            print(label)
            print("\n".join(lines))
    finally:
        for _, con, _, _ in locals().get("subjects", []):
            await con.close()
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", type=Path, action="append", required=True)
    p.add_argument("--dsn", help="superuser DSN of an existing server (default: a throwaway cluster)")
    p.add_argument("--jobs", type=int, default=1_000_000)
    p.add_argument("--plans", action="store_true", help="print the whole EXPLAIN output")
    asyncio.run(main(p.parse_args()))
