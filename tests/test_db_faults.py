"""Database faults inside one process: a connection in an unknown state is discarded and the request is a 503
(never a 500); a background loop survives both an unavailable database and a bug, with backoff."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import attrs
import pytest
import trio
import trio_asyncio

from spooled.domain.errors import Unavailable
from spooled.loops import periodic
from spooled.store.db import open_database


async def test_a_connection_in_an_unknown_state_is_discarded_and_unavailable(aio_loop, dsn):
    async with open_database(dsn, min_size=1, max_size=1) as db:
        pid = await db.run(lambda con: con.fetchval("SELECT pg_backend_pid()"))

        async def two_at_once(con):   # asyncpg: "another operation is in progress"
            await asyncio.gather(con.fetchval("SELECT pg_sleep(0.2)"), con.fetchval("SELECT 1"))

        with pytest.raises(Unavailable):
            await db.run(two_at_once)

        async def internal(con):      # what a PostgreSQL stop produced mid-query ("cannot switch to state 12")
            raise asyncpg.InternalClientError("cannot switch to state 12; another operation is in progress")

        with pytest.raises(Unavailable):
            await db.run(internal)
        # the connection was thrown away, not reused
        assert await db.run(lambda con: con.fetchval("SELECT pg_backend_pid()")) != pid


async def test_server_side_disconnects_are_503_and_the_next_request_works(api, server, pg_admin_dsn):
    r = await api.get("/api/v1/jobs")
    assert r.status_code == 200
    db = server.services.db
    dbname = await db.run(lambda con: con.fetchval("SELECT current_database()"))
    # whether a request meets a dead connection (503) or the pool noticed the close first (201) is a race; either
    # way it is never a 500 and the pool heals
    for _ in range(12):
        # kill every backend of this test's database: the pool's connections die under it
        await trio_asyncio.aio_as_trio(terminate_backends)(pg_admin_dsn, dbname)
        r = await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}})
        assert r.status_code in (201, 503), r.text
        if r.status_code == 503:
            assert r.json()["code"] == "SERVICE_UNAVAILABLE"
    r = await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}})
    assert r.status_code == 201, r.text


async def terminate_backends(admin_dsn: str, dbname: str) -> None:
    con = await asyncpg.connect(admin_dsn)
    try:
        await con.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", dbname)
    finally:
        await con.close()


@attrs.frozen
class Batch:
    total: int = 0

    def full(self, limit: int) -> bool:
        return False


async def test_a_loop_survives_bugs_and_outages_with_backoff(autojump_clock, caplog):
    """Autojump clock: the backoff is read off trio's clock, no real sleeping."""
    script = [RuntimeError("a bug"), Unavailable("down"), Unavailable("down"), Batch(1), Batch(0),
              RuntimeError("again"), Batch(0)]
    calls: list[float] = []

    async def run_once(limit: int):
        calls.append(trio.current_time())
        step = script[len(calls) - 1] if len(calls) <= len(script) else Batch(0)
        if isinstance(step, Exception):
            raise step
        return step

    caplog.set_level(logging.INFO, logger="spooled.loops.periodic")
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: periodic.run("test loop", run_once, 1.0, limit=10,
                                                             task_status=task_status))
        while len(calls) < len(script):
            await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    start = calls[0]
    gaps = [round(b - a, 3) for a, b in zip(calls, calls[1:])][:len(script) - 1]
    # failures back off 1, 2, 4 s; success resets to the interval; the next failure starts at 1 s again
    assert gaps == [1.0, 2.0, 4.0, 1.0, 1.0, 1.0], (start, gaps)
    bug = [r for r in caplog.records if "a bug" in (r.exc_text or "") or (r.exc_info and "a bug" in
                                                                          str(r.exc_info[1]))]
    assert bug and bug[0].exc_info, "a bug is logged with its traceback"
    assert any("database unavailable" in r.getMessage() for r in caplog.records)
