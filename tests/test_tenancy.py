"""Every route is scoped to the caller's organization: another org's ids are a 404, its queues invisible."""

from __future__ import annotations

import httpx

from tests.access import key_of, rpc_code, with_grpcio
from tests.grpcio_gen import spooled_pb2 as pb
from tests.grpcio_gen import spooled_pb2_grpc
from tests.helpers import claim, enqueue


async def test_other_orgs_job_is_404_everywhere(api, other_api):
    created = await enqueue(api, queue="mine")
    (c,) = await claim(api, queue="mine")
    jid, lease = c["id"], c["lease_id"]
    calls = [
        ("GET", f"/api/v1/jobs/{jid}", None),
        ("GET", f"/api/v1/jobs/{jid}/history", None),
        ("POST", f"/api/v1/jobs/{jid}/complete", {"lease_id": lease}),
        ("POST", f"/api/v1/jobs/{jid}/fail", {"lease_id": lease, "error": "x"}),
        ("POST", f"/api/v1/jobs/{jid}/heartbeat", {"lease_id": lease}),
        ("POST", f"/api/v1/jobs/{jid}/retry", None),
        ("DELETE", f"/api/v1/jobs/{jid}", None),
        ("PUT", f"/api/v1/jobs/{jid}/priority", {"priority": 3}),
        ("GET", "/api/v1/queues/mine", None),
        ("GET", "/api/v1/queues/mine/stats", None),
        ("PATCH", "/api/v1/queues/mine", {"max_retries": 1}),
        ("POST", "/api/v1/queues/mine/pause", None),
        ("POST", "/api/v1/queues/mine/resume", None),
        ("DELETE", "/api/v1/queues/mine?delete_jobs=true", None),
    ]
    for method, path, body in calls:
        r = await other_api.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        assert r.json()["code"] == "NOT_FOUND"
    r = await other_api.post("/api/v1/jobs/complete", json={"completions": [{"job_id": jid, "lease_id": lease}]})
    assert r.json()["results"][0] == {"job_id": jid, "success": False, "error": "NOT_FOUND"}
    assert (await other_api.get("/api/v1/jobs")).json() == []
    assert (await other_api.get("/api/v1/queues")).json() == []
    assert (await other_api.get("/api/v1/jobs/stats")).json()["total"] == 0
    assert (await other_api.get(f"/api/v1/jobs/status?ids={jid}")).json() == []
    await enqueue(api, queue="mine")
    assert await claim(other_api, queue="mine") == []  # same queue name, other org: nothing
    # and nothing changed for the owner
    j = (await api.get(f"/api/v1/jobs/{created['id']}")).json()
    assert j["status"] == "processing" and j["lease_id"] == lease and j["priority"] == 0
    assert (await api.get("/api/v1/queues/mine")).json()["paused"] is False


async def test_other_orgs_organization_keys_and_workers_are_404(api, other_api):
    key = (await api.post("/api/v1/api-keys", json={"name": "a-key"})).json()
    reg = await api.post("/api/v1/workers/register", json={"queue_name": "mine", "hostname": "h", "worker_id": "wa"})
    assert reg.status_code == 201
    org = api.org_id
    calls = [
        ("GET", f"/api/v1/organizations/{org}", None),
        ("PUT", f"/api/v1/organizations/{org}", {"name": "hijacked"}),
        ("PATCH", f"/api/v1/organizations/{org}", {"name": "hijacked"}),
        ("DELETE", f"/api/v1/organizations/{org}", None),
        ("GET", f"/api/v1/organizations/{org}/members", None),
        ("GET", f"/api/v1/api-keys/{key['id']}", None),
        ("PUT", f"/api/v1/api-keys/{key['id']}", {"is_active": False, "name": "x"}),
        ("DELETE", f"/api/v1/api-keys/{key['id']}", None),
        ("GET", "/api/v1/workers/wa", None),
        ("POST", "/api/v1/workers/wa/heartbeat", {"current_jobs": 1, "status": "draining"}),
        ("POST", "/api/v1/workers/wa/deregister", None),
        ("DELETE", "/api/v1/workers/wa", None),
    ]
    for method, path, body in calls:
        r = await other_api.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        assert r.json()["code"] == "NOT_FOUND"
    assert [o["id"] for o in (await other_api.get("/api/v1/organizations")).json()] == [other_api.org_id]
    assert key["id"] not in {k["id"] for k in (await other_api.get("/api/v1/api-keys")).json()}
    assert (await other_api.get("/api/v1/workers")).json() == []
    # A's data is as it was
    assert (await api.get(f"/api/v1/organizations/{org}")).json()["name"] == "Acme"
    got = (await api.get(f"/api/v1/api-keys/{key['id']}")).json()
    assert got["is_active"] is True and got["name"] == "a-key"
    async with httpx.AsyncClient(base_url=str(api.base_url), headers={"Authorization": f"Bearer {key['key']}"}) as k:
        assert (await k.get("/api/v1/jobs")).status_code == 200
    w = (await api.get("/api/v1/workers/wa")).json()
    assert w["status"] == "healthy" and w["current_jobs"] == 0


async def test_grpc_calls_with_another_orgs_ids_are_not_found(server, api, other_api):
    created = await enqueue(api, queue="mine")
    (c,) = await claim(api, queue="mine")
    assert (await api.post("/api/v1/workers/register", json={"queue_name": "mine", "hostname": "h",
                                                             "worker_id": "wa"})).status_code == 201
    md = (("x-api-key", key_of(other_api)),)

    def calls(channel):
        queue, workers = spooled_pb2_grpc.QueueServiceStub(channel), spooled_pb2_grpc.WorkerServiceStub(channel)
        jid, lease = c["id"], c["lease_id"]
        out = {name: rpc_code(fn) for name, fn in {
            "GetJob": lambda: queue.GetJob(pb.GetJobRequest(job_id=jid), metadata=md, timeout=20),
            "Complete": lambda: queue.Complete(pb.CompleteRequest(job_id=jid, lease_id=lease), metadata=md,
                                               timeout=20),
            "Fail": lambda: queue.Fail(pb.FailRequest(job_id=jid, lease_id=lease, error="x"), metadata=md,
                                       timeout=20),
            "RenewLease": lambda: queue.RenewLease(pb.RenewLeaseRequest(job_id=jid, lease_id=lease,
                                                                        extension_secs=60), metadata=md, timeout=20),
            "Heartbeat": lambda: workers.Heartbeat(pb.HeartbeatRequest(worker_id="wa", current_jobs=3), metadata=md,
                                                   timeout=20),
            "Deregister": lambda: workers.Deregister(pb.DeregisterRequest(worker_id="wa"), metadata=md, timeout=20),
            "GetQueueStats": lambda: queue.GetQueueStats(pb.GetQueueStatsRequest(queue_name="mine"), metadata=md,
                                                         timeout=20),
        }.items()}
        batch = queue.CompleteBatch(pb.CompleteBatchRequest(completions=[pb.CompleteRequest(
            job_id=jid, lease_id=lease)]), metadata=md, timeout=20)
        out["CompleteBatch"] = list(batch.success)
        return out
    out = await with_grpcio(server.grpc_address, calls)
    assert out == {"GetJob": "NOT_FOUND", "Complete": "NOT_FOUND", "Fail": "NOT_FOUND", "RenewLease": "NOT_FOUND",
                   "Heartbeat": "NOT_FOUND", "Deregister": "NOT_FOUND", "CompleteBatch": [False],
                   "GetQueueStats": "NOT_FOUND"}
    j = (await api.get(f"/api/v1/jobs/{created['id']}")).json()
    assert j["status"] == "processing" and j["lease_id"] == c["lease_id"] and j["lease_expires_at"] == c[
        "lease_expires_at"]
    w = (await api.get("/api/v1/workers/wa")).json()
    assert w["status"] == "healthy" and w["current_jobs"] == 0
