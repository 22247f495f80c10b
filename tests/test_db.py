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


class CountingSlots:
    """The pool's semaphore, counting the waits for a slot (`acquire`: a scheduler pass even when one is free)."""

    def __init__(self, n: int):
        self.sem = trio.Semaphore(n)
        self.waits = 0
        self.acquire_nowait, self.release, self.statistics = (self.sem.acquire_nowait, self.sem.release,
                                                               self.sem.statistics)

    @property
    def value(self) -> int:
        return self.sem.value

    async def acquire(self) -> None:
        self.waits += 1
        await self.sem.acquire()


async def test_a_unit_takes_a_free_slot_without_a_scheduler_pass_and_a_full_pool_still_queues(aio_loop, dsn):
    """`run` takes a free slot at once (`acquire_nowait`: no pass of the scheduler before the crossing, in which
    whatever else is runnable would run first); a caller already cancelled starts no unit and keeps the pool as it
    was; with every slot taken a unit waits for one (`acquire`) and then runs."""
    async with open_database(dsn, min_size=1, max_size=1) as db:
        db._slots = slots = CountingSlots(1)
        ran: list[int] = []

        async def unit(con):
            ran.append(1)
            return await con.fetchval("SELECT pg_backend_pid()")
        first = await db.run(unit)
        assert slots.waits == 0 and ran == [1]
        with trio.CancelScope() as scope:
            scope.cancel()
            await db.run(unit)
        assert scope.cancelled_caught and ran == [1]                  # no unit ran
        assert db.stats().in_use == 0 and db.discarded == 0 and await db.run(unit) == first
        with trio.fail_after(10):
            async with trio.open_nursery() as n:
                n.start_soon(db.run, lambda con: con.execute("SELECT pg_sleep(0.3)"))
                await trio.sleep(0.05)
                assert db.stats().in_use == 1
                assert await db.run(unit) == first      # waited for the one slot, then ran on the same connection
        assert slots.waits == 1 and db.stats().in_use == 0
