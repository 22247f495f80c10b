"""The store's connection handling: held connections, discarded when in doubt, replaced when dead."""

from __future__ import annotations

import pytest
import trio

from spooled.domain import errors
from spooled.store.db import open_database


async def pid(db) -> int:
    return await db.run(lambda con: con.fetchval("SELECT pg_backend_pid()"))


async def test_connection_is_reused_and_survives_server_errors(aio_loop, dsn):
    async with open_database(dsn, min_size=1, max_size=2) as db:
        first = await pid(db)
        assert await pid(db) == first
        with pytest.raises(errors.Conflict):
            await db.run(lambda con: con.execute(
                "INSERT INTO organizations (id, name, slug) VALUES (gen_random_uuid(), 'a', 's'), "
                "(gen_random_uuid(), 'b', 's')"))
        assert await pid(db) == first            # a server-side error leaves the connection usable


async def test_cancelled_unit_discards_its_connection(aio_loop, dsn):
    async with open_database(dsn, min_size=1, max_size=2) as db:
        first = await pid(db)
        with trio.move_on_after(0.3) as scope:
            await db.run(lambda con: con.execute("SELECT pg_sleep(2)"))
        assert scope.cancelled_caught
        with trio.fail_after(10):
            second = await pid(db)
            assert second != first               # the interrupted connection was not reused
            while await db.run(lambda con: con.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                                                         first)):
                await trio.sleep(0.1)            # and its backend goes away


async def pids_at_once(db, n: int) -> list:
    """n units at the same time (so each takes its own connection): their pids, or 'unavailable'."""
    out = []

    async def one():
        try:
            out.append(await db.run(lambda con: con.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.2)")))
        except errors.Unavailable:
            out.append("unavailable")
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)
    return out


async def test_dead_connection_is_replaced(aio_loop, dsn):
    async with open_database(dsn, min_size=1, max_size=2) as db:
        with trio.fail_after(20):
            first = await pids_at_once(db, 2)
            assert len(set(first)) == 2
            killed = await db.run(lambda con: con.fetch(
                "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"))
            victims = {r["pid"] for r in killed}
            assert victims & set(first)
            await trio.sleep(0.2)
            second = await pids_at_once(db, 2)
            # a connection lost while idle is noticed (asyncpg sees the EOF) and never handed out again; at
            # worst a unit that raced the EOF fails once with 503
            assert not victims & set(second)
            third = await pids_at_once(db, 2)
            assert "unavailable" not in third and not victims & set(third)


async def test_a_deadlock_is_broken_and_the_unit_runs_again(aio_loop, dsn):
    """Two transactions that take two locks in opposite orders: PostgreSQL aborts one, which runs again once the
    other committed (nothing of the aborted run was kept)."""
    async with open_database(dsn, min_size=2, max_size=4) as db:
        runs = []

        async def tx(con, first, second):
            runs.append(first)
            await con.execute("SELECT pg_advisory_xact_lock($1)", first)
            await con.execute("INSERT INTO spooled_schema (version) VALUES ($1 * 1000 + $2)", first, len(runs))
            if runs.count(first) == 1:          # the first run of each waits for the other's first lock
                await con.execute("""DO $$ BEGIN WHILE (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
                                                  AND granted) < 2 LOOP PERFORM pg_sleep(0.01); END LOOP; END $$""")
            await con.execute("SELECT pg_advisory_xact_lock($1)", second)

        with trio.fail_after(30):
            async with trio.open_nursery() as n:
                n.start_soon(db.transaction, tx, 1, 2)
                n.start_soon(db.transaction, tx, 2, 1)
        assert db.deadlocks == 1 and len(runs) == 3
        kept = await db.run(lambda con: con.fetch("SELECT version FROM spooled_schema WHERE version > 999"))
        assert len(kept) == 2                   # one row per transaction: the aborted run's row went with it
