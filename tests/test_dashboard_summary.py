"""GET /dashboard: the summary's numbers end to end, the per-organization singleflight cache (explicit clock), and
the plan of its statements on a large jobs table (index range scans that stop at the cap, no table scan).

The plan test fills 100,000 jobs by default; `SPOOLED_PLAN_ROWS=1000000` runs it on a million (docs/architecture.md
"The dashboard summary" shows that output)."""

from __future__ import annotations

import os
import re
import uuid

import trio

from spooled.domain import inputs
from spooled.domain.scope import Scope
from spooled.store.dashboard import COUNT_CAP, MAX_QUEUES, PLAN_SETTINGS, QUEUE_COUNT_CAP
from spooled.store.sql import Q
from tests.helpers import claim, enqueue

PLAN_ROWS = int(os.environ.get("SPOOLED_PLAN_ROWS", "100000"))
SOME = ["q1", "q7"]          # the queues of a restricted key


async def test_summary_end_to_end(api, other_api):
    for q, n in (("a", 4), ("b", 2)):
        for i in range(n):
            await enqueue(api, queue=q, payload={"i": i})
    await enqueue(other_api, queue="a")                      # another organization's job is not counted
    (done,) = await claim(api, queue="a")
    assert (await api.post(f"/api/v1/jobs/{done['id']}/complete", json={"lease_id": done["lease_id"]})).status_code == 200
    (dead,) = await claim(api, queue="a")
    r = await api.post(f"/api/v1/jobs/{dead['id']}/fail", json={"lease_id": dead["lease_id"], "error": "x",
                                                                "retry": False})
    assert r.json()["will_retry"] is False
    await claim(api, queue="a")                               # one stays processing
    await api.post("/api/v1/queues/b/pause")
    await api.post("/api/v1/workers/register", json={"queue_name": "a", "hostname": "h1"})
    r = await api.get("/api/v1/dashboard")
    assert r.status_code == 200
    d = r.json()
    assert set(d) == {"system", "jobs", "queues", "workers", "recent_activity"}
    assert d["system"]["database_status"] == "healthy" and isinstance(d["system"]["uptime_seconds"], int)
    assert {"version", "started_at", "cache_status", "environment"} <= set(d["system"])
    j = d["jobs"]
    assert (j["total"], j["pending"], j["processing"], j["completed_24h"], j["failed_24h"], j["deadletter"]) == \
        (6, 3, 1, 1, 1, 1)
    assert j["avg_processing_time_ms"] is not None and j["avg_wait_time_ms"] is not None
    assert j["counts_capped_at"] == COUNT_CAP
    assert d["queues"] == [{"name": "a", "pending": 1, "processing": 1, "paused": False},
                           {"name": "b", "pending": 2, "processing": 0, "paused": True}]
    assert d["workers"] == {"total": 1, "healthy": 1, "unhealthy": 0}
    assert d["recent_activity"] == {"jobs_created_1h": 6, "jobs_completed_1h": 1, "jobs_failed_1h": 1}
    o = (await other_api.get("/api/v1/dashboard")).json()
    assert o["jobs"]["total"] == 1 and o["workers"]["total"] == 0 and [q["name"] for q in o["queues"]] == ["a"]


async def test_many_pollers_cost_one_query_set_per_ttl(api, server):
    dash, jobs = server.services.dashboard, server.services.jobs
    await enqueue(api, queue="p")
    got = []

    async def poll():
        got.append(await dash.summary(Scope(api.org_id), now=1000.0))

    before = dash.computed
    async with trio.open_nursery() as n:
        for _ in range(25):
            n.start_soon(poll)
    assert dash.computed == before + 1 and len(got) == 25 and all(g is got[0] for g in got)
    await jobs.enqueue(Scope(api.org_id), "p", [inputs.JobSpec(payload={})])
    assert (await dash.summary(Scope(api.org_id), now=1000.9)).jobs.pending == 1        # cached within the ttl
    assert dash.computed == before + 1
    fresh = await dash.summary(Scope(api.org_id), now=1001.0)                            # expired: read again
    assert fresh.jobs.pending == 2 and dash.computed == before + 2


FILL = """
INSERT INTO jobs (id, organization_id, queue_name, status, payload, priority, max_retries, timeout_seconds,
                  run_at, created_at, updated_at, started_at, completed_at, lease_id, lease_expires_at,
                  assigned_worker_id)
SELECT gen_random_uuid(), $1, 'q' || (g % 20), s.status, '{}', 0, 3, 300, t, t, t,
       CASE WHEN s.status <> 'pending' THEN t + interval '1 second' END,
       CASE WHEN s.status IN ('completed', 'deadletter', 'cancelled') THEN t + interval '2 seconds' END,
       CASE WHEN s.status = 'processing' THEN gen_random_uuid() END,
       CASE WHEN s.status = 'processing' THEN now() + interval '1 hour' END,
       CASE WHEN s.status = 'processing' THEN 'w' END
FROM generate_series(1, $2) g,
     LATERAL (SELECT now() - make_interval(secs => g * 0.17) AS t,
                     (CASE WHEN g % 100 < 5 THEN 'pending' WHEN g % 1000 = 999 THEN 'processing'
                           WHEN g % 100 < 8 THEN 'deadletter' WHEN g % 100 < 10 THEN 'cancelled'
                           ELSE 'completed' END)::job_status AS status) s
"""


async def test_plan_on_a_large_jobs_table(api, other_api, server):
    """5% pending, 3% dead-lettered, 87% completed over the last two days, in 20 queues; another organization
    with a few rows. Every count must walk an index and stop at its cap, for the organization and for a key
    restricted to two of its queues."""
    org = uuid.UUID(api.org_id)

    async def plans(con):
        await con.execute("INSERT INTO queues (organization_id, name) SELECT $1, 'q' || g FROM generate_series(0, 19) g",
                          org)
        await con.execute(FILL, org, PLAN_ROWS)
        await con.execute(FILL, uuid.UUID(other_api.org_id), 1000)
        await con.execute("VACUUM ANALYZE jobs, job_list")
        out = {}
        for name, key, args in (
                ("dashboard_jobs", "jobs", dict(org=org, now=None, cap=COUNT_CAP)),
                ("dashboard_jobs_in_queues", "jobs in queues", dict(org=org, now=None, cap=COUNT_CAP, queues=SOME)),
                ("dashboard_queues", "queues", dict(org=org, cap=QUEUE_COUNT_CAP, running_cap=COUNT_CAP,
                                                    max_queues=MAX_QUEUES, queues=[])),
                ("dashboard_queues", "queues in queues", dict(org=org, cap=QUEUE_COUNT_CAP, running_cap=COUNT_CAP,
                                                              max_queues=MAX_QUEUES, queues=SOME))):
            sql, *values = getattr(Q, name).bind(**args)
            async with con.transaction():
                await con.execute("; ".join(PLAN_SETTINGS))      # as the store runs them
                out[key] = "\n".join(r[0] for r in await con.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *values))
        return out

    out = await server.services.db.run(plans)
    for name, plan in out.items():
        print(f"== {name} on {PLAN_ROWS} jobs\n{plan}")
        assert "Seq Scan on job" not in plan and "Bitmap Heap Scan on job" not in plan and "Sort" not in plan, plan
        scans = re.findall(r"Scan(?: Backward)? using (\w+) on job(?:s|_list) \w+ .*actual time=\S+ rows=(\d+) loops=(\d+)", plan)
        assert scans, plan
        for index, rows, loops in scans:
            assert int(rows) <= COUNT_CAP, (index, rows)
    jobs_plan = out["jobs"]
    assert jobs_plan.count("jobs_org_finished_idx") >= 5 and "job_list_org_created_idx" in jobs_plan
    # restricted: the states counted in the queues' own index ranges, the windows as the organization's
    restricted = out["jobs in queues"]
    assert len(re.findall(r"Index Cond: .*queue_name = ANY", restricted)) >= 3      # total, pending, deadletter
    assert restricted.count("jobs_org_finished_idx") >= 5 and "job_list_org_created_idx" in restricted
    summary = await server.services.dashboard.summary(Scope(api.org_id))
    capped = min(COUNT_CAP, PLAN_ROWS * 5 // 100)
    assert summary.jobs.total == min(COUNT_CAP, PLAN_ROWS) and summary.jobs.pending == capped
    # pending rows (g % 100 < 5) fall in queues q0..q4 only
    per_queue = {q.name: q.pending for q in summary.queues}
    assert len(per_queue) == 20 and sum(per_queue.values()) == 5 * min(QUEUE_COUNT_CAP, PLAN_ROWS // 100)
    assert all(per_queue[f"q{i}"] == 0 for i in range(5, 20))
    some = await server.services.dashboard.summary(Scope(api.org_id, tuple(SOME)))
    # 2 of 20 queues: 10,000 of the 100,000 (at the cap); pending only in q1 (g % 100 == 1)
    assert some.jobs.total == min(COUNT_CAP, PLAN_ROWS // 10) and some.jobs.pending == PLAN_ROWS // 100
    assert [q.name for q in some.queues] == SOME and some.queues[0].pending == min(QUEUE_COUNT_CAP, PLAN_ROWS // 100)
    assert 0 < some.jobs.completed_24h < summary.jobs.completed_24h
