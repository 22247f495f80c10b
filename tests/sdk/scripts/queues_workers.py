"""The SDK's queues and workers resources, every method we serve (sync, and the async client's)."""

import asyncio
import socket

from spooled import AsyncSpooledClient, ConflictError, NotFoundError, SpooledClient

from _sdkcheck import API_KEY, BASE_URL, Checks

checks = Checks()
client = SpooledClient(api_key=API_KEY, base_url=BASE_URL, timeout=10)
Q = "sdk-q"

with checks("queues.update_config"):           # the SDK's only way to create a queue
    q = client.queues.update_config(Q, {"max_retries": 7, "default_timeout": 120, "rate_limit": 50,
                                        "settings": {"k": "v"}})
    checks.expect((q.queue_name, q.max_retries, q.default_timeout, q.rate_limit, q.enabled, q.settings)
                  == (Q, 7, 120, 50, True, {"k": "v"}), "created", q)
    q = client.queues.update_config(Q, {"max_retries": 4})
    checks.expect(q.max_retries == 4 and q.default_timeout == 120, "partial update", q)

with checks("queues.get"):
    q = client.queues.get(Q)
    checks.expect(q.queue_name == Q and q.max_retries == 4, "queue", q)
    checks.raises(NotFoundError, client.queues.get, "no-such-queue")

with checks("queues.list"):
    names = [s.queue_name for s in client.queues.list()]
    checks.expect(Q in names, "listed", names)

with checks("queues.get_stats"):
    created = client.jobs.create({"queue_name": Q, "payload": {}})
    s = client.queues.get_stats(Q)
    checks.expect(s.queue_name == Q and s.pending_jobs == 1 and s.processing_jobs == 0, "stats", s)

with checks("queues.pause+resume"):
    p = client.queues.pause(Q, reason="maintenance")
    checks.expect(p.paused is True and p.reason == "maintenance" and p.queue_name == Q, "paused", p)
    checks.expect(client.queues.get(Q).enabled is False, "enabled false", None)
    checks.expect(client.jobs.claim({"queue_name": Q, "worker_id": "w"}).jobs == [], "paused hands out nothing",
                  None)
    p = client.queues.pause(Q)
    r = client.queues.resume(Q)
    checks.expect(r.resumed is True and r.paused_duration_secs >= 0, "resumed", r)
    (c,) = client.jobs.claim({"queue_name": Q, "worker_id": "w"}).jobs
    checks.expect(c.id == created.id, "claimable again", c)

with checks("queues.delete"):
    checks.raises(ConflictError, client.queues.delete, Q)
    client.queues.delete(Q, delete_jobs=True)
    checks.raises(NotFoundError, client.queues.get, Q)
    client.queues.update_config(Q + "-empty", {})
    client.queues.delete(Q + "-empty")

W = "sdk-w1"
with checks("workers.register"):
    r = client.workers.register({"queue_name": "wq", "hostname": socket.gethostname(), "worker_id": W,
                                 "worker_type": "python", "max_concurrency": 3, "metadata": {"a": 1},
                                 "version": "9.9"})
    checks.expect(r.id == W and r.queue_name == "wq" and r.heartbeat_interval_secs > 0
                  and r.lease_duration_secs > 0, "registered", r)
    again = client.workers.register({"queue_name": "wq", "hostname": "h2", "worker_id": W})
    checks.expect(again.id == W, "re-register", again)
    minted = client.workers.register({"queue_name": "wq", "hostname": "h3"})
    checks.expect(minted.id and minted.id != W, "server-made id", minted)

with checks("workers.heartbeat"):
    for status in ("healthy", "degraded", "draining", "offline", None):
        params = {"current_jobs": 1, "metadata": {"load": 0.5}}
        if status:
            params["status"] = status
        client.workers.heartbeat(W, params)
    checks.expect(client.workers.get(W).status == "healthy", "revived after offline", None)

with checks("workers.list"):
    ws = {w.id: w for w in client.workers.list()}
    checks.expect(W in ws and ws[W].queue_name == "wq" and ws[W].max_concurrency == 5, "listed", ws.get(W))

with checks("workers.get"):
    w = client.workers.get(W)
    checks.expect(w.id == W and w.hostname == "h2" and w.last_heartbeat, "worker", w)
    checks.raises(NotFoundError, client.workers.get, "nobody")

with checks("workers.deregister"):
    job = client.jobs.create({"queue_name": "wq", "payload": {}})
    client.jobs.claim({"queue_name": "wq", "worker_id": W})
    client.workers.deregister(W)
    checks.expect(client.workers.get(W).status == "offline", "offline", None)
    j = client.jobs.get(job.id)
    checks.expect(j.status == "pending" and j.assigned_worker_id is None and j.last_error == "worker lost",
                  "released", j)


async def async_surface() -> None:
    async with AsyncSpooledClient(api_key=API_KEY, base_url=BASE_URL, timeout=10) as ac:
        q = await ac.queues.update_config("sdk-aq", {"max_retries": 2})
        assert q.max_retries == 2 and (await ac.queues.get("sdk-aq")).queue_name == "sdk-aq"
        assert "sdk-aq" in [s.queue_name for s in await ac.queues.list()]
        assert (await ac.queues.get_stats("sdk-aq")).pending_jobs == 0
        assert (await ac.queues.pause("sdk-aq")).paused and (await ac.queues.resume("sdk-aq")).resumed
        await ac.queues.delete("sdk-aq")
        r = await ac.workers.register({"queue_name": "aq", "hostname": "h", "worker_id": "sdk-aw"})
        await ac.workers.heartbeat(r.id, {"current_jobs": 0, "status": "degraded"})
        assert (await ac.workers.get(r.id)).status == "degraded"
        assert r.id in [w.id for w in await ac.workers.list()]
        await ac.workers.deregister(r.id)
        assert (await ac.workers.get(r.id)).status == "offline"

with checks("async.queues+workers"):
    asyncio.run(asyncio.wait_for(async_surface(), 30))

client.close()
checks.finish()
