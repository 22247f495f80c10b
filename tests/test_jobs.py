"""The job lifecycle over REST: enqueue, claim, complete, fail/retry/dead-letter, cancel, history."""

from __future__ import annotations


import pytest
import trio

from spooled.domain.backoff import backoff_bounds
from tests.helpers import claim, enqueue, job, parse, utc


async def test_create_returns_full_job(api):
    r = await api.post("/api/v1/jobs", json={"queue_name": "emails", "payload": {"to": "a@b.c"}, "priority": 5,
                                             "max_retries": 7, "timeout_seconds": 60, "tags": {"team": "x"}})
    assert r.status_code == 201
    body = r.json()
    assert body["created"] is True and body["status"] == "pending" and body["queue_name"] == "emails"
    assert body["priority"] == 5 and body["max_retries"] == 7 and body["timeout_seconds"] == 60
    assert body["organization_id"] == api.org_id and body["tags"] == {"team": "x"}
    assert body["created_at"].endswith("+00:00")
    assert (await job(api, body["id"]))["payload"] == {"to": "a@b.c"}


async def test_user_json_is_returned_verbatim(api):
    raw = b'{"queue_name": "q", "payload": {"z": 1, "a": 12345678901234567890123456789, "M": [1.5, "x"]}}'
    r = await api.post("/api/v1/jobs", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 201
    got = (await api.get(f"/api/v1/jobs/{r.json()['id']}")).content
    assert b'"payload":{"z":1,"a":12345678901234567890123456789,"M":[1.5,"x"]}' in got


async def test_queue_alias_and_defaults_from_queue(api):
    r = await api.post("/api/v1/queues", json={"name": "slow", "max_retries": 9, "default_timeout": 999})
    assert r.status_code == 201
    created = await enqueue(api, queue="slow")
    j = await job(api, created["id"])
    assert j["max_retries"] == 9 and j["timeout_seconds"] == 999
    r = await api.post("/api/v1/jobs", json={"queue": "aliased", "payload": {}})
    assert r.status_code == 201 and r.json()["queue_name"] == "aliased"


async def test_idempotency_key_returns_original(api):
    first = await enqueue(api, payload={"v": 1}, idempotency_key="k1")
    r = await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {"v": 2}, "idempotency_key": "k1"})
    assert r.status_code == 200 and r.json() == {"id": first["id"], "created": False}
    assert (await job(api, first["id"]))["payload"] == {"v": 1}


async def test_idempotency_key_race_creates_one(api, server):
    results = []

    async def one():
        r = await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}, "idempotency_key": "race"})
        results.append(r)

    with trio.fail_after(30):
        async with trio.open_nursery() as n:
            for _ in range(20):
                n.start_soon(one)
    assert sorted(r.status_code for r in results) == [200] * 19 + [201]
    assert len({r.json()["id"] for r in results}) == 1
    count = await server.services.db.run(lambda con: con.fetchval("SELECT count(*) FROM jobs"))
    assert count == 1


async def test_idempotency_keys_are_per_organization(api, other_api):
    a = await enqueue(api, idempotency_key="same")
    b = await enqueue(other_api, idempotency_key="same")
    assert a["created"] and b["created"] and a["id"] != b["id"]


async def test_bulk_enqueue(api):
    jobs = [{"payload": {"i": i}} for i in range(100)]
    jobs[3] = {"priority": 1}          # no payload
    jobs[5] = {"payload": {"i": 5}, "idempotency_key": "dup"}
    jobs[6] = {"payload": {"i": 6}, "idempotency_key": "dup"}
    r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "bulk", "jobs": jobs, "default_priority": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 100 and body["success_count"] == 99 and body["failure_count"] == 1
    assert body["failed"][0]["index"] == 3
    by_index = {s["index"]: s for s in body["succeeded"]}
    assert by_index[5]["created"] is True and by_index[6]["created"] is False
    assert by_index[5]["job_id"] == by_index[6]["job_id"]
    assert (await job(api, by_index[0]["job_id"]))["priority"] == 3
    r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "bulk", "jobs": [{"payload": {}}] * 101})
    assert r.status_code == 422 and r.json()["details"]["field"] == "jobs"


async def test_claim_order_priority_then_age(api):
    low = await enqueue(api, priority=-5)
    old = await enqueue(api, priority=10)
    new = await enqueue(api, priority=10)
    mid = await enqueue(api, priority=0)
    got = await claim(api, limit=10)
    assert [j["id"] for j in got] == [old["id"], new["id"], mid["id"], low["id"]]
    for j in got:
        assert j["status"] == "processing" and j["lease_id"] and j["assigned_worker_id"] == "w1"
        assert parse(j["lease_expires_at"]) > parse(j["started_at"])
    assert await claim(api) == []


async def test_claim_validation(api):
    for bad in ({"limit": 0}, {"limit": 101}, {"lease_duration_secs": 4}, {"wait_secs": 31}, {"worker_id": 5}):
        body = {"queue_name": "q", "worker_id": "w", **bad}
        r = await api.post("/api/v1/jobs/claim", json=body)
        assert r.status_code == 422, bad
        assert set(r.json()["details"]["fields"]) & set(bad)


async def test_complete_and_replay(api):
    created = await enqueue(api)
    (c,) = await claim(api)
    r = await api.post(f"/api/v1/jobs/{c['id']}/complete", json={"worker_id": "w1", "lease_id": c["lease_id"],
                                                                   "result": {"ok": True}})
    assert r.status_code == 200 and r.json() == {"success": True}
    j = await job(api, created["id"])
    assert j["status"] == "completed" and j["result"] == {"ok": True} and j["completed_at"]
    r = await api.post(f"/api/v1/jobs/{c['id']}/complete", json={"worker_id": "w1", "lease_id": c["lease_id"]})
    assert r.status_code == 200  # idempotent replay
    assert (await job(api, created["id"]))["result"] == {"ok": True}


async def test_stale_lease_is_409_and_changes_nothing(api, server):
    await enqueue(api)
    (c,) = await claim(api)
    wrong = "00000000-0000-4000-8000-000000000000"
    for path, body in (("complete", {}), ("fail", {"error": "x"}), ("heartbeat", {"lease_duration_secs": 60})):
        r = await api.post(f"/api/v1/jobs/{c['id']}/{path}", json={"worker_id": "w1", "lease_id": wrong, **body})
        assert r.status_code == 409 and r.json()["code"] == "LEASE_EXPIRED", path
    j = await job(api, c["id"])
    assert j["status"] == "processing" and j["lease_id"] == c["lease_id"] and j["retry_count"] == 0
    assert j["lease_expires_at"] == c["lease_expires_at"]


async def test_expired_lease_cannot_complete(api, server):
    await enqueue(api, max_retries=3)
    (c,) = await claim(api, lease_duration_secs=5)
    result = await server.services.maintenance.run_once(now=utc(seconds=6))
    assert result.released == 1
    r = await api.post(f"/api/v1/jobs/{c['id']}/complete", json={"lease_id": c["lease_id"]})
    assert r.status_code == 409 and r.json()["code"] == "LEASE_EXPIRED"
    j = await job(api, c["id"])
    assert j["status"] == "pending" and j["retry_count"] == 1 and j["last_error"] == "lease expired"
    (again,) = await claim(api)
    assert again["id"] == c["id"] and again["lease_id"] != c["lease_id"]


async def test_heartbeat_extends_lease(api):
    await enqueue(api)
    (c,) = await claim(api, lease_duration_secs=10)
    r = await api.post(f"/api/v1/jobs/{c['id']}/heartbeat", json={"worker_id": "w1", "lease_id": c["lease_id"],
                                                                    "lease_duration_secs": 600})
    assert r.status_code == 200
    new_exp = parse(r.json()["lease_expires_at"])
    assert new_exp > parse(c["lease_expires_at"])
    assert parse((await job(api, c["id"]))["lease_expires_at"]) == new_exp


async def test_fail_retries_with_backoff_then_deadletters(api, server):
    created = await enqueue(api, max_retries=2)
    runs = 0
    for attempt in (1, 2):
        (c,) = await claim(api)
        runs += 1
        r = await api.post(f"/api/v1/jobs/{c['id']}/fail", json={"lease_id": c["lease_id"], "error": f"boom {attempt}"})
        assert r.status_code == 200
        body = r.json()
        assert body["success"] is True and body["will_retry"] is True
        lo, hi = backoff_bounds(attempt)
        assert round(lo) - 1 <= body["next_retry_delay_secs"] <= round(hi) + 1
        j = await job(api, created["id"])
        assert j["status"] == "scheduled" and j["retry_count"] == attempt and j["last_error"] == f"boom {attempt}"
        lag = (parse(j["scheduled_at"]) - parse(j["updated_at"])).total_seconds()
        assert lo - 0.01 <= lag <= hi + 0.01
        assert await claim(api) == []  # not visible before it is due
        promoted = await server.services.maintenance.run_once(now=utc(seconds=hi + 1))
        assert promoted.promoted == 1
    (c,) = await claim(api)
    runs += 1
    r = await api.post(f"/api/v1/jobs/{c['id']}/fail", json={"lease_id": c["lease_id"], "error": "final"})
    assert r.json()["will_retry"] is False
    j = await job(api, created["id"])
    assert j["status"] == "deadletter" and j["retry_count"] == 3 and runs == 3  # max_retries + 1 runs
    assert await claim(api) == []


async def test_fail_without_retry_deadletters_at_once(api):
    created = await enqueue(api, max_retries=5)
    (c,) = await claim(api)
    r = await api.post(f"/api/v1/jobs/{c['id']}/fail", json={"lease_id": c["lease_id"], "error": "fatal",
                                                               "retry": False})
    assert r.json()["will_retry"] is False
    assert (await job(api, created["id"]))["status"] == "deadletter"


async def test_backoff_is_capped_by_queue_config(api, server):
    await api.put("/api/v1/queues/capped/config", json={"retry_backoff_base_secs": 10, "retry_backoff_max_secs": 12,
                                                         "max_retries": 10})
    created = await enqueue(api, queue="capped")
    for attempt in range(1, 5):
        (c,) = await claim(api, queue="capped")
        body = (await api.post(f"/api/v1/jobs/{c['id']}/fail", json={"lease_id": c["lease_id"], "error": "e"})).json()
        lo, hi = backoff_bounds(attempt, 10, 12)
        assert lo - 1 <= body["next_retry_delay_secs"] <= hi + 1 <= 13
        await server.services.maintenance.run_once(now=utc(seconds=13))
    assert (await job(api, created["id"]))["retry_count"] == 4


async def test_failed_state_when_queue_does_not_deadletter(api):
    await api.post("/api/v1/queues", json={"name": "nodlq", "dead_letter": False})
    created = await enqueue(api, queue="nodlq", max_retries=0)
    (c,) = await claim(api, queue="nodlq")
    await api.post(f"/api/v1/jobs/{c['id']}/fail", json={"lease_id": c["lease_id"], "error": "e"})
    assert (await job(api, created["id"]))["status"] == "failed"


async def test_fail_validation(api):
    created = await enqueue(api)
    (c,) = await claim(api)
    for body in ({"lease_id": c["lease_id"]}, {"lease_id": c["lease_id"], "error": ""},
                 {"lease_id": c["lease_id"], "error": "x" * 2049}, {"lease_id": c["lease_id"], "error": "e", "retry": "no"}):
        r = await api.post(f"/api/v1/jobs/{c['id']}/fail", json=body)
        assert r.status_code == 422, body
    assert (await job(api, created["id"]))["status"] == "processing"


async def test_cancel_rules(api):
    pending = await enqueue(api)
    assert (await api.delete(f"/api/v1/jobs/{pending['id']}")).status_code == 204
    assert (await job(api, pending["id"]))["status"] == "cancelled"
    assert (await api.delete(f"/api/v1/jobs/{pending['id']}")).status_code == 409
    scheduled = await enqueue(api, scheduled_at=utc(hours=1).isoformat())
    assert scheduled["status"] == "scheduled"
    assert (await api.delete(f"/api/v1/jobs/{scheduled['id']}")).status_code == 204
    await enqueue(api)
    (c,) = await claim(api)
    assert (await api.delete(f"/api/v1/jobs/{c['id']}")).status_code == 204
    r = await api.post(f"/api/v1/jobs/{c['id']}/complete", json={"lease_id": c["lease_id"]})
    assert r.status_code == 409 and r.json()["code"] == "LEASE_EXPIRED"  # its lease is void
    done = await enqueue(api)
    (d,) = await claim(api)
    await api.post(f"/api/v1/jobs/{d['id']}/complete", json={"lease_id": d["lease_id"]})
    r = await api.delete(f"/api/v1/jobs/{done['id']}")
    assert r.status_code == 409 and r.json()["code"] == "CONFLICT"


async def test_manual_retry_rules(api):
    created = await enqueue(api, max_retries=0)
    r = await api.post(f"/api/v1/jobs/{created['id']}/retry")
    assert r.status_code == 409  # pending cannot be retried
    (c,) = await claim(api)
    await api.post(f"/api/v1/jobs/{c['id']}/fail", json={"lease_id": c["lease_id"], "error": "e"})
    assert (await job(api, created["id"]))["status"] == "deadletter"
    r = await api.post(f"/api/v1/jobs/{created['id']}/retry", headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    assert r.json()["status"] == "pending" and r.json()["retry_count"] == 0
    assert [j["id"] for j in await claim(api)] == [created["id"]]


async def test_scheduled_invisible_until_due(api, server):
    created = await enqueue(api, scheduled_at=utc(minutes=10).isoformat())
    assert created["status"] == "scheduled"
    assert await claim(api) == []
    assert (await server.services.maintenance.run_once(now=utc(minutes=5))).promoted == 0
    assert (await server.services.maintenance.run_once(now=utc(minutes=11))).promoted == 1
    assert [j["id"] for j in await claim(api)] == [created["id"]]


async def test_past_scheduled_at_is_pending(api):
    created = await enqueue(api, scheduled_at=utc(minutes=-10).isoformat())
    assert created["status"] == "pending"


async def test_expired_jobs_are_cancelled(api, server):
    created = await enqueue(api, expires_at=utc(seconds=30).isoformat())
    assert (await server.services.maintenance.run_once(now=utc(seconds=31))).expired == 1
    j = await job(api, created["id"])
    assert j["status"] == "cancelled" and j["last_error"] == "expired"
    r = await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}, "scheduled_at": utc(hours=2).isoformat(),
                                             "expires_at": utc(hours=1).isoformat()})
    assert r.status_code == 422 and r.json()["details"]["field"] == "expires_at"


async def test_history_records_every_transition(api, server):
    created = await enqueue(api, max_retries=1)
    (c,) = await claim(api)
    await api.post(f"/api/v1/jobs/{c['id']}/fail", json={"lease_id": c["lease_id"], "error": "e"})
    await server.services.maintenance.run_once(now=utc(seconds=5))
    (c,) = await claim(api)
    await api.post(f"/api/v1/jobs/{c['id']}/complete", json={"lease_id": c["lease_id"]})
    r = await api.get(f"/api/v1/jobs/{created['id']}/history")
    assert r.status_code == 200
    events = [(h["event_type"], h["old_status"], h["new_status"]) for h in r.json()]
    assert events == [("created", None, "pending"), ("started", "pending", "processing"),
                      ("failed", "processing", "scheduled"), ("ready", "scheduled", "pending"),
                      ("started", "pending", "processing"), ("completed", "processing", "completed")]
    assert r.json()[1]["worker_id"] == "w1" and r.json()[2]["details"]["error"] == "e"


async def test_priority_update(api):
    created = await enqueue(api, priority=1)
    r = await api.put(f"/api/v1/jobs/{created['id']}/priority", json={"priority": 50})
    assert r.json() == {"job_id": created["id"], "old_priority": 1, "new_priority": 50}
    assert (await api.put(f"/api/v1/jobs/{created['id']}/priority", json={"priority": 500})).status_code == 422


async def test_stats_and_status_lookup(api):
    a = await enqueue(api)
    b = await enqueue(api)
    await claim(api)
    stats = (await api.get("/api/v1/jobs/stats")).json()
    assert stats["pending"] == 1 and stats["processing"] == 1 and stats["total"] == 2
    assert set(stats) == {"pending", "scheduled", "processing", "completed", "failed", "deadletter", "cancelled",
                          "total"}
    r = await api.get(f"/api/v1/jobs/status?ids={a['id']},{b['id']},nonsense")
    assert {s["id"]: s["status"] for s in r.json()} == {a["id"]: "processing", b["id"]: "pending"}


async def test_batch_complete(api):
    for _ in range(3):
        await enqueue(api)
    jobs = await claim(api, limit=3)
    comps = [{"job_id": j["id"], "lease_id": j["lease_id"], "result": {"i": i}} for i, j in enumerate(jobs)]
    comps[1]["lease_id"] = "00000000-0000-4000-8000-000000000000"
    comps.append({"job_id": "00000000-0000-4000-8000-000000000001", "lease_id": jobs[0]["lease_id"]})
    r = await api.post("/api/v1/jobs/complete", json={"worker_id": "w1", "completions": comps})
    assert r.status_code == 200
    res = r.json()["results"]
    assert [x["success"] for x in res] == [True, False, True, False]
    assert [x["error"] for x in res] == [None, "LEASE_EXPIRED", None, "NOT_FOUND"]
    assert {f["job_id"] for f in r.json()["failed"]} == {jobs[1]["id"], comps[3]["job_id"]}
    assert (await job(api, jobs[2]["id"]))["result"] == {"i": 2}
    assert (await job(api, jobs[1]["id"]))["status"] == "processing"


async def test_invalid_ids_are_404_never_500(api):
    for method, path in (("GET", "/api/v1/jobs/xyz"), ("DELETE", "/api/v1/jobs/xyz"),
                         ("POST", "/api/v1/jobs/xyz/retry"), ("GET", "/api/v1/jobs/xyz/history"),
                         ("POST", "/api/v1/jobs/xyz/complete"), ("PUT", "/api/v1/jobs/xyz/priority")):
        body = {"lease_id": "abc", "priority": 1}
        r = await api.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["code"] == "NOT_FOUND"


async def test_payload_is_required(api):
    r = await api.post("/api/v1/jobs", json={"queue_name": "q"})
    assert r.status_code == 422 and r.json()["details"]["field"] == "payload"


async def test_dlq_list_retry_purge(api):
    ids = []
    for i in range(3):
        created = await enqueue(api, queue="d", max_retries=0)
        (c,) = await claim(api, queue="d")
        await api.post(f"/api/v1/jobs/{c['id']}/fail", json={"lease_id": c["lease_id"], "error": "e"})
        ids.append(created["id"])
    r = await api.get("/api/v1/jobs/dlq?queue_name=d")
    assert sorted(j["id"] for j in r.json()) == sorted(ids)
    r = await api.post("/api/v1/jobs/dlq/retry", json={"job_ids": [ids[0]]})
    assert r.json() == {"retried_count": 1, "retried_jobs": [ids[0]], "skipped_jobs": [], "job_ids": [ids[0]]}
    assert (await job(api, ids[0]))["status"] == "pending"
    r = await api.post("/api/v1/jobs/dlq/purge", json={"queue_name": "d"})
    assert r.status_code == 422  # confirm is required
    r = await api.post("/api/v1/jobs/dlq/purge", json={"confirm": True, "queue_name": "d"})
    assert r.json() == {"purged_count": 2}
    assert (await api.get(f"/api/v1/jobs/{ids[1]}")).status_code == 404
    assert (await api.get(f"/api/v1/jobs/{ids[0]}")).status_code == 200


async def test_history_paging(api):
    created = await enqueue(api)
    (c,) = await claim(api)
    await api.post(f"/api/v1/jobs/{c['id']}/complete", json={"lease_id": c["lease_id"]})
    r = await api.get(f"/api/v1/jobs/{created['id']}/history?limit=1&order_dir=desc")
    assert [h["event_type"] for h in r.json()] == ["completed"] and r.headers["x-has-more"] == "true"
    r = await api.get(f"/api/v1/jobs/{created['id']}/history?limit=2&offset=1")
    assert [h["event_type"] for h in r.json()] == ["started", "completed"] and r.headers["x-has-more"] == "false"
    assert (await api.get(f"/api/v1/jobs/{created['id']}/history?order_dir=up")).status_code == 422


async def test_tags_may_be_an_array(api):
    created = await enqueue(api, tags=["billing", "eu"])
    assert (await job(api, created["id"]))["tags"] == ["billing", "eu"]
    assert [j["id"] for j in (await api.get("/api/v1/jobs?tag=eu")).json()] == [created["id"]]
    r = await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}, "tags": "eu"})
    assert r.status_code == 422 and r.json()["details"]["field"] == "tags"


async def test_stale_lease_message_is_the_one_sdks_recognise(api):
    await enqueue(api)
    (c,) = await claim(api)
    r = await api.post(f"/api/v1/jobs/{c['id']}/complete", json={"lease_id": "00000000-0000-4000-8000-000000000000"})
    assert "does not match the job's current lease" in r.json()["message"]
    assert r.json()["message"].startswith("lease expired")


async def test_a_deleted_jobs_history_goes_with_it(api, server):
    """job_history has no foreign key onto jobs (its check cost a query per history row): the jobs_deleted
    statement trigger removes a deleted job's rows, whichever statement deleted it (a DLQ purge, a queue deleted
    with its jobs, an organization's cascade)."""
    async def rows(ids):
        return await server.services.db.run(lambda con: con.fetchval(
            "SELECT count(*) FROM job_history WHERE job_id = ANY($1::uuid[])", ids))

    dead, kept, doomed = [], [], []
    for ids, queue in ((dead, "d"), (kept, "d"), (doomed, "doomed")):
        created = await enqueue(api, queue=queue, max_retries=0)
        (c,) = await claim(api, queue=queue)
        await api.post(f"/api/v1/jobs/{c['id']}/fail", json={"lease_id": c["lease_id"], "error": "e"})
        ids.append(created["id"])
    assert (await api.post("/api/v1/jobs/dlq/retry", json={"job_ids": kept})).status_code == 200
    assert await rows(dead + kept + doomed) == 3 * 2 + 1     # started + failed each, and kept's retry
    r = await api.post("/api/v1/jobs/dlq/purge", json={"confirm": True, "queue_name": "d"})
    assert r.json() == {"purged_count": 1}
    assert await rows(dead) == 0 and await rows(kept) == 3
    assert (await api.delete("/api/v1/queues/doomed?delete_jobs=true")).status_code == 204
    assert await rows(doomed) == 0 and await rows(kept) == 3
    org = api.org_id
    await server.services.db.run(lambda con: con.execute("DELETE FROM organizations WHERE id = $1::uuid", org))
    assert await rows(kept) == 0


BATCH_BODIES = [
    {"completions": [{"job_id": "a", "lease_id": "l1"}, {"job_id": "b", "worker_id": "w", "result": {"x": [1]}}]},
    {"worker_id": "w", "completions": [{"job_id": "a"}, {"job_id": "b", "lease_id": "", "worker_id": ""}]},
    {"worker_id": "", "completions": [{"job_id": "a", "lease_id": "l", "extra": 1}]},
    {"worker_id": "w" * 128, "completions": [{"job_id": "", "lease_id": "l" * 64, "result": None}] * 100},
    # each of these is refused, by both
    {"completions": [{"job_id": "a"}]},
    {"worker_id": "", "completions": [{"job_id": "a", "lease_id": ""}]},
    {"completions": []},
    {"worker_id": "w", "completions": [{"job_id": "a"}] * 101},
    {"worker_id": "w" * 129, "completions": [{"job_id": "a"}]},
    {"completions": [{"job_id": "a", "lease_id": "l" * 65}]},
    {"completions": [{"job_id": "a", "worker_id": "w" * 129}]},
    {"completions": [{"job_id": 1, "lease_id": "l"}]},
    {"completions": [{"lease_id": "l"}]},
    {"completions": [{"job_id": "a", "lease_id": 5}]},
    {"worker_id": 5, "completions": [{"job_id": "a", "lease_id": "l"}]},
    {"completions": ["a"]},
    {"completions": {"job_id": "a", "lease_id": "l"}},
    [{"job_id": "a", "lease_id": "l"}],
]


@pytest.mark.parametrize("body", BATCH_BODIES)
def test_the_batch_completions_quick_reading_agrees_with_the_model(body):
    """`complete_batch_items` (the batch completion's reading of a plain body) gives what the model gives, and
    leaves every body the model refuses to the model (which names what is wrong)."""
    from spooled.convert import structure
    from spooled.domain import errors, inputs
    try:
        expected = structure(body, inputs.CompleteBatch).items()
    except errors.ValidationFailed:
        expected = None
    assert inputs.complete_batch_items(body) == expected


def _job(**fields):
    import datetime as dt
    import uuid

    from spooled.domain.models import Job
    now = dt.datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
    base = dict(id=uuid.uuid4(), organization_id=uuid.uuid4(), queue_name="q", status="processing",
                payload='{"b": 1, "a": [1.0, 12345678901234567890]}', result=None, priority=5, max_retries=3,
                retry_count=0, timeout_seconds=300, last_error=None, tags=None, idempotency_key=None,
                completion_webhook=None, scheduled_at=None, started_at=now, completed_at=None, expires_at=None,
                lease_id=uuid.uuid4(), lease_expires_at=now, assigned_worker_id="w", created_at=now, updated_at=now,
                parent_job_id=None, workflow_id=None, dependency_mode=None, dependencies_met=True, traceparent=None,
                tracestate=None)
    return Job(**{**base, **fields})


def test_the_claims_view_of_many_jobs_agrees_with_the_view_of_one():
    """`views.jobs` (the claim's answer) gives what `views.job` gives for each job, field for field, with every
    field set and with every optional one null (a listed job goes through `views.job`)."""
    import datetime as dt
    import uuid

    import attrs
    import orjson

    from spooled.domain.models import ListedJob
    from spooled.transports.http import hot, views
    later = dt.datetime(2026, 12, 2, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    full = _job(result='{"ok": true}', last_error="boom", tags='["x", "y"]', idempotency_key="k",
                completion_webhook="https://example.com/h", scheduled_at=later, completed_at=later, expires_at=later,
                parent_job_id=uuid.uuid4(), workflow_id=uuid.uuid4(), dependency_mode="all", dependencies_met=False,
                traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate="a=b")
    bare = _job(lease_id=None, lease_expires_at=None, assigned_worker_id=None, status="pending", started_at=None)
    listed = ListedJob(**attrs.asdict(full, recurse=False), job_type="t")
    js = [full, bare, listed]
    one_by_one = [views.job(j) for j in js]
    many = views.jobs(js)
    assert [set(d) for d in many] == [set(d) for d in one_by_one]
    assert orjson.loads(hot.dumps(many)) == orjson.loads(hot.dumps(one_by_one))
    for fast, slow in zip(many, one_by_one):     # the same values, of the same types (user JSON as fragments)
        assert {k: type(v) for k, v in fast.items()} == {k: type(v) for k, v in slow.items()}
    assert orjson.loads(hot.dumps(views.jobs([full])))[0]["payload"] == {"b": 1, "a": [1.0, 12345678901234567890]}


async def test_a_claimed_job_reads_as_the_job_does(api):
    """A claim's answer (views.jobs, in the fast lane) shows each job field for field as GET /jobs/{id} does."""
    parent = await enqueue(api, queue="views")
    created = await enqueue(api, queue="views", priority=7, tags=["a", "b"], idempotency_key="views-1",
                            scheduled_at=utc(seconds=-5).isoformat(), expires_at=utc(hours=1).isoformat(),
                            max_retries=2, timeout_seconds=60, parent_job_id=parent["id"],
                            traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate="k=v")
    got = await claim(api, queue="views", limit=10)
    assert {j["id"] for j in got} == {parent["id"], created["id"]}
    for j in got:
        assert j == await job(api, j["id"])
    (c,) = [j for j in got if j["id"] == created["id"]]
    assert c["tags"] == ["a", "b"] and c["parent_job_id"] == parent["id"] and c["tracestate"] == "k=v"


async def test_bulk_columns_set_for_one_job_only_or_for_none(api):
    """A bulk call sends a column no job sets as one NULL (store/jobs.py): each job still gets exactly its own
    fields, whether one job of the call sets a field or none does, and the queue's defaults fill the rest."""
    due, ends = utc(hours=1).replace(microsecond=0), utc(hours=3).replace(microsecond=0)
    special = {"payload": {"i": 1}, "max_retries": 7, "timeout_seconds": 42, "tags": ["t"],
               "idempotency_key": "only-one", "completion_webhook": "https://example.com/hook",
               "scheduled_at": due.isoformat(), "expires_at": ends.isoformat(),
               "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "k=v"}
    for queue, jobs in (("cols-one", [{"payload": {"i": 0}}, special, {"payload": {"i": 2}}]),
                        ("cols-none", [{"payload": {"i": 0}}, {"payload": {"i": 1}}, {"payload": {"i": 2}}])):
        r = await api.post("/api/v1/jobs/bulk", json={"queue_name": queue, "jobs": jobs})
        assert r.status_code == 200 and r.json()["success_count"] == 3, r.text
        got = [await job(api, s["job_id"]) for s in sorted(r.json()["succeeded"], key=lambda s: s["index"])]
        for i, j in enumerate(got):
            assert j["payload"] == {"i": i}
            if queue == "cols-one" and i == 1:
                assert (j["max_retries"], j["timeout_seconds"], j["tags"], j["idempotency_key"]) == (
                    7, 42, ["t"], "only-one")
                assert j["completion_webhook"] == "https://example.com/hook" and j["status"] == "scheduled"
                assert parse(j["scheduled_at"]) == due and parse(j["expires_at"]) == ends
                assert j["traceparent"] == special["traceparent"] and j["tracestate"] == "k=v"
            else:
                assert (j["max_retries"], j["timeout_seconds"], j["tags"], j["idempotency_key"]) == (3, 300, None, None)
                assert j["completion_webhook"] is None and j["status"] == "pending"
                assert j["scheduled_at"] is None and j["expires_at"] is None and j["traceparent"] is None
