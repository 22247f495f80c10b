"""An API key restricted to some queues reaches nothing of any other queue, on every route and RPC: another queue's
job, worker, schedule or workflow answers exactly as another organization's (404 NOT_FOUND, the same body), naming
another queue is 403, listings, statistics, counts and the dashboard cover the key's queues only, and nothing of
the other queue changes. The routes are enumerated from the app's url_map and the RPCs from the services, so a new
route without a case here fails `test_every_route_and_rpc_has_a_case`."""

from __future__ import annotations

import types
from typing import Awaitable, Callable

import httpx
import pytest
from trio_websocket import ConnectionRejected

from spooled.settings import Settings
from spooled.transports.grpc.gen.spooled_grpc import QueueServiceBase, WorkerServiceBase
from spooled.transports.http.app import create_app
from tests.access import bearer, key_of, rpc_code, with_grpcio
from tests.events_helpers import sse, ws
from tests.grpcio_gen import spooled_pb2 as pb
from tests.grpcio_gen import spooled_pb2_grpc
from tests.helpers import claim, enqueue

MINE = ["allowed", "spare", "gone"]    # the key's queues: "spare" stays empty, "gone" never exists
LONG = 3600                            # leases that outlive the test


# -- the world: one organization's data in the key's queue and in another ---------------------------------------
async def claimed(api, queue: str, worker: str = "w-x", **job) -> dict:
    """A job of `queue`, leased (the queue's only pending job while this runs)."""
    created = await enqueue(api, queue, **job)
    (c,) = await claim(api, queue, worker=worker, lease_duration_secs=LONG)
    assert c["id"] == created["id"]
    return c


async def dead(api, queue: str) -> dict:
    c = await claimed(api, queue, max_retries=0)
    r = await api.post(f"/api/v1/jobs/{c['id']}/fail", json={"lease_id": c["lease_id"], "error": "x", "retry": False})
    assert r.json()["status"] == "deadletter", r.text
    return c


async def created(api, path: str, body: dict) -> dict:
    r = await api.post(path, json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


def workflow(name: str, *queues: str) -> dict:
    return {"name": name, "jobs": [{"key": f"k{i}", "queue_name": q, "payload": {}} for i, q in enumerate(queues)]}


def schedule(name: str, queue: str) -> dict:
    return {"name": name, "cron_expression": "0 3 * * *", "queue_name": queue, "payload_template": {}}


async def build(api, other_api) -> types.SimpleNamespace:
    w = types.SimpleNamespace()
    # leased and dead-lettered jobs first: each is its queue's only pending job when it is claimed
    w.other_leased = await claimed(api, "other")
    w.other_dead = await dead(api, "other")
    w.mine_leased = [await claimed(api, "allowed") for _ in range(6)]
    w.mine_dead = [await dead(api, "allowed") for _ in range(3)]
    w.other_pending = await enqueue(api, "other")
    w.mine_pending = [await enqueue(api, "allowed") for _ in range(4)]
    w.foreign = await enqueue(other_api, "allowed")          # another organization's job
    for wid, queues in (("w-mine", ["allowed"]), ("w-mine2", ["allowed"]), ("w-mine3", ["allowed"]),
                        ("w-other", ["other"]), ("w-mixed", ["allowed", "other"])):
        await created(api, "/api/v1/workers/register", {"worker_id": wid, "queue_names": queues, "hostname": "h"})
    w.s_mine = (await created(api, "/api/v1/schedules", schedule("mine", "allowed")))["id"]
    w.s_mine2 = (await created(api, "/api/v1/schedules", schedule("mine2", "allowed")))["id"]
    w.s_other = (await created(api, "/api/v1/schedules", schedule("other", "other")))["id"]
    w.wf_mine = (await created(api, "/api/v1/workflows", workflow("mine", "allowed")))["workflow_id"]
    w.wf_other = (await created(api, "/api/v1/workflows", workflow("other", "other")))["workflow_id"]
    w.wf_mixed = (await created(api, "/api/v1/workflows", workflow("mixed", "allowed", "other")))["workflow_id"]
    return w


async def snapshot(api, w) -> dict:
    """Everything of the other queue, as the unrestricted key sees it."""
    jobs = (await api.get("/api/v1/jobs", params={"queue_name": "other", "limit": 100})).json()
    out = {"jobs": sorted(jobs, key=lambda j: j["id"]),
           "history": [(await api.get(f"/api/v1/jobs/{j['id']}/history")).json() for j in jobs],
           "dependencies": [(await api.get(f"/api/v1/jobs/{j['id']}/dependencies")).json() for j in jobs],
           "queue": (await api.get("/api/v1/queues/other")).json()}
    out["queue"]["stats"].pop("max_job_age_seconds")          # grows with the clock
    for name, path in (("w-other", "/api/v1/workers/w-other"), ("w-mixed", "/api/v1/workers/w-mixed"),
                       ("s_other", f"/api/v1/schedules/{w.s_other}"),
                       ("s_other runs", f"/api/v1/schedules/{w.s_other}/history"),
                       ("wf_other", f"/api/v1/workflows/{w.wf_other}"),
                       ("wf_mixed", f"/api/v1/workflows/{w.wf_mixed}")):
        r = await api.get(path)
        assert r.status_code == 200, (path, r.text)
        out[name] = r.json()
    return out


# -- what a case checks -------------------------------------------------------------------------------------------
class Ctx:
    def __init__(self, k: httpx.AsyncClient, api: httpx.AsyncClient, other: httpx.AsyncClient, w):
        self.k, self.api, self.other, self.w = k, api, other, w
        self.key = key_of(k)

    async def hidden(self, method: str, path: str, body: dict | None = None) -> None:
        """Another queue's thing answers as another organization's: 404 NOT_FOUND, the same body."""
        r = await self.k.request(method, path, json=body)
        o = await self.other.request(method, path, json=body)
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND", (method, path, r.status_code, r.text)
        assert (o.status_code, o.json()) == (r.status_code, r.json()), (method, path, o.text, r.text)

    async def refused(self, method: str, path: str, body: dict | None = None) -> None:
        r = await self.k.request(method, path, json=body)
        assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN", (method, path, r.status_code, r.text)

    async def ok(self, method: str, path: str, body: dict | None = None, *, status: int | None = None) -> dict:
        """The control: the same route does its work for the key's own queue."""
        r = await self.k.request(method, path, json=body)
        assert (r.status_code == status) if status else r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json() if r.content else {}

    async def both(self, path: str, **params) -> tuple[object, object]:
        """(what the key gets, what the unrestricted key gets) for a GET."""
        r, a = await self.k.get(path, params=params), await self.api.get(path, params=params)
        assert r.status_code == a.status_code == 200, (path, r.text, a.text)
        return r.json(), a.json()


def ids(items) -> set[str]:
    return {i["id"] for i in items}


Case = Callable[[Ctx], Awaitable[None]]


# -- REST: one case per (method, rule) -----------------------------------------------------------------------------
async def job_create(c: Ctx):
    await c.refused("POST", "/api/v1/jobs", {"queue_name": "other", "payload": {}})
    await c.ok("POST", "/api/v1/jobs", {"queue_name": "spare", "payload": {}, "parent_job_id": c.w.mine_pending[0]["id"]})
    # a parent in another queue is not a job of the organization, as another organization's job
    r = await c.k.post("/api/v1/jobs", json={"queue_name": "allowed", "payload": {},
                                             "parent_job_id": c.w.other_pending["id"]})
    o = await c.k.post("/api/v1/jobs", json={"queue_name": "allowed", "payload": {},
                                             "parent_job_id": c.w.foreign["id"]})
    assert r.status_code == 422 and (r.status_code, r.json()) == (o.status_code, o.json()), r.text


async def job_list(c: Ctx):
    mine, every = await c.both("/api/v1/jobs", limit=100)
    assert {j["queue_name"] for j in mine} == {"allowed", "spare"} and "other" in {j["queue_name"] for j in every}
    assert ids(mine) == {j["id"] for j in every if j["queue_name"] != "other"}
    await c.refused("GET", "/api/v1/jobs?queue_name=other")


async def job_dlq(c: Ctx):
    mine, every = await c.both("/api/v1/jobs/dlq", limit=100)
    assert ids(mine) == {j["id"] for j in every if j["queue_name"] != "other"}
    assert c.w.other_dead["id"] in ids(every) and c.w.other_dead["id"] not in ids(mine) and mine


async def job_stats(c: Ctx):
    mine, every = await c.both("/api/v1/jobs/stats")
    listed = (await c.api.get("/api/v1/jobs", params={"limit": 100})).json()
    expected = {}
    for j in listed:
        if j["queue_name"] != "other":
            expected[j["status"]] = expected.get(j["status"], 0) + 1
    assert {s: n for s, n in mine.items() if n and s != "total"} == expected
    assert mine["total"] == sum(expected.values()) < every["total"]


async def job_statuses(c: Ctx):
    both = f"{c.w.other_pending['id']},{c.w.mine_pending[0]['id']}"
    mine, every = await c.both("/api/v1/jobs/status", ids=both)
    assert [s["id"] for s in mine] == [c.w.mine_pending[0]["id"]] and len(every) == 2


async def job_get(c: Ctx):
    await c.hidden("GET", f"/api/v1/jobs/{c.w.other_leased['id']}")
    await c.ok("GET", f"/api/v1/jobs/{c.w.mine_pending[0]['id']}")


async def job_history(c: Ctx):
    await c.hidden("GET", f"/api/v1/jobs/{c.w.other_leased['id']}/history")
    assert await c.ok("GET", f"/api/v1/jobs/{c.w.mine_pending[0]['id']}/history")


async def job_complete(c: Ctx):
    o = c.w.other_leased
    await c.hidden("POST", f"/api/v1/jobs/{o['id']}/complete", {"lease_id": o["lease_id"]})
    await c.hidden("POST", f"/api/v1/jobs/{o['id']}/complete", {"worker_id": "w-x"})
    m = c.w.mine_leased[0]
    await c.ok("POST", f"/api/v1/jobs/{m['id']}/complete", {"lease_id": m["lease_id"]})


async def job_fail(c: Ctx):
    o = c.w.other_leased
    await c.hidden("POST", f"/api/v1/jobs/{o['id']}/fail", {"lease_id": o["lease_id"], "error": "x"})
    m = c.w.mine_leased[1]
    await c.ok("POST", f"/api/v1/jobs/{m['id']}/fail", {"lease_id": m["lease_id"], "error": "x"})


async def job_heartbeat(c: Ctx):
    o = c.w.other_leased
    await c.hidden("POST", f"/api/v1/jobs/{o['id']}/heartbeat", {"lease_id": o["lease_id"]})
    m = c.w.mine_leased[2]
    await c.ok("POST", f"/api/v1/jobs/{m['id']}/heartbeat", {"lease_id": m["lease_id"]})


async def job_retry(c: Ctx):
    await c.hidden("POST", f"/api/v1/jobs/{c.w.other_dead['id']}/retry")
    await c.ok("POST", f"/api/v1/jobs/{c.w.mine_dead[0]['id']}/retry")


async def job_cancel(c: Ctx):
    await c.hidden("DELETE", f"/api/v1/jobs/{c.w.other_pending['id']}")
    await c.ok("DELETE", f"/api/v1/jobs/{c.w.mine_pending[3]['id']}")


async def job_priority(c: Ctx):
    await c.hidden("PUT", f"/api/v1/jobs/{c.w.other_pending['id']}/priority", {"priority": 9})
    await c.ok("PUT", f"/api/v1/jobs/{c.w.mine_pending[0]['id']}/priority", {"priority": 9})


async def job_dependencies(c: Ctx):
    await c.hidden("GET", f"/api/v1/jobs/{c.w.other_pending['id']}/dependencies")
    await c.ok("GET", f"/api/v1/jobs/{c.w.mine_pending[0]['id']}/dependencies")
    # a mixed workflow's job: its dependent in the other queue is not listed
    wf = (await c.api.get(f"/api/v1/workflows/{c.w.wf_mixed}")).json()
    mine = next(j for j in wf["jobs"] if j["queue_name"] == "allowed")
    assert (await c.k.get(f"/api/v1/jobs/{mine['id']}/dependencies")).status_code == 200


async def job_add_dependencies(c: Ctx):
    await c.hidden("POST", f"/api/v1/jobs/{c.w.other_pending['id']}/dependencies",
                   {"depends_on": [c.w.mine_pending[1]["id"]]})
    # a dependency in another queue is refused as another organization's job is
    target = f"/api/v1/jobs/{c.w.mine_pending[1]['id']}/dependencies"
    r = await c.k.post(target, json={"depends_on": [c.w.other_pending["id"]]})
    o = await c.k.post(target, json={"depends_on": [c.w.foreign["id"]]})
    assert r.status_code == 422 and (r.status_code, r.json()) == (o.status_code, o.json()), r.text
    added = await c.ok("POST", target, {"depends_on": [c.w.mine_pending[2]["id"]]})
    assert added["added_count"] == 1


async def job_bulk(c: Ctx):
    await c.refused("POST", "/api/v1/jobs/bulk", {"queue_name": "other", "jobs": [{"payload": {}}]})
    await c.ok("POST", "/api/v1/jobs/bulk", {"queue_name": "spare", "jobs": [{"payload": {}}]})


async def job_claim(c: Ctx):
    await c.refused("POST", "/api/v1/jobs/claim", {"queue_name": "other", "worker_id": "w"})
    assert (await c.ok("POST", "/api/v1/jobs/claim", {"queue_name": "gone", "worker_id": "w"}))["jobs"] == []


async def job_complete_batch(c: Ctx):
    o, m = c.w.other_leased, c.w.mine_leased[3]
    r = await c.ok("POST", "/api/v1/jobs/complete", {"completions": [
        {"job_id": o["id"], "lease_id": o["lease_id"]}, {"job_id": m["id"], "lease_id": m["lease_id"]}]})
    assert r["results"] == [{"job_id": o["id"], "success": False, "error": "NOT_FOUND"},
                            {"job_id": m["id"], "success": True, "error": None}]


async def dlq_retry(c: Ctx):
    await c.refused("POST", "/api/v1/jobs/dlq/retry", {"queue_name": "other"})
    r = await c.ok("POST", "/api/v1/jobs/dlq/retry", {"job_ids": [c.w.other_dead["id"], c.w.mine_dead[1]["id"]]})
    assert r["retried_jobs"] == [c.w.mine_dead[1]["id"]]
    r = await c.ok("POST", "/api/v1/jobs/dlq/retry", {})                # every queue of the key's
    assert r["retried_jobs"] == [c.w.mine_dead[2]["id"]]


async def dlq_purge(c: Ctx):
    await c.refused("POST", "/api/v1/jobs/dlq/purge", {"queue_name": "other", "confirm": True})
    await dead(c.api, "gone")         # the key's DLQ now holds this one job (the others were retried above)
    assert (await c.ok("POST", "/api/v1/jobs/dlq/purge", {"confirm": True}))["purged_count"] == 1
    assert (await c.api.get(f"/api/v1/jobs/{c.w.other_dead['id']}")).json()["status"] == "deadletter"


async def queue_create(c: Ctx):
    await c.refused("POST", "/api/v1/queues", {"name": "other"})
    await c.ok("POST", "/api/v1/queues", {"name": "spare"}, status=409)     # exists: the enqueues made it


async def queue_list(c: Ctx):
    mine, every = await c.both("/api/v1/queues")
    assert [q["name"] for q in mine] == ["allowed", "spare"] and "other" in [q["name"] for q in every]


def queue_named(method: str, suffix: str = "", body: dict | None = None, control: str = "spare",
                status: int | None = None) -> Case:
    async def case(c: Ctx):
        await c.refused(method, f"/api/v1/queues/other{suffix}", body)
        await c.ok(method, f"/api/v1/queues/{control}{suffix}", body, status=status)
    return case


async def dashboard(c: Ctx):
    mine, every = await c.both("/api/v1/dashboard")
    stats = (await c.k.get("/api/v1/jobs/stats")).json()
    assert [q["name"] for q in mine["queues"]] == ["allowed", "spare"]
    assert "other" in [q["name"] for q in every["queues"]]
    assert (mine["jobs"]["total"], mine["jobs"]["processing"], mine["jobs"]["deadletter"]) == \
        (stats["total"], stats["processing"], stats["deadletter"])
    assert mine["jobs"]["total"] < every["jobs"]["total"]
    assert mine["recent_activity"]["jobs_created_1h"] == stats["total"]
    assert mine["workers"]["total"] == len((await c.k.get("/api/v1/workers")).json()) < every["workers"]["total"]


async def usage(c: Ctx):
    """Documented: the organization's usage against its plan is the organization's, whatever the key."""
    mine, every = await c.both("/api/v1/organizations/usage")
    assert mine["usage"] == every["usage"]


async def worker_register(c: Ctx):
    await c.refused("POST", "/api/v1/workers/register", {"queue_name": "other", "hostname": "h"})
    await c.refused("POST", "/api/v1/workers/register", {"queue_names": ["allowed", "other"], "hostname": "h"})
    # the id of a worker the key cannot reach is not taken over
    r = await c.k.post("/api/v1/workers/register", json={"worker_id": "w-mixed", "queue_name": "allowed",
                                                         "hostname": "thief"})
    assert r.status_code == 409 and r.json()["code"] == "CONFLICT", r.text
    await c.ok("POST", "/api/v1/workers/register", {"worker_id": "w-mine", "queue_name": "allowed", "hostname": "h"})


async def worker_list(c: Ctx):
    mine, every = await c.both("/api/v1/workers")
    assert ids(mine) == {"w-mine", "w-mine2", "w-mine3"} and {"w-other", "w-mixed"} <= ids(every)
    mine = (await c.k.get("/api/v1/workers", params={"queue_name": "allowed"})).json()
    assert ids(mine) == {"w-mine", "w-mine2", "w-mine3"}
    await c.refused("GET", "/api/v1/workers?queue_name=other")


def worker_hidden(method: str, suffix: str, body: dict | None, control_id: str) -> Case:
    async def case(c: Ctx):
        for wid in ("w-other", "w-mixed"):
            await c.hidden(method, f"/api/v1/workers/{wid}{suffix}", body)
        await c.ok(method, f"/api/v1/workers/{control_id}{suffix}", body)
    return case


async def schedule_create(c: Ctx):
    await c.refused("POST", "/api/v1/schedules", schedule("x", "other"))
    await c.ok("POST", "/api/v1/schedules", schedule("x", "allowed"))


async def schedule_list(c: Ctx):
    mine, every = await c.both("/api/v1/schedules")
    assert c.w.s_other in ids(every) and c.w.s_other not in ids(mine) and c.w.s_mine in ids(mine)
    assert {s["queue_name"] for s in mine} == {"allowed"}
    await c.refused("GET", "/api/v1/schedules?queue_name=other")


def schedule_hidden(method: str, suffix: str = "", body: dict | None = None, control: str = "s_mine") -> Case:
    async def case(c: Ctx):
        await c.hidden(method, f"/api/v1/schedules/{c.w.s_other}{suffix}", body)
        await c.ok(method, f"/api/v1/schedules/{getattr(c.w, control)}{suffix}", body)
    return case


async def schedule_update(c: Ctx):
    await c.hidden("PUT", f"/api/v1/schedules/{c.w.s_other}", {"name": "renamed"})
    await c.refused("PUT", f"/api/v1/schedules/{c.w.s_mine}", {"queue_name": "other"})
    await c.ok("PUT", f"/api/v1/schedules/{c.w.s_mine}", {"name": "renamed"})


async def workflow_create(c: Ctx):
    await c.refused("POST", "/api/v1/workflows", workflow("x", "allowed", "other"))
    await c.ok("POST", "/api/v1/workflows", workflow("x", "allowed"))


async def workflow_list(c: Ctx):
    mine, every = await c.both("/api/v1/workflows")
    assert {c.w.wf_other, c.w.wf_mixed} <= ids(every)
    assert c.w.wf_mine in ids(mine) and not {c.w.wf_other, c.w.wf_mixed} & ids(mine)


def workflow_hidden(method: str, suffix: str) -> Case:
    async def case(c: Ctx):
        for wid in (c.w.wf_other, c.w.wf_mixed):
            await c.hidden(method, f"/api/v1/workflows/{wid}{suffix}")
        await c.ok(method, f"/api/v1/workflows/{c.w.wf_mine}{suffix}")
    return case


async def stream_refused(c: Ctx, path: str) -> None:
    """A realtime stream of another queue is refused before it starts (403, as a plain HTTP error)."""
    await c.refused("GET", path)


def events(path: str) -> Case:
    async def case(c: Ctx):
        await stream_refused(c, f"{path}?queue=other")
        async with sse(c.k, f"{path}?queue=allowed"):
            pass
    return case


async def events_queue(c: Ctx):
    await stream_refused(c, "/api/v1/events/queues/other")
    async with sse(c.k, "/api/v1/events/queues/allowed"):
        pass


async def events_job(c: Ctx):
    await c.hidden("GET", f"/api/v1/events/jobs/{c.w.other_pending['id']}")
    async with sse(c.k, f"/api/v1/events/jobs/{c.w.mine_pending[0]['id']}"):
        pass


def websocket(path: str) -> Case:
    async def case(c: Ctx):
        url = str(c.k.base_url).rstrip("/")
        with pytest.raises(ConnectionRejected) as refused:
            async with ws(url, f"{path}?token={c.key}&queue=other"):
                pass
        assert refused.value.status_code == 403
        async with ws(url, f"{path}?token={c.key}&queue=allowed"):
            pass
    return case


def whole_org_only(method: str, path: str, body: dict | None = None) -> Case:
    """Webhooks see every queue's events: a queue-restricted key may not manage them (403); an unrestricted key
    reaches the route (whatever it then answers)."""
    async def case(c: Ctx):
        await c.refused(method, path, body)
        r = await c.api.request(method, path, json=body)
        assert r.status_code != 403, (method, path, r.text)
    return case


NO_WEBHOOK = "00000000-0000-0000-0000-000000000000"
HOOK = {"name": "h", "url": "https://example.com/hook", "events": ["job.completed"]}


def webhook_routes() -> dict[tuple[str, str], Case]:
    out: dict[tuple[str, str], Case] = {}
    for base in ("/api/v1/webhooks", "/api/v1/outgoing-webhooks"):
        one = f"{base}/{NO_WEBHOOK}"
        out[("GET", base)] = whole_org_only("GET", base)
        out[("POST", base)] = whole_org_only("POST", base, HOOK)
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            out[(method, f"{base}/<webhook_id>")] = whole_org_only(method, one, {"name": "x"})
        out[("GET", f"{base}/<webhook_id>/deliveries")] = whole_org_only("GET", f"{one}/deliveries")
        out[("POST", f"{base}/<webhook_id>/test")] = whole_org_only("POST", f"{one}/test")
        out[("POST", f"{base}/<webhook_id>/retry/<delivery_id>")] = whole_org_only("POST", f"{one}/retry/{NO_WEBHOOK}")
    out[("GET", "/api/v1/webhooks/deliveries")] = whole_org_only("GET", "/api/v1/webhooks/deliveries")
    for path in ("/api/v1/organizations/webhook-token", "/api/v1/organizations/<org_id>/webhook-token"):
        out[("GET", path)] = whole_org_only("GET", path)
        out[("POST", f"{path}/regenerate")] = whole_org_only("POST", f"{path}/regenerate")
    return out


# Order matters only for the controls that use up the key's own data (the DLQ purge comes last).
REST: dict[tuple[str, str], Case] = {
    ("POST", "/api/v1/jobs"): job_create,
    ("GET", "/api/v1/jobs"): job_list,
    ("GET", "/api/v1/jobs/dlq"): job_dlq,
    ("GET", "/api/v1/jobs/stats"): job_stats,
    ("GET", "/api/v1/jobs/status"): job_statuses,
    ("GET", "/api/v1/jobs/<job_id>"): job_get,
    ("GET", "/api/v1/jobs/<job_id>/history"): job_history,
    ("POST", "/api/v1/jobs/<job_id>/complete"): job_complete,
    ("POST", "/api/v1/jobs/<job_id>/fail"): job_fail,
    ("POST", "/api/v1/jobs/<job_id>/heartbeat"): job_heartbeat,
    ("POST", "/api/v1/jobs/<job_id>/retry"): job_retry,
    ("DELETE", "/api/v1/jobs/<job_id>"): job_cancel,
    ("PUT", "/api/v1/jobs/<job_id>/priority"): job_priority,
    ("GET", "/api/v1/jobs/<job_id>/dependencies"): job_dependencies,
    ("POST", "/api/v1/jobs/<job_id>/dependencies"): job_add_dependencies,
    ("POST", "/api/v1/jobs/bulk"): job_bulk,
    ("POST", "/api/v1/jobs/claim"): job_claim,
    ("POST", "/api/v1/jobs/complete"): job_complete_batch,
    ("POST", "/api/v1/jobs/dlq/retry"): dlq_retry,
    ("POST", "/api/v1/queues"): queue_create,
    ("GET", "/api/v1/queues"): queue_list,
    ("GET", "/api/v1/queues/<name>"): queue_named("GET"),
    ("PATCH", "/api/v1/queues/<name>"): queue_named("PATCH", body={"max_retries": 1}),
    ("PUT", "/api/v1/queues/<name>/config"): queue_named("PUT", "/config", {"max_retries": 1}),
    ("DELETE", "/api/v1/queues/<name>"): queue_named("DELETE", "?delete_jobs=true", control="gone", status=404),
    ("POST", "/api/v1/queues/<name>/pause"): queue_named("POST", "/pause", {}),
    ("POST", "/api/v1/queues/<name>/resume"): queue_named("POST", "/resume"),
    ("GET", "/api/v1/queues/<name>/stats"): queue_named("GET", "/stats"),
    ("GET", "/api/v1/queues/<name>/throughput"): queue_named("GET", "/throughput"),
    ("GET", "/api/v1/dashboard"): dashboard,
    ("GET", "/api/v1/organizations/usage"): usage,
    ("POST", "/api/v1/workers/register"): worker_register,
    ("GET", "/api/v1/workers"): worker_list,
    ("GET", "/api/v1/workers/<worker_id>"): worker_hidden("GET", "", None, "w-mine"),
    ("POST", "/api/v1/workers/<worker_id>/heartbeat"): worker_hidden("POST", "/heartbeat",
                                                                     {"current_jobs": 1, "status": "draining"},
                                                                     "w-mine"),
    ("POST", "/api/v1/workers/<worker_id>/deregister"): worker_hidden("POST", "/deregister", None, "w-mine2"),
    ("DELETE", "/api/v1/workers/<worker_id>"): worker_hidden("DELETE", "", None, "w-mine3"),
    ("POST", "/api/v1/schedules"): schedule_create,
    ("GET", "/api/v1/schedules"): schedule_list,
    ("GET", "/api/v1/schedules/<schedule_id>"): schedule_hidden("GET"),
    ("PUT", "/api/v1/schedules/<schedule_id>"): schedule_update,
    ("GET", "/api/v1/schedules/<schedule_id>/history"): schedule_hidden("GET", "/history"),
    ("POST", "/api/v1/schedules/<schedule_id>/pause"): schedule_hidden("POST", "/pause"),
    ("POST", "/api/v1/schedules/<schedule_id>/resume"): schedule_hidden("POST", "/resume"),
    ("POST", "/api/v1/schedules/<schedule_id>/trigger"): schedule_hidden("POST", "/trigger"),
    ("DELETE", "/api/v1/schedules/<schedule_id>"): schedule_hidden("DELETE", control="s_mine2"),
    ("POST", "/api/v1/workflows"): workflow_create,
    ("GET", "/api/v1/workflows"): workflow_list,
    ("GET", "/api/v1/workflows/<workflow_id>"): workflow_hidden("GET", ""),
    ("POST", "/api/v1/workflows/<workflow_id>/cancel"): workflow_hidden("POST", "/cancel"),
    ("POST", "/api/v1/workflows/<workflow_id>/retry"): workflow_hidden("POST", "/retry"),   # after the cancel
    ("GET", "/api/v1/events"): events("/api/v1/events"),
    ("GET", "/api/v1/events/sse"): events("/api/v1/events/sse"),
    ("GET", "/api/v1/events/queues/<name>"): events_queue,
    ("GET", "/api/v1/events/jobs/<job_id>"): events_job,
    ("GET", "/api/v1/events/ws"): websocket("/api/v1/events/ws"),
    ("GET", "/api/v1/ws"): websocket("/api/v1/ws"),
    **webhook_routes(),
    ("POST", "/api/v1/jobs/dlq/purge"): dlq_purge,
}

# Routes that are not about queues: the key's queue restriction does not apply to them (what they do is the same
# for every key of the organization, or needs no key at all).
NOT_QUEUE_SCOPED = {
    # the operator's admin API (X-Admin-Key, no API key)
    *(("GET", r) for r in ("/api/v1/admin/organizations", "/api/v1/admin/organizations/<org_id>",
                           "/api/v1/admin/plans", "/api/v1/admin/stats")),
    ("POST", "/api/v1/admin/organizations"), ("PATCH", "/api/v1/admin/organizations/<org_id>"),
    ("PUT", "/api/v1/admin/organizations/<org_id>"), ("DELETE", "/api/v1/admin/organizations/<org_id>"),
    ("POST", "/api/v1/admin/organizations/<org_id>/api-keys"),
    ("POST", "/api/v1/admin/organizations/<org_id>/reset-usage"),
    # the organization's API keys (a key's own rules are what they manage)
    ("GET", "/api/v1/api-keys"), ("POST", "/api/v1/api-keys"), ("GET", "/api/v1/api-keys/<key_id>"),
    ("PUT", "/api/v1/api-keys/<key_id>"), ("DELETE", "/api/v1/api-keys/<key_id>"),
    # authentication: tokens carry the key's queues (tests/test_auth.py), email login, identity
    ("GET", "/api/v1/auth/check-email"), ("POST", "/api/v1/auth/email/start"), ("POST", "/api/v1/auth/email/verify"),
    ("POST", "/api/v1/auth/login"), ("POST", "/api/v1/auth/logout"), ("GET", "/api/v1/auth/me"),
    ("POST", "/api/v1/auth/refresh"), ("POST", "/api/v1/auth/validate"),
    # billing: the organization's plan and Stripe's webhook
    ("POST", "/api/v1/billing/portal"), ("GET", "/api/v1/billing/status"), ("POST", "/api/v1/billing/webhook"),
    # the organization itself (its usage is a case above: org-wide, documented)
    ("POST", "/api/v1/organizations"), ("GET", "/api/v1/organizations"), ("GET", "/api/v1/organizations/<org_id>"),
    ("PATCH", "/api/v1/organizations/<org_id>"), ("PUT", "/api/v1/organizations/<org_id>"),
    ("DELETE", "/api/v1/organizations/<org_id>"), ("GET", "/api/v1/organizations/<org_id>/members"),
    ("GET", "/api/v1/organizations/check-slug"), ("POST", "/api/v1/organizations/generate-slug"),
    # no API key: health, the dashboard's static files, the operator's Prometheus metrics (SPOOLED_METRICS_TOKEN),
    # the incoming webhook receivers (a signature or the organization's webhook token; tests/test_inbound.py)
    ("GET", "/health"), ("GET", "/health/live"), ("GET", "/health/ready"), ("GET", "/dashboard"),
    ("GET", "/dashboard/<path:name>"), ("GET", "/metrics"),
    # the API reference: the OpenAPI document and its viewer's files (the same for every caller)
    ("GET", "/api/v1/openapi.json"), ("GET", "/docs"), ("GET", "/docs/<path:name>"),
    ("POST", "/api/v1/webhooks/<org_id>/github"), ("POST", "/api/v1/webhooks/<org_id>/stripe"),
    ("POST", "/api/v1/webhooks/<org_id>/custom"),
}

# -- gRPC: one case per method -------------------------------------------------------------------------------------
GRPC_CASES = {"Enqueue", "EnqueueBulk", "Dequeue", "StreamJobs", "GetQueueStats", "Register", "GetJob", "Complete",
              "CompleteBatch", "Fail", "RenewLease", "ProcessJobs", "Heartbeat", "Deregister"}


def routes() -> set[tuple[str, str]]:
    app = create_app(types.SimpleNamespace(settings=Settings(data_dir="/nonexistent")))
    return {(m, r.rule) for r in app.url_map.iter_rules() for m in r.methods - {"HEAD", "OPTIONS"}}


def test_every_route_and_rpc_has_a_case():
    all_routes = routes()
    assert len(all_routes) > 80
    assert not set(REST) & NOT_QUEUE_SCOPED
    assert all_routes - set(REST) - NOT_QUEUE_SCOPED == set(), "a route without a queue-restriction case"
    assert (set(REST) | NOT_QUEUE_SCOPED) - all_routes == set(), "a case for a route that is gone"
    rpcs = set(QueueServiceBase.__abstractmethods__) | set(WorkerServiceBase.__abstractmethods__)
    assert rpcs == GRPC_CASES, "an RPC without a queue-restriction case (or a case for one that is gone)"


async def restricted_key(api) -> str:
    r = await api.post("/api/v1/api-keys", json={"name": "restricted", "queues": MINE})
    assert r.status_code == 201, r.text
    return r.json()["key"]


async def test_every_route_keeps_other_queues_out_of_reach(server, api, other_api):
    w = await build(api, other_api)
    before = await snapshot(api, w)
    async with httpx.AsyncClient(base_url=str(api.base_url), headers=bearer(await restricted_key(api)),
                                 timeout=30) as k:
        ctx = Ctx(k, api, other_api, w)
        for (method, rule), case in REST.items():
            try:
                await case(ctx)
            except AssertionError as exc:
                raise AssertionError(f"{method} {rule}: {exc}") from exc
    assert await snapshot(api, w) == before                   # nothing of the other queue changed
    # the controls did their work in the key's own queue
    assert (await api.get(f"/api/v1/jobs/{w.mine_leased[0]['id']}")).json()["status"] == "completed"
    assert (await api.get(f"/api/v1/jobs/{w.mine_pending[3]['id']}")).json()["status"] == "cancelled"


async def test_every_rpc_keeps_other_queues_out_of_reach(server, api, other_api):
    o = await claimed(api, "other")
    mine = [await claimed(api, "allowed") for _ in range(4)]
    for wid, queues in (("w-other", ["other"]), ("w-mixed", ["allowed", "other"]), ("w-mine", ["allowed"])):
        await created(api, "/api/v1/workers/register", {"worker_id": wid, "queue_names": queues, "hostname": "h"})
    before = [(await api.get(p)).json() for p in (f"/api/v1/jobs/{o['id']}", "/api/v1/workers/w-other",
                                                   "/api/v1/workers/w-mixed")]
    key, foreign = await restricted_key(api), key_of(other_api)

    def calls(channel):
        queue, workers = spooled_pb2_grpc.QueueServiceStub(channel), spooled_pb2_grpc.WorkerServiceStub(channel)

        def run(md):
            """Each RPC on the other queue's job and workers: (code, details)."""
            def outcome(fn):
                try:
                    fn()
                    return "OK", ""
                except Exception as exc:        # grpc.RpcError
                    return exc.code().name, exc.details()
            jid, lease = o["id"], o["lease_id"]
            out = {
                "GetJob": outcome(lambda: queue.GetJob(pb.GetJobRequest(job_id=jid), metadata=md, timeout=20)),
                "Complete": outcome(lambda: queue.Complete(pb.CompleteRequest(job_id=jid, lease_id=lease),
                                                           metadata=md, timeout=20)),
                "Fail": outcome(lambda: queue.Fail(pb.FailRequest(job_id=jid, lease_id=lease, error="x"),
                                                   metadata=md, timeout=20)),
                "RenewLease": outcome(lambda: queue.RenewLease(pb.RenewLeaseRequest(
                    job_id=jid, lease_id=lease, extension_secs=60), metadata=md, timeout=20)),
            }
            for wid in ("w-other", "w-mixed"):
                out[f"Heartbeat {wid}"] = outcome(lambda: workers.Heartbeat(pb.HeartbeatRequest(
                    worker_id=wid, current_jobs=3, status="draining"), metadata=md, timeout=20))
                out[f"Deregister {wid}"] = outcome(lambda: workers.Deregister(pb.DeregisterRequest(worker_id=wid),
                                                                              metadata=md, timeout=20))
            batch = queue.CompleteBatch(pb.CompleteBatchRequest(completions=[
                pb.CompleteRequest(job_id=jid, lease_id=lease)]), metadata=md, timeout=20)
            out["CompleteBatch"] = list(batch.success)
            responses = queue.ProcessJobs(iter([
                pb.ProcessRequest(complete=pb.CompleteRequest(job_id=jid, lease_id=lease)),
                pb.ProcessRequest(fail=pb.FailRequest(job_id=jid, lease_id=lease, error="x")),
                pb.ProcessRequest(renew_lease=pb.RenewLeaseRequest(job_id=jid, lease_id=lease, extension_secs=60)),
            ]), metadata=md, timeout=20)
            out["ProcessJobs"] = [(r.error.code, r.error.message) for r in responses]
            return out

        restricted, other_org = run((("x-api-key", key),)), run((("x-api-key", foreign),))
        md = (("x-api-key", key),)
        # naming the other queue: refused
        named = {
            "Enqueue": rpc_code(lambda: queue.Enqueue(pb.EnqueueRequest(queue_name="other"), metadata=md, timeout=20)),
            "EnqueueBulk": rpc_code(lambda: queue.EnqueueBulk(pb.EnqueueBulkRequest(
                queue_name="other", jobs=[pb.EnqueueRequest()]), metadata=md, timeout=20)),
            "Dequeue": rpc_code(lambda: queue.Dequeue(pb.DequeueRequest(queue_name="other", worker_id="w"),
                                                      metadata=md, timeout=20)),
            "StreamJobs": rpc_code(lambda: queue.StreamJobs(pb.StreamJobsRequest(queue_name="other", worker_id="w"),
                                                            metadata=md, timeout=20)),
            "GetQueueStats": rpc_code(lambda: queue.GetQueueStats(pb.GetQueueStatsRequest(queue_name="other"),
                                                                  metadata=md, timeout=20)),
            "Register": rpc_code(lambda: workers.Register(pb.RegisterWorkerRequest(queue_name="other", hostname="h"),
                                                          metadata=md, timeout=20)),
            "Register w-mixed": rpc_code(lambda: workers.Register(pb.RegisterWorkerRequest(
                queue_name="allowed", hostname="h", worker_id="w-mixed"), metadata=md, timeout=20)),
        }
        dq = queue.ProcessJobs(iter([pb.ProcessRequest(dequeue=pb.DequeueRequest(queue_name="other", worker_id="w",
                                                                                  batch_size=1))]),
                               metadata=md, timeout=20)
        named["ProcessJobs dequeue"] = next(dq).error.code
        # the controls: the same RPCs on the key's own queue
        m0, m1, m2, m3 = mine
        controls = {
            "GetJob": rpc_code(lambda: queue.GetJob(pb.GetJobRequest(job_id=m0["id"]), metadata=md, timeout=20)),
            "GetQueueStats": rpc_code(lambda: queue.GetQueueStats(pb.GetQueueStatsRequest(queue_name="allowed"),
                                                                  metadata=md, timeout=20)),
            "RenewLease": rpc_code(lambda: queue.RenewLease(pb.RenewLeaseRequest(
                job_id=m0["id"], lease_id=m0["lease_id"], extension_secs=60), metadata=md, timeout=20)),
            "Complete": rpc_code(lambda: queue.Complete(pb.CompleteRequest(job_id=m0["id"], lease_id=m0["lease_id"]),
                                                        metadata=md, timeout=20)),
            "Fail": rpc_code(lambda: queue.Fail(pb.FailRequest(job_id=m1["id"], lease_id=m1["lease_id"], error="x"),
                                                metadata=md, timeout=20)),
            "Heartbeat": rpc_code(lambda: workers.Heartbeat(pb.HeartbeatRequest(worker_id="w-mine", current_jobs=1),
                                                            metadata=md, timeout=20)),
            "Deregister": rpc_code(lambda: workers.Deregister(pb.DeregisterRequest(worker_id="w-mine"), metadata=md,
                                                              timeout=20)),
        }
        batch = queue.CompleteBatch(pb.CompleteBatchRequest(completions=[
            pb.CompleteRequest(job_id=m2["id"], lease_id=m2["lease_id"])]), metadata=md, timeout=20)
        controls["CompleteBatch"] = list(batch.success)
        responses = queue.ProcessJobs(iter([pb.ProcessRequest(complete=pb.CompleteRequest(
            job_id=m3["id"], lease_id=m3["lease_id"]))]), metadata=md, timeout=20)
        controls["ProcessJobs"] = [r.WhichOneof("response") for r in responses]
        return restricted, other_org, named, controls

    restricted, other_org, named, controls = await with_grpcio(server.grpc_address, calls)
    assert restricted == other_org                              # exactly as another organization's
    not_found = ("NOT_FOUND", "Job not found")
    assert restricted["GetJob"] == restricted["Complete"] == restricted["Fail"] == restricted["RenewLease"] == not_found
    assert {restricted[f"{rpc} {w}"][0] for rpc in ("Heartbeat", "Deregister") for w in ("w-other", "w-mixed")} == \
        {"NOT_FOUND"}
    assert restricted["CompleteBatch"] == [False] and [c for c, _ in restricted["ProcessJobs"]] == ["NOT_FOUND"] * 3
    assert named == {"Enqueue": "PERMISSION_DENIED", "EnqueueBulk": "PERMISSION_DENIED",
                     "Dequeue": "PERMISSION_DENIED", "StreamJobs": "PERMISSION_DENIED",
                     "GetQueueStats": "PERMISSION_DENIED", "Register": "PERMISSION_DENIED",
                     "Register w-mixed": "FAILED_PRECONDITION", "ProcessJobs dequeue": "PERMISSION_DENIED"}
    assert controls == {"GetJob": "OK", "GetQueueStats": "OK", "RenewLease": "OK", "Complete": "OK", "Fail": "OK",
                        "Heartbeat": "OK", "Deregister": "OK", "CompleteBatch": [True], "ProcessJobs": ["complete"]}
    after = [(await api.get(p)).json() for p in (f"/api/v1/jobs/{o['id']}", "/api/v1/workers/w-other",
                                                  "/api/v1/workers/w-mixed")]
    assert after == before
