"""Every method of the SDK's `schedules` resource (sync and async) against the server."""

import asyncio
from datetime import datetime, timezone

from spooled import AsyncSpooledClient, SpooledClient
from spooled.errors import NotFoundError, ValidationError

from _sdkcheck import API_KEY, BASE_URL, Checks

checks = Checks()
client = SpooledClient(api_key=API_KEY, base_url=BASE_URL)
s = client.schedules
ids = {}

with checks("schedules.create"):
    created = s.create({"name": "nightly", "cron_expression": "0 0 3 * * *", "timezone": "America/New_York",
                        "queue_name": "sdk-cron", "payload_template": {"report": "daily"}, "priority": 4,
                        "tags": {"team": "bi"}, "metadata": {"owner": "ana"}, "description": "3 am in New York"})
    ids["a"] = created.id
    checks.expect(created.name == "nightly" and created.cron_expression == "0 0 3 * * *", "created", created)
    checks.expect(created.next_run_at is not None and created.next_run_at > datetime.now(timezone.utc),
                  "next_run_at", created.next_run_at)
    ids["b"] = s.create({"name": "often", "cron_expression": "*/5 * * * *", "queue_name": "sdk-other",
                         "payload_template": {}}).id

with checks("schedules.create invalid cron -> 422"):
    try:
        s.create({"name": "bad", "cron_expression": "99 * * * *", "queue_name": "q", "payload_template": {}})
        checks.expect(False, "no error")
    except ValidationError as e:
        checks.expect(e.status_code == 422, "status", e.status_code)

with checks("schedules.get"):
    got = s.get(ids["a"])
    checks.expect(got.id == ids["a"] and got.timezone == "America/New_York" and got.is_active and got.priority == 4
                  and got.payload_template == {"report": "daily"} and got.tags == {"team": "bi"}
                  and got.metadata == {"owner": "ana"} and got.run_count == 0, "schedule", got)

with checks("schedules.list"):
    everything = s.list()
    checks.expect([x.name for x in everything] == ["nightly", "often"], "all", everything)
    only = s.list({"queue_name": "sdk-other", "limit": 10, "offset": 0})
    checks.expect([x.id for x in only] == [ids["b"]], "by queue", only)

with checks("schedules.update"):
    u = s.update(ids["a"], {"cron_expression": "0 30 4 * * *", "name": "later", "priority": 1})
    checks.expect(u.name == "later" and u.cron_expression == "0 30 4 * * *" and u.priority == 1, "updated", u)
    checks.expect(u.next_run_at is not None and u.next_run_at != created.next_run_at, "recomputed", u.next_run_at)

with checks("schedules.pause"):
    p = s.pause(ids["a"])
    checks.expect(p.is_active is False, "paused", p)
    checks.expect([x.id for x in s.list({"is_active": False})] == [ids["a"]], "is_active filter", None)

with checks("schedules.trigger"):
    t = s.trigger(ids["a"])
    checks.expect(t.job_id and t.triggered_at is not None, "trigger", t)
    job = client.jobs.get(t.job_id)
    checks.expect(job.queue_name == "sdk-cron" and job.payload == {"report": "daily"}, "job", job)
    checks.expect(s.get(ids["a"]).run_count == 1, "run_count", None)

with checks("schedules.resume"):
    r = s.resume(ids["a"])
    checks.expect(r.is_active is True and r.next_run_at is not None, "resumed", r)

with checks("schedules.get_history"):
    t2 = s.trigger(ids["a"])
    hist = s.get_history(ids["a"], limit=5)
    checks.expect([h.job_id for h in hist] == [t2.job_id, t.job_id], "newest first", hist)
    checks.expect(all(h.status == "pending" and h.schedule_id == ids["a"] for h in hist), "statuses", hist)
    checks.expect(len(s.get_history(ids["a"], limit=1)) == 1, "limit", None)

with checks("schedules.delete"):
    s.delete(ids["b"])
    try:
        s.get(ids["b"])
        checks.expect(False, "still there")
    except NotFoundError:
        pass


async def async_round():
    async with AsyncSpooledClient(api_key=API_KEY, base_url=BASE_URL) as ac:
        a = ac.schedules
        c = await a.create({"name": "async", "cron_expression": "0 12 * * MON-FRI", "queue_name": "sdk-async",
                            "payload_template": {"x": 1}})
        assert (await a.get(c.id)).name == "async"
        assert c.id in [x.id for x in await a.list({"queue_name": "sdk-async"})]
        assert (await a.update(c.id, {"timezone": "Europe/Paris"})).timezone == "Europe/Paris"
        assert (await a.pause(c.id)).is_active is False
        assert (await a.resume(c.id)).is_active is True
        trig = await a.trigger(c.id)
        assert [h.job_id for h in await a.get_history(c.id)] == [trig.job_id]
        await a.delete(c.id)

with checks("async schedules (every method)"):
    asyncio.run(async_round())

checks.finish()
