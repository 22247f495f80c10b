"""No database fault ends the process (issue 10, items 1 and 3): a real `python -m spooled` against its own
throwaway PostgreSQL cluster, which the test crashes (`pg_ctl stop -m immediate`), holds in recovery (a standby
that refuses connections with "the database system is not accepting connections", asyncpg's
CannotConnectNowError), shuts down cleanly (`-m fast`) for a few seconds, and starts again. Meanwhile the
process stays up, requests get 503 with the error body, /health/ready is false; afterwards it is true again and
claims and long polls work without a restart."""

from __future__ import annotations

import asyncio
import os

import asyncpg
import httpx
import pytest
import trio

from tests.conftest import Cluster, admin, _dsn_for
from tests.procs import clean_env, spooled_server


@pytest.fixture
def cluster():
    c = Cluster("synchronous_commit=on", "shared_buffers=16MB")   # a crash loses no committed job
    admin(c.dsn, "CREATE DATABASE spooled")
    try:
        yield c
    finally:
        c.stop()


def assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    body = r.json()
    assert body["status"] == 503 and body["code"] == "SERVICE_UNAVAILABLE" and body["message"], body


async def outage_requests(api: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    """What a client sees while the database is away: 503s, never a 500, never a hang."""
    for _ in range(3):   # the pool's dead connections are each found out and discarded
        assert_unavailable(await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}}))
        assert_unavailable(await api.post("/api/v1/jobs/claim", json={"queue_name": "q", "worker_id": "w"}))
        assert_unavailable(await api.get("/api/v1/jobs"))
    r = await client.get("/health/ready")
    assert_unavailable(r)
    assert r.json()["details"] == {"database": False}
    assert (await client.get("/health/live")).status_code == 200


async def wait_ready(client: httpx.AsyncClient) -> None:
    while (await client.get("/health/ready")).status_code != 200:
        await trio.sleep(0.1)


async def works(api: httpx.AsyncClient, queue: str) -> None:
    """Enqueue, a long poll woken by the enqueue (the LISTEN pump is back), complete."""
    got = []

    async def long_poll():
        r = await api.post("/api/v1/jobs/claim", json={"queue_name": queue, "worker_id": "w", "wait_secs": 25,
                                                       "lease_duration_secs": 60})
        assert r.status_code == 200, r.text
        got.extend(r.json()["jobs"])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(long_poll)
        await trio.sleep(0.3)    # let the claim park (a parked claim is woken by NOTIFY or resync)
        r = await api.post("/api/v1/jobs", json={"queue_name": queue, "payload": {"q": queue}})
        assert r.status_code == 201, r.text
    assert [j["id"] for j in got] == [r.json()["id"]]
    r = await api.post(f"/api/v1/jobs/{got[0]['id']}/complete", json={"lease_id": got[0]["lease_id"],
                                                                      "result": {"ok": True}})
    assert r.status_code == 200, r.text


async def refused_while_recovering(dsn: str) -> None:
    """(asyncio, in a thread) Until PostgreSQL answers connections with CannotConnectNowError."""
    while True:
        try:
            con = await asyncpg.connect(dsn)
        except asyncpg.CannotConnectNowError:
            return
        except (OSError, asyncpg.PostgresError):
            pass
        else:
            await con.close()
        await asyncio.sleep(0.1)


async def test_the_server_outlives_crashes_recovery_and_shutdowns_of_its_database(cluster, tmp_path):
    dsn = _dsn_for(cluster.dsn, "spooled")
    env = clean_env(DATABASE_URL=dsn, SPOOLED_DATA_DIR=str(tmp_path), SPOOLED_LOG_LEVEL="INFO")
    with trio.fail_after(240):
        async with spooled_server(env) as server, httpx.AsyncClient(base_url=server.url, timeout=40) as client:
            r = await client.post("/api/v1/organizations", json={"name": "Outage"})
            assert r.status_code == 201, r.text
            headers = {"Authorization": f"Bearer {r.json()['api_key']['key']}"}
            async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=40) as api:
                await works(api, "before")

                # 1. a crash
                cluster.halt("immediate")
                await outage_requests(api, client)

                # 2. back, but in recovery: every connection is refused with CannotConnectNowError
                open(os.path.join(cluster.pgdata, "standby.signal"), "w").close()
                cluster.start("hot_standby=off", wait=False)
                await trio.to_thread.run_sync(asyncio.run, refused_while_recovering(dsn))
                await server.wait_for_log(r"LISTEN connection lost \(.*not accepting connections")
                await outage_requests(api, client)
                assert server.alive

                # 3. up again
                cluster.halt("fast")
                os.remove(os.path.join(cluster.pgdata, "standby.signal"))
                cluster.start()
                await wait_ready(client)
                await works(api, "after-recovery")

                # 4. a clean shutdown with a long poll parked, a few seconds down, then up again
                parked = []

                async def parked_poll():
                    r = await api.post("/api/v1/jobs/claim", json={"queue_name": "parked", "worker_id": "w",
                                                                   "wait_secs": 8})
                    parked.append(r)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(parked_poll)
                    await trio.sleep(0.3)
                    cluster.halt("fast")
                    await outage_requests(api, client)
                    await trio.sleep(3)
                    await outage_requests(api, client)
                (r,) = parked
                assert r.status_code in (200, 503), r.text   # ended within its wait: [] or unavailable
                if r.status_code == 200:
                    assert r.json() == {"jobs": []}
                cluster.start()
                await wait_ready(client)
                await works(api, "after-shutdown")
                jobs = (await api.get("/api/v1/jobs", params={"status": "completed"})).json()
                assert sorted(j["queue_name"] for j in jobs) == ["after-recovery", "after-shutdown", "before"]
            assert server.alive
        assert server.proc.returncode == 0, server.log()[-3000:]
    assert "Traceback" not in server.log(), server.log()[-5000:]
