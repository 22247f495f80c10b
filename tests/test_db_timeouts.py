"""Database timeouts (SPOOLED_DB_CONNECT_TIMEOUT_SECS, SPOOLED_DB_STATEMENT_TIMEOUT_SECS): no unit of work
waits longer on a slow, unreachable or stalled database, the server answers 503 meanwhile and keeps running.
Network faults come from the chaos runner's TCP proxy between the pool and PostgreSQL."""

from __future__ import annotations

import asyncio
import gc
from functools import partial

import httpx
import pytest
import trio
import trio_asyncio

from spooled.domain import errors
from spooled.settings import ConfigError, from_env
from spooled.store import listen
from spooled.store.db import open_database
from spooled.store.schema import LOCK_KEY, ensure_schema
from spooled.supervisor import serve
from tests.chaos.proxy import Proxy, unix_socket, via_proxy
from tests.conftest import make_settings, new_org


def test_timeouts_are_read_from_the_environment(tmp_path):
    s = from_env({"SPOOLED_DATA_DIR": str(tmp_path), "SPOOLED_DB_CONNECT_TIMEOUT_SECS": "2.5",
                  "SPOOLED_DB_STATEMENT_TIMEOUT_SECS": "12"}, need_secret=False)
    assert (s.db_connect_timeout_secs, s.db_statement_timeout_secs) == (2.5, 12.0)
    d = from_env({"SPOOLED_DATA_DIR": str(tmp_path)}, need_secret=False)
    assert (d.db_connect_timeout_secs, d.db_statement_timeout_secs) == (5.0, 30.0)
    for bad in ("0", "-1", "soon", "nan", "inf", "100000"):
        with pytest.raises(ConfigError, match="SPOOLED_DB_STATEMENT_TIMEOUT_SECS"):
            from_env({"SPOOLED_DATA_DIR": str(tmp_path), "SPOOLED_DB_STATEMENT_TIMEOUT_SECS": bad},
                     need_secret=False)


async def pid(db) -> int:
    return await db.run(lambda con: con.fetchval("SELECT pg_backend_pid()"))


async def test_a_statement_past_the_timeout_is_cancelled_and_unavailable(aio_loop, dsn):
    async with open_database(dsn, min_size=1, max_size=1, statement_timeout=0.3) as db:
        with trio.fail_after(10):
            with pytest.raises(errors.Unavailable, match="did not answer in time"):
                await db.run(lambda con: con.execute("SELECT pg_sleep(5)"))
        assert await pid(db) > 0           # and the pool goes on


async def test_a_stalled_network_ends_in_unavailable_not_a_hang(aio_loop, dsn):
    proxy = Proxy(unix_socket(dsn))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(proxy.serve)
        async with open_database(via_proxy(dsn, port), min_size=1, max_size=2, connect_timeout=0.5,
                                 statement_timeout=0.5) as db:
            assert await db.run(lambda con: con.fetchval("SELECT 1")) == 1
            proxy.stall()
            with trio.fail_after(10):
                # the held connection: no answer, the client stops waiting (statement timeout + its grace)
                with pytest.raises(errors.Unavailable):
                    await db.run(lambda con: con.fetchval("SELECT 1"))
                # a new connection: the startup never completes, the connect timeout ends it
                with pytest.raises(errors.Unavailable):
                    await db.run(lambda con: con.fetchval("SELECT 1"))
            proxy.resume()
            with trio.fail_after(10):
                assert await db.run(lambda con: con.fetchval("SELECT 2")) == 2
        nursery.cancel_scope.cancel()


async def test_the_listen_connection_ends_on_a_stalled_network(aio_loop, dsn):
    """Leaving LISTEN sends UNLISTEN (triopg does it shielded from cancellation): on a stalled network only
    the statement timeout ends it, else the process could never shut down."""
    proxy = Proxy(unix_socket(dsn))
    rescued = []

    async def rescue():   # a shielded wait ignores fail_after: end it by letting the bytes through, and fail
        await trio.sleep(15)
        rescued.append(True)
        proxy.resume()

    async with trio.open_nursery() as nursery:
        port = await nursery.start(proxy.serve)
        async with trio.open_nursery() as pump:
            channels = {name: listen.Channel(lambda payload: None, lambda: None)
                        for name in (listen.JOBS, listen.EVENTS, listen.WEBHOOKS)}   # one UNLISTEN each
            await pump.start(partial(listen.pump, via_proxy(dsn, port), channels, timeout=0.5))
            proxy.stall()
            nursery.start_soon(rescue)
            pump.cancel_scope.cancel()
        assert not rescued, "leaving LISTEN waited for the stalled network"
        nursery.cancel_scope.cancel()


async def test_migrations_are_not_bound_by_the_statement_timeout(aio_loop, empty_dsn):
    """An instance waiting for another's migration (the advisory lock) or running a long one must not fail."""
    async def hold_lock(con):
        async with con.transaction():       # another instance, migrating slowly
            await con.execute("SET LOCAL statement_timeout = 0")
            await con.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
            await con.execute("SELECT pg_sleep(1.5)", timeout=10)

    async with open_database(empty_dsn, min_size=2, max_size=2, statement_timeout=0.5) as db:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(db.run, hold_lock)
                await trio.sleep(0.3)
                applied = await db.run(ensure_schema)
        assert applied.fresh
        with pytest.raises(errors.Unavailable):      # ordinary statements still are
            await db.run(lambda con: con.execute("SELECT pg_sleep(2)"))


async def test_the_server_answers_503_through_a_stalled_or_reset_network_and_recovers(aio_loop, dsn, tmp_path):
    """A TCP DSN (SSL negotiated at connect, as in most deployments): connects cut by the timeout leave
    orphaned asyncpg futures, and the LISTEN connection's UNLISTEN meets a dead network; neither may end or
    wedge the process, and it still shuts down."""
    proxy = Proxy(unix_socket(dsn))
    async with trio.open_nursery() as nursery:
        port = await nursery.start(proxy.serve)
        target = via_proxy(dsn, port)
        settings = make_settings(tmp_path, target, db_connect_timeout_secs=0.5, db_statement_timeout_secs=0.5,
                                 pool_max_size=4)
        shutdown = trio.Event()
        with trio.fail_after(90):
            async with trio.open_nursery() as server:
                running = await server.start(partial(serve, settings, target, shutdown=shutdown))
                await _faults_then_recovery(running.http_url, proxy)
                proxy.stall()           # and shut down with the network stalled under a live LISTEN connection
                shutdown.set()
        nursery.cancel_scope.cancel()


async def _faults_then_recovery(url: str, proxy: Proxy) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        _, key = await new_org(client)
        for fault in ("stall", "reset"):
            if fault == "stall":
                proxy.stall()
            else:
                proxy.drop(refuse=True)
            for _ in range(3):      # each answered within connect + statement timeouts (the client waits 10 s)
                r = await client.get("/api/v1/jobs", headers=key)
                assert r.status_code == 503 and r.json()["code"] == "SERVICE_UNAVAILABLE", r.text
                assert (await client.get("/health/ready")).status_code == 503
                await trio.sleep(0.3)   # new connection attempts, some cut by the timeout
            proxy.resume()
            proxy.accept()
            while (await client.get("/health/ready")).status_code != 200:
                await trio.sleep(0.1)
            await _woken_by_listen(client, key)


async def _woken_by_listen(client: httpx.AsyncClient, key: dict) -> None:
    """A long poll woken by an enqueue: the LISTEN connection is back (retried while it reconnects)."""
    while True:
        got = []

        async def poll():
            r = await client.post("/api/v1/jobs/claim", headers=key,
                                  json={"queue_name": "q", "worker_id": "w", "wait_secs": 3})
            assert r.status_code == 200, r.text
            got.extend(r.json()["jobs"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            await trio.sleep(0.3)
            r = await client.post("/api/v1/jobs", headers=key, json={"queue_name": "q", "payload": {}})
            assert r.status_code == 201, r.text
        if got:
            return


async def test_errors_nobody_awaits_are_logged_not_raised(client, caplog):
    """What the pool does with an error that reaches the asyncio loop's handler (the orphans of the tests
    above, made directly): logged; the process (here: the test's nursery) goes on serving."""
    async def orphan():
        fut = asyncio.get_running_loop().create_future()
        fut.set_exception(ConnectionError("unexpected connection_lost() call"))
        del fut                                       # "Future exception was never retrieved"
        gc.collect()
    await trio_asyncio.aio_as_trio(orphan)()
    await trio.sleep(0.1)                             # where trio_asyncio's own handler would raise it
    assert "unexpected connection_lost() call" in caplog.text
    assert (await client.get("/health/ready")).status_code == 200
