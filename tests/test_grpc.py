"""The gRPC API (grpc.md) against the real supervisor (gRPC on port 0) and PostgreSQL, driven by BOTH a grpclib
client (inside the test's trio_asyncio loop) and the official grpcio client (sync, in worker threads)."""

from __future__ import annotations

import datetime as dt
import math
import os
import queue as stdqueue
import socket

import asyncpg
import grpc
import pytest
import trio
from google.protobuf import json_format, struct_pb2
from grpclib.client import Channel
from grpclib.config import Configuration
from grpclib.exceptions import GRPCError
from grpclib.health.v1 import health_pb2
from grpclib.health.v1.health_grpc import HealthStub
from trio_asyncio import aio_as_trio

from spooled.domain.inputs import Claim, JobSpec
from spooled.domain.scope import Scope
from spooled.transports.grpc.delivery import send_or_release
from spooled.transports.grpc.gen.spooled_grpc import QueueServiceStub, WorkerServiceStub
from tests.grpcio_gen import spooled_pb2 as pb
from tests.grpcio_gen import spooled_pb2_grpc
from tests.helpers import claim, enqueue, job

WORKER_RPCS = {"Register", "Heartbeat", "Deregister"}
CALL_TIMEOUT = 20


class Failed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def struct(d: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(d)
    return s


def as_dict(s: struct_pb2.Struct) -> dict:
    return json_format.MessageToDict(s)


def key_of(api) -> str:
    return api.headers["Authorization"].split(" ", 1)[1]


async def until(predicate, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


# -- two clients behind one call surface ---------------------------------------------------------------------
async def open_aio_channel(address: str) -> Channel:
    host, port = address.rsplit(":", 1)

    async def make():
        return Channel(host, int(port))
    return await aio_as_trio(make)()


class AioClient:
    """grpclib, in the test's trio_asyncio loop."""
    kind = "grpclib"

    def __init__(self, channel: Channel, key: str | None):
        self.channel, self.key = channel, key
        self.queue, self.workers = QueueServiceStub(channel), WorkerServiceStub(channel)

    def md(self, key=...):
        key = self.key if key is ... else key
        return {"x-api-key": key} if key is not None else None

    async def call(self, method: str, request, *, key=...):
        stub = self.workers if method in WORKER_RPCS else self.queue
        try:
            return await aio_as_trio(getattr(stub, method))(request, metadata=self.md(key), timeout=CALL_TIMEOUT)
        except GRPCError as exc:
            raise Failed(exc.status.name, exc.message or "") from None


class SyncClient:
    """The official grpcio client (blocking), each call in a worker thread."""
    kind = "grpcio"

    def __init__(self, channel: grpc.Channel, key: str | None):
        self.channel, self.key = channel, key
        self.queue = spooled_pb2_grpc.QueueServiceStub(channel)
        self.workers = spooled_pb2_grpc.WorkerServiceStub(channel)

    def md(self, key=...):
        key = self.key if key is ... else key
        return (("x-api-key", key),) if key is not None else None

    async def call(self, method: str, request, *, key=...):
        stub = self.workers if method in WORKER_RPCS else self.queue
        fn = getattr(stub, method)
        md = self.md(key)
        try:
            return await trio.to_thread.run_sync(lambda: fn(request, metadata=md, timeout=CALL_TIMEOUT),
                                                 abandon_on_cancel=True)
        except grpc.RpcError as exc:
            raise Failed(exc.code().name, exc.details() or "") from None


@pytest.fixture
async def aio_channel(server):
    channel = await open_aio_channel(server.grpc_address)
    yield channel
    channel.close()


@pytest.fixture
def sync_channel(server):
    channel = grpc.insecure_channel(server.grpc_address)
    yield channel
    channel.close()


@pytest.fixture(params=["grpclib", "grpcio"])
async def rpc(request, api, server):
    if request.param == "grpclib":
        channel = await open_aio_channel(server.grpc_address)
        yield AioClient(channel, key_of(api))
        channel.close()
    else:
        channel = grpc.insecure_channel(server.grpc_address)
        yield SyncClient(channel, key_of(api))
        channel.close()


# -- unary ---------------------------------------------------------------------------------------------------
async def test_server_reports_its_real_grpc_port(server):
    host, port = server.grpc_address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0


async def test_unary_enqueue_get_dequeue_renew_complete(rpc, api):
    with trio.fail_after(30):
        r = await rpc.call("Enqueue", pb.EnqueueRequest(
            queue_name="mail", payload=struct({"to": "a@b.c", "n": 3, "deep": {"xs": [1, 2.5]}}), priority=5,
            tags={"team": "core"}))
        assert r.created is True and r.job_id
        got = (await rpc.call("GetJob", pb.GetJobRequest(job_id=r.job_id))).job
        assert (got.id, got.queue_name, got.status, got.priority) == (r.job_id, "mail", pb.JOB_STATUS_PENDING, 5)
        assert as_dict(got.payload) == {"to": "a@b.c", "n": 3, "deep": {"xs": [1, 2.5]}}
        assert got.max_retries == 3 and got.timeout_seconds == 300 and got.organization_id == api.org_id
        assert got.created_at.seconds > 0 and not got.HasField("started_at") and got.lease_id == ""
        rest = await job(api, r.job_id)
        assert rest["payload"] == {"to": "a@b.c", "n": 3, "deep": {"xs": [1, 2.5]}}   # whole doubles -> integers
        assert rest["tags"] == {"team": "core"}

        stats = await rpc.call("GetQueueStats", pb.GetQueueStatsRequest(queue_name="mail"))
        assert (stats.queue_name, stats.pending, stats.processing, stats.total) == ("mail", 1, 0, 1)

        jobs = (await rpc.call("Dequeue", pb.DequeueRequest(queue_name="mail", worker_id="w1", batch_size=10))).jobs
        assert [j.id for j in jobs] == [r.job_id]
        leased = jobs[0]
        assert leased.status == pb.JOB_STATUS_PROCESSING and leased.lease_id and leased.assigned_worker_id == "w1"
        expires = leased.lease_expires_at.ToDatetime(dt.timezone.utc)
        assert dt.timedelta(seconds=20) < expires - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(seconds=31)

        renewed = await rpc.call("RenewLease", pb.RenewLeaseRequest(job_id=leased.id, worker_id="w1",
                                                                   lease_id=leased.lease_id, extension_secs=120))
        left = renewed.new_expires_at.ToDatetime(dt.timezone.utc) - dt.datetime.now(dt.timezone.utc)
        assert renewed.success and dt.timedelta(seconds=100) < left <= dt.timedelta(seconds=121)

        done = await rpc.call("Complete", pb.CompleteRequest(job_id=leased.id, worker_id="w1",
                                                             lease_id=leased.lease_id, result=struct({"ok": True})))
        assert done.success is True
        again = await rpc.call("Complete", pb.CompleteRequest(job_id=leased.id, lease_id=leased.lease_id))
        assert again.success is True   # replay with the same lease is idempotent
        got = (await rpc.call("GetJob", pb.GetJobRequest(job_id=r.job_id))).job
        assert got.status == pb.JOB_STATUS_COMPLETED and as_dict(got.result) == {"ok": True}
        assert got.HasField("completed_at")
        assert (await job(api, r.job_id))["result"] == {"ok": True}
        stats = await rpc.call("GetQueueStats", pb.GetQueueStatsRequest(queue_name="mail"))
        assert (stats.pending, stats.completed, stats.total) == (0, 1, 1)

        # an empty queue answers at once with no jobs (official behaviour, wait_ms = 0)
        assert list((await rpc.call("Dequeue", pb.DequeueRequest(queue_name="mail", worker_id="w1"))).jobs) == []


def accepted_sockets(port: int) -> list[socket.socket]:
    """This process's connected sockets whose local port is `port`: the server's side of its accepted
    connections (the server runs in the test process), as duplicates the caller closes."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        try:
            if sock.type == socket.SOCK_STREAM and sock.getsockname()[1] == port and sock.getpeername():
                found.append(sock)
                continue
        except (OSError, IndexError, TypeError):
            pass
        sock.close()
    return found


async def test_accepted_grpc_connections_have_tcp_nodelay(rpc, api, server):
    """Accepted connections need TCP_NODELAY: without it each unary call waits ~40 ms on Nagle + delayed ACK
    (asyncio sets it only on connections of a listening socket made with proto IPPROTO_TCP)."""
    with trio.fail_after(30):
        jid = (await enqueue(api, "fast"))["id"]
        await rpc.call("GetJob", pb.GetJobRequest(job_id=jid))      # the channel is connected
        port = int(server.grpc_address.rsplit(":", 1)[1])
        conns = accepted_sockets(port)
        try:
            assert conns, "no accepted gRPC connection found"
            assert all(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for c in conns)
        finally:
            for c in conns:
                c.close()


async def test_unary_fail_retry_and_dead_letter(rpc, api):
    with trio.fail_after(30):
        a = (await rpc.call("Enqueue", pb.EnqueueRequest(queue_name="f", payload=struct({"i": 1})))).job_id
        b = (await rpc.call("Enqueue", pb.EnqueueRequest(queue_name="f", payload=struct({"i": 2})))).job_id
        jobs = (await rpc.call("Dequeue", pb.DequeueRequest(queue_name="f", worker_id="w", batch_size=2))).jobs
        by_id = {j.id: j for j in jobs}
        assert set(by_id) == {a, b}
        r = await rpc.call("Fail", pb.FailRequest(job_id=a, worker_id="w", error="boom", lease_id=by_id[a].lease_id))
        assert r.success and r.will_retry and r.next_retry_delay_secs >= 0
        assert (await job(api, a))["status"] == "scheduled" and (await job(api, a))["retry_count"] == 1
        r = await rpc.call("Fail", pb.FailRequest(job_id=b, error="fatal", retry=False, lease_id=by_id[b].lease_id))
        assert r.success and not r.will_retry
        got = (await rpc.call("GetJob", pb.GetJobRequest(job_id=b))).job
        assert got.status == pb.JOB_STATUS_DEADLETTER and got.last_error == "fatal"


async def test_a_rest_job_is_identical_over_grpc(rpc, api):
    with trio.fail_after(30):
        created = (await api.post("/api/v1/jobs", json={
            "queue_name": "same", "payload": {"user": "ann", "items": [1, 2], "flag": True, "none": None},
            "priority": -3, "idempotency_key": "k-1", "max_retries": 7})).json()
        got = (await rpc.call("GetJob", pb.GetJobRequest(job_id=created["id"]))).job
        assert (got.id, got.queue_name, got.status) == (created["id"], "same", pb.JOB_STATUS_PENDING)
        assert as_dict(got.payload) == created["payload"]
        assert (got.priority, got.max_retries, got.idempotency_key) == (-3, 7, "k-1")
        assert got.created_at.ToDatetime(dt.timezone.utc) == dt.datetime.fromisoformat(created["created_at"])

        (leased,) = await claim(api, "same", worker="rest-worker")
        got = (await rpc.call("GetJob", pb.GetJobRequest(job_id=created["id"]))).job
        assert got.status == pb.JOB_STATUS_PROCESSING
        assert (got.lease_id, got.assigned_worker_id) == (leased["lease_id"], "rest-worker")
        # the REST lease completes over gRPC: one store, one state machine
        assert (await rpc.call("Complete", pb.CompleteRequest(job_id=got.id, lease_id=got.lease_id))).success
        assert (await job(api, created["id"]))["status"] == "completed"
        # the same idempotency key over gRPC returns the original job and changes nothing
        r = await rpc.call("Enqueue", pb.EnqueueRequest(queue_name="same", payload=struct({"x": 1}),
                                                        idempotency_key="k-1"))
        assert (r.job_id, r.created) == (created["id"], False)


async def test_enqueue_bulk_and_complete_batch(rpc, api):
    with trio.fail_after(30):
        r = await rpc.call("EnqueueBulk", pb.EnqueueBulkRequest(queue_name="bulk", jobs=[
            pb.EnqueueRequest(payload=struct({"i": i})) for i in range(5)] + [
            pb.EnqueueRequest(payload=struct({"i": 99}), idempotency_key="dup")]))
        assert len(r.results) == 6 and all(x.created for x in r.results)
        again = await rpc.call("EnqueueBulk", pb.EnqueueBulkRequest(queue_name="bulk", jobs=[
            pb.EnqueueRequest(payload=struct({"i": 100}), idempotency_key="dup")]))
        assert (again.results[0].job_id, again.results[0].created) == (r.results[5].job_id, False)
        jobs = (await rpc.call("Dequeue", pb.DequeueRequest(queue_name="bulk", worker_id="w", batch_size=4))).jobs
        assert len(jobs) == 4
        items = [pb.CompleteRequest(job_id=j.id, lease_id=j.lease_id) for j in jobs[:3]]
        items.insert(1, pb.CompleteRequest(job_id=jobs[3].id, lease_id="00000000-0000-0000-0000-000000000000"))
        # no lease: fenced by its worker (its own, else the batch's), which does not hold the job
        items.append(pb.CompleteRequest(job_id=jobs[3].id, worker_id="intruder"))
        done = await rpc.call("CompleteBatch", pb.CompleteBatchRequest(worker_id="w", completions=items))
        assert list(done.success) == [True, False, True, True, False]
        assert (await job(api, jobs[3].id))["status"] == "processing"
        assert (await job(api, jobs[0].id))["status"] == "completed"
        with pytest.raises(Failed) as err:     # neither a lease nor a worker: the call is refused, nothing done
            await rpc.call("CompleteBatch", pb.CompleteBatchRequest(completions=[pb.CompleteRequest(job_id=jobs[3].id)]))
        assert err.value.code == "INVALID_ARGUMENT" and "lease_id" in err.value.message
        done = await rpc.call("CompleteBatch", pb.CompleteBatchRequest(
            worker_id="w", completions=[pb.CompleteRequest(job_id=jobs[3].id)]))   # the holder, by worker_id
        assert list(done.success) == [True] and (await job(api, jobs[3].id))["status"] == "completed"
        with pytest.raises(Failed) as err:
            await rpc.call("EnqueueBulk", pb.EnqueueBulkRequest(queue_name="bulk", jobs=[
                pb.EnqueueRequest(queue_name="other", payload=struct({}))]))
        assert err.value.code == "INVALID_ARGUMENT"


async def test_dequeue_wait_ms_holds_the_call_until_a_job_arrives(rpc, api, server):
    with trio.fail_after(30):
        started = trio.current_time()
        empty = await rpc.call("Dequeue", pb.DequeueRequest(queue_name="lp", worker_id="w", wait_ms=300))
        assert list(empty.jobs) == [] and trio.current_time() - started >= 0.29
        result = {}

        async def waiting_dequeue():
            result["r"] = await rpc.call("Dequeue", pb.DequeueRequest(queue_name="lp", worker_id="w", wait_ms=10_000))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiting_dequeue)
            await until(lambda: server.services.wakeups.waiter_count(api.org_id, "lp") == 1)
            started = trio.current_time()
            created = await enqueue(api, "lp", {"hello": "world"})
        assert [j.id for j in result["r"].jobs] == [created["id"]]
        assert trio.current_time() - started < 5   # woken by NOTIFY, not by the end of the wait


async def test_status_codes(rpc, api):
    with trio.fail_after(30):
        async def code_of(method, request, **kw) -> Failed:
            with pytest.raises(Failed) as err:
                await rpc.call(method, request, **kw)
            return err.value

        jid = (await rpc.call("Enqueue", pb.EnqueueRequest(queue_name="e", payload=struct({})))).job_id
        (leased,) = (await rpc.call("Dequeue", pb.DequeueRequest(queue_name="e", worker_id="w"))).jobs
        stale = "11111111-1111-1111-1111-111111111111"
        err = await code_of("Complete", pb.CompleteRequest(job_id=jid, lease_id=stale))
        assert err.code == "FAILED_PRECONDITION" and "lease expired" in err.message
        err = await code_of("Fail", pb.FailRequest(job_id=jid, lease_id=stale, error="x"))
        assert err.code == "FAILED_PRECONDITION" and "lease expired" in err.message
        err = await code_of("RenewLease", pb.RenewLeaseRequest(job_id=jid, lease_id=stale))
        assert err.code == "FAILED_PRECONDITION" and "lease expired" in err.message
        for method, request in [("Complete", pb.CompleteRequest(job_id=jid)),
                                ("Fail", pb.FailRequest(job_id=jid, error="x")),
                                ("RenewLease", pb.RenewLeaseRequest(job_id=jid))]:
            err = await code_of(method, request)
            assert err.code == "INVALID_ARGUMENT" and "lease_id" in err.message, method
        assert (await job(api, jid))["status"] == "processing"   # none of that touched the job
        assert (await rpc.call("Complete", pb.CompleteRequest(job_id=jid, lease_id=leased.lease_id))).success

        assert (await code_of("GetJob", pb.GetJobRequest(job_id=stale))).code == "NOT_FOUND"
        assert (await code_of("GetJob", pb.GetJobRequest(job_id="not-a-uuid"))).code == "NOT_FOUND"
        assert (await code_of("Complete", pb.CompleteRequest(job_id=stale, lease_id=stale))).code == "NOT_FOUND"
        assert (await code_of("GetQueueStats", pb.GetQueueStatsRequest(queue_name="nope"))).code == "NOT_FOUND"
        assert (await code_of("Enqueue", pb.EnqueueRequest(queue_name="bad queue!"))).code == "INVALID_ARGUMENT"
        assert (await code_of("Enqueue", pb.EnqueueRequest(queue_name="e", priority=1000))).code == "INVALID_ARGUMENT"
        assert (await code_of("Dequeue", pb.DequeueRequest(queue_name="e"))).code == "INVALID_ARGUMENT"
        assert (await code_of("Dequeue", pb.DequeueRequest(queue_name="e", worker_id="w",
                                                           lease_duration_secs=1))).code == "INVALID_ARGUMENT"
        assert (await code_of("Fail", pb.FailRequest(job_id=jid, lease_id=stale))).code == "INVALID_ARGUMENT"

        for key in (None, "sp_live_wrong", "garbage"):
            err = await code_of("GetJob", pb.GetJobRequest(job_id=jid), key=key)
            assert err.code == "UNAUTHENTICATED", key
        err = await code_of("Register", pb.RegisterWorkerRequest(queue_name="q", hostname="h"), key=None)
        assert err.code == "UNAUTHENTICATED"


async def test_other_orgs_jobs_are_not_found(rpc, api, other_api):
    with trio.fail_after(30):
        mine = (await enqueue(api, "t"))["id"]
        with pytest.raises(Failed) as err:
            await rpc.call("GetJob", pb.GetJobRequest(job_id=mine), key=key_of(other_api))
        assert err.value.code == "NOT_FOUND"
        got = await rpc.call("Dequeue", pb.DequeueRequest(queue_name="t", worker_id="w"), key=key_of(other_api))
        assert list(got.jobs) == []


async def test_worker_service(rpc, api):
    with trio.fail_after(30):
        r = await rpc.call("Register", pb.RegisterWorkerRequest(
            queue_name="wq", hostname="box", worker_type="py", max_concurrency=4, version="2", metadata={"a": "b"},
            worker_id="grpc-worker"))
        assert (r.worker_id, r.lease_duration_secs, r.heartbeat_interval_secs) == ("grpc-worker", 30, 10)
        w = (await api.get("/api/v1/workers/grpc-worker")).json()
        assert (w["hostname"], w["max_concurrency"], w["metadata"], w["status"]) == ("box", 4, {"a": "b"}, "healthy")
        generated = await rpc.call("Register", pb.RegisterWorkerRequest(queue_name="wq", hostname="box"))
        assert generated.worker_id and generated.worker_id != "grpc-worker"

        hb = await rpc.call("Heartbeat", pb.HeartbeatRequest(worker_id="grpc-worker", current_jobs=2))
        assert (hb.acknowledged, hb.should_drain) == (True, False)
        hb = await rpc.call("Heartbeat", pb.HeartbeatRequest(worker_id="grpc-worker", status="draining"))
        assert hb.should_drain is True

        await enqueue(api, "wq")
        (leased,) = (await rpc.call("Dequeue", pb.DequeueRequest(queue_name="wq", worker_id="grpc-worker"))).jobs
        assert (await rpc.call("Deregister", pb.DeregisterRequest(worker_id="grpc-worker"))).success
        assert (await api.get("/api/v1/workers/grpc-worker")).json()["status"] == "offline"
        back = await job(api, leased.id)
        assert (back["status"], back["last_error"], back["retry_count"]) == ("pending", "worker lost", 1)

        for method, request, code in [
            ("Deregister", pb.DeregisterRequest(worker_id="unknown"), "NOT_FOUND"),
            ("Heartbeat", pb.HeartbeatRequest(worker_id="unknown"), "NOT_FOUND"),
            ("Register", pb.RegisterWorkerRequest(queue_name="wq"), "INVALID_ARGUMENT"),
            ("Register", pb.RegisterWorkerRequest(hostname="h", queue_name="wq", worker_id="bad id"),
             "INVALID_ARGUMENT"),
            ("Heartbeat", pb.HeartbeatRequest(worker_id="grpc-worker", status="asleep"), "INVALID_ARGUMENT"),
        ]:
            with pytest.raises(Failed) as err:
                await rpc.call(method, request)
            assert err.value.code == code, (method, request)


async def test_health_is_served_without_auth(server, aio_channel, sync_channel):
    with trio.fail_after(30):
        health = HealthStub(aio_channel)
        for service in ("", "spooled.v1.QueueService", "spooled.v1.WorkerService"):
            r = await aio_as_trio(health.Check)(health_pb2.HealthCheckRequest(service=service), timeout=CALL_TIMEOUT)
            assert r.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(GRPCError) as err:
            await aio_as_trio(health.Check)(health_pb2.HealthCheckRequest(service="nope"), timeout=CALL_TIMEOUT)
        assert err.value.status.name == "NOT_FOUND"
        check = sync_channel.unary_unary("/grpc.health.v1.Health/Check",
                                         request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                                         response_deserializer=health_pb2.HealthCheckResponse.FromString)
        r = await trio.to_thread.run_sync(lambda: check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT))
        assert r.status == health_pb2.HealthCheckResponse.SERVING


# -- StreamJobs ----------------------------------------------------------------------------------------------
async def test_stream_jobs_grpclib_receives_a_job_enqueued_after_it_opened(api, server, aio_channel):
    with trio.fail_after(30):
        stub = QueueServiceStub(aio_channel)
        async with aio_as_trio(stub.StreamJobs.open(metadata={"x-api-key": key_of(api)})) as stream:
            await aio_as_trio(stream.send_message)(pb.StreamJobsRequest(queue_name="s", worker_id="sw"), end=True)
            await aio_as_trio(stream.recv_initial_metadata)()
            # the stream is parked on the queue's wakeup (no polling) before the job exists
            await until(lambda: server.services.wakeups.waiter_count(api.org_id, "s") == 1)
            created = await enqueue(api, "s", {"pushed": 1})
            got = await aio_as_trio(stream.recv_message)()
            assert (got.id, got.status, got.assigned_worker_id) == (created["id"], pb.JOB_STATUS_PROCESSING, "sw")
            assert as_dict(got.payload) == {"pushed": 1} and got.lease_id
            assert (await job(api, created["id"]))["lease_id"] == got.lease_id
            done = await aio_as_trio(stub.Complete)(pb.CompleteRequest(job_id=got.id, lease_id=got.lease_id),
                                                    metadata={"x-api-key": key_of(api)})
            assert done.success
            second = await enqueue(api, "s", {"pushed": 2})
            assert (await aio_as_trio(stream.recv_message)()).id == second["id"]
            await aio_as_trio(stream.cancel)()
        # the client cancelled: the server stops waiting on the queue
        await until(lambda: server.services.wakeups.waiter_count(api.org_id, "s") == 0)
        third = await enqueue(api, "s", {"pushed": 3})
        await trio.sleep(0.2)
        assert (await job(api, third["id"]))["status"] == "pending"


async def test_stream_jobs_grpcio_receives_a_job_enqueued_after_it_opened(api, server, sync_channel):
    with trio.fail_after(30):
        stub = spooled_pb2_grpc.QueueServiceStub(sync_channel)
        call = stub.StreamJobs(pb.StreamJobsRequest(queue_name="s", worker_id="sw", lease_duration_secs=60),
                               metadata=(("x-api-key", key_of(api)),), timeout=CALL_TIMEOUT)
        try:
            await until(lambda: server.services.wakeups.waiter_count(api.org_id, "s") == 1)
            created = await enqueue(api, "s", {"pushed": "grpcio"})
            got = await trio.to_thread.run_sync(next, call, abandon_on_cancel=True)
            assert (got.id, got.status) == (created["id"], pb.JOB_STATUS_PROCESSING)
            assert as_dict(got.payload) == {"pushed": "grpcio"}
            left = got.lease_expires_at.ToDatetime(dt.timezone.utc) - dt.datetime.now(dt.timezone.utc)
            assert dt.timedelta(seconds=50) < left <= dt.timedelta(seconds=61)
            done = await trio.to_thread.run_sync(lambda: stub.Complete(
                pb.CompleteRequest(job_id=got.id, lease_id=got.lease_id), metadata=(("x-api-key", key_of(api)),)))
            assert done.success
        finally:
            call.cancel()
        await until(lambda: server.services.wakeups.waiter_count(api.org_id, "s") == 0)


async def test_stream_jobs_holds_at_most_the_workers_concurrency(api, server, aio_channel):
    with trio.fail_after(30):
        await api.post("/api/v1/workers/register", json={"queue_name": "win", "hostname": "h", "worker_id": "one",
                                                         "max_concurrency": 1})
        a, b, c = [await enqueue(api, "win", {"i": i}) for i in range(3)]
        md = {"x-api-key": key_of(api)}
        stub = QueueServiceStub(aio_channel)
        async with aio_as_trio(stub.StreamJobs.open(metadata=md)) as stream:
            await aio_as_trio(stream.send_message)(pb.StreamJobsRequest(queue_name="win", worker_id="one"), end=True)
            first = await aio_as_trio(stream.recv_message)()
            assert first.id == a["id"]
            await trio.sleep(0.3)
            assert (await job(api, b["id"]))["status"] == "pending"   # window full: b is not leased yet
            # completed over gRPC on this instance: the slot frees at once
            await aio_as_trio(stub.Complete)(pb.CompleteRequest(job_id=first.id, lease_id=first.lease_id), metadata=md)
            second = await aio_as_trio(stream.recv_message)()
            assert second.id == b["id"]
            # completed over REST: noticed by the window's re-read of its leases
            r = await api.post(f"/api/v1/jobs/{second.id}/complete", json={"lease_id": second.lease_id})
            assert r.status_code == 200
            assert (await aio_as_trio(stream.recv_message)()).id == c["id"]
            await aio_as_trio(stream.cancel)()


async def test_shutdown_ends_open_streams_without_stranding_leases(api, server, aio_channel, dsn):
    with trio.fail_after(30):
        md = {"x-api-key": key_of(api)}
        stub = QueueServiceStub(aio_channel)
        async with aio_as_trio(stub.StreamJobs.open(metadata=md)) as stream, \
                aio_as_trio(stub.ProcessJobs.open(metadata=md)) as process:
            await aio_as_trio(stream.send_message)(pb.StreamJobsRequest(queue_name="sd", worker_id="w"), end=True)
            created = await enqueue(api, "sd")
            got = await aio_as_trio(stream.recv_message)()
            assert got.id == created["id"]
            await aio_as_trio(stub.Complete)(pb.CompleteRequest(job_id=got.id, lease_id=got.lease_id), metadata=md)
            await aio_as_trio(process.send_message)(pb.ProcessRequest(
                dequeue=pb.DequeueRequest(queue_name="sd", worker_id="p", batch_size=5)))
            await until(lambda: server.services.wakeups.waiter_count(api.org_id, "sd") == 2)

            server.services.shutting_down.set()
            # enqueued after shutdown began: neither stream may lease it
            (late,) = await server.services.jobs.enqueue(Scope(api.org_id), "sd", [JobSpec(payload={"late": True})])
            assert await aio_as_trio(stream.recv_message)() is None      # the streams end, no hang,
            await aio_as_trio(stream.recv_trailing_metadata)()          # with status OK (raises otherwise)
            assert await aio_as_trio(process.recv_message)() is None
            await aio_as_trio(process.end)()                            # (grpclib wants our side ended first)
            await aio_as_trio(process.recv_trailing_metadata)()
        con = await aio_as_trio(asyncpg.connect)(dsn)
        try:
            rows = await aio_as_trio(con.fetch)("SELECT id::text, status::text FROM jobs ORDER BY created_at")
        finally:
            await aio_as_trio(con.close)()
        assert [(r["id"], r["status"]) for r in rows] == [(created["id"], "completed"), (late.job_id, "pending")]


async def test_leased_jobs_that_cannot_be_sent_go_back_to_pending(api, server):
    """The delivery path StreamJobs/ProcessJobs/Dequeue use, with a send that never completes (a client that
    stopped reading) cancelled: what was not delivered is released without a retry counted."""
    with trio.fail_after(30):
        svc = server.services
        ids = {(await enqueue(api, "rel", {"i": i}))["id"] for i in range(2)}
        leased = await svc.jobs.claim(Scope(api.org_id), Claim(queue_name="rel", worker_id="w", limit=2))
        assert {str(j.id) for j in leased} == ids
        sent = [0]

        async def stuck_after_one(rs):
            sent[0] = 1                      # the first went out, then the peer stopped reading
            await trio.sleep_forever()
        with trio.move_on_after(0.2):
            await send_or_release(svc.jobs, Scope(api.org_id), leased, stuck_after_one, sent)
        first, second = (await job(api, str(leased[0].id))), (await job(api, str(leased[1].id)))
        assert first["status"] == "processing" and first["lease_id"] == str(leased[0].lease_id)
        assert (second["status"], second["retry_count"], second["lease_id"]) == ("pending", 0, None)
        history = (await api.get(f"/api/v1/jobs/{second['id']}/history")).json()
        assert history[-1]["event_type"] == "released"
        # fenced by the lease: releasing the delivered job with a stale lease changes nothing
        assert await svc.jobs.release_unsent(Scope(api.org_id), [(first["id"], str(leased[1].lease_id))]) == 0
        assert (await job(api, first["id"]))["status"] == "processing"


async def test_a_dequeue_answer_that_cannot_be_sent_releases_its_jobs(api, server):
    """Dequeue writes its answer from asyncio; a client that stops reading (the answer is over the HTTP/2 window,
    so the write waits) and then resets the call gets nothing, and the job goes back to pending uncounted."""
    host, port = server.grpc_address.rsplit(":", 1)
    small = Configuration(http2_connection_window_size=2 ** 16 - 1, http2_stream_window_size=2 ** 16 - 1)
    channel = await aio_as_trio(_channel)(host, int(port), small)
    with trio.fail_after(30):
        created = await enqueue(api, "undelivered", {"blob": "x" * 200_000})
        stub = QueueServiceStub(channel)
        async with aio_as_trio(stub.Dequeue.open(metadata={"x-api-key": key_of(api)})) as stream:
            await aio_as_trio(stream.send_message)(pb.DequeueRequest(queue_name="undelivered", worker_id="w"),
                                                   end=True)
            with trio.fail_after(10):       # leased, and its answer stuck in the write
                while (await job(api, created["id"]))["status"] != "processing":
                    await trio.sleep(0.01)
            await aio_as_trio(stream.cancel)()
        with trio.fail_after(10):
            while (now := await job(api, created["id"]))["status"] != "pending":
                await trio.sleep(0.01)
        assert (now["retry_count"], now["lease_id"]) == (0, None)
        history = (await api.get(f"/api/v1/jobs/{created['id']}/history")).json()
        assert history[-1]["event_type"] == "released"
    channel.close()


async def test_a_client_cancelling_a_waiting_dequeue_ends_its_claim_and_leases_nothing(api, server, aio_channel):
    """The call's Trio side (started from the handler, island.start_trio) is cancelled with the call: its wait
    ends (no waiter left), and a job enqueued afterwards stays pending for the next claimer."""
    with trio.fail_after(30):
        stub = QueueServiceStub(aio_channel)
        wakeups = server.services.wakeups
        async with aio_as_trio(stub.Dequeue.open(metadata={"x-api-key": key_of(api)})) as stream:
            await aio_as_trio(stream.send_message)(pb.DequeueRequest(queue_name="cancelled-wait", worker_id="w",
                                                                     wait_ms=20_000), end=True)
            await until(lambda: wakeups.waiter_count(api.org_id, "cancelled-wait") == 1)
            await aio_as_trio(stream.cancel)()
        await until(lambda: wakeups.waiter_count(api.org_id, "cancelled-wait") == 0)
        created = await enqueue(api, "cancelled-wait")
        await trio.sleep(0.2)
        now = await job(api, created["id"])
        assert (now["status"], now["retry_count"], now["lease_id"]) == ("pending", 0, None)


async def _channel(host: str, port: int, config: Configuration) -> Channel:
    return Channel(host, port, config=config)


async def test_a_cancelled_wait_leases_nothing(api, server):
    with trio.fail_after(30):
        svc = server.services
        with trio.move_on_after(0.2):
            await svc.jobs.claim(Scope(api.org_id), Claim(queue_name="cw", worker_id="w"), deadline=math.inf)
            raise AssertionError("nothing to claim: the wait should have been cancelled")
        assert svc.wakeups.waiter_count(api.org_id, "cw") == 0
        created = await enqueue(api, "cw")
        await trio.sleep(0.1)
        assert (await job(api, created["id"]))["status"] == "pending"


# -- ProcessJobs ---------------------------------------------------------------------------------------------
def process_io(stream):
    """(send(**request fields), recv()) for a grpclib ProcessJobs stream, from Trio."""
    async def send(**kw):
        await aio_as_trio(stream.send_message)(pb.ProcessRequest(**kw))

    async def recv():
        return await aio_as_trio(stream.recv_message)()
    return send, recv


async def test_process_jobs_grpclib_round_trip(api, server, aio_channel):
    with trio.fail_after(30):
        stub = QueueServiceStub(aio_channel)
        first = await enqueue(api, "pj", {"n": 1})
        async with aio_as_trio(stub.ProcessJobs.open(metadata={"x-api-key": key_of(api)})) as stream:
            send, recv = process_io(stream)
            await send(dequeue=pb.DequeueRequest(queue_name="pj", worker_id="pw", batch_size=5))
            r = await recv()
            assert r.WhichOneof("response") == "job" and r.job.id == first["id"]
            leased = r.job
            # a dequeue on an empty queue waits; the complete behind it is answered meanwhile
            await send(dequeue=pb.DequeueRequest(queue_name="pj", worker_id="pw", batch_size=5))
            await until(lambda: server.services.wakeups.waiter_count(api.org_id, "pj") == 1)
            await send(complete=pb.CompleteRequest(job_id=leased.id, lease_id=leased.lease_id,
                                                   result=struct({"done": 1})))
            r = await recv()
            assert r.WhichOneof("response") == "complete" and r.complete.success
            assert (await job(api, first["id"]))["result"] == {"done": 1}
            # a wrong lease is an error response, and the stream stays open
            await send(complete=pb.CompleteRequest(job_id=leased.id, lease_id="22222222-2222-2222-2222-222222222222"))
            r = await recv()
            assert r.WhichOneof("response") == "error" and r.error.code == "FAILED_PRECONDITION"
            assert "lease expired" in r.error.message
            await send(complete=pb.CompleteRequest(job_id=leased.id))
            r = await recv()
            assert r.WhichOneof("response") == "error" and r.error.code == "INVALID_ARGUMENT"
            await send(dequeue=pb.DequeueRequest(queue_name="pj"))          # invalid: no worker_id
            r = await recv()
            assert r.WhichOneof("response") == "error" and r.error.code == "INVALID_ARGUMENT"
            # the waiting dequeue is answered when a job arrives (woken by NOTIFY)
            second = await enqueue(api, "pj", {"n": 2})
            r = await recv()
            assert r.WhichOneof("response") == "job" and r.job.id == second["id"]
            await send(renew_lease=pb.RenewLeaseRequest(job_id=r.job.id, lease_id=r.job.lease_id, extension_secs=90))
            rr = await recv()
            assert rr.WhichOneof("response") == "renew_lease" and rr.renew_lease.success
            await send(fail=pb.FailRequest(job_id=r.job.id, lease_id=r.job.lease_id, error="nope"))
            rf = await recv()
            assert rf.WhichOneof("response") == "fail" and rf.fail.success and rf.fail.will_retry
            assert (await job(api, second["id"]))["status"] == "scheduled"
            # a waiting dequeue, then the client half-closes: the stream ends cleanly
            await send(dequeue=pb.DequeueRequest(queue_name="pj", worker_id="pw"))
            await aio_as_trio(stream.end)()
            assert await recv() is None
            await aio_as_trio(stream.recv_trailing_metadata)()
        await until(lambda: server.services.wakeups.waiter_count(api.org_id, "pj") == 0)


async def test_process_jobs_answers_a_burst_of_requests_in_order_past_a_full_ops_queue(api, server, aio_channel,
                                                                                        monkeypatch):
    """The stream's reader hands requests over without waiting; when the ops queue is full (here: 1) or a
    dequeue is invalid, that request goes back to the awaiting path: nothing is dropped or reordered."""
    from spooled.transports.grpc import streams
    monkeypatch.setattr(streams, "OPS_BUFFER", 1)
    with trio.fail_after(30):
        stub = QueueServiceStub(aio_channel)
        ids = {(await enqueue(api, "pb", {"n": i}))["id"] for i in range(6)}
        async with aio_as_trio(stub.ProcessJobs.open(metadata={"x-api-key": key_of(api)})) as stream:
            send, recv = process_io(stream)
            await send(dequeue=pb.DequeueRequest(queue_name="pb", worker_id="bw", batch_size=6))
            leased = [(await recv()).job for _ in range(6)]
            assert {j.id for j in leased} == ids
            # a burst, none awaited: completes, a renew and an invalid dequeue between them, a wrong lease
            for j in leased[:3]:
                await send(complete=pb.CompleteRequest(job_id=j.id, lease_id=j.lease_id))
            await send(renew_lease=pb.RenewLeaseRequest(job_id=leased[3].id, lease_id=leased[3].lease_id,
                                                        extension_secs=60))
            await send(dequeue=pb.DequeueRequest(queue_name="pb"))          # invalid: no worker_id
            await send(complete=pb.CompleteRequest(job_id=leased[4].id,
                                                   lease_id="22222222-2222-2222-2222-222222222222"))
            for j in leased[3:]:
                await send(complete=pb.CompleteRequest(job_id=j.id, lease_id=j.lease_id))
            got = [await recv() for _ in range(9)]
            kinds = [r.WhichOneof("response") for r in got]
            # the dequeue's error is not an op: it may come before the ops answered after it
            assert kinds.count("error") == 2 and kinds.index("error") < 5
            ops = [r for r in got if not (r.WhichOneof("response") == "error"
                                           and r.error.code == "INVALID_ARGUMENT")]
            assert [r.WhichOneof("response") for r in ops] == ["complete"] * 3 + ["renew_lease", "error"] + \
                ["complete"] * 3
            assert all(r.complete.success for r in ops if r.WhichOneof("response") == "complete")
            assert ops[4].error.code == "FAILED_PRECONDITION"
            await aio_as_trio(stream.end)()
            assert await recv() is None
            await aio_as_trio(stream.recv_trailing_metadata)()
        for i in ids:
            assert (await job(api, i))["status"] == "completed"


async def test_process_jobs_grpcio_round_trip(api, server, sync_channel):
    with trio.fail_after(30):
        stub = spooled_pb2_grpc.QueueServiceStub(sync_channel)
        requests: stdqueue.Queue = stdqueue.Queue()

        def request_iter():
            while (item := requests.get()) is not None:
                yield item
        responses = stub.ProcessJobs(request_iter(), metadata=(("x-api-key", key_of(api)),), timeout=CALL_TIMEOUT)

        async def recv():   # None once the server ended the stream
            return await trio.to_thread.run_sync(next, responses, None, abandon_on_cancel=True)
        try:
            requests.put(pb.ProcessRequest(dequeue=pb.DequeueRequest(queue_name="pg", worker_id="gw", batch_size=3)))
            await until(lambda: server.services.wakeups.waiter_count(api.org_id, "pg") == 1)
            # one bulk enqueue (one transaction): the waiting dequeue is answered with both jobs
            r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "pg", "jobs": [{"payload": {"i": 0}},
                                                                                     {"payload": {"i": 1}}]})
            ids = [x["job_id"] for x in r.json()["succeeded"]]
            got = []
            while len(got) < 2:
                r = await recv()
                assert r.WhichOneof("response") == "job"
                got.append(r.job)
            assert {j.id for j in got} == set(ids)
            for j in got:
                requests.put(pb.ProcessRequest(complete=pb.CompleteRequest(job_id=j.id, lease_id=j.lease_id)))
            requests.put(pb.ProcessRequest(complete=pb.CompleteRequest(job_id=got[0].id, lease_id=got[1].lease_id)))
            answers = [await recv() for _ in range(3)]
            assert [a.WhichOneof("response") for a in answers] == ["complete", "complete", "error"]
            assert answers[2].error.code == "FAILED_PRECONDITION"
            assert [(await job(api, i))["status"] for i in ids] == ["completed", "completed"]
            requests.put(None)                                   # half-close: the server ends with OK
            assert await recv() is None
            assert responses.code() == grpc.StatusCode.OK
        finally:
            requests.put(None)
            responses.cancel()


async def test_process_jobs_newer_dequeue_supersedes_a_waiting_one(api, server, aio_channel):
    with trio.fail_after(30):
        stub = QueueServiceStub(aio_channel)
        async with aio_as_trio(stub.ProcessJobs.open(metadata={"x-api-key": key_of(api)})) as stream:
            for _ in range(3):   # a client re-sending its dequeue keeps one waiting, not three
                await aio_as_trio(stream.send_message)(pb.ProcessRequest(
                    dequeue=pb.DequeueRequest(queue_name="sup", worker_id="w", batch_size=2)))
            await until(lambda: server.services.wakeups.waiter_count(api.org_id, "sup") == 1)
            await trio.sleep(0.1)
            assert server.services.wakeups.waiter_count(api.org_id, "sup") == 1
            r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "sup", "jobs": [{"payload": {"i": i}}
                                                                                      for i in range(3)]})
            ids = [x["job_id"] for x in r.json()["succeeded"]]
            got = [(await aio_as_trio(stream.recv_message)()).job.id for _ in range(2)]
            assert len(set(got)) == 2 and set(got) <= set(ids)
            (rest,) = set(ids) - set(got)
            await trio.sleep(0.3)
            assert (await job(api, rest))["status"] == "pending"   # answered up to batch_size, once
            await aio_as_trio(stream.cancel)()


async def test_process_jobs_bad_key_is_unauthenticated(aio_channel):
    with trio.fail_after(30):
        stub = QueueServiceStub(aio_channel)
        with pytest.raises(GRPCError) as err:
            async with aio_as_trio(stub.ProcessJobs.open(metadata={"x-api-key": "sp_live_nope"})) as stream:
                await aio_as_trio(stream.send_message)(pb.ProcessRequest(
                    dequeue=pb.DequeueRequest(queue_name="q", worker_id="w")))
                await aio_as_trio(stream.recv_message)()
        assert err.value.status.name == "UNAUTHENTICATED"


async def test_access_token_in_x_api_key(api, client, server, aio_channel):
    """grpc.md: an access JWT in the x-api-key header is accepted too."""
    with trio.fail_after(30):
        created = await enqueue(api, "jwt", {"n": 1})
        r = await client.post("/api/v1/auth/login", json={"api_key": key_of(api)})
        token = r.json()["access_token"]
        stub = QueueServiceStub(aio_channel)
        got = await aio_as_trio(stub.GetJob)(pb.GetJobRequest(job_id=created["id"]), metadata={"x-api-key": token})
        assert got.job.id == created["id"]
        with pytest.raises(GRPCError) as err:
            await aio_as_trio(stub.GetJob)(pb.GetJobRequest(job_id=created["id"]),
                                           metadata={"x-api-key": r.json()["refresh_token"]})
        assert err.value.status.name == "UNAUTHENTICATED"
