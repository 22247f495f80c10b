"""Clients for the realtime tests: an SSE reader over httpx streaming and a WebSocket reader (trio-websocket)."""

from __future__ import annotations

import contextlib
import json
from functools import partial
from typing import AsyncIterator

import httpx
import trio
from trio_websocket import open_websocket_url

from spooled.supervisor import serve
from tests.conftest import make_settings, new_org


class SSE:
    """An open SSE stream: `await next_frame()` returns the next data frame (comments are collected)."""

    def __init__(self, response: httpx.Response):
        self.response = response
        self.comments: list[str] = []
        self._lines = response.aiter_lines()
        self.ended = False

    async def next_frame(self) -> dict | None:
        """The next `data:` frame, or None when the server ended the stream."""
        data: list[str] = []
        async for line in self._lines:
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line.startswith(("event:", "id:", "retry:")):
                raise AssertionError(f"SSE frames must be data-only, got {line!r}")
            elif line == "" and data:
                return json.loads("\n".join(data))
        self.ended = True
        return None

    async def frames_until(self, done, limit: int = 200) -> list[dict]:
        out = []
        for _ in range(limit):
            f = await self.next_frame()
            if f is None:
                break
            out.append(f)
            if done(f, out):
                break
        return out


@contextlib.asynccontextmanager
async def sse(client: httpx.AsyncClient, path: str, **kwargs) -> AsyncIterator[SSE]:
    """Open an SSE stream and wait until the server says it is attached (its `: connected` comment)."""
    async with client.stream("GET", path, timeout=httpx.Timeout(30, read=30), **kwargs) as r:
        assert r.status_code == 200, (await r.aread()).decode()
        assert r.headers["content-type"].startswith("text/event-stream")
        stream = SSE(r)
        async for line in stream._lines:
            if line.startswith(": connected"):
                break
        yield stream


def ws_url(http_url: str, path: str) -> str:
    return http_url.replace("http://", "ws://", 1) + path


@contextlib.asynccontextmanager
async def ws(http_url: str, path: str, **kwargs):
    async with open_websocket_url(ws_url(http_url, path), **kwargs) as conn:
        yield conn


async def ws_frame(conn, *, skip=("Ping",)) -> dict:
    while True:
        f = json.loads(await conn.get_message())
        if f["type"] not in skip:
            return f


def kinds(frames: list[dict]) -> list[tuple]:
    """(type, new_status or status) of each frame, to compare sequences."""
    return [(f["type"], f["data"].get("new_status", f["data"].get("status"))) for f in frames]


async def wait_until(predicate, *, step: float = 0.02) -> None:
    while not predicate():
        await trio.sleep(step)


@contextlib.asynccontextmanager
async def instance(tmp_path, dsn, **overrides):
    """Another server on this test's database, with settings overrides, and a client authenticated as a new
    organization (`api.org_id`, `api.running`); shut down on exit."""
    settings = make_settings(tmp_path, dsn, **overrides)
    async with trio.open_nursery() as nursery:
        shutdown = trio.Event()
        running = await nursery.start(partial(serve, settings, dsn, shutdown=shutdown))
        async with httpx.AsyncClient(base_url=running.http_url, timeout=30) as anon:
            org, headers = await new_org(anon)
        async with httpx.AsyncClient(base_url=running.http_url, headers=headers, timeout=30) as api:
            api.org_id = org
            api.running = running
            api.shutdown = shutdown
            yield api
        shutdown.set()


async def listener_pids(db) -> set[int]:
    """The backends of this database's LISTEN connections (the pump's)."""
    rows = await db.run(lambda con: con.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'"))
    return {r["pid"] for r in rows}
