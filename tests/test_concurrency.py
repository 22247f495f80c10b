"""Exactly one holder under concurrent claimers, NOTIFY-driven long polls, several instances on one database."""

from __future__ import annotations

import collections
import random
from functools import partial

import httpx
import trio

from spooled.domain import inputs
from spooled.supervisor import serve
from tests.conftest import make_settings
from tests.helpers import claim, enqueue


async def waiting_claimers(nursery, services, api, queue: str, n: int, wait_secs: float, out: list) -> None:
    """Start n long-poll claims on `queue` (results appended to `out`) and return once all of them wait."""
    async def one():
        out.append(await claim(api, queue=queue, wait_secs=wait_secs))
    for _ in range(n):
        nursery.start_soon(one)
    while services.wakeups.waiter_count(api.org_id, queue) < n:
        await trio.sleep(0.02)


async def test_many_concurrent_claimers_never_share_a_job(api, server):
    n_jobs = 300
    r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "c", "jobs": [{"payload": {"i": i}} for i in range(100)]})
    assert r.status_code == 200
    for _ in range(2):
        await api.post("/api/v1/jobs/bulk", json={"queue_name": "c", "jobs": [{"payload": {}}] * 100})
    got: list[tuple[str, str]] = []
    rng = random.Random(7)

    async def http_claimer(i: int):
        async with httpx.AsyncClient(base_url=str(api.base_url), headers=api.headers, timeout=30) as c:
            while True:
                jobs = await claim(c, queue="c", limit=rng.randint(1, 10), worker=f"h{i}")
                if not jobs:
                    return
                got.extend((j["id"], j["lease_id"]) for j in jobs)

    async def service_claimer(i: int):
        spec = inputs.Claim(queue_name="c", worker_id=f"s{i}", limit=7)
        while True:
            rows = await server.services.jobs.claim(api.org_id, spec)
            if not rows:
                return
            got.extend((str(j.id), str(j.lease_id)) for j in rows)

    with trio.fail_after(60):
        async with trio.open_nursery() as n:
            for i in range(10):
                n.start_soon(http_claimer, i)
            for i in range(3):
                n.start_soon(service_claimer, i)
    ids = [g[0] for g in got]
    assert len(ids) == n_jobs and len(set(ids)) == n_jobs
    assert len({g[1] for g in got}) == n_jobs  # a fresh lease per claim
    starts = await server.services.db.run(lambda con: con.fetchval(
        "SELECT count(*) FROM job_events WHERE event_type = 'started'"))
    assert starts == n_jobs
    counts = collections.Counter(r["status"] for r in await server.services.db.run(
        lambda con: con.fetch("SELECT status::text FROM jobs")))
    assert counts == {"processing": n_jobs}


async def test_long_poll_is_woken_by_enqueue(api):
    result = {}

    async def waiter():
        t0 = trio.current_time()
        result["jobs"] = await claim(api, queue="lp", wait_secs=10)
        result["took"] = trio.current_time() - t0

    with trio.fail_after(15):
        async with trio.open_nursery() as n:
            n.start_soon(waiter)
            await trio.sleep(0.5)
            created = await enqueue(api, queue="lp")
    assert [j["id"] for j in result["jobs"]] == [created["id"]]
    assert 0.4 < result["took"] < 3  # woken by NOTIFY, long before the 10 s wait ends


async def test_long_poll_times_out_empty(api):
    with trio.fail_after(10):
        t0 = trio.current_time()
        assert await claim(api, queue="empty", wait_secs=1) == []
        assert trio.current_time() - t0 >= 0.9


async def test_one_enqueue_wakes_one_waiter(api, server):
    done: list[list] = []
    with trio.fail_after(15):
        async with trio.open_nursery() as n:
            await waiting_claimers(n, server.services, api, "herd", 5, 3, done)
            await enqueue(api, queue="herd")
            await trio.sleep(1.0)
            assert len(done) == 1 and len(done[0]) == 1  # one woken, the others still waiting
            assert server.services.wakeups.waiter_count(api.org_id, "herd") == 4
    assert sorted(len(j) for j in done) == [0, 0, 0, 0, 1]


async def test_bulk_enqueue_wakes_enough_waiters(api, server):
    done: list[list] = []
    with trio.fail_after(15):
        async with trio.open_nursery() as n:
            await waiting_claimers(n, server.services, api, "bw", 3, 5, done)
            t0 = trio.current_time()
            await api.post("/api/v1/jobs/bulk", json={"queue_name": "bw", "jobs": [{"payload": {}}] * 3})
    assert trio.current_time() - t0 < 3
    assert sorted(len(d) for d in done) == [1, 1, 1]


async def test_two_instances_share_one_database(aio_loop, tmp_path, dsn, api, server):
    settings = make_settings(tmp_path, dsn)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        other = await nursery.start(partial(serve, settings, dsn, shutdown=shutdown))
        async with httpx.AsyncClient(base_url=other.http_url, headers=api.headers, timeout=30) as b:
            result = {}

            async def wait_on_b():
                result["jobs"] = await claim(b, queue="x", wait_secs=10)

            with trio.fail_after(15):
                async with trio.open_nursery() as n:
                    n.start_soon(wait_on_b)
                    while other.services.wakeups.waiter_count(api.org_id, "x") < 1:
                        await trio.sleep(0.02)
                    created = await enqueue(api, queue="x")  # through instance A
            assert [j["id"] for j in result["jobs"]] == [created["id"]]  # NOTIFY crossed instances

            await api.post("/api/v1/jobs/bulk", json={"queue_name": "y", "jobs": [{"payload": {}}] * 100})
            got = []

            async def drain(c, w):
                while jobs := await claim(c, queue="y", limit=3, worker=w):
                    got.extend(j["id"] for j in jobs)

            with trio.fail_after(30):
                async with trio.open_nursery() as n:
                    for i in range(4):
                        n.start_soon(drain, api, f"a{i}")
                        n.start_soon(drain, b, f"b{i}")
            assert len(got) == 100 and len(set(got)) == 100

            # the reapers of both instances may run at once: each expired lease is released exactly once
            await enqueue(api, queue="z", max_retries=5)
            (c,) = await claim(api, queue="z", lease_duration_secs=5)
            from tests.helpers import utc
            results = []

            async def reap(svc):
                results.append(await svc.maintenance.run_once(now=utc(seconds=10)))

            async with trio.open_nursery() as n:
                n.start_soon(reap, server.services)
                n.start_soon(reap, other.services)
            assert sum(r.released for r in results) == 1
            j = (await api.get(f"/api/v1/jobs/{c['id']}")).json()
            assert j["retry_count"] == 1 and j["status"] == "pending"
        shutdown.set()


async def test_shutdown_ends_long_polls(aio_loop, tmp_path, dsn, client):
    from tests.conftest import new_org
    settings = make_settings(tmp_path, dsn)
    shutdown = trio.Event()
    _, headers = await new_org(client)
    result = {}
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            other = await nursery.start(partial(serve, settings, dsn, shutdown=shutdown))

            async def poll():
                async with httpx.AsyncClient(base_url=other.http_url, headers=headers, timeout=30) as c:
                    t0 = trio.current_time()
                    result["jobs"] = await claim(c, queue="sd", wait_secs=30)
                    result["took"] = trio.current_time() - t0

            nursery.start_soon(poll)
            await trio.sleep(0.5)
            shutdown.set()
    assert result["jobs"] == [] and result["took"] < 5


async def test_listener_reconnects_after_its_connection_dies(api, server):
    """The LISTEN connection is killed: the pump notices (keep-alive ping), reconnects, wakes every waiter to
    re-read the tables, and later NOTIFYs wake long polls again."""
    from tests.events_helpers import listener_pids
    db = server.services.db

    with trio.fail_after(30):
        (old,) = await listener_pids(db)
        await db.run(lambda con: con.execute("SELECT pg_terminate_backend($1)", old))
        while not (pids := await listener_pids(db)) or old in pids:
            await trio.sleep(0.2)
        result = {}

        async def poll():
            result["jobs"] = await claim(api, queue="after", wait_secs=10)

        async with trio.open_nursery() as n:
            n.start_soon(poll)
            while server.services.wakeups.waiter_count(api.org_id, "after") < 1:
                await trio.sleep(0.02)
            t0 = trio.current_time()
            created = await enqueue(api, queue="after")
        assert [j["id"] for j in result["jobs"]] == [created["id"]]
        assert trio.current_time() - t0 < 3
