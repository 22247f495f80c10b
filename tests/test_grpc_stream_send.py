"""A stream's job written from its Trio task (streams.py `_send_all` through `island.run_here`): when the write
must wait (the client's HTTP/2 window is full), the rest of it runs in an asyncio task; a client gone meanwhile
gets nothing, and the job goes back to pending exactly once; messages of one stream keep their order."""

from __future__ import annotations

import trio
from grpclib.client import Channel
from grpclib.config import Configuration
from trio_asyncio import aio_as_trio

from spooled.transports.grpc.gen.spooled_grpc import QueueServiceStub
from tests.grpcio_gen import spooled_pb2 as pb
from tests.helpers import enqueue, job
from tests.test_grpc import as_dict, key_of, process_io, until

BIG = "x" * 200_000        # a job message over the small window below: its write waits for the client


async def small_window_channel(server) -> Channel:
    host, port = server.grpc_address.rsplit(":", 1)
    small = Configuration(http2_connection_window_size=2 ** 16 - 1, http2_stream_window_size=2 ** 16 - 1)

    async def make() -> Channel:
        return Channel(host, int(port), config=small)
    return await aio_as_trio(make)()


async def handed_over_and_stuck(api, server, queue: str) -> str:
    """Once the stream waits on `queue`, enqueue a job too big for the client's window: handed to the stream, its
    message stuck in the write; the job's id once it is leased."""
    await until(lambda: server.services.wakeups.waiter_count(api.org_id, queue) == 1)
    created = await enqueue(api, queue, {"blob": BIG})
    with trio.fail_after(10):
        while (await job(api, created["id"]))["status"] != "processing":
            await trio.sleep(0.01)
    return created["id"]


async def released_once(api, job_id: str) -> None:
    """The job is pending again without a retry counted, with exactly one `released` history row."""
    with trio.fail_after(10):
        while (now := await job(api, job_id))["status"] != "pending":
            await trio.sleep(0.01)
    assert (now["retry_count"], now["lease_id"]) == (0, None)
    history = (await api.get(f"/api/v1/jobs/{job_id}/history")).json()
    assert [h["event_type"] for h in history].count("released") == 1
    assert history[-1]["event_type"] == "released"


async def test_a_stream_job_whose_write_waits_and_whose_client_leaves_goes_back_to_pending_once(api, server):
    channel = await small_window_channel(server)
    try:
        with trio.fail_after(30):
            stub = QueueServiceStub(channel)
            async with aio_as_trio(stub.StreamJobs.open(metadata={"x-api-key": key_of(api)})) as stream:
                await aio_as_trio(stream.send_message)(pb.StreamJobsRequest(queue_name="sw", worker_id="w"),
                                                       end=True)
                await aio_as_trio(stream.recv_initial_metadata)()
                job_id = await handed_over_and_stuck(api, server, "sw")
                await aio_as_trio(stream.cancel)()
            await released_once(api, job_id)
            # pending again means claimable again, once
            got = (await api.post("/api/v1/jobs/claim", json={"queue_name": "sw", "worker_id": "w2"})).json()
            assert [j["id"] for j in got["jobs"]] == [job_id]
    finally:
        channel.close()


async def test_a_held_process_jobs_dequeue_whose_write_waits_and_whose_client_leaves_releases_once(api, server):
    channel = await small_window_channel(server)
    try:
        with trio.fail_after(30):
            stub = QueueServiceStub(channel)
            async with aio_as_trio(stub.ProcessJobs.open(metadata={"x-api-key": key_of(api)})) as stream:
                send, _ = process_io(stream)
                await send(dequeue=pb.DequeueRequest(queue_name="pw", worker_id="w", batch_size=1))
                job_id = await handed_over_and_stuck(api, server, "pw")
                await aio_as_trio(stream.cancel)()
            await released_once(api, job_id)
    finally:
        channel.close()


async def test_process_jobs_messages_keep_their_order_when_writes_wait(api, server):
    """Three jobs over the window each, then their completes: the client reads them in claim order, and each
    complete's answer after the job it completes (the sends of one stream never interleave)."""
    channel = await small_window_channel(server)
    try:
        with trio.fail_after(30):
            ids = [(await enqueue(api, "po", {"i": i, "blob": BIG}))["id"] for i in range(3)]
            stub = QueueServiceStub(channel)
            async with aio_as_trio(stub.ProcessJobs.open(metadata={"x-api-key": key_of(api)})) as stream:
                send, recv = process_io(stream)
                await send(dequeue=pb.DequeueRequest(queue_name="po", worker_id="w", batch_size=3))
                got = []
                for _ in range(3):
                    r = await recv()
                    assert r.WhichOneof("response") == "job"
                    got.append(r.job)
                    await send(complete=pb.CompleteRequest(job_id=r.job.id, lease_id=r.job.lease_id))
                assert [j.id for j in got] == ids
                assert [as_dict(j.payload)["i"] for j in got] == [0, 1, 2]
                for _ in range(3):
                    r = await recv()
                    assert r.WhichOneof("response") == "complete" and r.complete.success
                await aio_as_trio(stream.end)()
                assert await recv() is None
            for i in ids:
                assert (await job(api, i))["status"] == "completed"
    finally:
        channel.close()
