"""Queues over REST: create/list/get/patch/config/delete, pause/resume, stats."""

from __future__ import annotations

import datetime as dt

from tests.helpers import claim, enqueue, parse, utc


async def test_create_get_list_patch(api):
    r = await api.post("/api/v1/queues", json={"name": "emails", "max_retries": 5, "default_timeout": 120,
                                               "concurrency_limit": 10, "settings": {"b": 1, "a": 2}})
    assert r.status_code == 201
    q = r.json()
    assert q["name"] == q["queue_name"] == "emails" and q["max_retries"] == 5 and q["enabled"] is True
    assert q["organization_id"] == api.org_id and q["settings"] == {"b": 1, "a": 2}
    r = await api.post("/api/v1/queues", json={"queue_name": "emails"})
    assert r.status_code == 409 and r.json()["code"] == "CONFLICT"
    assert [x["name"] for x in (await api.get("/api/v1/queues")).json()] == ["emails"]
    r = await api.patch("/api/v1/queues/emails", json={"max_retries": 1, "concurrency_limit": None})
    assert r.status_code == 200 and r.json()["max_retries"] == 1 and r.json()["concurrency_limit"] is None
    assert r.json()["default_timeout"] == 120
    got = (await api.get("/api/v1/queues/emails")).json()
    assert got["max_retries"] == 1 and got["stats"]["pending_jobs"] == 0
    assert (await api.patch("/api/v1/queues/nope", json={"max_retries": 1})).status_code == 404
    assert (await api.patch("/api/v1/queues/emails", json={"max_retries": -1})).status_code == 422


async def test_create_validation(api):
    assert (await api.post("/api/v1/queues", json={})).status_code == 422
    assert (await api.post("/api/v1/queues", json={"name": "has space"})).status_code == 422
    r = await api.post("/api/v1/queues", json={"name": "b", "retry_backoff_base_secs": 10, "retry_backoff_max_secs": 5})
    assert r.status_code == 422


async def test_put_config_creates_then_updates(api):
    r = await api.put("/api/v1/queues/cfg/config", json={"max_retries": 8})
    assert r.status_code == 200 and r.json()["max_retries"] == 8
    r = await api.put("/api/v1/queues/cfg/config", json={"default_timeout": 42})
    assert r.json()["max_retries"] == 8 and r.json()["default_timeout"] == 42


async def test_queue_created_on_first_use(api):
    await enqueue(api, queue="auto")
    r = await api.get("/api/v1/queues/auto")
    assert r.status_code == 200 and r.json()["max_retries"] == 3 and r.json()["stats"]["pending_jobs"] == 1


async def test_pause_resume(api):
    await enqueue(api, queue="p")
    r = await api.post("/api/v1/queues/p/pause", json={"reason": "deploy"})
    assert r.status_code == 200
    body = r.json()
    assert body["queue_name"] == "p" and body["paused"] is True and body["reason"] == "deploy" and body["paused_at"]
    assert (await api.get("/api/v1/queues/p")).json()["enabled"] is False
    assert await claim(api, queue="p") == []  # a paused queue hands out nothing
    await enqueue(api, queue="p")  # enqueue still works
    r = await api.post("/api/v1/queues/p/resume", headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["resumed"] is True and r.json()["paused_duration_secs"] >= 0
    assert len(await claim(api, queue="p", limit=10)) == 2
    assert (await api.post("/api/v1/queues/nope/pause")).status_code == 404


async def test_delete_with_active_jobs(api):
    await enqueue(api, queue="del")
    r = await api.delete("/api/v1/queues/del")
    assert r.status_code == 409 and r.json()["code"] == "CONFLICT"
    assert (await api.get("/api/v1/queues/del")).status_code == 200
    assert (await api.delete("/api/v1/queues/del?delete_jobs=true")).status_code == 204
    assert (await api.get("/api/v1/queues/del")).status_code == 404
    assert (await api.get("/api/v1/jobs?queue_name=del")).json() == []
    assert (await api.delete("/api/v1/queues/del")).status_code == 404


async def test_stats(api):
    for _ in range(3):
        await enqueue(api, queue="s")
    await enqueue(api, queue="other")
    jobs = await claim(api, queue="s", limit=2)
    await api.post(f"/api/v1/jobs/{jobs[0]['id']}/complete", json={"lease_id": jobs[0]["lease_id"]})
    await api.post(f"/api/v1/jobs/{jobs[1]['id']}/fail", json={"lease_id": jobs[1]["lease_id"], "error": "e",
                                                                 "retry": False})
    s = (await api.get("/api/v1/queues/s/stats")).json()
    assert s["queue_name"] == "s" and s["pending_jobs"] == 1 and s["processing_jobs"] == 0
    assert s["completed_jobs_24h"] == 1 and s["failed_jobs_24h"] == 1 and s["deadletter_jobs"] == 1
    assert s["avg_processing_time_ms"] >= 0 and s["max_job_age_seconds"] >= 0
    assert set(s) == {"queue_name", "pending_jobs", "scheduled_jobs", "processing_jobs", "completed_jobs_24h",
                      "failed_jobs_24h", "deadletter_jobs", "active_workers", "avg_processing_time_ms",
                      "max_job_age_seconds"}
    assert (await api.get("/api/v1/queues/missing/stats")).status_code == 404


async def test_enabled_false_pauses_and_true_resumes(api):
    """The official SDK's update_config({"enabled": false}) is how it pauses a queue."""
    await enqueue(api, queue="en")
    r = await api.put("/api/v1/queues/en/config", json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["paused"] is True
    assert await claim(api, queue="en") == []
    r = await api.put("/api/v1/queues/en/config", json={"enabled": True})
    assert r.json()["enabled"] is True and r.json()["paused_at"] is None
    assert len(await claim(api, queue="en")) == 1
    r = await api.post("/api/v1/queues", json={"name": "born-paused", "enabled": False})
    assert r.status_code == 201 and r.json()["paused"] is True and r.json()["paused_at"]


async def test_whole_seconds_where_the_sdk_parses_integers(api):
    await enqueue(api, queue="ints")
    await api.post("/api/v1/queues/ints/pause")
    r = await api.post("/api/v1/queues/ints/resume")
    assert isinstance(r.json()["paused_duration_secs"], int)
    s = (await api.get("/api/v1/queues/ints/stats")).json()
    assert isinstance(s["max_job_age_seconds"], int)


async def test_throughput_counts_finished_jobs_per_bucket(server, api, other_api):
    done = [await enqueue(api, "tp") for _ in range(2)]
    dead = await enqueue(api, "tp", max_retries=0)
    await enqueue(api, "tp")                                  # still pending: not counted
    leased = {j["id"]: j for j in await claim(api, "tp", limit=3)}
    for j in done:
        r = await api.post(f"/api/v1/jobs/{j['id']}/complete", json={"lease_id": leased[j["id"]]["lease_id"]})
        assert r.status_code == 200, r.text
    r = await api.post(f"/api/v1/jobs/{dead['id']}/fail", json={"lease_id": leased[dead["id"]]["lease_id"],
                                                                "error": "boom"})
    assert r.json()["status"] == "deadletter"

    r = await api.get("/api/v1/queues/tp/throughput")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["queue_name"] == "tp" and body["bucket_secs"] == 60 and len(body["buckets"]) == 60
    starts = [parse(b["start"]) for b in body["buckets"]]
    assert all((b - a).total_seconds() == 60 for a, b in zip(starts, starts[1:]))
    assert starts[-1] <= utc() < starts[-1] + dt.timedelta(seconds=61)
    assert sum(b["completed"] for b in body["buckets"]) == 2 and sum(b["failed"] for b in body["buckets"]) == 1

    five = (await api.get("/api/v1/queues/tp/throughput?minutes=5&bucket_secs=30")).json()
    assert five["bucket_secs"] == 30 and len(five["buckets"]) == 10

    # a window that ends two hours from now holds none of them
    later = await server.services.queues.throughput(api.org_id, "tp", minutes=60, now=utc(hours=2))
    assert len(later) == 60 and not any(b.completed or b.failed for b in later)

    for bad in ("minutes=0", "minutes=1441", "bucket_secs=5", "minutes=x"):
        r = await api.get(f"/api/v1/queues/tp/throughput?{bad}")
        assert r.status_code == 422 and r.json()["code"] == "VALIDATION_ERROR", bad
    assert (await other_api.get("/api/v1/queues/tp/throughput")).status_code == 404
    assert (await api.get("/api/v1/queues/nope/throughput")).status_code == 404
