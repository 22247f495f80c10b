"""API-key rules: the SDK's ApiKey fields, sk_live_ keys (old sp_ keys keep working), deactivation and expiry
(refused at once here, within the cache period on other instances), read-only keys, and the queue restriction
on every route and RPC that names a queue."""

from __future__ import annotations

import datetime as dt
import httpx
import pytest

from spooled.services.auth import CACHE_TTL_SECS, hash_key
from tests.access import ADMIN, Clock, bearer, instance, key_of, rpc_code, settings_with_admin, with_grpcio
from tests.grpcio_gen import spooled_pb2 as pb
from tests.grpcio_gen import spooled_pb2_grpc
from tests.helpers import enqueue


@pytest.fixture
def settings(tmp_path, dsn):
    return settings_with_admin(tmp_path, dsn)


async def new_key(api, **fields) -> dict:
    r = await api.post("/api/v1/api-keys", json={"name": "k", **fields})
    assert r.status_code == 201, r.text
    return r.json()


async def test_key_fields(api):
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).replace(microsecond=0)
    created = await new_key(api, queues=["emails"], rate_limit=600, expires_at=future.isoformat())
    assert created["key"].startswith("sk_live_") and len(created["key"]) > 40
    assert created["key_prefix"] == created["key"][:12] and created["queues"] == ["emails"]
    assert dt.datetime.fromisoformat(created["expires_at"]) == future and created["read_only"] is False
    got = (await api.get(f"/api/v1/api-keys/{created['id']}")).json()
    assert "key" not in got and got["organization_id"] == api.org_id and got["rate_limit"] == 600
    assert got["is_active"] is True and got["last_used"] is None
    async with httpx.AsyncClient(base_url=str(api.base_url), headers=bearer(created["key"])) as k:
        assert (await k.get("/api/v1/queues")).status_code == 200
    got = (await api.get(f"/api/v1/api-keys/{created['id']}")).json()
    assert got["last_used"] is not None and got["last_used"] == got["last_used_at"]
    r = await api.put(f"/api/v1/api-keys/{created['id']}", json={"name": "renamed", "rate_limit": None,
                                                                  "queues": []})
    assert (r.json()["name"], r.json()["rate_limit"], r.json()["queues"]) == ("renamed", None, [])
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)).isoformat()
    r = await api.post("/api/v1/api-keys", json={"name": "x", "expires_at": past})
    assert r.status_code == 422 and r.json()["details"]["field"] == "expires_at"
    r = await api.post("/api/v1/api-keys", json={"name": "x", "queues": ["bad name!"]})
    assert r.status_code == 422


async def test_old_sp_keys_keep_working(server, api):
    old = "sp_live_" + "o" * 43
    await server.services.db.run(lambda con: con.execute(
        "INSERT INTO api_keys (organization_id, name, key_hash, key_prefix) VALUES ($1, 'old', $2, $3)",
        api.org_id, hash_key(old), old[:12]))
    async with httpx.AsyncClient(base_url=str(api.base_url), headers=bearer(old)) as k:
        assert (await k.get("/api/v1/jobs")).status_code == 200


async def test_deactivation_is_at_once_here_and_within_the_cache_period_elsewhere(aio_loop, server, client, api,
                                                                                  tmp_path, dsn):
    created = await new_key(api)
    tokens = (await client.post("/api/v1/auth/login", json={"api_key": created["key"]})).json()
    async with instance(settings_with_admin(tmp_path / "b", dsn), dsn) as other:
        clock = Clock()
        other.services.set_clock(clock)
        async with httpx.AsyncClient(base_url=other.http_url, timeout=10) as b:
            for c in (client, b):
                assert (await c.get("/api/v1/jobs", headers=bearer(created["key"]))).status_code == 200
                assert (await c.get("/api/v1/jobs", headers=bearer(tokens["access_token"]))).status_code == 200
            r = await api.put(f"/api/v1/api-keys/{created['id']}", json={"is_active": False})
            assert r.status_code == 200 and r.json()["is_active"] is False
            for cred in (created["key"], tokens["access_token"]):
                assert (await client.get("/api/v1/jobs", headers=bearer(cred))).status_code == 401   # at once
                assert (await b.get("/api/v1/jobs", headers=bearer(cred))).status_code == 200        # cached
            clock.advance(CACHE_TTL_SECS + 0.1)
            for cred in (created["key"], tokens["access_token"]):
                assert (await b.get("/api/v1/jobs", headers=bearer(cred))).status_code == 401
            r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
            assert r.status_code == 401
            # reactivated: works again; a revoked key cannot be
            r = await api.put(f"/api/v1/api-keys/{created['id']}", json={"is_active": True})
            assert r.status_code == 200
            assert (await client.get("/api/v1/jobs", headers=bearer(created["key"]))).status_code == 200
            assert (await api.delete(f"/api/v1/api-keys/{created['id']}")).status_code == 204
            r = await api.put(f"/api/v1/api-keys/{created['id']}", json={"is_active": True})
            assert r.status_code == 409
            assert (await client.get("/api/v1/jobs", headers=bearer(created["key"]))).status_code == 401


async def test_expiry_is_refused_at_once(server, client, api):
    clock = Clock()
    server.services.set_clock(clock)
    soon = dt.datetime.fromtimestamp(clock.now + 3600, dt.timezone.utc).isoformat()
    created = await new_key(api, expires_at=soon)
    tokens = (await client.post("/api/v1/auth/login", json={"api_key": created["key"]})).json()
    assert (await client.get("/api/v1/jobs", headers=bearer(created["key"]))).status_code == 200
    clock.advance(3601)           # the grant is still cached: expiry is checked on every use
    r = await client.get("/api/v1/jobs", headers=bearer(created["key"]))
    assert r.status_code == 401 and r.json()["message"] == "API key expired"
    assert (await client.get("/api/v1/jobs", headers=bearer(tokens["access_token"]))).status_code == 401
    assert (await client.post("/api/v1/auth/login", json={"api_key": created["key"]})).status_code == 401


async def test_read_only_keys(server, client, api):
    job = await enqueue(api, "q")
    ro = await new_key(api, read_only=True)
    assert ro["read_only"] is True
    async with httpx.AsyncClient(base_url=str(api.base_url), headers=bearer(ro["key"])) as k:
        me = (await k.get("/api/v1/auth/me")).json()
        assert me["read_only"] is True and me["api_key_id"] == ro["id"]
        assert (await k.get(f"/api/v1/jobs/{job['id']}")).status_code == 200
        assert (await k.get("/api/v1/queues")).status_code == 200
        for method, path, body in [("POST", "/api/v1/jobs", {"queue_name": "q", "payload": {}}),
                                   ("DELETE", f"/api/v1/jobs/{job['id']}", None),
                                   ("POST", "/api/v1/queues/q/pause", {}),
                                   ("POST", "/api/v1/api-keys", {"name": "escalate"}),
                                   ("PATCH", f"/api/v1/organizations/{api.org_id}", {"name": "x"})]:
            r = await k.request(method, path, json=body)
            assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN", (method, path, r.text)
    assert (await api.get(f"/api/v1/jobs/{job['id']}")).json()["status"] == "pending"
    assert len((await api.get("/api/v1/api-keys")).json()) == 2
    md = (("x-api-key", ro["key"]),)

    def calls(channel):
        stub = spooled_pb2_grpc.QueueServiceStub(channel)
        return (rpc_code(lambda: stub.GetJob(pb.GetJobRequest(job_id=job["id"]), metadata=md, timeout=20)),
                rpc_code(lambda: stub.Enqueue(pb.EnqueueRequest(queue_name="q"), metadata=md, timeout=20)))
    assert await with_grpcio(server.grpc_address, calls) == ("OK", "PERMISSION_DENIED")


async def test_a_read_only_key_can_end_its_own_session_only(client, api):
    """Logout is the one write a read-only key may make, and only for its own refresh tokens."""
    ro = await new_key(api, read_only=True)
    mine = (await client.post("/api/v1/auth/login", json={"api_key": ro["key"]})).json()
    full = (await client.post("/api/v1/auth/login", json={"api_key": key_of(api)})).json()
    as_ro = bearer(mine["access_token"])
    r = await client.post("/api/v1/auth/logout", json={"refresh_token": full["refresh_token"]}, headers=as_ro)
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN", r.text
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": full["refresh_token"]})
            ).status_code == 200                            # another key's session stands
    r = await client.post("/api/v1/auth/logout", json={"refresh_token": mine["refresh_token"]}, headers=as_ro)
    assert r.status_code == 204, r.text
    assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": mine["refresh_token"]})
            ).status_code == 401                            # its own is revoked
    assert (await client.post("/api/v1/auth/logout", json={}, headers=bearer(ro["key"]))).status_code == 204
    r = await client.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}}, headers=as_ro)
    assert r.status_code == 403                            # and still nothing else


async def test_queue_restriction_everywhere_the_queue_is_named(server, client, api):
    mine = await enqueue(api, "allowed")
    await enqueue(api, "other")
    key = (await new_key(api, queues=["allowed"]))["key"]
    async with httpx.AsyncClient(base_url=str(api.base_url), headers=bearer(key)) as k:
        ok = [("POST", "/api/v1/jobs", {"queue_name": "allowed", "payload": {}}),
              ("POST", "/api/v1/jobs/bulk", {"queue_name": "allowed", "jobs": [{"payload": {}}]}),
              ("GET", "/api/v1/queues/allowed", None), ("GET", "/api/v1/queues/allowed/stats", None),
              ("GET", "/api/v1/jobs?queue_name=allowed", None),
              ("POST", "/api/v1/workers/register", {"queue_name": "allowed", "hostname": "h"}),
              ("POST", "/api/v1/schedules", {"name": "s", "cron_expression": "0 3 * * *", "queue_name": "allowed",
                                             "payload_template": {}})]
        for method, path, body in ok:
            r = await k.request(method, path, json=body)
            assert r.status_code in (200, 201), (method, path, r.text)
        refused = [("POST", "/api/v1/jobs", {"queue_name": "other", "payload": {}}),
                   ("POST", "/api/v1/jobs/bulk", {"queue_name": "other", "jobs": [{"payload": {}}]}),
                   ("POST", "/api/v1/jobs/claim", {"queue_name": "other", "worker_id": "w"}),
                   ("GET", "/api/v1/jobs?queue_name=other", None),
                   ("POST", "/api/v1/queues", {"name": "other2"}),
                   ("GET", "/api/v1/queues/other", None), ("GET", "/api/v1/queues/other/stats", None),
                   ("PATCH", "/api/v1/queues/other", {"max_retries": 1}),
                   ("PUT", "/api/v1/queues/other/config", {"max_retries": 1}),
                   ("POST", "/api/v1/queues/other/pause", {}), ("POST", "/api/v1/queues/other/resume", None),
                   ("DELETE", "/api/v1/queues/other?delete_jobs=true", None),
                   ("POST", "/api/v1/workers/register", {"queue_names": ["allowed", "other"], "hostname": "h"}),
                   ("GET", "/api/v1/workers?queue_name=other", None),
                   ("POST", "/api/v1/jobs/dlq/retry", {"queue_name": "other"}),
                   ("POST", "/api/v1/jobs/dlq/retry", {}),
                   ("POST", "/api/v1/jobs/dlq/purge", {"confirm": True}),
                   ("POST", "/api/v1/schedules", {"name": "s", "cron_expression": "0 3 * * *",
                                                  "queue_name": "other", "payload_template": {}}),
                   ("GET", "/api/v1/schedules?queue_name=other", None)]
        for method, path, body in refused:
            r = await k.request(method, path, json=body)
            assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN", (method, path, r.text)
        assert [q["name"] for q in (await k.get("/api/v1/queues")).json()] == ["allowed"]
        (leased,) = (await k.post("/api/v1/jobs/claim", json={"queue_name": "allowed", "worker_id": "w"})).json()[
            "jobs"]
        assert leased["id"] == mine["id"]
    assert (await api.get("/api/v1/queues/other")).json()["paused"] is False    # nothing changed there
    assert (await api.get("/api/v1/jobs/stats")).json()["pending"] == 3

    md = (("x-api-key", key),)

    def calls(channel):
        queue, workers = spooled_pb2_grpc.QueueServiceStub(channel), spooled_pb2_grpc.WorkerServiceStub(channel)
        code_of = rpc_code
        out = {
            "Enqueue": code_of(lambda: queue.Enqueue(pb.EnqueueRequest(queue_name="other"), metadata=md, timeout=20)),
            "EnqueueBulk": code_of(lambda: queue.EnqueueBulk(pb.EnqueueBulkRequest(
                queue_name="allowed", jobs=[pb.EnqueueRequest(queue_name="other")]), metadata=md, timeout=20)),
            "Dequeue": code_of(lambda: queue.Dequeue(pb.DequeueRequest(queue_name="other", worker_id="w"),
                                                     metadata=md, timeout=20)),
            "GetQueueStats": code_of(lambda: queue.GetQueueStats(pb.GetQueueStatsRequest(queue_name="other"),
                                                                 metadata=md, timeout=20)),
            "StreamJobs": code_of(lambda: queue.StreamJobs(pb.StreamJobsRequest(queue_name="other", worker_id="w"),
                                                           metadata=md, timeout=20)),
            "Register": code_of(lambda: workers.Register(pb.RegisterWorkerRequest(queue_name="other", hostname="h"),
                                                         metadata=md, timeout=20)),
            "Enqueue allowed": code_of(lambda: queue.Enqueue(pb.EnqueueRequest(queue_name="allowed"), metadata=md,
                                                             timeout=20)),
        }
        responses = queue.ProcessJobs(iter([pb.ProcessRequest(dequeue=pb.DequeueRequest(
            queue_name="other", worker_id="w", batch_size=1))]), metadata=md, timeout=20)
        out["ProcessJobs"] = next(responses).error.code
        return out
    out = await with_grpcio(server.grpc_address, calls)
    assert out == {"Enqueue": "PERMISSION_DENIED", "EnqueueBulk": "PERMISSION_DENIED",
                   "Dequeue": "PERMISSION_DENIED", "GetQueueStats": "PERMISSION_DENIED",
                   "StreamJobs": "PERMISSION_DENIED", "Register": "PERMISSION_DENIED", "Enqueue allowed": "OK",
                   "ProcessJobs": "PERMISSION_DENIED"}
    assert (await api.get("/api/v1/jobs/stats")).json()["pending"] == 4      # only the allowed enqueue


async def test_a_suspended_organization_is_refused(server, client, api):
    assert (await client.delete(f"/api/v1/admin/organizations/{api.org_id}", headers=ADMIN)).status_code == 204
    r = await api.get("/api/v1/jobs")
    assert r.status_code == 403 and "suspended" in r.json()["message"]
    r = await client.post("/api/v1/auth/login", json={"api_key": key_of(api)})
    assert r.status_code == 403
    r = await client.patch(f"/api/v1/admin/organizations/{api.org_id}", json={"suspended": False}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["suspended"] is False
    assert (await api.get("/api/v1/jobs")).status_code == 200
