"""Concurrent single enqueues (REST `POST /jobs`, gRPC `Enqueue`) of one queue and scope share one insert
statement (`services/grouping.py`), and each caller still gets its own answer: a bad parent, a NUL the database
refuses or an idempotency key already taken affects only its own request; no job is lost or duplicated, and a
caller cancelled after its statement started still has its job."""

from __future__ import annotations

import grpc
import trio

from spooled.domain import errors, inputs
from spooled.domain.scope import Scope
from tests.grpcio_gen import spooled_pb2 as pb
from tests.grpcio_gen import spooled_pb2_grpc
from tests.helpers import enqueue


def hold_first_flush(jobs, queued: int):
    """Make the next enqueue flush wait until `queued` more enqueues are queued behind it (so that those flush
    together, in one statement); the statements' job counts are recorded in the returned list."""
    grouper = jobs._enqueues
    flush = grouper._flush
    batches: list[int] = []
    flushing = trio.Event()

    async def spy(key, rows):
        batches.append(len(rows))
        if not flushing.is_set():
            flushing.set()
            while grouper.waiting() < queued:
                await trio.sleep(0.001)
        return await flush(key, rows)
    grouper._flush = spy
    return batches, flushing


async def pending_count(api, queue: str) -> int:
    r = await api.get("/api/v1/jobs", params={"queue_name": queue, "limit": 100})
    assert r.status_code == 200, r.text
    return len(r.json())


async def test_concurrent_rest_enqueues_share_a_statement_and_keep_their_own_answers(api, server):
    with trio.fail_after(30):
        existing = await enqueue(api, "g", idempotency_key="taken")
        batches, flushing = hold_first_flush(server.services.jobs, 5)
        bodies = {
            "a": {"payload": {"n": "a"}},
            "b": {"payload": {"n": "b"}, "priority": 7},
            "orphan": {"payload": {}, "parent_job_id": "01a2322c-7229-7462-9fa5-4c58416aaa46"},
            "dup": {"payload": {"n": "dup"}, "idempotency_key": "taken"},
            "new1": {"payload": {"n": "new1"}, "idempotency_key": "fresh"},
        }
        got = {}

        async def post(name, body):
            r = await api.post("/api/v1/jobs", json={"queue_name": "g", **body})
            got[name] = (r.status_code, r.json())

        async with trio.open_nursery() as n:
            n.start_soon(post, "first", {"payload": {"n": "first"}})
            await flushing.wait()
            for name, body in bodies.items():
                n.start_soon(post, name, body)
        assert 5 in batches, batches                        # the five in one flush (the orphan refused alone)
        assert got["first"][0] == 201 and got["first"][1]["payload"] == {"n": "first"}
        for name in ("a", "b", "new1"):
            status, body = got[name]
            assert status == 201 and body["created"] is True and body["payload"] == {"n": name}, got[name]
        assert got["b"][1]["priority"] == 7
        assert got["orphan"][0] == 422 and got["orphan"][1]["details"]["field"] == "parent_job_id", got["orphan"]
        assert got["dup"] == (200, {"id": existing["id"], "created": False})
        ids = {got[k][1]["id"] for k in ("first", "a", "b", "new1")}
        assert len(ids) == 4
        assert await pending_count(api, "g") == 5               # the four and the first `taken`: nothing else


async def test_one_key_twice_in_one_statement_creates_one_job(api, server):
    with trio.fail_after(30):
        jobs = server.services.jobs
        batches, flushing = hold_first_flush(jobs, 2)
        scope = Scope(api.org_id)
        got = []

        async def one(key, n):
            (res,) = await jobs.enqueue(scope, "k", [inputs.JobSpec(payload={"n": n}, idempotency_key=key)])
            got.append(res)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "other", 0)
            await flushing.wait()
            nursery.start_soon(one, "same", 1)
            nursery.start_soon(one, "same", 2)
        assert batches[-1] == 2, batches
        created = [r for r in got if r.created]
        assert len(created) == 2                                 # "other" and one of the two "same"
        assert len({r.job_id for r in got}) == 2, got            # the second "same" answers with the first's id
        assert await pending_count(api, "k") == 2


async def test_an_item_the_database_refuses_fails_alone(api, server):
    """A NUL in a text column fails the whole statement in PostgreSQL: the group is then inserted item by item,
    so only the bad request sees the 422."""
    with trio.fail_after(30):
        jobs = server.services.jobs
        batches, flushing = hold_first_flush(jobs, 3)
        scope = Scope(api.org_id)
        got = {}

        async def one(name, key=None):
            try:
                (res,) = await jobs.enqueue(scope, "nul", [inputs.JobSpec(payload={"n": name}, idempotency_key=key)])
                got[name] = res.created
            except errors.DomainError as exc:
                got[name] = type(exc).__name__
        async with trio.open_nursery() as n:
            n.start_soon(one, "first")
            await flushing.wait()
            n.start_soon(one, "good1")
            n.start_soon(one, "bad", "a\x00b")
            n.start_soon(one, "good2")
        assert 3 in batches, batches
        assert got == {"first": True, "good1": True, "good2": True, "bad": "ValidationFailed"}
        assert await pending_count(api, "nul") == 3


async def test_a_caller_cancelled_while_its_statement_runs_still_has_its_job(api, server):
    """As when the client goes away after the commit: the job is inserted (no job lost, none twice)."""
    with trio.fail_after(30):
        jobs = server.services.jobs
        grouper = jobs._enqueues
        flush = grouper._flush
        started, release = trio.Event(), trio.Event()

        async def gated(key, rows):
            started.set()
            await release.wait()
            return await flush(key, rows)
        grouper._flush = gated
        scope = Scope(api.org_id)
        cancelled = trio.CancelScope()

        async def one():
            with cancelled:
                await jobs.enqueue(scope, "gone", [inputs.JobSpec(payload={"bye": True})])
        async with trio.open_nursery() as n:
            n.start_soon(one)
            await started.wait()
            cancelled.cancel()
            await trio.sleep(0)
            release.set()
        grouper._flush = flush
        assert await pending_count(api, "gone") == 1
        # the grouper still serves the next caller
        (res,) = await jobs.enqueue(scope, "gone", [inputs.JobSpec(payload={})])
        assert res.created and await pending_count(api, "gone") == 2


async def test_concurrent_grpc_enqueues_each_get_their_own_answer(api, server):
    with trio.fail_after(30):
        key = api.headers["Authorization"].split(" ", 1)[1]
        existing = await enqueue(api, "gq", idempotency_key="k1")
        md = (("x-api-key", key),)

        def call():
            with grpc.insecure_channel(server.grpc_address) as ch:
                stub = spooled_pb2_grpc.QueueServiceStub(ch)
                reqs = [pb.EnqueueRequest(queue_name="gq", idempotency_key="k1"),
                        pb.EnqueueRequest(queue_name="gq", idempotency_key="a\x00b"),
                        *(pb.EnqueueRequest(queue_name="gq", priority=p) for p in range(1, 11))]
                futures = [stub.Enqueue.future(r, metadata=md, timeout=20) for r in reqs]
                out = []
                for f in futures:
                    try:
                        out.append((f.result().job_id, f.result().created))
                    except grpc.RpcError as exc:
                        out.append(exc.code())
                return out
        out = await trio.to_thread.run_sync(call)
        assert out[0] == (existing["id"], False)
        assert out[1] == grpc.StatusCode.INVALID_ARGUMENT
        assert all(o[1] is True for o in out[2:]) and len({o[0] for o in out[2:]}) == 10
        r = await api.get("/api/v1/jobs", params={"queue_name": "gq", "limit": 100})
        assert sorted(j["priority"] for j in r.json()) == [0, *range(1, 11)]
