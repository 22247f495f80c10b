"""Workers over REST (api.md "Workers") and the heartbeat expirer, against the real server and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
import trio

from spooled.domain.inputs import WorkerHeartbeat
from spooled.domain.scope import Scope
from tests.helpers import claim, enqueue, job

LIST_FIELDS = {"id", "queue_name", "hostname", "status", "current_jobs", "max_concurrency", "last_heartbeat",
               "jobs_processed", "jobs_failed"}


async def register(api, **body) -> dict:
    body.setdefault("queue_name", "q")
    body.setdefault("hostname", "host-1")
    r = await api.post("/api/v1/workers/register", json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def test_register_honours_client_id_and_reregister_updates(api):
    with trio.fail_after(30):
        r = await api.post("/api/v1/workers/register", json={
            "queue_name": "emails", "hostname": "h1", "worker_id": "w-1.a_B", "max_concurrency": 3,
            "worker_type": "python", "version": "1.0", "metadata": {"zone": "eu", "n": 1}})
        assert r.status_code == 201, r.text
        assert r.json() == {"id": "w-1.a_B", "queue_name": "emails", "lease_duration_secs": 30,
                            "heartbeat_interval_secs": 10}
        w = (await api.get("/api/v1/workers/w-1.a_B")).json()
        assert (w["hostname"], w["status"], w["max_concurrency"], w["queue_name"]) == ("h1", "healthy", 3, "emails")
        assert w["metadata"] == {"zone": "eu", "n": 1}

        r = await api.post("/api/v1/workers/register", json={
            "queue_names": ["a", "b"], "hostname": "h2", "worker_id": "w-1.a_B"})
        assert r.status_code == 200, r.text
        assert r.json()["id"] == "w-1.a_B" and r.json()["queue_name"] == "a"
        listed = (await api.get("/api/v1/workers")).json()
        assert [x["id"] for x in listed] == ["w-1.a_B"]
        assert (listed[0]["hostname"], listed[0]["queue_names"], listed[0]["max_concurrency"]) == ("h2", ["a", "b"], 5)


async def test_register_generates_an_id_when_none_is_given(api):
    with trio.fail_after(30):
        a = await register(api)
        b = await register(api)
        assert a["id"] and b["id"] and a["id"] != b["id"]
        assert a["heartbeat_interval_secs"] > 0
        assert (await api.get(f"/api/v1/workers/{a['id']}")).json()["id"] == a["id"]


async def test_list_and_get(api):
    with trio.fail_after(30):
        await register(api, worker_id="one", queue_name="q1")
        await register(api, worker_id="two", queue_name="q2", hostname="box")
        listed = (await api.get("/api/v1/workers")).json()
        assert [w["id"] for w in listed] == ["one", "two"]
        for w in listed:
            assert LIST_FIELDS <= w.keys()
            assert w["status"] == "healthy" and w["current_jobs"] == 0 and w["jobs_processed"] == 0
        assert [w["id"] for w in (await api.get("/api/v1/workers?queue_name=q2")).json()] == ["two"]
        two = (await api.get("/api/v1/workers/two")).json()
        assert two["hostname"] == "box" and two["queue_name"] == "q2"
        assert (await api.get("/api/v1/workers/nope")).status_code == 404


async def test_completed_and_failed_jobs_are_counted(api):
    with trio.fail_after(30):
        await register(api, worker_id="counter")
        await enqueue(api, "q")
        await enqueue(api, "q")
        a, b = await claim(api, "q", limit=2, worker="counter")
        assert (await api.post(f"/api/v1/jobs/{a['id']}/complete",
                               json={"lease_id": a["lease_id"]})).status_code == 200
        assert (await api.post(f"/api/v1/jobs/{b['id']}/fail",
                               json={"lease_id": b["lease_id"], "error": "boom"})).status_code == 200
        w = (await api.get("/api/v1/workers/counter")).json()
        assert (w["jobs_processed"], w["jobs_failed"]) == (1, 1)


async def test_heartbeat_and_should_drain(api):
    with trio.fail_after(30):
        await register(api, worker_id="hb")
        before = (await api.get("/api/v1/workers/hb")).json()["last_heartbeat"]
        await trio.sleep(0.01)
        r = await api.post("/api/v1/workers/hb/heartbeat", json={"current_jobs": 2, "metadata": {"load": 0.5}})
        assert r.status_code == 200 and r.json() == {"acknowledged": True, "should_drain": False}
        w = (await api.get("/api/v1/workers/hb")).json()
        assert w["current_jobs"] == 2 and w["last_heartbeat"] > before and w["metadata"] == {"load": 0.5}

        r = await api.post("/api/v1/workers/hb/heartbeat", json={"current_jobs": 1, "status": "degraded"})
        assert r.json()["should_drain"] is False
        assert (await api.get("/api/v1/workers/hb")).json()["status"] == "degraded"
        r = await api.post("/api/v1/workers/hb/heartbeat", json={"current_jobs": 1, "status": "draining"})
        assert r.json() == {"acknowledged": True, "should_drain": True}
        # draining sticks until the worker re-registers
        r = await api.post("/api/v1/workers/hb/heartbeat", json={"current_jobs": 0, "status": "healthy"})
        assert r.json()["should_drain"] is True
        await register(api, worker_id="hb")
        r = await api.post("/api/v1/workers/hb/heartbeat", json={"current_jobs": 0})
        assert r.json()["should_drain"] is False


@pytest.mark.parametrize("how", ["delete", "post"])
async def test_deregister_releases_processing_jobs_at_once(api, how):
    with trio.fail_after(30):
        await register(api, worker_id="gone")
        kept = await enqueue(api, "q", {"k": 1})
        last_try = await enqueue(api, "q", {"k": 2}, max_retries=0)
        other = await enqueue(api, "q", {"k": 3})
        claimed = await claim(api, "q", limit=2, worker="gone")
        assert {j["id"] for j in claimed} == {kept["id"], last_try["id"]}
        assert [j["id"] for j in await claim(api, "q", worker="someone-else")] == [other["id"]]

        if how == "delete":
            r = await api.delete("/api/v1/workers/gone")
            assert r.status_code == 204
        else:
            r = await api.post("/api/v1/workers/gone/deregister", headers={"Content-Type": "application/json"})
            assert r.status_code == 200 and r.json()["success"] is True and r.json()["released_jobs"] == 2

        back = await job(api, kept["id"])
        assert (back["status"], back["retry_count"], back["last_error"]) == ("pending", 1, "worker lost")
        assert back["lease_expires_at"] is None
        dead = await job(api, last_try["id"])
        assert (dead["status"], dead["last_error"]) == ("deadletter", "worker lost")
        assert (await job(api, other["id"]))["status"] == "processing"   # another worker's job is untouched
        assert (await api.get("/api/v1/workers/gone")).json()["status"] == "offline"
        # released at once: claimable again right away, by anyone
        assert [j["id"] for j in await claim(api, "q", worker="next")] == [kept["id"]]
        assert (await api.delete("/api/v1/workers/never-registered")).status_code == 404


async def test_expirer_with_an_explicit_clock(api, server):
    with trio.fail_after(30):
        workers = server.services.workers
        await register(api, worker_id="old")
        await register(api, worker_id="fresh")
        t0 = now()
        j = await enqueue(api, "q")
        assert [c["id"] for c in await claim(api, "q", worker="old")] == [j["id"]]
        fj = await enqueue(api, "q")
        assert [c["id"] for c in await claim(api, "q", worker="fresh")] == [fj["id"]]
        await workers.heartbeat(Scope(api.org_id), "fresh", WorkerHeartbeat(current_jobs=1), now=t0 + dt.timedelta(seconds=25))

        # less than 3 intervals (3 x 10 s) of silence: nobody expires
        assert (await workers.expire(now=t0 + dt.timedelta(seconds=29))).workers == 0
        result = await workers.expire(now=t0 + dt.timedelta(seconds=31))
        assert (result.workers, result.released) == (1, 1)
        assert (await api.get("/api/v1/workers/old")).json()["status"] == "offline"
        assert (await api.get("/api/v1/workers/fresh")).json()["status"] == "healthy"
        released = await job(api, j["id"])
        assert (released["status"], released["retry_count"], released["last_error"]) == ("pending", 1, "worker lost")
        assert (await job(api, fj["id"]))["status"] == "processing"
        # idempotent: an offline worker is not expired twice
        assert (await workers.expire(now=t0 + dt.timedelta(seconds=31))).workers == 0
        # a heartbeat revives it
        r = await api.post("/api/v1/workers/old/heartbeat", json={"current_jobs": 0})
        assert r.json()["acknowledged"] is True
        assert (await api.get("/api/v1/workers/old")).json()["status"] == "healthy"


async def test_expire_batches_are_bounded(api, server):
    with trio.fail_after(30):
        for i in range(3):
            await register(api, worker_id=f"w{i}")
        later = now() + dt.timedelta(minutes=5)
        assert (await server.services.workers.expire(now=later, limit=2)).workers == 2
        assert (await server.services.workers.expire(now=later, limit=2)).workers == 1
        statuses = {w["status"] for w in (await api.get("/api/v1/workers")).json()}
        assert statuses == {"offline"}


async def test_another_orgs_worker_is_not_found(api, other_api):
    with trio.fail_after(30):
        await register(api, worker_id="mine")
        assert (await other_api.get("/api/v1/workers/mine")).status_code == 404
        assert (await other_api.post("/api/v1/workers/mine/heartbeat", json={"current_jobs": 0})).status_code == 404
        assert (await other_api.delete("/api/v1/workers/mine")).status_code == 404
        assert (await other_api.post("/api/v1/workers/mine/deregister")).status_code == 404
        assert (await other_api.get("/api/v1/workers")).json() == []
        # the same client-chosen id in another organization is another worker
        await register(other_api, worker_id="mine", hostname="theirs")
        assert (await api.get("/api/v1/workers/mine")).json()["hostname"] == "host-1"
        assert (await api.get("/api/v1/workers/mine")).json()["status"] == "healthy"


@pytest.mark.parametrize("body, field", [
    ({"queue_name": "q"}, "hostname"),
    ({"hostname": "h"}, "queue_name"),
    ({"hostname": "h", "queue_name": "q", "worker_id": "bad id!"}, "worker_id"),
    ({"hostname": "h", "queue_name": "q", "worker_id": "x" * 129}, "worker_id"),
    ({"hostname": "h", "queue_name": "q", "max_concurrency": 0}, "max_concurrency"),
    ({"hostname": "h", "queue_name": "bad queue"}, "queue_name"),
    ({"hostname": "h", "queue_names": []}, "queue_names"),
    ({"hostname": "h", "queue_name": "q", "metadata": [1]}, "metadata"),
])
async def test_register_rejects_bad_input(api, body, field):
    with trio.fail_after(30):
        r = await api.post("/api/v1/workers/register", json=body)
        assert r.status_code == 422, r.text
        assert field in r.json()["details"]["fields"]


@pytest.mark.parametrize("body, field", [
    ({"current_jobs": "x"}, "current_jobs"),
    ({"current_jobs": -1}, "current_jobs"),
    ({"current_jobs": 0, "status": "bogus"}, "status"),
    ({"current_jobs": 0, "metadata": "x"}, "metadata"),
])
async def test_heartbeat_rejects_bad_input(api, body, field):
    with trio.fail_after(30):
        await register(api, worker_id="w")
        r = await api.post("/api/v1/workers/w/heartbeat", json=body)
        assert r.status_code == 422, r.text
        assert field in r.json()["details"]["fields"]
