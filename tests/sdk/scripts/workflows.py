"""Every method of the SDK's `workflows` and `workflows.jobs` resources (sync and async) against the server, and
the job dependency fields through `jobs.get`; a diamond run through the SDK's own claims."""

import asyncio

from spooled import AsyncSpooledClient, ConflictError, NotFoundError, SpooledClient, ValidationError

from _sdkcheck import API_KEY, BASE_URL, Checks

checks = Checks()
client = SpooledClient(api_key=API_KEY, base_url=BASE_URL, timeout=10)
wf = client.workflows
Q, W = "sdk-wf", "sdk-wf-worker"
ids: dict[str, str] = {}


def diamond(queue: str, name: str = "diamond") -> dict:
    return {"name": name, "description": "A -> (B, C) -> D", "metadata": {"owner": "sdk"}, "jobs": [
        {"key": "A", "queue_name": queue, "payload": {"step": "A"}, "priority": 3, "timeout_seconds": 90},
        {"key": "B", "queue_name": queue, "payload": {"step": "B"}, "depends_on": ["A"], "max_retries": 0},
        {"key": "C", "queue_name": queue, "payload": {"step": "C"}, "depends_on": ["A"]},
        {"key": "D", "queue_name": queue, "payload": {"step": "D"}, "depends_on": ["B", "C"],
         "dependency_mode": "all"}]}


def run_ready(queue: str) -> list[str]:
    """Claim everything claimable now and complete it; the keys that ran."""
    claimed = client.jobs.claim({"queue_name": queue, "worker_id": W, "limit": 10}).jobs
    for j in claimed:
        client.jobs.complete(j.id, {"worker_id": W, "lease_id": j.lease_id, "result": {"ok": True}})
    return sorted(ids[j.id] for j in claimed)


with checks("workflows.create"):
    created = wf.create(diamond(Q))
    checks.expect(created.workflow_id and created.status == "pending" and len(created.job_ids) == 4, "created",
                  created)
    ids.update({m.key: m.job_id for m in created.job_ids})
    ids.update({m.job_id: m.key for m in created.job_ids})
    ids["wf"] = created.workflow_id

with checks("workflows.create invalid -> 422, nothing created"):
    before = len(wf.list())
    for bad in ([{"key": "x", "queue_name": Q, "payload": 1, "depends_on": ["y"]},
                 {"key": "y", "queue_name": Q, "payload": 1, "depends_on": ["x"]}],            # a cycle
                [{"key": "x", "queue_name": Q, "payload": 1, "depends_on": ["nope"]}]):        # unknown key
        exc = checks.raises(ValidationError, wf.create, {"name": "bad", "jobs": bad})
        checks.expect(exc.status_code == 422, "status", exc.status_code)
    checks.expect(len(wf.list()) == before, "nothing created", wf.list())

with checks("workflows.get"):
    w = wf.get(ids["wf"])
    checks.expect(w.id == ids["wf"] and w.name == "diamond" and w.status == "pending" and w.total_jobs == 4
                  and w.completed_jobs == 0 and w.progress_percent == 0.0 and w.metadata == {"owner": "sdk"}
                  and w.description == "A -> (B, C) -> D" and w.started_at is None, "workflow", w)
    checks.raises(NotFoundError, wf.get, "00000000-0000-4000-8000-000000000000")

with checks("workflows.jobs.list+get+get_status"):
    jobs = wf.jobs.list(ids["wf"])
    checks.expect([j.id for j in jobs] == [ids[k] for k in "ABCD"], "jobs in order", jobs)
    a = jobs[0]
    checks.expect(a.queue_name == Q and a.payload == {"step": "A"} and a.priority == 3 and a.timeout_seconds == 90
                  and a.status == "pending" and a.workflow_id == ids["wf"] and a.depends_on is None, "A", a)
    d = wf.jobs.get(ids["wf"], ids["D"])
    checks.expect(sorted(d.depends_on) == sorted([ids["B"], ids["C"]]) and d.dependency_mode == "all", "D", d)
    checks.raises(NotFoundError, wf.jobs.get, ids["wf"], "00000000-0000-4000-8000-000000000000")
    status = wf.jobs.get_status(ids["wf"])
    checks.expect(sorted((s.job_id, s.status) for s in status) == sorted((ids[k], "pending") for k in "ABCD"),
                  "status", status)

with checks("workflows.jobs.get_dependencies + jobs.get dependency fields"):
    dd = wf.jobs.get_dependencies(ids["D"])
    checks.expect(dd.job_id == ids["D"] and sorted(x.job_id for x in dd.dependencies) == sorted([ids["B"], ids["C"]])
                  and dd.dependents == [] and dd.dependency_mode == "all" and dd.dependencies_met is False
                  and all(x.queue_name == Q and not x.completed for x in dd.dependencies), "D deps", dd)
    ad = wf.jobs.get_dependencies(ids["A"])
    checks.expect(ad.dependencies == [] and sorted(x.job_id for x in ad.dependents) == sorted([ids["B"], ids["C"]])
                  and ad.dependencies_met is True, "A deps", ad)
    j = client.jobs.get(ids["D"])
    checks.expect(j.workflow_id == ids["wf"] and j.dependency_mode == "all" and j.dependencies_met is False,
                  "job fields", j)

with checks("diamond runs in dependency order through SDK claims"):
    checks.expect(run_ready(Q) == ["A"], "first", None)
    checks.expect(wf.get(ids["wf"]).status == "running", "running", wf.get(ids["wf"]))
    checks.expect(wf.jobs.get_dependencies(ids["B"]).dependencies[0].completed is True, "A completed", None)
    checks.expect(run_ready(Q) == ["B", "C"], "second", None)
    checks.expect(client.jobs.get(ids["D"]).dependencies_met is True, "D ready", client.jobs.get(ids["D"]))
    checks.expect(run_ready(Q) == ["D"], "third", None)
    w = wf.get(ids["wf"])
    checks.expect(w.status == "completed" and w.completed_jobs == 4 and w.progress_percent == 100.0
                  and w.started_at and w.completed_at, "completed", w)

with checks("workflows.list"):
    second = wf.create(diamond(Q + "-2", "second"))
    ids.update({m.job_id: m.key for m in second.job_ids})
    ids["wf2"] = second.workflow_id
    names = [x.name for x in wf.list()]
    checks.expect(names[:2] == ["second", "diamond"], "newest first", names)
    checks.expect([x.id for x in wf.list({"status": "completed"})] == [ids["wf"]], "by status", None)
    checks.expect([x.id for x in wf.list({"limit": 1, "offset": 1})] == [ids["wf"]], "paged", None)

with checks("workflows.jobs.add_dependencies"):
    solo = client.jobs.create({"queue_name": Q + "-solo", "payload": {"after": "second"}})
    second_d = next(m.job_id for m in second.job_ids if m.key == "D")
    r = wf.jobs.add_dependencies(solo.id, {"dependency_job_ids": [second_d], "dependency_mode": "any"})
    checks.expect(r.added_count == 1 and r.dependencies_met is False and r.job_id == solo.id, "added", r)
    checks.expect(client.jobs.get(solo.id).dependency_mode == "any", "mode", client.jobs.get(solo.id))
    exc = checks.raises(ValidationError, wf.jobs.add_dependencies, second_d, {"dependency_job_ids": [second_d]})
    checks.expect(exc.status_code == 422, "self", exc)

with checks("workflows.cancel"):
    (a2,) = client.jobs.claim({"queue_name": Q + "-2", "worker_id": W}).jobs
    c = wf.cancel(ids["wf2"])
    checks.expect(c.status == "cancelled" and c.id == ids["wf2"], "cancelled", c)
    checks.expect(client.jobs.get(second_d).status == "cancelled", "D cancelled", None)
    solo_job = client.jobs.get(solo.id)          # its only dependency was cancelled: it can never run
    checks.expect(solo_job.status == "cancelled" and "dependency" in (solo_job.last_error or ""), "solo", solo_job)
    exc = checks.raises(ConflictError, wf.cancel, ids["wf2"])
    checks.expect(exc.status_code == 409, "again", exc)
    client.jobs.complete(a2.id, {"worker_id": W, "lease_id": a2.lease_id})

with checks("workflows.retry"):
    r = wf.retry(ids["wf2"])
    checks.expect(r.status == "running" and r.completed_at is None, "retried", r)
    checks.expect(run_ready(Q + "-2") == ["B", "C"], "B and C again", None)
    checks.expect(run_ready(Q + "-2") == ["D"], "then D", None)
    w = wf.get(ids["wf2"])
    checks.expect(w.status == "completed" and w.completed_jobs == 4, "completed", w)
    checks.raises(ConflictError, wf.retry, ids["wf2"])


async def async_workflows() -> None:
    async with AsyncSpooledClient(api_key=API_KEY, base_url=BASE_URL, timeout=10) as ac:
        created = await ac.workflows.create(diamond(Q + "-async", "async"))
        wid = created.workflow_id
        key = {m.job_id: m.key for m in created.job_ids}
        assert (await ac.workflows.get(wid)).total_jobs == 4
        assert wid in [x.id for x in await ac.workflows.list({"status": "pending"})]
        jobs = await ac.workflows.jobs.list(wid)
        assert [key[j.id] for j in jobs] == list("ABCD")
        assert (await ac.workflows.jobs.get(wid, jobs[3].id)).dependency_mode == "all"
        assert len(await ac.workflows.jobs.get_status(wid)) == 4
        deps = await ac.workflows.jobs.get_dependencies(jobs[3].id)
        assert len(deps.dependencies) == 2 and deps.dependencies_met is False
        added = await ac.workflows.jobs.add_dependencies(jobs[2].id, {"dependency_job_ids": [jobs[1].id]})
        assert added.added_count == 1
        assert (await ac.workflows.cancel(wid)).status == "cancelled"
        assert (await ac.workflows.retry(wid)).status in ("pending", "running")
        (a,) = (await ac.jobs.claim({"queue_name": Q + "-async", "worker_id": W, "limit": 10})).jobs
        assert key[a.id] == "A"

with checks("async.workflows"):
    asyncio.run(asyncio.wait_for(async_workflows(), 30))

client.close()
checks.finish()
