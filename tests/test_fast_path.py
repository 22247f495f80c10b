"""The HTTP/1.1 fast path (transports/http/fastpath.py) over raw sockets: it reads the hot routes' requests
whichever way the bytes are split, serves pipelined requests in order, hands a connection to hypercorn for
anything it does not take (another route, a WebSocket upgrade, HTTP/1.0, an oversized head, odd framing) with the
bytes already read, and keeps the edge's limits (slow heads, unread responses, shutdown). `fast_requests` (the
requests the fast path answered) tells which side answered."""

from __future__ import annotations

import json
from functools import partial

import httpx
import pytest
import trio

from spooled.supervisor import serve
from tests.conftest import make_settings
from tests.helpers import enqueue
from tests.test_connection_limits import LIMITS, status_and_body, trickle, until
from tests.test_connections import Reader, connect

HEALTH = b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n"


def post(path: str, body: dict | bytes, auth: str, extra: str = "", version: str = "1.1") -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (f"POST {path} HTTP/{version}\r\nHost: t\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n{extra}\r\n").encode() + data


def auth_of(api: httpx.AsyncClient) -> str:
    return api.headers["authorization"]


async def pending(api: httpx.AsyncClient, queue: str) -> int:
    r = await api.get("/api/v1/jobs", params={"queue_name": queue, "limit": 100})
    return len(r.json())


async def test_a_request_split_at_every_byte_is_read_whole(server, api):
    request = post("/api/v1/jobs", {"queue_name": "split", "payload": {"n": 1}}, auth_of(api))
    before = server.http_connections.fast_requests
    with trio.fail_after(60):
        stream = await connect(server.http_url)
        async with stream:
            reader = Reader(stream)
            for i in range(1, len(request)):
                await stream.send_all(request[:i])
                await trio.sleep(0.002)         # two reads on the server, not one
                await stream.send_all(request[i:])
                got = await reader.response()
                assert got is not None and got[0] == 201, (i, got)
                assert json.loads(got[2])["queue_name"] == "split"
    assert server.http_connections.fast_requests - before == len(request) - 1
    r = await api.get("/api/v1/queues/split/stats")
    assert r.json()["pending_jobs"] == len(request) - 1, r.text


async def test_pipelined_requests_are_answered_in_order_across_a_handover(server, api):
    """Three hot requests, a health probe (hypercorn takes the connection from there), two more hot requests,
    all in one send: six answers, in order; the last two come from hypercorn (and the lane)."""
    auth = auth_of(api)
    one = lambda n: post("/api/v1/jobs", {"queue_name": "pipe", "payload": {"n": n}}, auth)  # noqa: E731
    before = server.http_connections.fast_requests
    with trio.fail_after(30):
        stream = await connect(server.http_url)
        async with stream:
            await stream.send_all(one(1) + one(2) + one(3) + HEALTH + one(4) + one(5))
            reader = Reader(stream)
            answers = [await reader.response() for _ in range(6)]
            assert [a[0] for a in answers] == [201, 201, 201, 200, 201, 201], answers
            assert [json.loads(a[2])["payload"]["n"] for i, a in enumerate(answers) if i != 3] == [1, 2, 3, 4, 5]
            # still open, served by hypercorn now
            await stream.send_all(HEALTH)
            assert (await reader.response())[0] == 200
    assert server.http_connections.fast_requests - before == 3
    assert await pending(api, "pipe") == 5


async def test_a_websocket_upgrade_after_hot_requests_is_hypercorns(server, api):
    auth = auth_of(api)
    key = auth.split(" ", 1)[1]
    with trio.fail_after(30):
        stream = await connect(server.http_url)
        async with stream:
            reader = Reader(stream)
            await stream.send_all(post("/api/v1/jobs", {"queue_name": "wsq", "payload": {}}, auth))
            assert (await reader.response())[0] == 201
            await stream.send_all(f"GET /api/v1/ws?token={key} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                  "Sec-WebSocket-Version: 13\r\n\r\n".encode())
            while b"\r\n\r\n" not in reader.buf:
                reader.buf += await stream.receive_some(65536)
            top = reader.buf.partition(b"\r\n\r\n")[0].lower()
            assert top.startswith(b"http/1.1 101") and b"upgrade: websocket" in top, top


async def test_connection_close_and_http_1_0_end_the_connection_after_the_answer(server, api):
    auth = auth_of(api)
    for request in [post("/api/v1/jobs", {"queue_name": "cc", "payload": {}}, auth, "Connection: close\r\n"),
                    post("/api/v1/jobs", {"queue_name": "cc", "payload": {}}, auth, version="1.0")]:
        with trio.fail_after(20):
            stream = await connect(server.http_url)
            async with stream:
                await stream.send_all(request)
                got = await Reader(stream).response()
                assert got is not None and got[0] == 201
                assert await stream.receive_some(100) == b""
    assert await pending(api, "cc") == 2


@pytest.mark.parametrize("head,status", [
    # an oversized head: hypercorn's own answer (h11 past h11_max_incomplete_size)
    (b"POST /api/v1/jobs HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"p" * 70_000 + b"\r\n\r\n", None),
    (b"POST /api/v1/jobs HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n{}", 400),
    (b"POST /api/v1/jobs HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n{}", 400),
    (b"POST /api/v1/jobs HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x", 400),
    # h11 reads these (Transfer-Encoding wins over Content-Length, RFC 9112 6.3; an obs-fold continues a value):
    # hypercorn's lane answers them (no key: 401), the fast path does not
    (b"POST /api/v1/jobs HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}", 401),
    (b"POST /api/v1/jobs HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", 400),
    (b"POST /api/v1/jobs HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 400),          # no Host
    (b"POST /api/v1/jobs HTTP/1.1\r\nHost: t\r\nX-A: b\r\n folded\r\nContent-Length: 2\r\n\r\n{}", 401),
])
async def test_requests_the_fast_path_does_not_read_get_hypercorns_answer(server, api, head, status):
    before = server.http_connections.fast_requests
    with trio.fail_after(20):
        stream = await connect(server.http_url)
        async with stream:
            await stream.send_all(head)
            data = b""
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break
                data += chunk
    got, body = status_and_body(data)
    assert (got == status) if status is not None else 400 <= got < 500, data[:300]
    assert body["status"] == got
    assert server.http_connections.fast_requests == before
    assert (await api.get("/api/v1/jobs")).json() == []         # nothing written


async def test_chunked_bodies_and_expect_are_served_by_hypercorn(server, api):
    auth = auth_of(api)
    body = json.dumps({"queue_name": "chunk", "payload": {"n": 1}}).encode()
    chunked = (f"POST /api/v1/jobs HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n"
               f"\r\n{len(body):x}\r\n").encode() + body + b"\r\n0\r\n\r\n"
    before = server.http_connections.fast_requests
    with trio.fail_after(20):
        stream = await connect(server.http_url)
        async with stream:
            reader = Reader(stream)
            await stream.send_all(chunked)
            assert (await reader.response())[0] == 201
    async with httpx.AsyncClient(base_url=server.http_url, headers=dict(api.headers)) as c:
        r = await c.post("/api/v1/jobs", json={"queue_name": "chunk", "payload": {}}, headers={"Expect": "100-continue"})
        assert r.status_code == 201, r.text
    assert server.http_connections.fast_requests == before
    assert await pending(api, "chunk") == 2


@pytest.mark.parametrize("body", [b'{"queue_name": "gone", "worker_id": "w", "wait_secs": 20}',
                                  b'{"queue_name": "gone", "worker_id": "w", "\\u0077ait_secs": 20}'])
async def test_a_claim_whose_client_leaves_claims_nothing(server, api, body):
    from spooled.services.streams import POLL
    auth = auth_of(api)
    streams = server.services.streams
    with trio.fail_after(30):
        stream = await connect(server.http_url)
        await stream.send_all(post("/api/v1/jobs/claim", body, auth))
        await until(lambda: streams.count(POLL) == 1)       # the claim is waiting
        await stream.aclose()
        await until(lambda: streams.count(POLL) == 0)       # and was cancelled when its client left
        await enqueue(api, queue="gone")
        await until(lambda: server.http_connections.open <= 1)
        assert (await api.get("/api/v1/jobs", params={"queue_name": "gone"})).json()[0]["status"] == "pending"


@pytest.fixture
def settings(tmp_path, dsn):
    return make_settings(tmp_path, dsn, **LIMITS)


async def test_a_slow_hot_head_is_cut_and_so_is_one_after_a_good_request(server, api):
    slow = b"POST /api/v1/jobs HTTP/1.1\r\nHost: t\r\nX-Padding: " + b"p" * 100 + b"\r\n\r\n"
    before = server.http_connections.fast_requests
    with trio.fail_after(40):
        stream = await connect(server.http_url)
        async with stream:
            status, body = status_and_body(await trickle(stream, slow, 0.2))
            assert status == 408 and body["code"] == "REQUEST_TIMEOUT"
        stream = await connect(server.http_url)
        async with stream:
            await stream.send_all(post("/api/v1/jobs", {"queue_name": "s", "payload": {}}, auth_of(api)))
            assert (await Reader(stream).response())[0] == 201
            raw = await trickle(stream, slow, 0.2)
            status, body = status_and_body(raw)
            assert status == 408 and body["code"] == "REQUEST_TIMEOUT" and b"connection: close" in raw.lower()
    assert server.http_connections.fast_requests == before + 1


async def test_shutdown_closes_idle_fast_path_connections_at_once(aio_loop, tmp_path, dsn, client):
    """With a long grace period, an idle keep-alive connection of the fast path is closed when shutdown starts
    (not held for the grace period), and a waiting long poll is answered, with `Connection: close`."""
    from tests.conftest import new_org
    settings = make_settings(tmp_path, dsn, shutdown_grace_secs=60.0, keep_alive_secs=60.0)
    shutdown = trio.Event()
    _, headers = await new_org(client)
    auth = headers["Authorization"]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            running = await nursery.start(partial(serve, settings, dsn, shutdown=shutdown))
            idle, polling = await connect(running.http_url), await connect(running.http_url)
            async with idle, polling:
                await idle.send_all(post("/api/v1/jobs", {"queue_name": "sd", "payload": {}}, auth))
                assert (await Reader(idle).response())[0] == 201
                await polling.send_all(post("/api/v1/jobs/claim", {"queue_name": "sd2", "worker_id": "w",
                                                                   "wait_secs": 30}, auth))
                await trio.sleep(0.3)
                shutdown.set()
                assert await idle.receive_some(100) == b""
                got = await Reader(polling).response()
                assert got is not None and got[0] == 200 and json.loads(got[2]) == {"jobs": []}
                assert got[1]["connection"] == "close"
                assert await polling.receive_some(100) == b""
        # serve returned well within the 60 s grace: nothing held it


@pytest.mark.parametrize("overrides", [dict(http_fast_path=False), dict(cors_origins=("https://app.example.com",))])
async def test_with_the_fast_path_off_or_cors_on_hypercorn_reads_every_request(aio_loop, tmp_path, dsn, client,
                                                                               overrides):
    from tests.access import instance
    from tests.conftest import new_org
    _, headers = await new_org(client)
    async with instance(make_settings(tmp_path, dsn, **overrides), dsn) as other:
        async with httpx.AsyncClient(base_url=other.http_url, headers=headers) as c:
            r = await c.post("/api/v1/jobs", json={"queue_name": "off", "payload": {}},
                             headers={"Origin": "https://app.example.com"})
            assert r.status_code == 201, r.text
            cors = r.headers.get("access-control-allow-origin")
            assert cors == ("https://app.example.com" if "cors_origins" in overrides else None)
        assert other.http_connections.fast_requests == 0


async def test_a_bug_in_the_fast_path_costs_one_connection_not_the_server(server, api, monkeypatch):
    from spooled.transports.http import fastpath

    def broken(head: bytes):
        raise RuntimeError("a bug in the parser")

    monkeypatch.setattr(fastpath, "_parse", broken)
    with trio.fail_after(20):
        stream = await connect(server.http_url)
        async with stream:
            await stream.send_all(post("/api/v1/jobs", {"queue_name": "bug", "payload": {}}, auth_of(api)))
            assert await stream.receive_some(100) == b""       # that connection is closed
    monkeypatch.undo()
    assert (await api.post("/api/v1/jobs", json={"queue_name": "bug", "payload": {}})).status_code == 201
