"""Job dependencies under concurrent transactions: the rules run in the transaction of each move, so two
dependencies completing at once, or batches completing jobs of many workflows in crossing orders, must still leave
every dependent and every workflow right (and, with locks taken in one order, without deadlocks)."""

from __future__ import annotations

import random

import trio

from tests.helpers import claim, job
from tests.test_workflows import create, run_to_end, workflow


async def complete_in_batches(api, batches: list[list[dict]]) -> None:
    """Each batch is one POST /jobs/complete (one statement, one transaction), all batches at once."""
    async def one(batch):
        r = await api.post("/api/v1/jobs/complete", json={"worker_id": "w1", "completions": [
            {"job_id": j["id"], "lease_id": j["lease_id"]} for j in batch]})
        assert r.status_code == 200 and all(x["success"] for x in r.json()["results"]), r.text

    with trio.fail_after(60):
        async with trio.open_nursery() as n:
            for b in batches:
                n.start_soon(one, b)


async def test_fan_in_completed_concurrently(api, server):
    roots = [{"key": f"r{i}", "queue_name": "fan", "payload": i} for i in range(30)]
    sink = {"key": "sink", "queue_name": "sink", "payload": {}, "depends_on": [r["key"] for r in roots]}
    wid, ids = await create(api, {"name": "fan-in", "jobs": roots + [sink]})
    claimed = await claim(api, "fan", limit=30)
    assert len(claimed) == 30
    random.shuffle(claimed)
    await complete_in_batches(api, [claimed[i::6] for i in range(6)])
    w = await workflow(api, wid)
    assert (w["status"], w["completed_jobs"]) == ("running", 30)
    s = await job(api, ids["sink"])
    assert s["status"] == "pending" and s["dependencies_met"] is True
    hist = (await api.get(f"/api/v1/jobs/{ids['sink']}/history")).json()
    assert [h["event_type"] for h in hist] == ["created", "dependencies_met"]      # made ready exactly once
    assert await run_to_end(api, "sink") == [ids["sink"]]
    assert (await workflow(api, wid))["status"] == "completed"
    assert server.services.db.deadlocks == 0


async def test_last_jobs_completed_at_once_complete_the_workflow(api):
    wid, _ = await create(api, {"name": "flat", "jobs": [{"key": str(i), "queue_name": "flat", "payload": i}
                                                        for i in range(12)]})
    claimed = await claim(api, "flat", limit=12)
    await complete_in_batches(api, [[j] for j in claimed])
    w = await workflow(api, wid)
    assert (w["status"], w["completed_jobs"], w["progress_percent"]) == ("completed", 12, 100.0)


async def test_crossing_batches_over_many_workflows(api, server):
    """20 workflows of two roots and a sink; one batch completes every first root in one order while another
    completes every second root in the opposite order, in rounds."""
    wfs = []
    for i in range(20):
        wfs.append(await create(api, {"name": f"x{i}", "jobs": [
            {"key": "r1", "queue_name": "cross", "payload": 1}, {"key": "r2", "queue_name": "cross", "payload": 2},
            {"key": "sink", "queue_name": "cross-sink", "payload": 3, "depends_on": ["r1", "r2"]}]}))
    claimed = {j["id"]: j for j in await claim(api, "cross", limit=40)}
    firsts = [claimed[ids["r1"]] for _, ids in wfs]
    seconds = [claimed[ids["r2"]] for _, ids in reversed(wfs)]
    await complete_in_batches(api, [firsts[:10], seconds[:10], firsts[10:], seconds[10:]])
    for wid, ids in wfs:
        w = await workflow(api, wid)
        assert (w["status"], w["completed_jobs"]) == ("running", 2), w
        assert (await job(api, ids["sink"]))["dependencies_met"] is True
    assert len(await run_to_end(api, "cross-sink")) == 20
    assert server.services.db.deadlocks == 0


async def test_concurrent_claimers_over_many_workflows(api, server):
    wfs = [await create(api, {"name": f"m{i}", "jobs": [{"key": k, "queue_name": "many", "payload": k}
                                                        for k in "abc"]}) for i in range(15)]
    done = []

    async def worker(name):
        while batch := await claim(api, "many", limit=4, worker=name):
            r = await api.post("/api/v1/jobs/complete", json={"worker_id": name, "completions": [
                {"job_id": j["id"], "lease_id": j["lease_id"]} for j in batch]})
            assert r.status_code == 200, r.text
            done.extend(j["id"] for j in batch)

    with trio.fail_after(60):
        async with trio.open_nursery() as n:
            for i in range(4):
                n.start_soon(worker, f"w{i}")
    assert len(done) == 45 and len(set(done)) == 45
    for wid, _ in wfs:
        w = await workflow(api, wid)
        assert (w["status"], w["completed_jobs"]) == ("completed", 3) and w["started_at"] and w["completed_at"]
    assert server.services.db.deadlocks == 0


async def test_deleting_a_dependency_that_never_completed_cancels_its_dependents(api):
    """Deleting a queue with its jobs takes a pending dependency away: its dependent in another queue can never
    be met and is cancelled (not left waiting)."""
    wid, ids = await create(api, {"name": "doomed", "jobs": [
        {"key": "a", "queue_name": "doomed", "payload": 1},
        {"key": "b", "queue_name": "kept", "payload": 2, "depends_on": ["a"]}]})
    r = await api.delete("/api/v1/queues/doomed", params={"delete_jobs": "true"})
    assert r.status_code == 204, r.text
    b = await job(api, ids["b"])
    assert b["status"] == "cancelled" and b["last_error"] == "a dependency was deleted before it completed"
    w = await workflow(api, wid)
    assert (w["status"], w["total_jobs"], w["cancelled_jobs"]) == ("failed", 1, 1)


async def test_purging_a_dead_dependency_keeps_the_workflow_counted(api):
    body = {"name": "purge", "jobs": [{"key": "a", "queue_name": "pq", "payload": 1, "max_retries": 0},
                                      {"key": "b", "queue_name": "pq", "payload": 2, "depends_on": ["a"]}]}
    wid, ids = await create(api, body)
    (a,) = await claim(api, "pq")
    r = await api.post(f"/api/v1/jobs/{a['id']}/fail", json={"lease_id": a["lease_id"], "error": "x"})
    assert r.json()["status"] == "deadletter"
    r = await api.post("/api/v1/jobs/dlq/purge", json={"confirm": True})
    assert r.json()["purged_count"] == 1
    w = await workflow(api, wid)
    assert (w["status"], w["total_jobs"], w["failed_jobs"], w["cancelled_jobs"]) == ("failed", 1, 0, 1)
    assert w["dependencies"] == []
    # with its dependency gone, b can run when retried
    r = await api.post(f"/api/v1/jobs/{ids['b']}/retry")
    assert r.status_code == 200 and r.json()["dependencies_met"] is True
    assert await run_to_end(api, "pq") == [ids["b"]]
    assert (await workflow(api, wid))["status"] == "completed"
