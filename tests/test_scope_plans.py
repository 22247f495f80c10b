"""The queue restriction costs an unrestricted key nothing: a scoped statement's text for an unrestricted caller
(store/sql.py: every `$scope(...)` is `true`) has exactly the generic plan of the statement written without the
restriction at all, estimates and costs included. A restricted caller's text lets the planner use the queue where
a statement scans (an index condition, not a filter over the organization's rows), and never where it reaches a
job by id (the primary key drives, even for a queue the statistics have not seen)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from spooled.store import sql
from spooled.store.sql import Q, Statement

SCOPE = re.compile(r"\s*\b(AND|WHERE)\s+\$scope\(")

FILL = ("INSERT INTO jobs (id, organization_id, queue_name, status, payload, priority, max_retries, timeout_seconds, "
        "run_at, created_at, updated_at, completed_at, workflow_id, dependency_mode) "
        "SELECT gen_random_uuid(), $1, 'q' || (g % 7), (ARRAY['pending', 'completed', 'deadletter'])[g % 3 + 1]"
        "::job_status, '{}', 0, 3, 300, now(), now(), now(), CASE WHEN g % 3 > 0 THEN now() END, "
        "CASE WHEN g % 10 = 0 THEN $2::uuid END, CASE WHEN g % 10 = 0 THEN 'all' END FROM generate_series(1, $3) g")


def without_restriction(text: str) -> str:
    """The statement as it would be written with no queue restriction: each `AND $scope(...)` (or `WHERE
    $scope(...)`) cut out."""
    while m := SCOPE.search(text):
        depth, i = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        text = text[:m.start()] + text[i:]
    return text


def source_texts() -> dict[str, str]:
    """Each named statement's text as written in store/queries/*.sql."""
    out = {}
    for path in sorted((Path(sql.__file__).parent / "queries").glob("*.sql")):
        parts = re.split(r"^-- name: (\w+)\s*$", path.read_text(), flags=re.M)
        out.update(zip(parts[1::2], parts[2::2]))
    return out


async def generic_plan(con, sql: str, types: list[str]) -> dict:
    await con.execute(f"PREPARE probe({', '.join(types)}) AS {sql}")
    try:
        nulls = ", ".join("NULL" for _ in types)
        return json.loads(await con.fetchval(f"EXPLAIN (FORMAT JSON, VERBOSE) EXECUTE probe({nulls})"))[0]
    finally:
        await con.execute("DEALLOCATE probe")


async def fill(con, org: uuid.UUID, n: int) -> None:
    wf = await con.fetchval("INSERT INTO workflows (id, organization_id, name, total_jobs, created_at, updated_at) "
                            "VALUES (gen_random_uuid(), $1, 'w', 0, now(), now()) RETURNING id", org)
    await con.execute(FILL, org, wf, n)
    await con.execute("ANALYZE")


async def test_an_unrestricted_key_keeps_its_plans(api, server):
    org = uuid.UUID(api.org_id)
    scoped, texts = [s for s in Q.all() if s.scoped is not None], source_texts()
    assert {"job_complete", "job_fail", "job_heartbeat", "job_get", "job_counts", "dlq_retry", "worker_list",
            "worker_register", "schedule_get", "workflow_get", "workflow_list", "dashboard_queues"} <= \
        {s.name for s in scoped}
    # the hot statements that name their queue are checked before they run and take no scope
    assert Q.job_claim.scoped is None and Q.job_insert.scoped is None

    async def plans(con):
        await fill(con, org, 30_000)
        out = {}
        async with con.transaction():
            await con.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            for s in scoped:
                bare = Statement(s.name, without_restriction(texts[s.name]))
                assert "$scope" not in s.sql and "queues" not in s.params and bare.params == s.params
                types = [await con.fetchval("SELECT format_type($1, NULL)", t.oid)
                         for t in (await con.prepare(s.sql)).get_parameters()]
                out[s.name] = (await generic_plan(con, s.sql, types), await generic_plan(con, bare.sql, types))
        return out

    out = await server.services.db.run(plans)
    for name, (unrestricted, bare) in out.items():
        assert unrestricted == bare, name


def test_without_restriction_cuts_the_scope_out():
    text = "SELECT 1 FROM jobs j WHERE j.id = $id AND $scope(EXISTS (SELECT 1 WHERE j.q = ANY ($queues))) LIMIT 1"
    assert without_restriction(text) == "SELECT 1 FROM jobs j WHERE j.id = $id LIMIT 1"
    s = Statement("x", text)
    assert s.sql == "SELECT 1 FROM jobs j WHERE j.id = $1 AND true LIMIT 1" and s.params == ["id"]
    assert s.scoped.params == ["id", "queues"] and "(EXISTS (SELECT 1 WHERE j.q = ANY ($2)))" in s.scoped.sql
    assert s.bind(id=1, queues=[]) == (s.sql, 1)
    assert s.bind(id=1, queues=("a",)) == (s.scoped.sql, 1, ["a"])


async def test_a_restricted_key_reads_its_queues_through_the_index(api, server):
    org = uuid.UUID(api.org_id)

    async def plans(con):
        await fill(con, org, 30_000)
        out = {}
        for stmt, args in ((Q.job_counts, dict(org=org)), (Q.dlq_retry, dict(org=org, queue=None, ids=None,
                                                                               limit=100))):
            sql, *values = stmt.bind(**args, queues=["q1", "q2"])
            tr = con.transaction()
            await tr.start()
            if stmt is Q.job_counts:                    # as JobStore.counts runs it
                await con.execute("SET LOCAL enable_seqscan = off")
            out[stmt.name] = "\n".join(r[0] for r in await con.fetch("EXPLAIN (ANALYZE) " + sql, *values))
            await tr.rollback()                         # ANALYZE ran the retry: undo it
        return out

    out = await server.services.db.run(plans)
    for name, plan in out.items():
        print(f"== {name}\n{plan}")
        assert re.search(r"Index Cond: .*queue_name = ANY", plan), name
        assert "Seq Scan on jobs" not in plan, name


async def test_by_id_the_primary_key_drives_even_for_a_queue_the_statistics_have_not_seen(api, server):
    """The claim-plan test's worst case for a restricted key: 100,000 jobs land in a queue the statistics have never
    seen. Completing, failing, renewing or reading one of them by id reads that row through the primary key, not
    the queue's 100,000 through a queue index (custom plans, which see the queue's name, and generic ones)."""
    org = uuid.UUID(api.org_id)
    fill_queue = ("INSERT INTO jobs (id, organization_id, queue_name, status, payload, priority, max_retries, "
                  "timeout_seconds, run_at, created_at, updated_at) SELECT gen_random_uuid(), $1, $2, 'pending', '{}', "
                  "0, 3, 300, now(), now(), now() FROM generate_series(1, $3) g")

    async def plans(con):
        await con.execute(fill_queue, org, "other", 20_000)
        await con.execute("ANALYZE jobs")
        await con.execute(fill_queue, org, "big", 100_000)
        (row,) = await con.fetch(*Q.job_claim.bind(org=org, queue="big", worker_id="w", limit=1, lease_secs=60.0,
                                                   now=None))
        lease = dict(org=org, id=row["id"], lease=row["lease_id"], worker=None, now=None, queues=["big"])
        calls = {
            "job_complete": Q.job_complete.bind(org=org, ids=[row["id"]], leases=[row["lease_id"]], workers=[None],
                                                results=[None], now=None, queues=["big"]),
            "job_fail": Q.job_fail.bind(error="x", retry=True, **lease),
            "job_heartbeat": Q.job_heartbeat.bind(lease_secs=60.0, **lease),
            "job_get": Q.job_get.bind(org=org, id=row["id"], queues=["big"]),
            "job_history": Q.job_history.bind(org=org, id=row["id"], desc=False, limit=10, offset=0, queues=["big"]),
        }
        out = {}
        for mode in ("auto", "force_generic_plan"):
            for name, (text, *args) in calls.items():
                tr = con.transaction()
                await tr.start()
                await con.execute(f"SET LOCAL plan_cache_mode = {mode}")
                out[name, mode] = "\n".join(r[0] for r in await con.fetch("EXPLAIN (ANALYZE) " + text, *args))
                await tr.rollback()
        return out

    out = await server.services.db.run(plans)
    for (name, mode), plan in out.items():
        assert "jobs_pk" in plan, (name, mode, plan)
        assert "jobs_org_queue_status_idx" not in plan and "jobs_ready_idx" not in plan, (name, mode, plan)
        assert not re.search(r"on jobs \w+ .*actual time=\S+ rows=\d{3,}", plan), (name, mode, plan)


async def test_single_completions_get_the_generic_plan(api, server):
    """A connection whose completions come one at a time plans job_complete five times, then keeps the generic
    plan (both texts): were the arrays' length visible to a custom plan, each 1-id plan would look cheaper than
    the generic one and PostgreSQL would plan the statement again on every call."""
    org = uuid.UUID(api.org_id)
    fill_queue = ("INSERT INTO jobs (id, organization_id, queue_name, status, payload, priority, max_retries, "
                  "timeout_seconds, run_at, created_at, updated_at) SELECT gen_random_uuid(), $1, 'solo', 'pending', "
                  "'{}', 0, 3, 300, now(), now(), now() FROM generate_series(1, 16) g")

    async def counts(con):
        await con.execute(fill_queue, org)
        for queues in ([], ["solo"]):
            for _ in range(8):
                (row,) = await con.fetch(*Q.job_claim.bind(org=org, queue="solo", worker_id="w", limit=1,
                                                           lease_secs=60.0, now=None))
                (done,) = await con.fetch(*Q.job_complete.bind(org=org, ids=[row["id"]], leases=[row["lease_id"]],
                                                               workers=[None], results=[None], now=None,
                                                               queues=queues))
                assert done["done"]
        rows = await con.fetch("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        return {r["statement"]: (r["generic_plans"], r["custom_plans"]) for r in rows}

    out = await server.services.db.run(counts)
    for text in (Q.job_complete.sql, Q.job_complete.scoped.sql):
        generic, custom = out[text]
        assert generic >= 3 and custom <= 5, (generic, custom)
