"""The SDK's `dashboard` resource (sync and async) against the server; the server side set the numbers."""

import asyncio
import json
import os

from spooled import AsyncSpooledClient, SpooledClient

from _sdkcheck import API_KEY, BASE_URL, Checks

EXPECT = json.loads(os.environ["EXPECT"])
checks = Checks()

with checks("dashboard.get"):
    d = SpooledClient(api_key=API_KEY, base_url=BASE_URL).dashboard.get()
    checks.expect(d.system.database_status == "healthy" and d.system.uptime_seconds >= 0, "system", d.system)
    checks.expect((d.jobs.total, d.jobs.pending, d.jobs.processing) == tuple(EXPECT["jobs"]), "jobs", d.jobs)
    checks.expect([(q.name, q.pending, q.paused) for q in d.queues] == [tuple(q) for q in EXPECT["queues"]],
                  "queues", d.queues)
    checks.expect(d.workers.total == d.workers.healthy + d.workers.unhealthy, "workers", d.workers)
    checks.expect(d.recent_activity.jobs_created_1h == EXPECT["jobs"][0], "recent", d.recent_activity)


async def async_get():
    async with AsyncSpooledClient(api_key=API_KEY, base_url=BASE_URL) as ac:
        return await ac.dashboard.get()

with checks("async dashboard.get"):
    a = asyncio.run(async_get())
    checks.expect(a.jobs.total == EXPECT["jobs"][0] and len(a.queues) == len(EXPECT["queues"]), "async", a)

checks.finish()
