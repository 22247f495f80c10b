"""The claim statement uses the ready-jobs index on a large backlog (no sort of the backlog)."""

from __future__ import annotations

import uuid

from spooled.store.sql import Q


async def test_claim_uses_the_ready_index_on_100k_jobs(api, server):
    org = uuid.UUID(api.org_id)

    async def fill(con):
        for queue, n in (("big", 100_000), ("other", 20_000)):
            await con.execute(
                "INSERT INTO jobs (id, organization_id, queue_name, status, payload, priority, max_retries, "
                "timeout_seconds, run_at, created_at, updated_at) "
                "SELECT gen_random_uuid(), $1, $2, 'pending', '{}', (g % 5) - 2, 3, 300, now(), now(), now() "
                "FROM generate_series(1, $3) g", org, queue, n)
        await con.execute("ANALYZE jobs")
        args = Q.job_claim.args(org=org, queue="big", worker_id="w", limit=100, lease_secs=30.0, now=None)
        rows = await con.fetch("EXPLAIN " + Q.job_claim.sql, *args)
        return "\n".join(r[0] for r in rows)

    plan = await server.services.db.run(fill)
    print(plan)
    assert "Index Scan using jobs_ready_idx" in plan
    assert "Seq Scan on jobs" not in plan
    claim_part = plan.split("CTE c")[1].split("CTE u")[0]
    assert "Limit" in claim_part and "LockRows" in claim_part
    assert "Sort" not in claim_part  # the index yields claim order; no sort of the backlog (only of the <=100 claimed)
