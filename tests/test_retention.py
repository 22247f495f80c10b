"""Retention (services/retention.py), run with an explicit `now` against the real schema: finished jobs go after
their plan's retention (dead letters later), with their history; active jobs, jobs a schedule run points at and
workflow jobs never; schedule runs by history retention; tokens, codes, events, counters and old workers; bounded
batches, disjoint under concurrency; and the supervisor runs the loop."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import pytest
import trio

from spooled.services.retention import Retention
from spooled.store.retention import RetentionStore
from tests.access import admin_org, bearer, instance, settings_with_admin
from tests.helpers import claim, enqueue, utc

DAY = dt.timedelta(days=1)


@pytest.fixture
def settings(tmp_path, dsn):
    return settings_with_admin(tmp_path, dsn)


async def sql(svc, query: str, *args):
    return await svc.db.run(lambda con: con.fetch(query, *args))


async def present(svc, ids) -> set[str]:
    rows = await sql(svc, "SELECT id::text FROM jobs WHERE id = ANY($1::uuid[])", list(ids))
    return {r["id"] for r in rows}


async def history_rows(svc, ids) -> int:
    return (await sql(svc, "SELECT count(*) AS n FROM job_history WHERE job_id = ANY($1::uuid[])", list(ids)))[0]["n"]


async def events(svc, ids) -> int:
    """The jobs' events as GET /jobs/{id}/history reads them (history rows and what the job rows record)."""
    return (await sql(svc, "SELECT count(*) AS n FROM job_events WHERE job_id = ANY($1::uuid[])", list(ids)))[0]["n"]


@pytest.fixture
async def tenant(client):
    """A free-plan organization (jobs 3 days, history 1 day) as an httpx client."""
    org, key = await admin_org(client, plan="free", custom_limits={"max_active_jobs": None, "max_queues": None,
                                                                   "max_jobs_per_day": None, "max_schedules": 5,
                                                                   "rate_limit_requests_per_second": 1000})
    async with httpx.AsyncClient(base_url=str(client.base_url), headers=bearer(key), timeout=30) as c:
        c.org_id = org
        yield c


async def one_of_each(api) -> dict[str, str]:
    """A job in every state; their ids by state."""
    await api.put("/api/v1/queues/nodlq/config", json={"dead_letter": False})
    ids = {}
    done = await enqueue(api, "r")
    (c,) = await claim(api, "r")
    assert (await api.post(f"/api/v1/jobs/{done['id']}/complete", json={"lease_id": c["lease_id"]})).status_code == 200
    ids["completed"] = done["id"]
    for state, queue in (("deadletter", "r"), ("failed", "nodlq")):
        j = await enqueue(api, queue, max_retries=0)
        (c,) = await claim(api, queue)
        r = await api.post(f"/api/v1/jobs/{j['id']}/fail", json={"lease_id": c["lease_id"], "error": "x"})
        assert r.json()["status"] == state, r.text
        ids[state] = j["id"]
    cancelled = await enqueue(api, "r")
    assert (await api.delete(f"/api/v1/jobs/{cancelled['id']}")).status_code == 204
    ids["cancelled"] = cancelled["id"]
    ids["scheduled"] = (await enqueue(api, "later", scheduled_at=utc(days=365).isoformat()))["id"]
    ids["processing"] = (await enqueue(api, "held"))["id"]
    await claim(api, "held", lease_duration_secs=3600)
    ids["pending"] = (await enqueue(api, "waiting"))["id"]
    return ids


async def test_finished_jobs_go_after_the_plans_retention_dead_letters_later_active_never(server, tenant, api):
    svc = server.services
    ids = await one_of_each(tenant)
    theirs = await one_of_each(api)                      # enterprise: 90 days
    finished = {ids[s] for s in ("completed", "failed", "cancelled")}
    active = {ids[s] for s in ("pending", "scheduled", "processing")}
    assert await history_rows(svc, finished) > 0
    # completed and failed: created, started, completed / failed; cancelled: created, cancelled
    assert await events(svc, finished) == 3 + 3 + 2

    r = await svc.retention.run_once(now=utc(days=2))
    assert r.deleted["jobs"] == 0 and await present(svc, ids.values()) == set(ids.values())
    r = await svc.retention.run_once(now=utc(days=4))
    assert r.deleted["jobs"] == 3 and r.total >= 3
    assert await present(svc, ids.values()) == active | {ids["deadletter"]}
    assert await history_rows(svc, finished) == 0        # their history went with them
    assert await events(svc, finished) == 0
    assert (await tenant.get(f"/api/v1/jobs/{ids['completed']}")).status_code == 404
    assert await present(svc, theirs.values()) == set(theirs.values())
    await svc.retention.run_once(now=utc(days=31))       # dead letters: 30 days by default
    assert await present(svc, ids.values()) == active
    await svc.retention.run_once(now=utc(days=91))
    assert await present(svc, theirs.values()) == {theirs[s] for s in ("pending", "scheduled", "processing")}
    await svc.retention.run_once(now=utc(days=100_000))
    assert await present(svc, ids.values()) == active    # active jobs are never pruned
    for state in ("pending", "scheduled", "processing"):
        assert (await tenant.get(f"/api/v1/jobs/{ids[state]}")).json()["status"] == state


async def test_an_organizations_limits_and_the_operators_override_the_plan(server, client):
    svc = server.services
    org, key = await admin_org(client, plan="free", custom_limits={"job_retention_days": 10})
    async with httpx.AsyncClient(base_url=str(client.base_url), headers=bearer(key)) as c:
        j = await enqueue(c, "r")
        (got,) = await claim(c, "r")
        await c.post(f"/api/v1/jobs/{j['id']}/complete", json={"lease_id": got["lease_id"]})
    _, key2 = await admin_org(client, plan="free")
    async with httpx.AsyncClient(base_url=str(client.base_url), headers=bearer(key2)) as c:
        k = await enqueue(c, "r")
        await c.delete(f"/api/v1/jobs/{k['id']}")
    await svc.retention.run_once(now=utc(days=4))
    assert await present(svc, [j["id"], k["id"]]) == {j["id"]}       # custom 10 days; the plan's 3
    # an operator's SPOOLED_PLAN_LIMITS for the free plan
    lenient = Retention(RetentionStore(svc.db), operator={"free": {"job_retention_days": 20}}, deadletter_days=60)
    assert lenient.windows.job_days[lenient.windows.tiers.index("free")] == 20
    await lenient.run_once(now=utc(days=11))
    assert await present(svc, [j["id"]]) == set()


async def test_schedule_runs_go_by_history_retention_and_hold_their_jobs(server, client):
    svc = server.services
    org, key = await admin_org(client, plan="pro", custom_limits={"history_retention_days": 30,
                                                                  "job_retention_days": 1})
    async with httpx.AsyncClient(base_url=str(client.base_url), headers=bearer(key)) as c:
        s = (await c.post("/api/v1/schedules", json={"name": "n", "cron_expression": "0 0 1 1 *",
                                                       "queue_name": "sq", "payload_template": {}})).json()
        done = (await c.post(f"/api/v1/schedules/{s['id']}/trigger")).json()["job_id"]
        (got,) = await claim(c, "sq")
        await c.post(f"/api/v1/jobs/{done}/complete", json={"lease_id": got["lease_id"]})
        waiting = (await c.post(f"/api/v1/schedules/{s['id']}/trigger")).json()["job_id"]   # stays pending
        # a fired run whose job was never recorded (an enqueue promise) is kept whatever its age
        await sql(svc, "INSERT INTO schedule_runs (id, schedule_id, organization_id, fire_time, manual, "
                       "enqueue_after) VALUES (gen_random_uuid(), $1, $2, now(), true, now() + interval '1 day')",
                  uuid.UUID(s["id"]), uuid.UUID(org))
        runs = lambda: sql(svc, "SELECT job_id::text FROM schedule_runs WHERE schedule_id = $1", uuid.UUID(s["id"]))
        # the job is past its 1 day, but a run (30 days of history) points at it: kept
        r = await svc.retention.run_once(now=utc(days=2))
        assert r.deleted["schedule_runs"] == 0 and await present(svc, [done, waiting]) == {done, waiting}
        # past the history retention: the run of the finished job goes, then its job (same pass)
        r = await svc.retention.run_once(now=utc(days=31))
        assert r.deleted["schedule_runs"] == 1 and r.deleted["jobs"] == 1
        assert sorted(x["job_id"] or "" for x in await runs()) == sorted(["", waiting])
        assert await present(svc, [done, waiting]) == {waiting}
        history = (await c.get(f"/api/v1/schedules/{s['id']}/history")).json()
        assert sorted(h["status"] for h in history) == ["pending", "pending"]
        await svc.retention.run_once(now=utc(days=10_000))
        assert len(await runs()) == 2 and await present(svc, [waiting]) == {waiting}


async def flow(api, name: str) -> tuple[str, list[str]]:
    r = await api.post("/api/v1/workflows", json={"name": name, "jobs": [
        {"key": "a", "queue_name": f"wf-{name}", "payload": {}},
        {"key": "b", "queue_name": f"wf-{name}", "payload": {}, "depends_on": ["a"]}]})
    assert r.status_code == 201, r.text
    return r.json()["workflow_id"], [j["job_id"] for j in r.json()["job_ids"]]


async def run_one(api, queue: str) -> None:
    (c,) = await claim(api, queue)
    assert (await api.post(f"/api/v1/jobs/{c['id']}/complete", json={"lease_id": c["lease_id"]})).status_code == 200


async def test_workflows_go_whole_once_finished_and_their_jobs_never_alone(server, api):
    svc = server.services
    done, done_jobs = await flow(api, "done")
    await run_one(api, "wf-done")
    await run_one(api, "wf-done")
    running, running_jobs = await flow(api, "running")
    await run_one(api, "wf-running")                  # a completed, b pending: the workflow runs
    stopped, stopped_jobs = await flow(api, "stopped")
    (held,) = await claim(api, "wf-stopped", lease_duration_secs=3600)
    assert (await api.post(f"/api/v1/workflows/{stopped}/cancel")).status_code == 200   # a is still processing
    statuses = {w: (await api.get(f"/api/v1/workflows/{w}")).json()["status"] for w in (done, running, stopped)}
    assert statuses == {done: "completed", running: "running", stopped: "cancelled"}
    r = await svc.retention.run_once(now=utc(days=100))
    assert r.deleted["workflows"] == 1 and r.deleted["jobs"] == 0
    assert (await api.get(f"/api/v1/workflows/{done}")).status_code == 404
    assert await present(svc, done_jobs) == set() and await history_rows(svc, done_jobs) == 0
    assert await events(svc, done_jobs) == 0
    assert await present(svc, running_jobs + stopped_jobs) == set(running_jobs + stopped_jobs)
    # the cancelled workflow goes once its running job has finished
    await api.post(f"/api/v1/jobs/{held['id']}/complete", json={"lease_id": held["lease_id"]})
    r = await svc.retention.run_once(now=utc(days=100))
    assert r.deleted["workflows"] == 1 and await present(svc, stopped_jobs) == set()
    assert (await api.get(f"/api/v1/workflows/{running}")).json()["status"] == "running"


async def cancelled_jobs(api, n: int) -> list[str]:
    r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "bulk", "jobs": [{"payload": {"i": i}}
                                                                                    for i in range(n)]})
    ids = [s["job_id"] for s in r.json()["succeeded"]]
    for i in ids:
        assert (await api.delete(f"/api/v1/jobs/{i}")).status_code == 204
    return ids


async def test_batches_are_bounded_and_disjoint_under_concurrency(server, api):
    svc = server.services
    ids = await cancelled_jobs(api, 5)
    later = utc(days=100)
    sizes = []
    for _ in range(3):
        r = await svc.retention.run_once(now=later, limit=2)
        sizes.append((r.deleted["jobs"], r.full(2)))
    assert sizes == [(2, True), (2, True), (1, False)]
    assert await present(svc, ids) == set()
    # two passes at once (as two instances would), many times over: each job is deleted exactly once
    ids = await cancelled_jobs(api, 60)
    counts: list[int] = []

    async def prune():
        while True:
            r = await svc.retention.run_once(now=later, limit=7)
            counts.append(r.deleted["jobs"])
            if not r.deleted["jobs"]:
                return
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(prune)
            nursery.start_soon(prune)
    assert sum(counts) == 60 and await present(svc, ids) == set()


async def test_tokens_codes_events_counters_and_old_workers(server, api, client):
    svc = server.services
    tokens = (await client.post("/api/v1/auth/login", json={"api_key": api.headers["authorization"][7:]})).json()
    await client.post("/api/v1/auth/email/start", json={"email": "someone@example.com"})
    await sql(svc, "INSERT INTO stripe_events (id, type, event_at, applied) VALUES ('evt_old', 't', now(), true)")
    org = uuid.UUID(api.org_id)
    today = dt.datetime.now(dt.timezone.utc).date()
    await sql(svc, "INSERT INTO org_usage_daily (organization_id, day, jobs_created) VALUES ($1, $2, 1), ($1, $3, 1)",
              org, today, today - dt.timedelta(days=10))     # (not old yet: the loop's own pass leaves it)
    for w in ("gone", "alive"):
        await api.post("/api/v1/workers/register", json={"queue_name": "q", "hostname": "h", "worker_id": w})
    await api.post("/api/v1/workers/gone/deregister")

    async def counts():
        rows = await sql(svc, """SELECT (SELECT count(*) FROM refresh_tokens) AS refresh,
                                        (SELECT count(*) FROM email_login_codes) AS codes,
                                        (SELECT count(*) FROM stripe_events) AS events,
                                        (SELECT count(*) FROM org_usage_daily) AS days,
                                        (SELECT array_agg(id ORDER BY id) FROM workers) AS workers""")
        return dict(rows[0])
    await svc.retention.run_once(now=utc(hours=1))
    assert await counts() == {"refresh": 1, "codes": 1, "events": 1, "days": 2, "workers": ["alive", "gone"]}
    await svc.retention.run_once(now=utc(days=8))
    assert await counts() == {"refresh": 1, "codes": 0, "events": 1, "days": 2, "workers": ["alive"]}
    r = await svc.retention.run_once(now=utc(days=31))
    assert r.deleted["usage_days"] == 1 and r.deleted["refresh_tokens"] == 1 and r.deleted["stripe_events"] == 1
    assert await counts() == {"refresh": 0, "codes": 0, "events": 0, "days": 1, "workers": ["alive"]}
    # a refresh token whose row is gone no longer refreshes
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401


async def test_done_webhook_deliveries_and_the_inbound_log_go_after_the_history_retention(server, tenant, client):
    """Free plan: history 1 day. Delivered and failed deliveries go then, pending ones never; the inbound log goes
    too, and a redelivery after that is still recognised (its job's idempotency key)."""
    svc = server.services
    hook = (await tenant.post("/api/v1/webhooks", json={"name": "h", "url": "https://h.example.com/x",
                                                        "events": ["worker.deregistered"]})).json()
    rows = await sql(svc, "INSERT INTO webhook_deliveries (webhook_id, organization_id, event, payload, status) "
                          "SELECT $1, $2, 'worker.deregistered', '{}', s FROM unnest($3::text[]) s RETURNING id, status",
                     uuid.UUID(hook["id"]), uuid.UUID(tenant.org_id), ["success", "failed", "pending"])
    ids = {r["status"]: r["id"] for r in rows}
    await sql(svc, "UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 year' WHERE id = $1",
              ids["pending"])                                     # (out of the dispatcher's way)
    token = (await tenant.get("/api/v1/organizations/webhook-token")).json()["webhook_token"]
    body = {"queue_name": "in", "event_type": "e", "payload": {}, "idempotency_key": "delivery-1"}
    url = f"/api/v1/webhooks/{tenant.org_id}/custom"
    first = await client.post(url, json=body, headers={"X-Webhook-Token": token})
    assert first.status_code == 201

    async def left():
        d = await sql(svc, "SELECT status FROM webhook_deliveries WHERE id = ANY($1::uuid[])", list(ids.values()))
        n = await sql(svc, "SELECT count(*) AS n FROM inbound_webhooks WHERE organization_id = $1",
                      uuid.UUID(tenant.org_id))
        return sorted(r["status"] for r in d), n[0]["n"]
    await svc.retention.run_once(now=utc(hours=12))
    assert await left() == (["failed", "pending", "success"], 1)
    r = await svc.retention.run_once(now=utc(days=2))
    assert r.deleted["webhook_deliveries"] == 2 and r.deleted["inbound_webhooks"] == 1
    assert await left() == (["pending"], 0)
    again = await client.post(url, json=body, headers={"X-Webhook-Token": token})
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert again.json()["job_id"] == first.json()["job_id"]


async def test_other_parts_register_their_own_pruners(server):
    svc = server.services
    seen = []

    async def deliveries(windows, now, limit):
        seen.append((windows.tiers, now, limit))
        return 3
    retention = Retention(RetentionStore(svc.db))
    retention.register("audit_trail", deliveries)
    with pytest.raises(ValueError):
        retention.register("jobs", deliveries)
    when = utc()
    r = await retention.run_once(now=when, limit=3)
    assert r.deleted["audit_trail"] == 3 and r.full(3)
    assert seen == [(("free", "starter", "pro", "enterprise"), when, 3)]


async def test_the_supervisor_runs_the_retention_loop(aio_loop, tmp_path, dsn, client):
    async with instance(settings_with_admin(tmp_path / "b", dsn, retention_interval_secs=0.05), dsn) as other:
        async with httpx.AsyncClient(base_url=other.http_url) as c:
            r = await c.post("/api/v1/organizations", json={"name": "Loop"})
            c.headers.update(bearer(r.json()["api_key"]["key"]))
            j = await enqueue(c, "r")
            await c.delete(f"/api/v1/jobs/{j['id']}")
            # finished long ago (the loop uses the database clock)
            await sql(other.services, "UPDATE jobs SET completed_at = now() - interval '1000 days' WHERE id = $1",
                      uuid.UUID(j["id"]))
            with trio.fail_after(30):
                while await present(other.services, [j["id"]]):
                    await trio.sleep(0.05)
            assert (await c.get(f"/api/v1/jobs/{j['id']}")).status_code == 404


SEQ_SCANS = """SELECT coalesce((SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'jobs'), 0) AS jobs,
                      coalesce((SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'job_history'), 0)
                          AS history"""


async def test_retention_plans_never_scan_a_grown_jobs_table(server, api):
    """Made while the table was small, a generic plan of the retention statements scanned jobs whole (the
    NOT EXISTS probes): pinned to the indexes, none does once it has grown."""
    from spooled.store.retention import pinned
    from spooled.store.sql import Q
    from tests.test_claim_plan import FILL
    svc = server.services
    w = svc.retention.windows
    statements = [(Q.retention_jobs, dict(tiers=list(w.tiers), job_days=list(w.job_days), deadletter_days=30)),
                  (Q.retention_schedule_runs, dict(tiers=list(w.tiers), history_days=list(w.history_days))),
                  (Q.retention_workflows, dict(tiers=list(w.tiers), job_days=list(w.job_days), deadletter_days=30))]

    async def scans(con):
        await con.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")
        await con.execute("SET plan_cache_mode = force_generic_plan")
        await con.execute(FILL, uuid.UUID(api.org_id), "small", 20)
        for stmt, values in statements:
            for _ in range(3):
                await pinned(con, stmt, now=None, limit=10, **values)
        await con.execute(FILL, uuid.UUID(api.org_id), "big", 50_000)
        await con.execute("UPDATE jobs SET status = 'cancelled', completed_at = now() WHERE queue_name = 'big'")
        out = []
        for stmt, values in statements:
            async with con.transaction():
                # PostgreSQL 15 shows a backend's counts not yet flushed (up to a second of earlier transactions,
                # such as the UPDATE above) in pg_stat_xact_*: within this transaction only the difference counts
                before = await con.fetchrow(SEQ_SCANS)
                deleted = await pinned(con, stmt, now=utc(days=1000), limit=10, **values)
                after = await con.fetchrow(SEQ_SCANS)
                # and the jobs_deleted trigger took their history by its index
                assert after["history"] - before["history"] == 0, stmt.name
                out.append((stmt.name, deleted, after["jobs"] - before["jobs"]))
                # and without JIT (a plan costed by disabled scans compiled itself for a second each time)
                assert await con.fetchval("SELECT current_setting('jit')") == "off"
        return out

    out = await svc.db.run(scans)
    assert out == [("retention_jobs", 10, 0), ("retention_schedule_runs", 0, 0), ("retention_workflows", 0, 0)]
