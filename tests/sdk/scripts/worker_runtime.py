"""Both SDK worker runtimes (spooled.worker: SpooledWorker on threads, AsyncSpooledWorker on asyncio) process
real jobs to completion against the server: results stored, a failing handler retried then succeeding, one
out of retries dead-lettered, a slow job kept alive by its job heartbeat, and a clean stop (deregistered)."""

import asyncio
import threading
import time

from spooled import AsyncSpooledClient, SpooledClient
from spooled.worker import AsyncSpooledWorker, SpooledWorker

from _sdkcheck import API_KEY, BASE_URL, Checks

checks = Checks()
client = SpooledClient(api_key=API_KEY, base_url=BASE_URL, timeout=10)
TERMINAL = {"completed", "deadletter", "failed", "cancelled"}


def handle(payload: dict, retry_count: int):
    if payload.get("sleep"):
        time.sleep(payload["sleep"])
    if payload.get("always_fail") or (payload.get("fail_first") and retry_count == 0):
        raise RuntimeError(f"failing on try {retry_count}")
    return {"doubled": payload["n"] * 2}


def enqueue(queue: str, slow: bool) -> dict[str, str]:
    ids = {f"ok{i}": client.jobs.create({"queue_name": queue, "payload": {"n": i}}).id for i in range(3)}
    ids["flaky"] = client.jobs.create({"queue_name": queue, "payload": {"n": 10, "fail_first": True},
                                       "max_retries": 2}).id
    ids["doomed"] = client.jobs.create({"queue_name": queue, "payload": {"n": 0, "always_fail": True},
                                        "max_retries": 1}).id
    if slow:
        ids["slow"] = client.jobs.create({"queue_name": queue, "payload": {"n": 5, "sleep": 7}}).id
    return ids


def wait_terminal(ids: dict[str, str], timeout: float = 40) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = {k: client.jobs.get(v) for k, v in ids.items()}
        if all(j.status in TERMINAL for j in jobs.values()):
            return jobs
        time.sleep(0.2)
    raise AssertionError(f"not finished: { {k: client.jobs.get(v).status for k, v in ids.items()} }")


def check_outcome(jobs: dict) -> None:
    for k in ("ok0", "ok1", "ok2"):
        checks.expect(jobs[k].status == "completed" and jobs[k].result == {"doubled": jobs[k].payload["n"] * 2},
                      k, jobs[k])
    checks.expect(jobs["flaky"].status == "completed" and jobs["flaky"].retry_count == 1
                  and jobs["flaky"].result == {"doubled": 20}, "retried then done", jobs["flaky"])
    checks.expect(jobs["doomed"].status == "deadletter" and jobs["doomed"].retry_count == 2
                  and "failing" in jobs["doomed"].last_error, "dead-lettered", jobs["doomed"])
    for j in jobs.values():
        checks.expect(j.lease_id is None and j.assigned_worker_id is None, "released", j)


with checks("worker.sync"):
    q = "sdk-rt-sync"
    ids = enqueue(q, slow=True)
    worker = SpooledWorker(client, q, concurrency=3, poll_interval=0.1, lease_duration=6, heartbeat_fraction=0.5,
                           shutdown_timeout=10, worker_id="sdk-sync-worker")
    events: dict[str, int] = {}
    for ev in ("job:completed", "job:failed", "job:lease_lost", "error"):
        worker.on(ev, lambda _e, ev=ev: events.__setitem__(ev, events.get(ev, 0) + 1))
    worker.process(lambda ctx: handle(ctx.payload, ctx.retry_count))
    runner = threading.Thread(target=worker.start, daemon=True)
    runner.start()
    check_outcome(wait_terminal(ids))
    checks.expect(client.jobs.get(ids["slow"]).result == {"doubled": 10}, "slow job outlived one lease", None)
    beats = [h.event_type for h in client.jobs.history(ids["slow"])]
    # it ran past its 6 s lease: only the job heartbeats kept the reaper (every 0.2 s here) from releasing it
    checks.expect(beats.count("started") == 1 and "lease_expired" not in beats, "never re-leased", beats)
    worker.stop()
    runner.join(15)
    checks.expect(not runner.is_alive() and worker.state == "stopped", "stopped", worker.state)
    checks.expect(client.workers.get("sdk-sync-worker").status == "offline", "deregistered", None)
    checks.expect(events.get("job:completed") == 5 and events.get("job:failed") == 3
                  and not events.get("job:lease_lost") and not events.get("error"), "events", events)


async def async_runtime() -> None:
    q = "sdk-rt-async"
    ids = enqueue(q, slow=False)
    async with AsyncSpooledClient(api_key=API_KEY, base_url=BASE_URL, timeout=10) as ac:
        worker = AsyncSpooledWorker(ac, q, concurrency=3, poll_interval=0.1, lease_duration=10,
                                    shutdown_timeout=10, worker_id="sdk-async-worker")
        events: dict[str, int] = {}
        for ev in ("job:completed", "job:failed", "job:lease_lost", "error"):
            worker.on(ev, lambda _e, ev=ev: events.__setitem__(ev, events.get(ev, 0) + 1))

        @worker.process
        async def handler(ctx):
            return handle(ctx.payload, ctx.retry_count)
        task = asyncio.create_task(worker.start())
        jobs = await asyncio.to_thread(wait_terminal, ids)
        check_outcome(jobs)
        await asyncio.wait_for(worker.stop(), 15)
        await asyncio.wait_for(task, 15)
        checks.expect(worker.state == "stopped", "stopped", worker.state)
        checks.expect((await ac.workers.get("sdk-async-worker")).status == "offline", "deregistered", None)
        checks.expect(events.get("job:completed") == 4 and events.get("job:failed") == 3
                      and not events.get("job:lease_lost") and not events.get("error"), "events", events)

with checks("worker.async"):
    asyncio.run(asyncio.wait_for(async_runtime(), 60))

client.close()
checks.finish()
