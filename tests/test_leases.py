"""Lease fields and lease fencing (api.md "Lease fencing", grpc.md): a released or finished job shows no lease
and no assigned worker; `lease_id` is optional, a missing one fenced by `worker_id`; a stale worker can never
finish a re-leased job either way."""

from __future__ import annotations

import grpc
import pytest
import trio
from trio_asyncio import aio_as_trio

from spooled.domain import errors
from spooled.domain.scope import Scope
from spooled.transports.grpc.gen.spooled_grpc import QueueServiceStub
from tests.grpcio_gen import spooled_pb2 as pb
from tests.grpcio_gen import spooled_pb2_grpc
from tests.helpers import claim, enqueue, job, utc
from tests.test_grpc import open_aio_channel

RELEASED = {"lease_id": None, "lease_expires_at": None, "assigned_worker_id": None}


def lease_fields(j: dict) -> dict:
    return {k: j[k] for k in RELEASED}


async def history_workers(api, job_id: str) -> list[tuple[str, str | None]]:
    return [(h["event_type"], h["worker_id"]) for h in (await api.get(f"/api/v1/jobs/{job_id}/history")).json()]


async def leased(api, queue="lf", worker="w1", **fields) -> dict:
    await enqueue(api, queue, **fields)
    (c,) = await claim(api, queue, worker=worker)
    assert c["lease_id"] and c["assigned_worker_id"] == worker
    return c


async def test_every_way_out_of_processing_clears_the_lease(api, server):
    svc = server.services
    with trio.fail_after(60):
        # complete
        c = await leased(api)
        assert (await api.post(f"/api/v1/jobs/{c['id']}/complete", json={"lease_id": c["lease_id"]})).status_code == 200
        j = await job(api, c["id"])
        assert j["status"] == "completed" and lease_fields(j) == RELEASED
        assert ("completed", "w1") in await history_workers(api, c["id"])       # the worker stays in history
        # fail with retries left, and fail for good
        c = await leased(api, max_retries=1)
        r = await api.post(f"/api/v1/jobs/{c['id']}/fail", json={"lease_id": c["lease_id"], "error": "x"})
        assert r.json()["will_retry"] is True
        j = await job(api, c["id"])
        assert j["status"] == "scheduled" and lease_fields(j) == RELEASED
        assert ("failed", "w1") in await history_workers(api, c["id"])
        c = await leased(api, "lf-dead", max_retries=0)
        await api.post(f"/api/v1/jobs/{c['id']}/fail", json={"lease_id": c["lease_id"], "error": "x"})
        dead = await job(api, c["id"])
        assert dead["status"] == "deadletter" and lease_fields(dead) == RELEASED
        # DLQ retry and manual retry: pending, no lease
        r = await api.post("/api/v1/jobs/dlq/retry", json={"job_ids": [dead["id"]]})
        assert r.json()["retried_count"] == 1
        assert lease_fields(await job(api, dead["id"])) == RELEASED
        # lease expiry (the reaper)
        c = await leased(api, "lf-exp")
        await svc.jobs.heartbeat(Scope(api.org_id), c["id"], c["lease_id"], 5)
        assert (await svc.maintenance.run_once(now=utc(seconds=6))).released == 1
        j = await job(api, c["id"])
        assert j["status"] == "pending" and j["last_error"] == "lease expired" and lease_fields(j) == RELEASED
        assert ("lease_expired", "w1") in await history_workers(api, c["id"])
        # worker lost: deregister, and the heartbeat expirer
        await api.post("/api/v1/workers/register", json={"queue_name": "lf-w", "hostname": "h", "worker_id": "wd"})
        c = await leased(api, "lf-w", worker="wd")
        assert (await api.post("/api/v1/workers/wd/deregister")).json()["released_jobs"] == 1
        j = await job(api, c["id"])
        assert j["status"] == "pending" and j["last_error"] == "worker lost" and lease_fields(j) == RELEASED
        await api.post("/api/v1/workers/register", json={"queue_name": "lf-w", "hostname": "h", "worker_id": "we"})
        c = await leased(api, "lf-w", worker="we")
        assert (await svc.workers.expire(now=utc(seconds=3600))).released == 1
        assert lease_fields(await job(api, c["id"])) == RELEASED
        # cancel while processing
        c = await leased(api, "lf-cancel")
        assert (await api.delete(f"/api/v1/jobs/{c['id']}")).status_code == 204
        j = await job(api, c["id"])
        assert j["status"] == "cancelled" and lease_fields(j) == RELEASED
        r = await api.post(f"/api/v1/jobs/{c['id']}/retry")                       # manual retry
        assert r.status_code == 200 and r.json()["status"] == "pending" and lease_fields(r.json()) == RELEASED
        # release of a leased job that could not be sent
        c = await leased(api, "lf-rel")
        assert await svc.jobs.release_unsent(Scope(api.org_id), [(c["id"], c["lease_id"])]) == 1
        assert lease_fields(await job(api, c["id"])) == RELEASED
        # the database refuses any leftover
        with pytest.raises(errors.Conflict) as refused:
            await svc.db.run(lambda con: con.execute(
                "UPDATE jobs SET lease_id = gen_random_uuid() WHERE status = 'pending'"))
        assert refused.value.__cause__.constraint_name == "jobs_released_lease_check"


async def test_replayed_complete_is_idempotent_by_lease_and_by_worker(api):
    with trio.fail_after(30):
        c = await leased(api)
        for _ in range(2):
            r = await api.post(f"/api/v1/jobs/{c['id']}/complete",
                               json={"lease_id": c["lease_id"], "result": {"n": len(_ * "x")}})
            assert r.status_code == 200, r.text
        assert (await job(api, c["id"]))["result"] == {"n": 0}                   # the first result is kept
        # the same replay with the worker only (older SDKs) is answered alike; another worker's is not
        r = await api.post(f"/api/v1/jobs/{c['id']}/complete", json={"worker_id": "w1"})
        assert r.status_code == 200
        r = await api.post(f"/api/v1/jobs/{c['id']}/complete", json={"worker_id": "w2"})
        assert r.status_code == 409 and r.json()["code"] == "LEASE_EXPIRED"
        r = await api.post(f"/api/v1/jobs/{c['id']}/complete", json={"lease_id": "00000000-0000-4000-8000-00000000000a"})
        assert r.status_code == 409 and r.json()["code"] == "LEASE_EXPIRED"


async def test_worker_id_fences_when_lease_id_is_missing(api):
    with trio.fail_after(30):
        c = await leased(api, worker="w1")
        r = await api.post(f"/api/v1/jobs/{c['id']}/heartbeat", json={"worker_id": "w1", "lease_duration_secs": 60})
        assert r.status_code == 200
        r = await api.post(f"/api/v1/jobs/{c['id']}/heartbeat", json={"worker_id": "w2", "lease_id": ""})
        assert r.status_code == 409 and r.json()["code"] == "LEASE_EXPIRED"
        for path, extra in (("complete", {}), ("fail", {"error": "x"})):
            r = await api.post(f"/api/v1/jobs/{c['id']}/{path}", json={"worker_id": "w2", **extra})
            assert r.status_code == 409 and r.json()["code"] == "LEASE_EXPIRED", path
        r = await api.post(f"/api/v1/jobs/{c['id']}/complete", json={"worker_id": "w1", "result": {"ok": 1}})
        assert r.status_code == 200
        assert (await job(api, c["id"]))["result"] == {"ok": 1}
        c = await leased(api, worker="w1")
        r = await api.post(f"/api/v1/jobs/{c['id']}/fail", json={"worker_id": "w1", "lease_id": "", "error": "e"})
        assert r.status_code == 200 and r.json()["will_retry"] is True


async def test_neither_lease_nor_worker_is_422_and_changes_nothing(api):
    with trio.fail_after(30):
        c = await leased(api)
        for path, extra in (("complete", {}), ("fail", {"error": "x"}), ("heartbeat", {})):
            for body in ({}, {"lease_id": "", "worker_id": ""}):
                r = await api.post(f"/api/v1/jobs/{c['id']}/{path}", json={**body, **extra})
                assert r.status_code == 422 and r.json()["details"]["field"] == "lease_id", (path, r.text)
        r = await api.post("/api/v1/jobs/complete", json={"completions": [{"job_id": c["id"]}]})
        assert r.status_code == 422 and r.json()["details"]["field"] == "completions[0].lease_id"
        j = await job(api, c["id"])
        assert j["status"] == "processing" and j["lease_id"] == c["lease_id"]
        # in a batch, the batch's worker_id fences the items without a lease
        r = await api.post("/api/v1/jobs/complete", json={"worker_id": "w1", "completions": [{"job_id": c["id"]}]})
        assert r.json()["succeeded"] == [c["id"]]


async def test_a_stale_worker_never_finishes_a_released_job(api, server):
    """Leased to w1, expired and re-leased: to w2, and then to w1 itself. Without a lease the worker decides;
    with one, the lease does (a stale lease of the same worker fails)."""
    with trio.fail_after(30):
        c1 = await leased(api, "st", worker="w1")
        await server.services.jobs.heartbeat(Scope(api.org_id), c1["id"], c1["lease_id"], 5)
        await server.services.maintenance.run_once(now=utc(seconds=6))
        (c2,) = await claim(api, "st", worker="w2")
        assert c2["id"] == c1["id"]
        for body in ({"worker_id": "w1"}, {"worker_id": "w1", "lease_id": c1["lease_id"]},
                     {"worker_id": "w2", "lease_id": c1["lease_id"]}):
            for path, extra in (("complete", {}), ("fail", {"error": "x"}), ("heartbeat", {})):
                r = await api.post(f"/api/v1/jobs/{c1['id']}/{path}", json={**body, **extra})
                assert r.status_code == 409 and r.json()["code"] == "LEASE_EXPIRED", (body, path)
        # re-leased to the same worker id: its old lease is still refused, the worker alone is the holder
        await server.services.jobs.heartbeat(Scope(api.org_id), c2["id"], c2["lease_id"], 5)
        await server.services.maintenance.run_once(now=utc(seconds=6))
        (c3,) = await claim(api, "st", worker="w1")
        assert c3["id"] == c1["id"] and c3["lease_id"] not in (c1["lease_id"], c2["lease_id"])
        r = await api.post(f"/api/v1/jobs/{c1['id']}/complete", json={"worker_id": "w1", "lease_id": c1["lease_id"]})
        assert r.status_code == 409
        r = await api.post(f"/api/v1/jobs/{c1['id']}/complete", json={"worker_id": "w2"})
        assert r.status_code == 409
        assert (await job(api, c1["id"]))["status"] == "processing"
        r = await api.post(f"/api/v1/jobs/{c1['id']}/complete", json={"worker_id": "w1", "result": {"by": 3}})
        assert r.status_code == 200 and (await job(api, c1["id"]))["result"] == {"by": 3}


async def test_grpc_lease_id_is_optional(api, server):
    key = api.headers["Authorization"].split(" ", 1)[1]
    md = (("x-api-key", key),)

    def calls(jid: str) -> dict:
        with grpc.insecure_channel(server.grpc_address) as channel:
            stub = spooled_pb2_grpc.QueueServiceStub(channel)
            out = {}

            def code(fn, req):
                try:
                    fn(req, metadata=md, timeout=20)
                    return "OK"
                except grpc.RpcError as exc:
                    return exc.code().name
            out["renew_other"] = code(stub.RenewLease, pb.RenewLeaseRequest(job_id=jid, worker_id="gw2"))
            out["complete_other"] = code(stub.Complete, pb.CompleteRequest(job_id=jid, worker_id="gw2"))
            out["fail_other"] = code(stub.Fail, pb.FailRequest(job_id=jid, worker_id="gw2", error="x"))
            out["none"] = [code(stub.Complete, pb.CompleteRequest(job_id=jid)),
                           code(stub.Fail, pb.FailRequest(job_id=jid, error="x")),
                           code(stub.RenewLease, pb.RenewLeaseRequest(job_id=jid))]
            out["renew"] = code(stub.RenewLease, pb.RenewLeaseRequest(job_id=jid, worker_id="gw", extension_secs=60))
            out["complete"] = code(stub.Complete, pb.CompleteRequest(job_id=jid, worker_id="gw"))
            return out
    with trio.fail_after(60):
        c = await leased(api, "gq", worker="gw")
        got = await trio.to_thread.run_sync(calls, c["id"])
        assert got == {"renew_other": "FAILED_PRECONDITION", "complete_other": "FAILED_PRECONDITION",
                       "fail_other": "FAILED_PRECONDITION", "none": ["INVALID_ARGUMENT"] * 3, "renew": "OK",
                       "complete": "OK"}
        assert (await job(api, c["id"]))["status"] == "completed"
        # Fail by worker over gRPC, then ProcessJobs complete by worker
        c = await leased(api, "gq", worker="gw")

        def fail():
            with grpc.insecure_channel(server.grpc_address) as channel:
                return spooled_pb2_grpc.QueueServiceStub(channel).Fail(
                    pb.FailRequest(job_id=c["id"], worker_id="gw", error="boom"), metadata=md, timeout=20)
        assert (await trio.to_thread.run_sync(fail)).will_retry is True
        assert lease_fields(await job(api, c["id"])) == RELEASED

        c = await leased(api, "gq2", worker="pw")
        channel = await open_aio_channel(server.grpc_address)
        try:
            stub = QueueServiceStub(channel)
            async with aio_as_trio(stub.ProcessJobs.open(metadata={"x-api-key": key})) as stream:
                for req in (pb.CompleteRequest(job_id=c["id"]), pb.CompleteRequest(job_id=c["id"], worker_id="px"),
                            pb.CompleteRequest(job_id=c["id"], worker_id="pw")):
                    await aio_as_trio(stream.send_message)(pb.ProcessRequest(complete=req))
                answers = [await aio_as_trio(stream.recv_message)() for _ in range(3)]
                await aio_as_trio(stream.end)()
            assert [a.WhichOneof("response") for a in answers] == ["error", "error", "complete"]
            assert answers[0].error.code == "INVALID_ARGUMENT" and answers[1].error.code == "FAILED_PRECONDITION"
        finally:
            channel.close()
        assert (await job(api, c["id"]))["status"] == "completed"
