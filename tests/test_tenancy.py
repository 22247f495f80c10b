"""Every route is scoped to the caller's organization: another org's ids are a 404, its queues invisible."""

from __future__ import annotations

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
