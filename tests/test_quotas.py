"""Plan quotas (api.md "Billing"): over a limit is 429 QUOTA_EXCEEDED (no Retry-After; RESOURCE_EXHAUSTED with
"limit reached" over gRPC) and nothing is created; counts are shared between instances through the daily
counters; a plan without limits costs no statement."""

from __future__ import annotations

import grpc
import httpx
import pytest

from tests.access import ADMIN, admin_org, bearer, instance, settings_with_admin, with_grpcio
from tests.grpcio_gen import spooled_pb2 as pb
from tests.grpcio_gen import spooled_pb2_grpc


@pytest.fixture
def settings(tmp_path, dsn):
    return settings_with_admin(tmp_path, dsn)


async def tenant(client, **limits) -> httpx.AsyncClient:
    _, key = await admin_org(client, plan="pro", custom_limits=limits or None)
    return httpx.AsyncClient(base_url=str(client.base_url), headers=bearer(key), timeout=30)


def quota_refusal(r: httpx.Response, resource: str, current: int, limit: int) -> None:
    assert r.status_code == 429, r.text
    body = r.json()
    assert body["code"] == "QUOTA_EXCEEDED" and body["error"] == "quota_exceeded" and "Retry-After" not in r.headers
    assert (body["resource"], body["current"], body["limit"], body["plan"]) == (resource, current, limit, "pro")
    assert body["details"]["upgrade_to"] == "enterprise" and "limit reached" in body["message"]


async def job_count(api) -> int:
    return (await api.get("/api/v1/jobs/stats")).json()["total"]


async def test_jobs_per_day(server, client):
    async with await tenant(client, max_jobs_per_day=3) as api:
        r = await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}, "idempotency_key": "k"})
        assert r.status_code == 201
        r = await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}, "idempotency_key": "k"})
        assert r.status_code == 200 and r.json()["created"] is False     # a replay is not a new job
        for i in range(2):
            assert (await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {"i": i}})).status_code == 201
        quota_refusal(await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}}), "jobs_per_day", 3, 3)
        r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "q", "jobs": [{"payload": {}}] * 2})
        quota_refusal(r, "jobs_per_day", 3, 3)
        assert await job_count(api) == 3
        usage = (await api.get("/api/v1/organizations/usage")).json()
        assert usage["usage"]["jobs_today"] == {"current": 3, "limit": 3, "percentage": 100.0, "is_disabled": False}
        assert usage["warnings"][0]["resource"] == "jobs_today" and usage["warnings"][0]["severity"] == "critical"
        # the admin resets the counter: jobs can be created again
        org_id = (await api.get("/api/v1/auth/me")).json()["organization_id"]
        assert (await client.post(f"/api/v1/admin/organizations/{org_id}/reset-usage", headers=ADMIN)).status_code == 200
        assert (await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}})).status_code == 201


async def test_counts_are_shared_between_instances(aio_loop, server, client, tmp_path, dsn):
    async with await tenant(client, max_jobs_per_day=3) as api:
        for _ in range(2):
            assert (await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}})).status_code == 201
        await server.services.quotas.run_once()          # instance A adds its 2 to the shared counter
        async with instance(settings_with_admin(tmp_path / "b", dsn), dsn) as other:
            async with httpx.AsyncClient(base_url=other.http_url, headers=api.headers, timeout=30) as b:
                assert (await b.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}})).status_code == 201
                quota_refusal(await b.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}}),
                              "jobs_per_day", 3, 3)
                await other.services.quotas.run_once()
            # A learns of B's job at its next sync
            await server.services.quotas.run_once()
            quota_refusal(await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}}),
                          "jobs_per_day", 3, 3)
        assert await job_count(api) == 3


async def test_active_jobs(server, client):
    async with await tenant(client, max_active_jobs=2) as api:
        for _ in range(2):
            assert (await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}})).status_code == 201
        quota_refusal(await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}}), "active_jobs", 2, 2)
        (job,) = (await api.post("/api/v1/jobs/claim", json={"queue_name": "q", "worker_id": "w"})).json()["jobs"]
        r = await api.post(f"/api/v1/jobs/{job['id']}/complete", json={"lease_id": job["lease_id"]})
        assert r.status_code == 200
        await server.services.quotas.run_once()           # the sync notices the finished job
        assert (await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}})).status_code == 201
        assert await job_count(api) == 3


async def test_queues_workers_keys_and_payload(server, client):
    _, key = await admin_org(client, plan="free", custom_limits={"rate_limit_requests_per_second": 1000})
    async with httpx.AsyncClient(base_url=str(client.base_url), headers=bearer(key), timeout=30) as api:
        for name in ("q1", "q2"):
            assert (await api.post("/api/v1/queues", json={"name": name})).status_code == 201
        r = await api.post("/api/v1/queues", json={"name": "q3"})
        assert r.status_code == 429 and r.json()["resource"] == "queues" and r.json()["plan"] == "free"
        r = await api.post("/api/v1/jobs", json={"queue_name": "q4", "payload": {}})      # would create a queue
        assert r.status_code == 429 and r.json()["resource"] == "queues"
        assert (await api.post("/api/v1/jobs", json={"queue_name": "q1", "payload": {}})).status_code == 201
        assert (await api.put("/api/v1/queues/q1/config", json={"max_retries": 1})).status_code == 200
        assert (await api.put("/api/v1/queues/q5/config", json={"max_retries": 1})).status_code == 429
        assert [q["name"] for q in (await api.get("/api/v1/queues")).json()] == ["q1", "q2"]
        reg = {"queue_name": "q1", "hostname": "h", "worker_id": "w1"}
        assert (await api.post("/api/v1/workers/register", json=reg)).status_code == 201
        assert (await api.post("/api/v1/workers/register", json=reg)).status_code == 200      # re-register
        r = await api.post("/api/v1/workers/register", json={**reg, "worker_id": "w2"})
        assert r.status_code == 429 and r.json()["resource"] == "workers"
        assert (await api.post("/api/v1/api-keys", json={"name": "second"})).status_code == 201
        r = await api.post("/api/v1/api-keys", json={"name": "third"})
        assert r.status_code == 429 and r.json()["resource"] == "api_keys"
        r = await api.post("/api/v1/jobs", json={"queue_name": "q1", "payload": {"x": "y" * 70_000}})
        assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE" and "free plan" in r.json()["message"]
        usage = (await api.get("/api/v1/organizations/usage")).json()
        assert usage["plan"] == "free" and usage["limits"]["max_queues"] == 2
        assert usage["usage"]["queues"]["current"] == 2 and usage["usage"]["workers"]["current"] == 1
        assert usage["usage"]["workflows"]["is_disabled"] is True
        # over gRPC: RESOURCE_EXHAUSTED with "limit reached" and no retry-after
        def calls(channel):
            out = []
            for call in (lambda: spooled_pb2_grpc.QueueServiceStub(channel).Enqueue(
                             pb.EnqueueRequest(queue_name="q9"), metadata=(("x-api-key", key),), timeout=20),
                         lambda: spooled_pb2_grpc.WorkerServiceStub(channel).Register(
                             pb.RegisterWorkerRequest(queue_name="q1", hostname="h", worker_id="w3"),
                             metadata=(("x-api-key", key),), timeout=20)):
                try:
                    call()
                    out.append("OK")
                except grpc.RpcError as exc:
                    out.append((exc.code().name, exc.details(), dict(exc.trailing_metadata() or ())))
            return out
        out = await with_grpcio(server.grpc_address, calls)
        for code, message, trailing in out:
            assert code == "RESOURCE_EXHAUSTED" and "limit reached" in message and "retry-after" not in trailing
        assert await job_count(api) == 1


async def test_a_plan_without_limits_costs_no_statement(server, api):
    """Enterprise (the tests' default plan): enqueues touch no quota statement; the counts still add up."""
    usage_store = server.services.quotas._usage
    calls = []
    for name in ("read", "count", "queue_exists", "add_jobs"):
        real = getattr(usage_store, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)
        setattr(usage_store, name, spy)
    for i in range(3):
        assert (await api.post("/api/v1/jobs", json={"queue_name": f"q{i}", "payload": {}})).status_code == 201
    r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "q0", "jobs": [{"payload": {}}] * 4})
    assert r.status_code == 200 and r.json()["success_count"] == 4
    assert calls == []
    await server.services.quotas.run_once()
    assert calls == ["add_jobs"]                        # off the hot path: one upsert for all
    usage = (await api.get("/api/v1/organizations/usage")).json()
    assert usage["usage"]["jobs_today"] == {"current": 7, "limit": None, "percentage": None, "is_disabled": False}
    assert usage["usage"]["active_jobs"]["current"] == 7 and usage["warnings"] == []


async def test_schedules(server, client):
    async with await tenant(client, max_schedules=1) as api:
        spec = {"name": "nightly", "cron_expression": "0 3 * * *", "queue_name": "q", "payload_template": {}}
        first = await api.post("/api/v1/schedules", json=spec)
        assert first.status_code == 201, first.text
        quota_refusal(await api.post("/api/v1/schedules", json={**spec, "name": "second"}), "schedules", 1, 1)
        assert [s["name"] for s in (await api.get("/api/v1/schedules")).json()] == ["nightly"]   # nothing stored
        usage = (await api.get("/api/v1/organizations/usage")).json()
        assert usage["usage"]["schedules"]["current"] == 1 and usage["usage"]["schedules"]["limit"] == 1
        # a deleted schedule frees its place
        assert (await api.delete(f"/api/v1/schedules/{first.json()['id']}")).status_code == 204
        assert (await api.post("/api/v1/schedules", json={**spec, "name": "second"})).status_code == 201


async def test_webhooks(server, client):
    async with await tenant(client, max_webhooks=1) as api:
        hook = {"name": "hook", "url": "https://example.com/hook", "events": ["job.completed"]}
        first = await api.post("/api/v1/webhooks", json=hook)
        assert first.status_code == 201, first.text
        quota_refusal(await api.post("/api/v1/outgoing-webhooks", json={**hook, "name": "second"}), "webhooks", 1, 1)
        assert [w["name"] for w in (await api.get("/api/v1/webhooks")).json()] == ["hook"]    # nothing stored
        usage = (await api.get("/api/v1/organizations/usage")).json()
        assert usage["usage"]["webhooks"]["current"] == 1 and usage["usage"]["webhooks"]["limit"] == 1
        assert (await api.delete(f"/api/v1/webhooks/{first.json()['id']}")).status_code == 204
        assert (await api.post("/api/v1/webhooks", json={**hook, "name": "second"})).status_code == 201
