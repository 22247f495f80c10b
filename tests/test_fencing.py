"""Lease fencing when a stale and a current completion of one job arrive together (issue 10, item 0): whatever
path batches them (REST `POST /jobs/complete`, the completion grouper behind single completes, gRPC
`CompleteBatch`), exactly one succeeds, the stale one is LEASE_EXPIRED, and the stored result is the current
lease's."""

from __future__ import annotations

import grpc
import pytest
import trio

from spooled.domain import errors
from spooled.domain.scope import Scope
from tests.grpcio_gen import spooled_pb2 as pb
from tests.grpcio_gen import spooled_pb2_grpc
from tests.helpers import claim, enqueue, job, utc


async def released_and_released(api, server, queue: str = "fence") -> tuple[str, str, str]:
    """A job leased to w1 (L1), expired and released by the reaper, then leased to w2 (L2): (id, L1, L2)."""
    created = await enqueue(api, queue, max_retries=3)
    (first,) = await claim(api, queue, worker="w1", lease_duration_secs=5)
    assert (await server.services.maintenance.run_once(now=utc(seconds=6))).released == 1
    (second,) = await claim(api, queue, worker="w2", lease_duration_secs=300)
    assert first["id"] == second["id"] == created["id"] and first["lease_id"] != second["lease_id"]
    return created["id"], first["lease_id"], second["lease_id"]


async def assert_current_result_stored(api, job_id: str) -> None:
    j = await job(api, job_id)
    assert j["status"] == "completed" and j["result"] == {"by": "L2"}


@pytest.mark.parametrize("stale_first", [True, False])
async def test_rest_batch_with_stale_and_current_completion_of_one_job(api, server, stale_first):
    with trio.fail_after(30):
        jid, l1, l2 = await released_and_released(api, server)
        items = [{"job_id": jid, "lease_id": l1, "result": {"by": "L1"}},
                 {"job_id": jid, "lease_id": l2, "result": {"by": "L2"}}]
        if not stale_first:
            items.reverse()
        r = await api.post("/api/v1/jobs/complete", json={"worker_id": "w", "completions": items})
        assert r.status_code == 200, r.text
        by_lease = {it["lease_id"]: res for it, res in zip(items, r.json()["results"])}
        assert by_lease[l2] == {"job_id": jid, "success": True, "error": None}
        assert by_lease[l1] == {"job_id": jid, "success": False, "error": "LEASE_EXPIRED"}
        assert r.json()["succeeded"] == [jid] and r.json()["failed"] == [{"job_id": jid, "error": "LEASE_EXPIRED"}]
        await assert_current_result_stored(api, jid)


async def test_grouped_single_completions_stale_and_current(api, server):
    """Concurrent single completes share one statement (services/grouping.py): the stale one must still fail."""
    with trio.fail_after(30):
        jobs = server.services.jobs
        blocker = await enqueue(api, "other")
        (held,) = await claim(api, "other", worker="w3")
        jid, l1, l2 = await released_and_released(api, server)
        batches: list[list] = []
        flush = jobs._completions._flush

        flushing = trio.Event()

        async def spy(org, items):
            batches.append(sorted((i[0], i[1]) for i in items))
            if not flushing.is_set():            # hold the first flush until the other two are queued behind it
                flushing.set()
                while jobs._completions.waiting() < 2:
                    await trio.sleep(0.001)
            return await flush(org, items)
        jobs._completions._flush = spy
        outcome: dict[str, object] = {}

        async def complete(name, job_id, lease, result):
            try:
                await jobs.complete(Scope(api.org_id), job_id, lease, result)
                outcome[name] = "ok"
            except errors.DomainError as exc:
                outcome[name] = type(exc).__name__

        async with trio.open_nursery() as n:
            # the first becomes the flusher and runs alone; the two behind it are queued into one batch
            n.start_soon(complete, "blocker", blocker["id"], held["lease_id"], {"x": 1})
            await flushing.wait()
            n.start_soon(complete, "stale", jid, l1, {"by": "L1"})
            n.start_soon(complete, "current", jid, l2, {"by": "L2"})
        assert sorted([(jid, l1), (jid, l2)]) in batches, batches          # really one statement for both
        assert outcome == {"blocker": "ok", "stale": "LeaseExpired", "current": "ok"}
        await assert_current_result_stored(api, jid)
        # and over REST: the stale single complete is a 409 LEASE_EXPIRED
        r = await api.post(f"/api/v1/jobs/{jid}/complete", json={"worker_id": "w1", "lease_id": l1})
        assert r.status_code == 409 and r.json()["code"] == "LEASE_EXPIRED"


@pytest.mark.parametrize("stale_first", [True, False])
async def test_grpc_complete_batch_with_stale_and_current_completion(api, server, stale_first):
    with trio.fail_after(30):
        jid, l1, l2 = await released_and_released(api, server)
        key = api.headers["Authorization"].split(" ", 1)[1]

        def struct(d):
            from google.protobuf import struct_pb2
            s = struct_pb2.Struct()
            s.update(d)
            return s
        items = [pb.CompleteRequest(job_id=jid, lease_id=l1, result=struct({"by": "L1"})),
                 pb.CompleteRequest(job_id=jid, lease_id=l2, result=struct({"by": "L2"}))]
        if not stale_first:
            items.reverse()

        def call():
            with grpc.insecure_channel(server.grpc_address) as channel:
                stub = spooled_pb2_grpc.QueueServiceStub(channel)
                return stub.CompleteBatch(pb.CompleteBatchRequest(worker_id="w", completions=items),
                                          metadata=(("x-api-key", key),), timeout=20)
        resp = await trio.to_thread.run_sync(call)
        got = {it.lease_id: ok for it, ok in zip(items, resp.success)}
        assert got == {l1: False, l2: True}
        await assert_current_result_stored(api, jid)
