"""Connection limits against the real server over raw sockets (docs/api-notes.md "HTTP connections"): slow
request heads and bodies are cut with a 408, an idle keep-alive connection is closed, a client that never reads
its response is let go, connections past the limit get a 503 (health probes an answer), and other clients keep
being answered correctly meanwhile. The limits are set small here; what is asserted is the outcome, not a time
(each test is bounded by `trio.fail_after`)."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
import trio

from spooled.transports.http import connections
from tests.conftest import make_settings
from tests.helpers import enqueue
from tests.test_connections import Reader, connect, head

LIMITS = dict(header_timeout_secs=1.0, body_timeout_secs=1.0, keep_alive_secs=2.0)
SLOW_HEAD = (b"GET /api/v1/jobs HTTP/1.1\r\nHost: t\r\nUser-Agent: slowloris\r\nX-Padding: " + b"p" * 200
             + b"\r\n\r\n")


@pytest.fixture
def settings(tmp_path, dsn):
    return make_settings(tmp_path, dsn, **LIMITS)


async def until(predicate) -> None:
    """Wait for a condition on the in-process server (bounded by the test's fail_after)."""
    while not predicate():
        await trio.sleep(0.02)


async def trickle(stream: trio.SocketStream, data: bytes, every: float) -> bytes:
    """Send `data` a byte at a time until the server answers or closes; what it sent back (b"" = closed)."""
    got = b""
    for i in range(len(data)):
        try:
            await stream.send_all(data[i:i + 1])
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            break
        with trio.move_on_after(every):
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                chunk = b""
            if not chunk:
                return got
            got += chunk
    # the server answered (or we ran out of bytes): read to the end
    while True:
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            return got
        if not chunk:
            return got
        got += chunk


def status_and_body(raw: bytes) -> tuple[int, dict]:
    top, _, body = raw.partition(b"\r\n\r\n")
    return int(top.split(b" ")[1]), json.loads(body)


async def normal_client(url: str, api_headers: dict, rounds: int) -> int:
    """Requests of a well-behaved client, each checked; how many were answered correctly."""
    ok = 0
    async with httpx.AsyncClient(base_url=url, headers=api_headers, timeout=20) as c:
        for i in range(rounds):
            created = await enqueue(c, payload={"i": i})
            got = await c.get(f"/api/v1/jobs/{created['id']}")
            assert got.status_code == 200 and got.json()["payload"] == {"i": i}, got.text
            assert (await c.get("/health/live")).json() == {"status": "alive"}
            ok += 1
    return ok


async def test_slow_heads_are_cut_and_other_clients_keep_being_answered(server, api):
    """50 connections send their request head a byte at a time (~5 bytes/s): each gets a JSON 408 and is
    closed, while another client's requests are all answered correctly."""
    outcomes: list[bytes] = []
    answered = []

    async def slow():
        stream = await connect(server.http_url)
        async with stream:
            outcomes.append(await trickle(stream, SLOW_HEAD, 0.2))

    async def normal():
        answered.append(await normal_client(server.http_url, dict(api.headers), 20))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(slow)
            nursery.start_soon(normal)
    assert answered == [20]
    assert len(outcomes) == 50
    for raw in outcomes:
        status, body = status_and_body(raw)
        assert status == 408 and body["code"] == "REQUEST_TIMEOUT" and body["status"] == 408, raw
        assert b"connection: close" in raw.lower()


async def test_a_slow_head_after_a_good_request_on_a_keep_alive_connection_is_cut(server):
    with trio.fail_after(30):
        stream = await connect(server.http_url)
        async with stream:
            reader = Reader(stream)
            await stream.send_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
            got = await reader.response()
            assert got is not None and got[0] == 200
            status, body = status_and_body(await trickle(stream, SLOW_HEAD, 0.2))
            assert status == 408 and body["code"] == "REQUEST_TIMEOUT"


@pytest.mark.parametrize("path,authorized", [("/api/v1/jobs", True), ("/api/v1/jobs", False),
                                             ("/api/v1/no-such-route", False)])
async def test_a_slow_body_is_cut(server, api, path, authorized):
    """The head arrives, the body trickles: a route that reads it answers 408; one that answers first (401,
    404) waits for the body until the body timeout, then the connection is closed. Either way: closed."""
    body = json.dumps({"queue_name": "q", "payload": {"s": "x" * 200}}).encode()
    auth = f"Authorization: {api.headers['authorization']}\r\n" if authorized else ""
    with trio.fail_after(30):
        stream = await connect(server.http_url)
        async with stream:
            await stream.send_all(head("POST", path, len(body), auth))
            raw = await trickle(stream, body, 0.2)
    status, answer = status_and_body(raw)
    assert status == (408 if authorized else 401 if path == "/api/v1/jobs" else 404), raw
    assert answer["status"] == status
    assert (await api.get("/api/v1/jobs")).json() == []      # nothing of a cut request was written


async def test_an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not(server):
    with trio.fail_after(30):
        idle, busy = await connect(server.http_url), await connect(server.http_url)
        async with idle, busy:
            idle_reader, busy_reader = Reader(idle), Reader(busy)
            for stream, reader in ((idle, idle_reader), (busy, busy_reader)):
                await stream.send_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
                assert (await reader.response())[0] == 200
            # the busy one sends a request every 0.2 s (within the keep-alive timeout) until the idle one closes
            closed = trio.Event()

            async def watch_idle():
                assert await idle.receive_some(100) == b""
                closed.set()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_idle)
                rounds = 0
                while not closed.is_set() or rounds < 8:
                    await busy.send_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
                    got = await busy_reader.response()
                    assert got is not None and got[0] == 200, "the busy connection must keep serving"
                    rounds += 1
                    await trio.sleep(0.2)


def _list_big(auth: str) -> bytes:
    return f"GET /api/v1/jobs?queue_name=big&limit=6 HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\n\r\n".encode()


def _claim_big(auth: str) -> bytes:       # a hot route: the fast path (fastpath.py) answers it
    body = b'{"queue_name": "big", "worker_id": "w", "limit": 6}'
    return (f"POST /api/v1/jobs/claim HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.mark.parametrize("request_of", [_list_big, _claim_big])
async def test_a_client_that_never_reads_its_response_is_let_go(server, api, request_of):
    """A response larger than the socket buffers, to a client that reads nothing: the server stops waiting
    after the body timeout (hypercorn alone waited forever, holding the task) and keeps serving others."""
    for i in range(6):
        await enqueue(api, queue="big", payload={"blob": "x" * 1_000_000, "i": i})
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    u = httpx.URL(server.http_url)
    with trio.fail_after(60):
        await sock.connect((u.host, u.port))
        stream = trio.SocketStream(sock)
        async with stream:
            before = server.http_connections.open
            await stream.send_all(request_of(api.headers["authorization"]))
            # meanwhile other requests are answered
            assert await normal_client(server.http_url, dict(api.headers), 3) == 3
            await until(lambda: server.http_connections.open < before)     # the server let it go
            received = b""
            while True:
                try:
                    chunk = await stream.receive_some(1 << 20)
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break
                received += chunk
    top, _, body = received.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in top.split(b"\r\n") if line.lower().startswith(b"content-length")))
    assert top.startswith(b"HTTP/1.1 200") and len(body) < length     # cut short, not completed


@pytest.fixture
def capped(tmp_path, dsn, monkeypatch):
    monkeypatch.setattr(connections, "OVERFLOW", 2)
    return make_settings(tmp_path, dsn, max_connections=3, header_timeout_secs=30.0, keep_alive_secs=30.0)


async def test_connections_past_the_limit_get_503_and_health_probes_an_answer(aio_loop, capped, dsn):
    from tests.access import instance
    async with instance(capped, dsn) as server:
        async with httpx.AsyncClient(base_url=server.http_url) as c:
            r = await c.post("/api/v1/organizations", json={"name": "Capped"})
            key = r.json()["api_key"]["key"]
        auth = f"Authorization: Bearer {key}\r\n"
        get_jobs = f"GET /api/v1/jobs HTTP/1.1\r\nHost: t\r\n{auth}\r\n".encode()
        with trio.fail_after(60):
            await until(lambda: server.http_connections.open == 0)
            held = []
            for _ in range(3):             # at the limit, each serving
                s = await connect(server.http_url)
                await s.send_all(get_jobs)
                got = await Reader(s).response()
                assert got is not None and got[0] == 200 and got[2] == b"[]"
                held.append(s)
            # over the limit: one request each, then closed
            over = await connect(server.http_url)
            await over.send_all(get_jobs)
            got = await Reader(over).response()
            assert got is not None and got[0] == 503, got
            assert json.loads(got[2])["code"] == "SERVICE_UNAVAILABLE"
            assert got[1]["retry-after"] == "1" and got[1]["connection"] == "close"
            assert await over.receive_some(100) == b""
            await over.aclose()
            probe = await connect(server.http_url)
            await probe.send_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
            got = await Reader(probe).response()
            assert got is not None and got[0] == 200 and json.loads(got[2]) == {"status": "alive"}
            assert got[1]["connection"] == "close"
            await probe.aclose()
            scrape = await connect(server.http_url)               # and the metrics scrape
            await scrape.send_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
            got = await Reader(scrape).response()
            assert got is not None and got[0] == 200 and b"spooled_" in got[2] and got[1]["connection"] == "close"
            await scrape.aclose()
            # past the overflow allowance (2): accepted and closed unread
            waiting = [await connect(server.http_url) for _ in range(2)]
            await until(lambda: server.http_connections.open == 5)
            shut = await connect(server.http_url)
            assert await shut.receive_some(100) == b""
            for s in [*waiting, shut]:
                await s.aclose()
            # room again once held connections close: a new connection is served normally (kept alive)
            await held.pop().aclose()
            await until(lambda: server.http_connections.open <= 2)
            again = await connect(server.http_url)
            reader = Reader(again)
            for _ in range(2):
                await again.send_all(get_jobs)
                got = await reader.response()
                assert got is not None and got[0] == 200 and "connection" not in got[1]
            for s in [*held, again]:
                await s.aclose()
