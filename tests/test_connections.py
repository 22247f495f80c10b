"""HTTP/1.1 connections end in a known state (issue 10, item 2): an answer sent before the request body arrived
(401, 404, 405, 413, a 503) leaves the connection serving the next request, and clients that leave early leak no
file descriptors. Raw sockets, so the timing (headers, a pause, then the body) is ours."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest
import trio

from tests.access import instance
from tests.conftest import make_settings

BODY = b'{"queue_name": "q", "payload": {"n": 1}}'


async def connect(url: str) -> trio.SocketStream:
    u = urlsplit(url)
    return await trio.open_tcp_stream(u.hostname, u.port)


def head(method: str, path: str, length: int, extra: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n").encode()


class Reader:
    """Reads whole responses (Content-Length framed) off one connection."""

    def __init__(self, stream: trio.SocketStream):
        self.stream, self.buf = stream, b""

    async def response(self) -> tuple[int, dict, bytes] | None:
        while b"\r\n\r\n" not in self.buf:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                return None
            self.buf += chunk
        top, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        headers = dict((k.lower(), v.strip()) for k, _, v in (h.partition(":") for h in lines[1:]))
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                return None
            self.buf += chunk
        body, self.buf = self.buf[:n], self.buf[n:]
        return int(lines[0].split(" ")[1]), headers, body


EARLY = [
    ("POST", "/api/v1/jobs", 401, ""),                                  # no key
    ("POST", "/api/v1/jobs", 401, "Authorization: Bearer sp_live_nope\r\n"),
    ("POST", "/api/v1/no-such-route", 404, ""),
    ("PUT", "/health", 405, ""),
    ("POST", "/api/v1/jobs//complete", 404, ""),
]


@pytest.mark.parametrize("method,path,status,extra", EARLY)
async def test_early_answer_then_the_connection_serves_the_next_request(server, method, path, status, extra):
    with trio.fail_after(20):
        stream = await connect(server.http_url)
        async with stream:
            reader = Reader(stream)
            for _ in range(3):     # the same connection, again and again
                await stream.send_all(head(method, path, len(BODY), extra))
                await trio.sleep(0.05)
                await stream.send_all(BODY)
                got = await reader.response()
                assert got is not None and got[0] == status, got
                await stream.send_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
                got = await reader.response()
                assert got is not None and got[0] == 200 and b"alive" in got[2], got


@pytest.fixture
def settings(tmp_path, dsn):
    return make_settings(tmp_path, dsn, max_request_bytes=4096)


async def test_413_drains_the_body_and_keeps_the_connection(server, api):
    # over the 4 KiB limit, within what the edge drains (twice the limit)
    big = b'{"queue_name": "q", "payload": {"s": "' + b"x" * 6000 + b'"}}'
    with trio.fail_after(20):
        stream = await connect(server.http_url)
        async with stream:
            reader = Reader(stream)
            auth = f"Authorization: {api.headers['authorization']}\r\n"
            await stream.send_all(head("POST", "/api/v1/jobs", len(big), auth))
            await trio.sleep(0.05)
            await stream.send_all(big)
            got = await reader.response()
            assert got is not None and got[0] == 413, got
            await stream.send_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
            got = await reader.response()
            assert got is not None and got[0] == 200, got


async def test_a_body_that_never_comes_gets_the_connection_closed(aio_loop, tmp_path, dsn):
    async with instance(make_settings(tmp_path, dsn, body_timeout_secs=0.5), dsn) as server:
        await _body_never_comes(server)


async def _body_never_comes(server):
    with trio.fail_after(20):
        stream = await connect(server.http_url)
        async with stream:
            reader = Reader(stream)
            await stream.send_all(head("POST", "/api/v1/jobs", len(BODY)))
            got = await reader.response()
            assert got is not None and got[0] == 401
            assert await stream.receive_some(100) == b""     # closed, not wedged


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_clients_that_leave_early_leak_no_descriptors(server):
    """The server runs in this process: its sockets are ours to count. Each client is answered before its body
    arrives, sends the body and its next request on the same connection, waits a little, and leaves."""
    answered = 0

    async def one():
        nonlocal answered
        stream = await connect(server.http_url)
        async with stream:
            reader = Reader(stream)
            await stream.send_all(head("POST", "/api/v1/jobs", len(BODY)))
            await trio.sleep(0.05)
            await stream.send_all(BODY)
            got = await reader.response()
            assert got is not None and got[0] == 401
            await stream.send_all(b"GET /health/live HTTP/1.1\r\nHost: t\r\n\r\n")
            with trio.move_on_after(2):
                if await reader.response() is not None:
                    answered += 1

    with trio.fail_after(30):
        for _ in range(3):
            await one()
        baseline = open_fds()
        async with trio.open_nursery() as nursery:
            for _ in range(100):
                nursery.start_soon(one)
        # the server notices each departure and closes its end; poll until it has (fail_after bounds this)
        while open_fds() > baseline + 2:
            await trio.sleep(0.05)
    assert answered == 103
