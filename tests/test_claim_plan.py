"""The claim reads only the head of the ready-jobs index, whatever the statistics say (no sort of the backlog), and
jobs waiting for their dependencies are not in that index at all."""

from __future__ import annotations

import re
import uuid

from spooled.store.sql import Q

FILL = ("INSERT INTO jobs (id, organization_id, queue_name, status, payload, priority, max_retries, timeout_seconds, "
        "run_at, created_at, updated_at) SELECT gen_random_uuid(), $1, $2, 'pending', '{}', (g % 5) - 2, 3, 300, "
        "now(), now(), now() FROM generate_series(1, $3) g")


async def test_claim_uses_the_ready_index_on_100k_jobs(api, server):
    org = uuid.UUID(api.org_id)

    async def plans(con):
        await con.execute(FILL, org, "other", 20_000)
        await con.execute("ANALYZE jobs")
        # the worst case: 100k jobs land in a queue the statistics have never seen, and the plan is generic
        await con.execute(FILL, org, "big", 100_000)
        body = await con.fetchval("SELECT prosrc FROM pg_proc WHERE proname = 'spooled_ready_jobs'")
        query = re.search(r"RETURN QUERY\s+(.*?);", body, re.S).group(1)
        for i, name in enumerate(("p_org", "p_queue", "p_limit", "p_now"), 1):
            query = query.replace(name, f"${i}")
        async with con.transaction():
            await con.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await con.execute("SET LOCAL enable_sort = off")   # what the function's SET clause does
            await con.execute(f"PREPARE ready(uuid, text, int, timestamptz) AS {query}")
            inner = "\n".join(r[0] for r in await con.fetch(
                f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE ready('{org}', 'big', 100, now())"))
            await con.execute("DEALLOCATE ready")
        args = Q.job_claim.args(org=org, queue="big", worker_id="w", limit=100, lease_secs=30.0, now=None)
        outer = "\n".join(r[0] for r in await con.fetch("EXPLAIN " + Q.job_claim.sql, *args))
        claimed = await con.fetch(Q.job_claim.sql, *args)
        # 50,000 jobs waiting for dependencies at the front of the claim order (a higher priority): not read
        await con.execute(FILL.replace("'pending', '{}', (g % 5) - 2", "'pending', '{}', 50")
                          .replace("run_at, created_at, updated_at)", "run_at, created_at, updated_at, "
                                   "dependency_mode, dependencies_met)")
                          .replace("now(), now(), now() FROM", "now(), now(), now(), 'all', false FROM"),
                          org, "big", 50_000)
        async with con.transaction():
            await con.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await con.execute("SET LOCAL enable_sort = off")
            await con.execute(f"PREPARE ready(uuid, text, int, timestamptz) AS {query}")
            waiting = "\n".join(r[0] for r in await con.fetch(
                f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE ready('{org}', 'big', 100, now())"))
            await con.execute("DEALLOCATE ready")
        after = await con.fetch(Q.job_claim.sql, *args)
        return inner, outer, claimed, waiting, after

    inner, outer, claimed, waiting, after = await server.services.db.run(plans)
    print(inner)
    assert "Index Scan using jobs_ready_idx" in inner and "Sort" not in inner
    assert re.search(r"Limit .*rows=100 ", inner)          # stopped after the limit
    assert "Function Scan on spooled_claim_jobs" in outer
    assert len(claimed) == 100 and all(r["priority"] == 2 for r in claimed)
    print(waiting)
    assert "Index Scan using jobs_ready_idx" in waiting and "Sort" not in waiting
    assert re.search(r"Index Scan using jobs_ready_idx .*rows=100 loops=1", waiting)   # no waiting row read
    assert "Rows Removed by Filter" not in waiting
    assert len(after) == 100 and all(r["priority"] == 2 and r["dependencies_met"] for r in after)


async def test_a_plan_made_on_a_small_table_never_scans_the_grown_one(api, server):
    """A prepared statement keeps the generic plan of its first runs. Made while the table is small (a fresh
    install), the claim's join to the picked ids was a sequential scan of jobs, read on every claim after the
    table had grown (until an autovacuum replanned it). Pinned by spooled_claim_jobs: none, whatever the size."""
    org = uuid.UUID(api.org_id)

    async def scans(con):
        await con.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")   # no replanning meanwhile
        await con.execute("SET plan_cache_mode = force_generic_plan")
        await con.execute(FILL, org, "small", 20)
        args = Q.job_claim.args(org=org, queue="small", worker_id="w", limit=5, lease_secs=30.0, now=None)
        for _ in range(3):
            assert len(await con.fetch(Q.job_claim.sql, *args)) == 5            # the plan is made here, small
        await con.execute(FILL, org, "big", 50_000)
        args = Q.job_claim.args(org=org, queue="big", worker_id="w", limit=5, lease_secs=30.0, now=None)
        async with con.transaction():
            claimed = await con.fetch(Q.job_claim.sql, *args)
            row = await con.fetchrow("SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'jobs'")
        return len(claimed), row["seq_scan"], row["idx_scan"]

    claimed, seq, idx = await server.services.db.run(scans)
    assert claimed == 5 and seq == 0 and idx > 0
