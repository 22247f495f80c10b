"""Caps on long-lived requests (services/streams.py): per server and per organization. A long poll over a cap
is answered at once (it claims, it does not wait); a gRPC stream over a cap is refused (RESOURCE_EXHAUSTED with
retry-after for the organization's cap, UNAVAILABLE for the server's). Slots come back when requests end."""

from __future__ import annotations

import httpx
import pytest
import trio
from grpclib.exceptions import GRPCError
from trio_asyncio import aio_as_trio

from spooled.services.streams import POLL, STREAM, Streams
from spooled.domain import errors
from spooled.transports.grpc.gen.spooled_grpc import QueueServiceStub
from tests.conftest import make_settings, new_org
from tests.grpcio_gen import spooled_pb2 as pb
from tests.helpers import enqueue
from tests.test_grpc import key_of, open_aio_channel, until


@pytest.fixture
def settings(tmp_path, dsn):
    return make_settings(tmp_path, dsn, max_streams=3, max_streams_per_org=2)


def test_slots_count_per_kind_and_organization():
    s = Streams(per_server=3, per_org=2)
    a1, a2 = s.open("a", POLL), s.open("a", POLL)
    assert s.try_open("a", POLL) is None                  # a's cap
    with pytest.raises(errors.RateLimited) as exc:
        s.open("a", POLL)
    assert exc.value.retry_after >= 1
    b1 = s.open("b", POLL)
    assert s.try_open("b", POLL) is None                  # the server's cap
    with pytest.raises(errors.Unavailable):
        s.open("c", POLL)
    with s.open("a", STREAM):                             # another kind counts apart
        assert s.count(STREAM) == 1
    a1.release()
    a1.release()                                          # idempotent
    assert s.count(POLL) == 2 and s.count(POLL, "a") == 1
    c1 = s.open("c", POLL)
    for slot in (a2, b1, c1):
        slot.release()
    assert s.count(POLL) == 0 and s.count(POLL, "a") == 0


async def long_poll(api: httpx.AsyncClient, queue: str, out: list) -> None:
    r = await api.post("/api/v1/jobs/claim", json={"queue_name": queue, "worker_id": "w", "wait_secs": 30})
    assert r.status_code == 200, r.text
    out.append(r.json()["jobs"])


async def test_a_long_poll_over_the_organizations_cap_does_not_wait(server, api, client):
    svc = server.services
    got: list = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(long_poll, api, "q", got)
            await until(lambda: svc.wakeups.waiter_count(api.org_id, "q") == 2)
            assert svc.streams.count(POLL, api.org_id) == 2
            # the third is over the cap: it claims once (nothing there) and is answered while the two still wait
            third = await api.post("/api/v1/jobs/claim", json={"queue_name": "q", "worker_id": "w",
                                                                "wait_secs": 30})
            assert third.status_code == 200 and third.json() == {"jobs": []}
            assert got == [] and svc.wakeups.waiter_count(api.org_id, "q") == 2
            # ... and a job waiting is claimed by it at once
            ready = await enqueue(api, "other")
            r = await api.post("/api/v1/jobs/claim", json={"queue_name": "other", "worker_id": "w", "wait_secs": 30})
            assert [j["id"] for j in r.json()["jobs"]] == [ready["id"]]
            # another organization has its own budget: its poll waits, and gets its job
            org_b, headers = await new_org(client, "B")
            async with httpx.AsyncClient(base_url=server.http_url, headers=headers, timeout=30) as b:
                theirs: list = []
                nursery.start_soon(long_poll, b, "q", theirs)
                await until(lambda: svc.wakeups.waiter_count(org_b, "q") == 1)
                created_b = await enqueue(b, "q")
                await until(lambda: theirs)
                assert [j["id"] for j in theirs[0]] == [created_b["id"]]
            # the two waiting polls are woken by jobs, as ever
            created = [await enqueue(api, "q", {"i": i}) for i in range(2)]
    assert sorted(j[0]["id"] for j in got) == sorted(c["id"] for c in created)
    assert svc.streams.count(POLL) == 0


async def test_a_long_poll_over_the_servers_cap_does_not_wait(server, api, other_api):
    svc = server.services
    got: list = []
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for c in (api, api, other_api):
                nursery.start_soon(long_poll, c, "q", got)
            await until(lambda: svc.streams.count(POLL) == 3)
            r = await other_api.post("/api/v1/jobs/claim", json={"queue_name": "q", "worker_id": "w",
                                                                  "wait_secs": 30})
            assert r.json() == {"jobs": []} and got == []
            # a client that leaves mid-poll gives its slot back
            nursery.cancel_scope.cancel()
    await until(lambda: svc.streams.count(POLL) == 0)
    assert svc.wakeups.waiter_count(api.org_id, "q") == 0


async def test_grpc_streams_over_a_cap_are_refused(server, api, other_api):
    svc = server.services
    channel = await open_aio_channel(server.grpc_address)
    stub = QueueServiceStub(channel)
    mine, theirs = {"x-api-key": key_of(api)}, {"x-api-key": key_of(other_api)}

    async def open_stream(md, stack: list):
        cm = stub.StreamJobs.open(metadata=md)
        stream = await aio_as_trio(cm.__aenter__)()
        stack.append((cm, stream))
        await aio_as_trio(stream.send_message)(pb.StreamJobsRequest(queue_name="s", worker_id="w"), end=True)
        return stream

    async def refused(md) -> tuple:
        async with aio_as_trio(stub.StreamJobs.open(metadata=md)) as stream:
            await aio_as_trio(stream.send_message)(pb.StreamJobsRequest(queue_name="s", worker_id="w"), end=True)
            try:
                await aio_as_trio(stream.recv_message)()
            except GRPCError as exc:
                return exc.status.name, stream.trailing_metadata
        return "OK", None

    held: list = []
    try:
        with trio.fail_after(30):
            for _ in range(2):
                s = await open_stream(mine, held)
                await aio_as_trio(s.recv_initial_metadata)()
            await until(lambda: svc.streams.count(STREAM, api.org_id) == 2)
            code, trailers = await refused(mine)                        # the organization's cap
            assert code == "RESOURCE_EXHAUSTED" and int(trailers["retry-after"]) >= 1
            s = await open_stream(theirs, held)                          # another org: room
            await aio_as_trio(s.recv_initial_metadata)()
            await until(lambda: svc.streams.count(STREAM) == 3)
            code, _ = await refused(theirs)                              # the server's cap
            assert code == "UNAVAILABLE"
            # a ProcessJobs stream counts against the same caps
            async with aio_as_trio(stub.ProcessJobs.open(metadata=mine)) as p:
                await aio_as_trio(p.send_message)(pb.ProcessRequest(dequeue=pb.DequeueRequest(
                    queue_name="s", worker_id="w", batch_size=1)), end=True)
                with pytest.raises(GRPCError) as exc:
                    await aio_as_trio(p.recv_message)()
                assert exc.value.status.name == "RESOURCE_EXHAUSTED"
            # a stream that ends gives its slot back: a new one is served
            cm, stream = held.pop(0)
            await aio_as_trio(stream.cancel)()
            await aio_as_trio(cm.__aexit__)(None, None, None)
            await until(lambda: svc.streams.count(STREAM, api.org_id) == 1)
            s = await open_stream(mine, held)
            await aio_as_trio(s.recv_initial_metadata)()
            await until(lambda: svc.streams.count(STREAM, api.org_id) == 2)
    finally:
        for cm, stream in held:
            await aio_as_trio(stream.cancel)()
            await aio_as_trio(cm.__aexit__)(None, None, None)
        channel.close()
    await until(lambda: svc.streams.count(STREAM) == 0)


async def test_sse_and_websocket_streams_take_stream_slots(server, api, other_api):
    """Realtime streams count under the same STREAM caps as gRPC streams: over the organization's, 429 with
    Retry-After before the stream starts (a WebSocket is refused before the upgrade); over the server's, 503."""
    from trio_websocket import ConnectionRejected
    from tests.events_helpers import sse, ws
    svc = server.services
    with trio.fail_after(30):
        async with sse(api, "/api/v1/events"), sse(api, "/api/v1/events/sse"):
            assert svc.streams.count(STREAM, api.org_id) == 2
            r = await api.get("/api/v1/events")
            assert r.status_code == 429 and r.json()["code"] == "RATE_LIMIT_EXCEEDED" and int(r.headers["retry-after"]) >= 1
            with pytest.raises(ConnectionRejected) as rejected:
                async with ws(server.http_url, f"/api/v1/ws?token={key_of(api)}"):
                    pass
            assert rejected.value.status_code == 429
            async with sse(other_api, "/api/v1/events"):                 # another org: room, up to the server's
                r = await other_api.get("/api/v1/events")
                assert r.status_code == 503 and r.json()["code"] == "SERVICE_UNAVAILABLE"
        # streams that end (the client left) give their places back
        await until(lambda: svc.streams.count(STREAM) == 0)
        async with ws(server.http_url, f"/api/v1/ws?token={key_of(api)}"):
            await until(lambda: svc.streams.count(STREAM, api.org_id) == 1)
    await until(lambda: svc.streams.count(STREAM) == 0)
