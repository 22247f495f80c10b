"""The SDK's jobs resource (and its DLQ sub-resource), every method we serve, sync and async clients."""

import asyncio
from datetime import datetime, timedelta, timezone

from spooled import AsyncSpooledClient, ConflictError, NotFoundError, SpooledClient, ValidationError

from _sdkcheck import API_KEY, BASE_URL, Checks

checks = Checks()
client = SpooledClient(api_key=API_KEY, base_url=BASE_URL, timeout=10)
Q = "sdk-jobs"
W = "sdk-worker"
ids: dict[str, str] = {}

with checks("jobs.create"):
    r = client.jobs.create({"queue_name": Q, "payload": {"job_type": "send_email", "to": "a@b.c"}, "priority": 5,
                            "max_retries": 2, "timeout_seconds": 60, "tags": {"team": "x"},
                            "idempotency_key": "sdk-k1"})
    checks.expect(r.created is True and r.id, "created", r)
    ids["first"] = r.id
    again = client.jobs.create({"queue_name": Q, "payload": {"other": 1}, "idempotency_key": "sdk-k1"})
    checks.expect(again.id == r.id and again.created is False, "idempotent create", again)

with checks("jobs.create.any_payload_and_fields"):
    child = client.jobs.create({"queue_name": Q, "payload": ["a", 1], "parent_job_id": ids["first"],
                                "completion_webhook": "https://example.test/h", "completion_webhook_secret": "s",
                                "scheduled_at": datetime.now(timezone.utc) + timedelta(hours=1),
                                "expires_at": datetime.now(timezone.utc) + timedelta(hours=2)})
    job = client.jobs.get(child.id)
    checks.expect(job.payload == ["a", 1] and job.parent_job_id == ids["first"] and job.status == "scheduled",
                  "child job", job)
    checks.expect(job.dependencies_met is True and job.workflow_id is None, "workflow fields", job)
    ids["scheduled"] = child.id

with checks("jobs.get"):
    job = client.jobs.get(ids["first"])
    checks.expect(job.payload == {"job_type": "send_email", "to": "a@b.c"} and job.priority == 5
                  and job.tags == {"team": "x"} and job.lease_id is None, "job", job)
    checks.raises(NotFoundError, client.jobs.get, "00000000-0000-4000-8000-000000000000")

with checks("jobs.create_and_get"):
    job = client.jobs.create_and_get({"queue_name": Q, "payload": {"n": 3}})
    checks.expect(job.status == "pending" and job.payload == {"n": 3}, "job", job)
    ids["third"] = job.id

with checks("jobs.list"):
    page = client.jobs.list({"queue_name": Q, "limit": 10})
    checks.expect({j.id for j in page} >= {ids["first"], ids["third"]}, "listed", [j.id for j in page])
    checks.expect(page.has_more is False, "has_more", page.has_more)
    email = client.jobs.list({"job_type": "send_email"})
    checks.expect([j.id for j in email] == [ids["first"]] and email[0].job_type == "send_email", "job_type", email)
    found = client.jobs.list({"q": "a@b.c"})                    # payload text search
    checks.expect([j.id for j in found] == [ids["first"]], "q over payload", [j.id for j in found])
    st = client.jobs.list({"status": ["scheduled"], "queue_name": Q})
    checks.expect([j.id for j in st] == [ids["scheduled"]], "status filter", st)
    paged = client.jobs.list({"queue_name": Q, "limit": 1})
    checks.expect(len(paged) == 1 and paged.has_more is True, "paging", paged)
    tagged = client.jobs.list({"tag": "team"})
    checks.expect([j.id for j in tagged] == [ids["first"]], "tag", tagged)

with checks("jobs.get_stats"):
    s = client.jobs.get_stats()
    checks.expect(s.pending >= 2 and s.scheduled >= 1 and s.total >= 3, "stats", s)

with checks("jobs.batch_status"):
    got = client.jobs.batch_status([ids["first"], ids["scheduled"]])
    checks.expect({b.id: b.status for b in got} == {ids["first"]: "pending", ids["scheduled"]: "scheduled"},
                  "statuses", got)
    checks.expect(client.jobs.batch_status([]) == [], "empty", None)

with checks("jobs.boost_priority"):
    b = client.jobs.boost_priority(ids["third"], 50)
    checks.expect((b.job_id, b.old_priority, b.new_priority) == (ids["third"], 0, 50), "boost", b)

with checks("jobs.bulk_enqueue"):
    r = client.jobs.bulk_enqueue({"queue_name": Q + "-bulk", "jobs": [{"payload": {"i": i}} for i in range(5)]
                                  + [{"payload": "text", "priority": 3, "idempotency_key": "bulk-dup"}],
                                  "default_priority": 1})
    checks.expect(r.total == 6 and r.success_count == 6 and r.failure_count == 0, "bulk", r)

with checks("jobs.claim+heartbeat+complete"):
    claimed = client.jobs.claim({"queue_name": Q, "worker_id": W, "limit": 1, "lease_duration_secs": 30})
    (c,) = claimed.jobs
    checks.expect(c.id == ids["third"] and c.lease_id and c.lease_expires_at, "claimed (priority 50 first)", c)
    client.jobs.heartbeat(c.id, {"worker_id": W, "lease_id": c.lease_id, "lease_duration_secs": 120})
    done = client.jobs.complete(c.id, {"worker_id": W, "lease_id": c.lease_id, "result": {"ok": True}})
    checks.expect(done.success is True, "complete", done)
    again = client.jobs.complete(c.id, {"worker_id": W, "lease_id": c.lease_id, "result": {"ok": False}})
    checks.expect(again.success is True, "replay", again)
    job = client.jobs.get(c.id)
    checks.expect(job.status == "completed" and job.result == {"ok": True} and job.lease_id is None
                  and job.assigned_worker_id is None, "completed job", job)

with checks("jobs.complete.worker_only"):
    (c,) = client.jobs.claim({"queue_name": Q, "worker_id": W}).jobs
    client.jobs.heartbeat(c.id, {"worker_id": W})
    checks.expect(client.jobs.complete(c.id, {"worker_id": W}).success, "worker-fenced complete", c)
    exc = checks.raises(ConflictError, client.jobs.complete, c.id, {"worker_id": "someone-else"})
    checks.expect("lease" in str(exc).lower(), "lease expired", exc)

with checks("jobs.fail+history"):
    f = client.jobs.create({"queue_name": Q + "-fail", "payload": {}, "max_retries": 0})
    (c,) = client.jobs.claim({"queue_name": Q + "-fail", "worker_id": W}).jobs
    r = client.jobs.fail(c.id, {"worker_id": W, "lease_id": c.lease_id, "error": "boom"})
    checks.expect(r.success is True, "fail", r)
    job = client.jobs.get(f.id)
    checks.expect(job.status == "deadletter" and job.last_error == "boom" and job.lease_id is None, "dead", job)
    hist = client.jobs.history(f.id)
    kinds = [h.event_type for h in hist]
    checks.expect(kinds[0] == "created" and "started" in kinds and hist[-1].worker_id == W, "history", kinds)
    newest = client.jobs.history(f.id, {"order_dir": "desc", "limit": 1})
    checks.expect(len(newest) == 1 and newest.has_more is True and newest[0].event_type == kinds[-1], "desc",
                  newest)
    ids["dead"] = f.id

with checks("jobs.stale_lease_is_409"):
    s = client.jobs.create({"queue_name": Q + "-stale", "payload": {}})
    (c,) = client.jobs.claim({"queue_name": Q + "-stale", "worker_id": W}).jobs
    exc = checks.raises(ConflictError, client.jobs.complete, c.id,
                        {"worker_id": W, "lease_id": "00000000-0000-4000-8000-000000000009"})
    checks.expect(getattr(exc, "code", None) in (None, "LEASE_EXPIRED") or "lease" in str(exc).lower(),
                  "lease expired", exc)

with checks("jobs.retry"):
    job = client.jobs.retry(ids["dead"])
    checks.expect(job.status == "pending" and job.retry_count == 0, "retried", job)

with checks("jobs.cancel"):
    client.jobs.cancel(ids["scheduled"])
    checks.expect(client.jobs.get(ids["scheduled"]).status == "cancelled", "cancelled", None)
    checks.raises(ConflictError, client.jobs.cancel, ids["scheduled"])

with checks("jobs.create.invalid"):
    checks.raises(ValidationError, client.jobs.create,
                  {"queue_name": Q, "payload": {}, "parent_job_id": "00000000-0000-4000-8000-00000000000f"})

with checks("jobs.dlq.list+retry+purge"):
    dq = Q + "-dlq"
    dead = []
    for i in range(3):
        created = client.jobs.create({"queue_name": dq, "payload": {"i": i}, "max_retries": 0})
        (c,) = client.jobs.claim({"queue_name": dq, "worker_id": W}).jobs
        client.jobs.fail(c.id, {"worker_id": W, "lease_id": c.lease_id, "error": f"e{i}"})
        dead.append(created.id)
    listed = client.jobs.dlq.list({"queue_name": dq})
    checks.expect(sorted(j.id for j in listed) == sorted(dead) and listed[0].last_error, "dlq list", listed)
    r = client.jobs.dlq.retry({"queue_name": dq, "job_ids": [dead[0]]})
    checks.expect(r.retried_count == 1 and r.retried_jobs == [dead[0]] and r.job_ids == [dead[0]], "retry", r)
    r = client.jobs.dlq.purge({"queue_name": dq, "confirm": True})
    checks.expect(r.purged_count == 2, "purge", r)
    checks.expect(len(client.jobs.dlq.list({"queue_name": dq})) == 0, "dlq empty", None)


async def async_jobs() -> None:
    async with AsyncSpooledClient(api_key=API_KEY, base_url=BASE_URL, timeout=10) as ac:
        r = await ac.jobs.create({"queue_name": Q + "-async", "payload": {"a": 1}})
        job = await ac.jobs.get(r.id)
        assert job.payload == {"a": 1}
        (c,) = (await ac.jobs.claim({"queue_name": Q + "-async", "worker_id": W})).jobs
        await ac.jobs.heartbeat(c.id, {"worker_id": W, "lease_id": c.lease_id})
        assert (await ac.jobs.complete(c.id, {"worker_id": W, "lease_id": c.lease_id})).success
        assert [j.id for j in await ac.jobs.list({"queue_name": Q + "-async"})] == [r.id]
        assert (await ac.jobs.get_stats()).completed >= 1
        assert (await ac.jobs.batch_status([r.id]))[0].status == "completed"
        assert len(await ac.jobs.history(r.id)) >= 3

with checks("async.jobs"):
    asyncio.run(asyncio.wait_for(async_jobs(), 30))

client.close()
checks.finish()
