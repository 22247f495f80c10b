"""Claim wakeups across connections and instances (services/wakeups.py, store/listen.py): a NOTIFY from any
connection wakes a waiter, an enqueue through another instance on the same database wakes this one's waiter, and
under concurrent enqueues (single, grouped, bulk) and long polls on two instances no wakeup is lost."""

from __future__ import annotations

import random
from functools import partial

import httpx
import trio
import triopg

from spooled.domain import inputs
from spooled.domain.scope import Scope
from spooled.supervisor import serve
from tests.conftest import make_settings
from tests.helpers import enqueue
from tests.test_claim_group import StatementSpy, start_waiters


async def test_a_notify_from_another_connection_or_path_still_wakes(api, server, dsn):
    """A plain NOTIFY from a connection outside the pool (another instance) and one from a pool connection of
    this instance wake a waiter (its claim runs)."""
    jobs = server.services.jobs
    for how in ("outside", "pool"):
        got: list[list] = []
        queue = f"plain-{how}"
        with trio.fail_after(20):
            async with trio.open_nursery() as n:
                await start_waiters(n, server, api.org_id, queue, 1, got)
                spy = StatementSpy(jobs)
                sql = f"NOTIFY spooled_jobs, '{api.org_id} {queue} 1'"
                if how == "pool":
                    await server.services.db.run(lambda con: con.execute(sql))
                else:
                    async with triopg.connect(dsn) as con:
                        await con.execute(sql)
                while not spy.calls:
                    await trio.sleep(0.01)
                n.cancel_scope.cancel()
        jobs._store.claim = spy.real
        assert [c[1] for c in spy.calls] == [queue]


async def test_an_enqueue_through_another_instance_wakes_this_ones_waiter(api, server, tmp_path, dsn):
    other_settings = make_settings(tmp_path / "b", dsn)
    (tmp_path / "b").mkdir()
    got: list[list] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as n:
            shutdown = trio.Event()
            other = await n.start(partial(serve, other_settings, dsn, shutdown=shutdown))
            await start_waiters(n, server, api.org_id, "cross", 1, got)
            async with httpx.AsyncClient(base_url=other.http_url, headers=dict(api.headers)) as b:
                job = await enqueue(b, "cross")
            while not got:
                await trio.sleep(0.01)
            shutdown.set()
    assert [str(j.id) for j in got[0]] == [job["id"]]


async def test_no_lost_wakeup_under_concurrent_enqueues_and_waiters(api, server, tmp_path, dsn):
    """Two instances on one database, long polls on both, producers on both (single enqueues, grouped, and
    bulk ones), interleaved at random: every job is claimed by a waiter that was woken (no waiter's wait runs
    out: they wait longer than the test may run)."""
    other_settings = make_settings(tmp_path / "b", dsn)
    (tmp_path / "b").mkdir()
    total, claimed, rnd = 0, [], random.Random(11)
    with trio.fail_after(90):
        async with trio.open_nursery() as n:
            shutdown = trio.Event()
            other = await n.start(partial(serve, other_settings, dsn, shutdown=shutdown))
            done = trio.Event()

            async def waiter(srv, i):
                while not done.is_set():
                    js = await srv.services.jobs.claim(Scope(api.org_id), inputs.Claim(
                        queue_name="race", worker_id=f"w{i}", limit=rnd.choice((1, 1, 2))), deadline=trio.current_time() + 600)
                    claimed.extend(j.id for j in js)
            async with trio.open_nursery() as waiters:
                for i in range(12):
                    waiters.start_soon(waiter, server if i % 2 else other, i)
                async with httpx.AsyncClient(base_url=other.http_url, headers=dict(api.headers), timeout=30) as b:
                    async def producer(c, k):
                        nonlocal total
                        for _ in range(15):
                            if rnd.random() < 0.2:
                                m = rnd.randint(2, 5)
                                r = await c.post("/api/v1/jobs/bulk", json={"queue_name": "race",
                                                                            "jobs": [{"payload": {}}] * m})
                                assert r.status_code == 200, r.text
                                total += m
                            else:
                                await enqueue(c, "race")
                                total += 1
                            await trio.sleep(rnd.random() * 0.005)
                    async with trio.open_nursery() as producers:
                        for k in range(8):
                            producers.start_soon(producer, api if k % 2 else b, k)
                while len(claimed) < total:
                    await trio.sleep(0.01)
                done.set()
                waiters.cancel_scope.cancel()
            shutdown.set()
    assert len(claimed) == len(set(claimed)) == total
