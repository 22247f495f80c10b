"""Workflows over REST (api.md "Workflows (job dependencies)"): DAGs created in one transaction, run in
dependency order through real claims, with the dependency rules applied in the transaction of each move."""

from __future__ import annotations

import trio

from tests.helpers import claim, job


def diamond(queue: str = "wf", **d_fields) -> dict:
    return {"name": "diamond", "description": "A -> (B, C) -> D", "metadata": {"run": 7}, "jobs": [
        {"key": "A", "queue_name": queue, "payload": {"step": "A"}},
        {"key": "B", "queue_name": queue, "payload": {"step": "B"}, "depends_on": ["A"]},
        {"key": "C", "queue_name": queue, "payload": {"step": "C"}, "depends_on": ["A"]},
        {"key": "D", "queue_name": queue, "payload": {"step": "D"}, "depends_on": ["B", "C"], **d_fields},
    ]}


async def create(api, body: dict) -> tuple[str, dict[str, str]]:
    r = await api.post("/api/v1/workflows", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "pending"
    return out["workflow_id"], {m["key"]: m["job_id"] for m in out["job_ids"]}


async def workflow(api, wid: str) -> dict:
    r = await api.get(f"/api/v1/workflows/{wid}")
    assert r.status_code == 200, r.text
    return r.json()


async def complete(api, j: dict) -> None:
    r = await api.post(f"/api/v1/jobs/{j['id']}/complete", json={"lease_id": j["lease_id"], "result": {"ok": 1}})
    assert r.status_code == 200, r.text


async def fail(api, j: dict, retry: bool = False) -> dict:
    r = await api.post(f"/api/v1/jobs/{j['id']}/fail", json={"lease_id": j["lease_id"], "error": "boom",
                                                             "retry": retry})
    assert r.status_code == 200, r.text
    return r.json()


async def run_to_end(api, queue: str) -> list[str]:
    """Claim and complete until nothing is claimable; the ids in the order they ran."""
    order = []
    while batch := await claim(api, queue, limit=10):
        for j in batch:
            order.append(j["id"])
            await complete(api, j)
    return order


def counts(w: dict) -> tuple:
    return w["status"], w["total_jobs"], w["completed_jobs"], w["failed_jobs"], w["progress_percent"]


async def test_diamond_runs_in_dependency_order(api):
    wid, ids = await create(api, diamond())
    name = {v: k for k, v in ids.items()}
    assert counts(await workflow(api, wid)) == ("pending", 4, 0, 0, 0.0)

    first = await claim(api, "wf", limit=10)
    assert [name[j["id"]] for j in first] == ["A"]
    assert counts(await workflow(api, wid)) == ("running", 4, 0, 0, 0.0)
    await complete(api, first[0])
    assert counts(await workflow(api, wid)) == ("running", 4, 1, 0, 25.0)

    second = await claim(api, "wf", limit=10)
    assert sorted(name[j["id"]] for j in second) == ["B", "C"]
    b, c = sorted(second, key=lambda j: name[j["id"]])
    await complete(api, b)
    assert await claim(api, "wf", limit=10) == []            # D waits for C too
    assert (await job(api, ids["D"]))["dependencies_met"] is False
    await complete(api, c)
    assert (await job(api, ids["D"]))["dependencies_met"] is True

    (d,) = await claim(api, "wf", limit=10)
    assert name[d["id"]] == "D" and d["workflow_id"] == wid and d["dependency_mode"] == "all"
    assert counts(await workflow(api, wid)) == ("running", 4, 3, 0, 75.0)
    await complete(api, d)
    w = await workflow(api, wid)
    assert counts(w) == ("completed", 4, 4, 0, 100.0)
    assert w["started_at"] and w["completed_at"] and w["name"] == "diamond" and w["metadata"] == {"run": 7}
    assert sorted((name[e["parent_job_id"]], name[e["child_job_id"]]) for e in w["dependencies"]) == \
        [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")]
    assert [name[j["id"]] for j in w["jobs"]] == ["A", "B", "C", "D"]
    assert {name[j["id"]]: sorted(name[p] for p in j["depends_on"]) for j in w["jobs"]}["D"] == ["B", "C"]


async def test_a_completed_dependency_wakes_a_waiting_claimer(api):
    """The long poll on D's queue is woken by the NOTIFY sent in the transaction that completes D's last
    dependency (no polling loop moves D)."""
    body = diamond()
    body["jobs"][3]["queue_name"] = "wf-last"
    wid, ids = await create(api, body)
    (a,) = await claim(api, "wf")
    await complete(api, a)
    b, c = await claim(api, "wf", limit=2)
    await complete(api, b)
    got = []

    async def waiter():
        got.extend(await claim(api, "wf-last", wait_secs=20))

    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            n.start_soon(waiter)
            await trio.sleep(0.3)                      # the waiter is parked (nothing claimable yet)
            assert not got
            await complete(api, c)
    assert [j["id"] for j in got] == [ids["D"]]


async def test_any_mode_runs_after_the_first_dependency_and_fails_only_when_none_can_complete(api):
    body = diamond(dependency_mode="any")
    for j in body["jobs"]:
        j["max_retries"] = 0
    wid, ids = await create(api, body)
    (a,) = await claim(api, "wf")
    await complete(api, a)
    b, c = await claim(api, "wf", limit=2)
    await complete(api, b)
    (d,) = await claim(api, "wf")                      # C is still running
    assert d["id"] == ids["D"] and d["dependency_mode"] == "any"
    await complete(api, c)
    await complete(api, d)
    assert counts(await workflow(api, wid)) == ("completed", 4, 4, 0, 100.0)

    # a second run where both of D's dependencies dead-letter: D waits after the first, is cancelled after both
    wid, ids = await create(api, body)
    (a,) = await claim(api, "wf")
    await complete(api, a)
    b, c = await claim(api, "wf", limit=2)
    await fail(api, b)
    assert (await job(api, ids["D"]))["status"] == "pending"
    assert counts(await workflow(api, wid)) == ("running", 4, 1, 1, 25.0)
    await fail(api, c)
    d = await job(api, ids["D"])
    assert d["status"] == "cancelled" and d["last_error"].startswith("dependency ")
    assert counts(await workflow(api, wid)) == ("failed", 4, 1, 2, 25.0)


async def test_a_dead_lettered_dependency_cancels_all_mode_dependents_and_fails_the_workflow(api):
    body = diamond()
    body["jobs"][0]["max_retries"] = 0
    wid, ids = await create(api, body)
    (a,) = await claim(api, "wf")
    r = await fail(api, a, retry=True)                 # no retries left: dead-lettered
    assert r["status"] == "deadletter" and not r["will_retry"]
    for key in "BCD":                                  # transitively
        j = await job(api, ids[key])
        assert j["status"] == "cancelled", (key, j)
        assert j["completed_at"] is not None and j["dependencies_met"] is False
    assert (await job(api, ids["B"]))["last_error"] == f"dependency {ids['A']} ended deadletter"
    assert (await job(api, ids["D"]))["last_error"].startswith("dependency ")   # B's or C's cancellation
    hist = (await api.get(f"/api/v1/jobs/{ids['B']}/history")).json()
    assert hist[-1]["event_type"] == "cancelled" and hist[-1]["details"]["dependency_job_id"] == ids["A"]
    w = await workflow(api, wid)
    assert counts(w) == ("failed", 4, 0, 1, 0.0) and w["cancelled_jobs"] == 3 and w["completed_at"]
    assert await claim(api, "wf", limit=10) == []
    # a cancelled dependent cannot be retried on its own while its dependency is dead (it could never run)
    r = await api.post(f"/api/v1/jobs/{ids['B']}/retry")
    assert r.status_code == 409 and "dependency" in r.json()["message"]


async def test_retrying_the_dead_dependency_brings_its_dependents_back(api):
    """Through the DLQ: the dead-lettered job runs again and the jobs cancelled because of it wait for it again."""
    body = diamond()
    body["jobs"][0]["max_retries"] = 0
    wid, ids = await create(api, body)
    (a,) = await claim(api, "wf")
    await fail(api, a)
    r = await api.post("/api/v1/jobs/dlq/retry", json={"job_ids": [ids["A"]]})
    assert r.status_code == 200 and r.json()["retried_count"] == 1
    for key in "BCD":
        j = await job(api, ids[key])
        assert (j["status"], j["dependencies_met"], j["last_error"]) == ("pending", False, None), (key, j)
    assert counts(await workflow(api, wid)) == ("running", 4, 0, 0, 0.0)
    assert (await workflow(api, wid))["completed_at"] is None
    await run_to_end(api, "wf")
    assert counts(await workflow(api, wid)) == ("completed", 4, 4, 0, 100.0)


async def test_workflow_retry_runs_failed_and_cancelled_jobs_again(api):
    body = diamond()
    body["jobs"][1]["max_retries"] = 0
    wid, ids = await create(api, body)
    (a,) = await claim(api, "wf")
    await complete(api, a)
    batch = await claim(api, "wf", limit=2)
    b = next(j for j in batch if j["id"] == ids["B"])
    c = next(j for j in batch if j["id"] == ids["C"])
    await fail(api, b)
    assert (await job(api, ids["D"]))["status"] == "cancelled"
    assert counts(await workflow(api, wid)) == ("running", 4, 1, 1, 25.0)     # C still runs
    await complete(api, c)
    assert counts(await workflow(api, wid)) == ("failed", 4, 2, 1, 50.0)

    r = await api.post(f"/api/v1/workflows/{wid}/retry")
    assert r.status_code == 200, r.text
    w = r.json()
    assert (w["status"], w["failed_jobs"], w["cancelled_jobs"], w["completed_jobs"]) == ("running", 0, 0, 2)
    assert w["completed_at"] is None
    d = await job(api, ids["D"])
    assert d["status"] == "pending" and d["dependencies_met"] is False            # waits for B again
    assert await run_to_end(api, "wf") == [ids["B"], ids["D"]]
    assert counts(await workflow(api, wid)) == ("completed", 4, 4, 0, 100.0)
    r = await api.post(f"/api/v1/workflows/{wid}/retry")
    assert r.status_code == 409


async def test_cancel_stops_what_has_not_started(api):
    wid, ids = await create(api, diamond())
    (a,) = await claim(api, "wf")
    r = await api.post(f"/api/v1/workflows/{wid}/cancel")
    assert r.status_code == 200, r.text
    w = r.json()
    assert w["status"] == "cancelled" and w["cancelled_jobs"] == 3 and w["completed_at"]
    for key in "BCD":
        assert (await job(api, ids[key]))["status"] == "cancelled"
    assert (await job(api, ids["A"]))["status"] == "processing"   # running jobs finish as they would
    await complete(api, a)
    w = await workflow(api, wid)
    assert (w["status"], w["completed_jobs"], w["cancelled_jobs"]) == ("cancelled", 1, 3)
    assert await claim(api, "wf", limit=10) == []
    r = await api.post(f"/api/v1/workflows/{wid}/cancel")
    assert r.status_code == 409 and r.json()["code"] == "CONFLICT"
    # and a cancelled workflow can be retried: its cancelled jobs run
    r = await api.post(f"/api/v1/workflows/{wid}/retry")
    assert r.status_code == 200 and r.json()["status"] == "running"
    assert sorted(await run_to_end(api, "wf")) == sorted([ids["B"], ids["C"], ids["D"]])
    assert (await workflow(api, wid))["status"] == "completed"


async def test_invalid_workflows_create_nothing(api, server):
    def jobs(*specs):
        return {"name": "bad", "jobs": [{"queue_name": "wf", "payload": {}, **s} for s in specs]}
    cases = {
        "cycle": (jobs({"key": "a", "depends_on": ["c"]}, {"key": "b", "depends_on": ["a"]},
                       {"key": "c", "depends_on": ["b"]}), "jobs", "cycle"),
        "unknown key": (jobs({"key": "a"}, {"key": "b", "depends_on": ["zz"]}), "jobs[1].depends_on", "zz"),
        "self": (jobs({"key": "a", "depends_on": ["a"]}), "jobs[0].depends_on", "itself"),
        "duplicate key": (jobs({"key": "a"}, {"key": "a"}), "jobs[1].key", "duplicate"),
        "no jobs": ({"name": "bad", "jobs": []}, "jobs", "1 to 100"),
        "too many": (jobs(*({"key": str(i)} for i in range(101))), "jobs", "1 to 100"),
        "bad mode": (jobs({"key": "a", "dependency_mode": "most"}), "jobs[0].dependency_mode", "one of"),
        "bad queue": ({"name": "bad", "jobs": [{"key": "a", "queue_name": "no spaces", "payload": 1}]},
                      "jobs[0].queue_name", ""),
        "no name": ({"jobs": [{"key": "a", "queue_name": "q", "payload": 1}]}, "name", "required"),
    }
    for what, (body, field, words) in cases.items():
        r = await api.post("/api/v1/workflows", json=body)
        assert r.status_code == 422, (what, r.text)
        err = r.json()
        assert err["code"] == "VALIDATION_ERROR" and err["details"]["field"] == field, (what, err)
        assert words in err["message"], (what, err)
    count = await server.services.db.run(lambda con: con.fetchval(
        "SELECT (SELECT count(*) FROM jobs) + (SELECT count(*) FROM workflows) + (SELECT count(*) FROM queues)"))
    assert count == 0


async def test_a_cycle_message_names_the_path(api):
    r = await api.post("/api/v1/workflows", json={"name": "c", "jobs": [
        {"key": "x", "queue_name": "q", "payload": 1, "depends_on": ["y"]},
        {"key": "y", "queue_name": "q", "payload": 1, "depends_on": ["x"]}]})
    assert r.status_code == 422 and "'x' depends on 'y' depends on 'x'" in r.json()["message"]


async def test_reaper_lease_expiry_keeps_the_workflow_consistent(api, server):
    body = diamond()
    body["jobs"][0]["max_retries"] = 1
    wid, ids = await create(api, body)
    (a,) = await claim(api, "wf", lease_duration_secs=5)
    later = helpers_utc(seconds=60)
    r = await server.services.maintenance.run_once(now=later)
    assert r.released == 1
    j = await job(api, ids["A"])
    assert (j["status"], j["retry_count"], j["last_error"]) == ("pending", 1, "lease expired")
    assert counts(await workflow(api, wid)) == ("running", 4, 0, 0, 0.0)
    for key in "BCD":
        assert (await job(api, ids[key]))["status"] == "pending"
    # the second expiry uses the last retry: dead-lettered, and the workflow fails with its dependents cancelled
    (a,) = await claim(api, "wf", lease_duration_secs=5)
    await server.services.maintenance.run_once(now=helpers_utc(seconds=120))
    assert (await job(api, ids["A"]))["status"] == "deadletter"
    w = await workflow(api, wid)
    assert counts(w) == ("failed", 4, 0, 1, 0.0) and w["cancelled_jobs"] == 3


def helpers_utc(**delta):
    from tests.helpers import utc
    return utc(**delta)


async def test_a_lost_worker_keeps_the_workflow_consistent(api):
    body = diamond()
    body["jobs"][0]["max_retries"] = 0
    wid, ids = await create(api, body)
    r = await api.post("/api/v1/workers/register", json={"worker_id": "w1", "queue_name": "wf", "hostname": "h"})
    assert r.status_code in (200, 201), r.text
    await claim(api, "wf", worker="w1")
    r = await api.post("/api/v1/workers/w1/deregister")
    assert r.status_code in (200, 204), r.text
    a = await job(api, ids["A"])
    assert (a["status"], a["last_error"]) == ("deadletter", "worker lost")
    assert counts(await workflow(api, wid)) == ("failed", 4, 0, 1, 0.0)


async def test_cancelling_one_job_cancels_its_all_mode_dependents(api):
    wid, ids = await create(api, diamond())
    r = await api.delete(f"/api/v1/jobs/{ids['B']}")
    assert r.status_code == 204
    d = await job(api, ids["D"])
    assert d["status"] == "cancelled" and d["last_error"] == f"dependency {ids['B']} ended cancelled"
    assert (await job(api, ids["C"]))["status"] == "pending"         # C does not depend on B
    w = await workflow(api, wid)
    assert (w["status"], w["cancelled_jobs"]) == ("running", 2)      # A and C can still run
    assert await run_to_end(api, "wf") == [ids["A"], ids["C"]]
    assert counts(await workflow(api, wid)) == ("failed", 4, 2, 0, 50.0)


async def test_list_workflows(api):
    done, _ = await create(api, {"name": "one", "jobs": [{"key": "a", "queue_name": "l1", "payload": 1}]})
    await run_to_end(api, "l1")
    ids = [done] + [(await create(api, {"name": f"w{i}", "jobs": [{"key": "a", "queue_name": "l2", "payload": i}]}))[0]
                    for i in range(3)]
    r = await api.get("/api/v1/workflows")
    assert r.status_code == 200 and [w["id"] for w in r.json()] == ids[::-1]
    assert r.headers["X-Has-More"] == "false"
    r = await api.get("/api/v1/workflows", params={"limit": 2, "offset": 1})
    assert [w["id"] for w in r.json()] == ids[::-1][1:3] and r.headers["X-Has-More"] == "true"
    r = await api.get("/api/v1/workflows", params={"status": "completed"})
    assert [w["id"] for w in r.json()] == [done] and r.json()[0]["progress_percent"] == 100.0
    assert [w["id"] for w in (await api.get("/api/v1/workflows", params={"status": "pending"})).json()] == \
        ids[:0:-1]
    r = await api.get("/api/v1/workflows", params={"status": "sleeping"})
    assert r.status_code == 422 and r.json()["details"]["field"] == "status"


async def test_job_dependencies_on_existing_jobs(api):
    """POST /jobs/{id}/dependencies between jobs enqueued on their own."""
    from tests.helpers import enqueue
    parent = await enqueue(api, queue="p")
    other = await enqueue(api, queue="p")
    child = await enqueue(api, queue="c")
    r = await api.post(f"/api/v1/jobs/{child['id']}/dependencies", json={"depends_on": [parent["id"], other["id"]],
                                                                         "dependency_mode": "any"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["added_count"] == 2 and body["dependencies_met"] is False and body["dependency_mode"] == "any"
    assert sorted(d["job_id"] for d in body["dependencies"]) == sorted([parent["id"], other["id"]])
    assert body["dependencies"][0] == {"job_id": body["dependencies"][0]["job_id"], "status": "pending",
                                       "queue_name": "p"}
    assert await claim(api, "c") == []                                   # no longer claimable
    r = await api.get(f"/api/v1/jobs/{parent['id']}/dependencies")
    assert r.json() == {"job_id": parent["id"], "dependencies": [], "dependency_mode": "all",
                        "dependents": [{"job_id": child["id"], "status": "pending", "queue_name": "c"}],
                        "dependencies_met": True}
    # the same edge again adds nothing
    r = await api.post(f"/api/v1/jobs/{child['id']}/dependencies", json={"depends_on": [parent["id"]],
                                                                         "dependency_mode": "any"})
    assert r.json()["added_count"] == 0
    # refused: a cycle, itself, an unknown job, a running job, a dead dependency
    r = await api.post(f"/api/v1/jobs/{parent['id']}/dependencies", json={"depends_on": [child["id"]]})
    assert r.status_code == 422 and "cycle" in r.json()["message"]
    r = await api.post(f"/api/v1/jobs/{child['id']}/dependencies", json={"depends_on": [child["id"]]})
    assert r.status_code == 422 and r.json()["details"]["field"] == "depends_on[0]"
    r = await api.post(f"/api/v1/jobs/{child['id']}/dependencies",
                       json={"depends_on": ["00000000-0000-0000-0000-000000000001"]})
    assert r.status_code == 422 and r.json()["details"]["field"] == "depends_on[0]"
    (running,) = await claim(api, "p")
    late = await enqueue(api, queue="x")
    r = await api.post(f"/api/v1/jobs/{running['id']}/dependencies", json={"depends_on": [late["id"]]})
    assert r.status_code == 409 and "processing" in r.json()["message"]
    r = await api.delete(f"/api/v1/jobs/{late['id']}")
    r = await api.post(f"/api/v1/jobs/{child['id']}/dependencies", json={"depends_on": [late["id"]]})
    assert r.status_code == 409 and "cancelled" in r.json()["message"]
    # the first dependency to complete makes an `any` job claimable
    await complete(api, running)
    (c,) = await claim(api, "c")
    assert c["id"] == child["id"] and c["dependencies_met"] is True


async def test_adding_a_dependency_outside_the_workflow_is_refused(api):
    wid, ids = await create(api, diamond())
    other, oids = await create(api, diamond("wf-other"))
    r = await api.post(f"/api/v1/jobs/{ids['D']}/dependencies", json={"depends_on": [oids["A"]]})
    assert r.status_code == 422 and "same workflow" in r.json()["message"]
    r = await api.post(f"/api/v1/jobs/{ids['C']}/dependencies", json={"depends_on": [ids["B"]]})
    assert r.status_code == 200 and r.json()["added_count"] == 1        # within it: fine
    r = await api.post(f"/api/v1/jobs/{ids['A']}/dependencies", json={"depends_on": [ids["D"]]})
    assert r.status_code == 422 and "cycle" in r.json()["message"]
    assert await run_to_end(api, "wf") == [ids["A"], ids["B"], ids["C"], ids["D"]]


async def test_tenancy(api, other_api):
    wid, ids = await create(api, diamond())
    theirs = await other_api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}})
    for method, path in (("GET", f"/workflows/{wid}"), ("POST", f"/workflows/{wid}/cancel"),
                         ("POST", f"/workflows/{wid}/retry"), ("GET", f"/jobs/{ids['A']}/dependencies"),
                         ("GET", "/workflows/not-a-uuid")):
        r = await other_api.request(method, "/api/v1" + path)
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND", (path, r.text)
    r = await other_api.post(f"/api/v1/jobs/{ids['D']}/dependencies",
                             json={"depends_on": [theirs.json()["id"]]})
    assert r.status_code == 404
    r = await api.post(f"/api/v1/jobs/{ids['D']}/dependencies", json={"depends_on": [theirs.json()["id"]]})
    assert r.status_code == 422 and r.json()["details"]["field"] == "depends_on[0]"
    assert (await other_api.get("/api/v1/workflows")).json() == []
    assert (await workflow(api, wid))["status"] == "pending"


async def test_waiting_jobs_are_pending_but_not_ready(api):
    """/jobs/stats counts every pending job; the dashboard summary counts the ones ready to run (its bounded
    reads walk the ready index, which waiting jobs are not in)."""
    await create(api, diamond())
    assert (await api.get("/api/v1/jobs/stats")).json()["pending"] == 4
    d = (await api.get("/api/v1/dashboard")).json()
    assert d["jobs"]["pending"] == 1 and d["queues"] == [{"name": "wf", "pending": 1, "processing": 0,
                                                          "paused": False}]


async def test_workflow_jobs_carry_the_sdk_fields(api):
    body = diamond()
    body["jobs"][0].update(priority=5, max_retries=2, timeout_seconds=90)
    wid, ids = await create(api, body)
    w = await workflow(api, wid)
    a = w["jobs"][0]
    assert a["id"] == ids["A"] and a["queue_name"] == "wf" and a["payload"] == {"step": "A"}
    assert (a["priority"], a["max_retries"], a["timeout_seconds"], a["timeout_ms"], a["attempt"]) == (5, 2, 90, 90000, 0)
    assert a["workflow_id"] == wid and a["dependency_mode"] == "all" and a["error"] is None
    assert w["jobs"][3]["dependencies_met"] is False and w["jobs"][0]["dependencies_met"] is True
    r = await api.get(f"/api/v1/jobs/{ids['D']}")
    assert r.json()["workflow_id"] == wid and r.json()["dependency_mode"] == "all"


async def test_retrying_one_failed_job_reopens_its_workflow(api):
    body = diamond()
    body["jobs"][1]["max_retries"] = 0
    wid, ids = await create(api, body)
    (a,) = await claim(api, "wf")
    await complete(api, a)
    for j in await claim(api, "wf", limit=2):
        await (fail(api, j) if j["id"] == ids["B"] else complete(api, j))
    w = await workflow(api, wid)
    assert counts(w) == ("failed", 4, 2, 1, 50.0) and w["completed_at"]
    r = await api.post(f"/api/v1/jobs/{ids['B']}/retry")
    assert r.status_code == 200 and r.json()["status"] == "pending"
    d = await job(api, ids["D"])
    assert (d["status"], d["dependencies_met"], d["last_error"]) == ("pending", False, None)
    w = await workflow(api, wid)
    assert counts(w) == ("running", 4, 2, 0, 50.0) and w["completed_at"] is None and w["cancelled_jobs"] == 0
    assert await run_to_end(api, "wf") == [ids["B"], ids["D"]]
    assert counts(await workflow(api, wid)) == ("completed", 4, 4, 0, 100.0)
