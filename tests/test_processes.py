"""`spooled serve --processes N` as a real process tree on a real database: N server processes on one REST and
one gRPC socket, each a live instance; a copy killed with SIGKILL is replaced while the other keeps serving
(nothing lost); SIGTERM stops them all cleanly with exit code 0."""

from __future__ import annotations

import os
import re
import signal

import asyncpg
import httpx
import trio
import trio_asyncio
from grpclib.client import Channel

from spooled.transports.grpc.gen import spooled_pb2 as pb
from spooled.transports.grpc.gen.spooled_grpc import QueueServiceStub
from tests.conftest import new_org
from tests.procs import clean_env, run_cli, spooled_server

LISTENING = r"server process (\d) listening \(pid (\d+)\)"


def pids(log: str) -> dict[int, int]:
    """The latest pid of each copy, by index."""
    return {int(i): int(pid) for i, pid in re.findall(LISTENING, log)}


async def both_listening(server) -> dict[int, int]:
    """The copies' pids once both are in the log (stderr may trail the listening line on stdout)."""
    while len(pids(server.log())) < 2:
        await trio.sleep(0.05)
    return pids(server.log())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def live_instances(dsn: str) -> int:
    async def count() -> int:
        con = await asyncpg.connect(dsn)
        try:
            return await con.fetchval("SELECT count(*) FROM server_instances WHERE heartbeat_at > now() - "
                                      "interval '1 minute'")
        finally:
            await con.close()
    return await trio_asyncio.aio_as_trio(count)()


async def grpc_enqueue(address: str, key: str, queue: str) -> str:
    host, port = address.rsplit(":", 1)

    async def call() -> str:
        channel = Channel(host, int(port))
        try:
            reply = await QueueServiceStub(channel).Enqueue(pb.EnqueueRequest(queue_name=queue),
                                                            metadata={"x-api-key": key})
            return reply.job_id
        finally:
            channel.close()
    return await trio_asyncio.aio_as_trio(call)()


async def drive(client: httpx.AsyncClient, queue: str, n: int) -> set[str]:
    """n jobs enqueued, claimed and completed, each call on a new connection; the completed ids."""
    done = set()
    for _ in range(n):
        async with httpx.AsyncClient(base_url=str(client.base_url), headers=client.headers, timeout=30) as c:
            assert (await c.post("/api/v1/jobs", json={"queue_name": queue, "payload": {}})).status_code == 201
        async with httpx.AsyncClient(base_url=str(client.base_url), headers=client.headers, timeout=30) as c:
            r = await c.post("/api/v1/jobs/claim", json={"queue_name": queue, "worker_id": "w", "limit": 1})
            (job,) = r.json()["jobs"]
            r = await c.post(f"/api/v1/jobs/{job['id']}/complete", json={"lease_id": job["lease_id"]})
            assert r.status_code == 200, r.text
            done.add(job["id"])
    return done


async def test_two_processes_share_the_ports_survive_a_killed_copy_and_stop_on_sigterm(aio_loop, dsn, tmp_path):
    env = clean_env(DATABASE_URL=dsn, SPOOLED_DATA_DIR=str(tmp_path))
    with trio.fail_after(150):
        async with spooled_server(env, "--processes", "2") as server:
            assert "(2 processes)" in server.stdout.decode()
            first = await both_listening(server)
            assert sorted(first) == [0, 1] and all(alive(p) for p in first.values()) and server.proc.pid not in \
                first.values()
            while await live_instances(dsn) != 2:        # two instances, each with its own loops
                await trio.sleep(0.1)
            grpc_address = re.search(r"gRPC on (\S+)", server.stdout.decode()).group(1)
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as anon:
                _, headers = await new_org(anon)
            async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as api:
                key = headers["Authorization"].split()[1]
                before = await drive(api, "mp", 10)
                assert await grpc_enqueue(grpc_address, key, "mp-grpc")

                os.kill(first[0], signal.SIGKILL)            # one copy dies; the other keeps serving
                during = await drive(api, "mp", 10)
                await server.wait_for_log(r"server process 0 \(pid %d\) exited with code -9" % first[0])
                while pids(server.log())[0] == first[0]:
                    await trio.sleep(0.05)
                replaced = pids(server.log())
                assert replaced[1] == first[1] and alive(replaced[0]) and not alive(first[0])
                after = await drive(api, "mp", 10)
                stats = (await api.get("/api/v1/queues/mp/stats")).json()
            assert len(before | during | after) == 30 and stats["pending_jobs"] == 0
            assert stats["processing_jobs"] == 0

            server.proc.send_signal(signal.SIGTERM)
            await server.proc.wait()
            assert server.proc.returncode == 0, server.log()[-3000:]
            assert not any(alive(p) for p in replaced.values())
            assert "received SIGTERM: stopping 2 server processes" in server.log()
            # both copies running at the signal drained and logged their stop (the killed one never did)
            with trio.move_on_after(60):
                while len(re.findall(r"spooled\.supervisor: stopped", server.log())) < 2:
                    await trio.sleep(0.05)
            assert len(re.findall(r"spooled\.supervisor: stopped", server.log())) == 2, server.log()[-6000:]
            assert len(re.findall(r"spooled\.supervisor: stopped", server.log())) == 2


def test_a_bad_process_count_is_one_sentence(tmp_path):
    for args, env, said in ((["--processes", "0"], {}, "--processes must be from 1 to 64, got 0"),
                            ([], {"SPOOLED_PROCESSES": "many"}, "SPOOLED_PROCESSES must be a number from 1 to 64")):
        done = run_cli("serve", *args, env=clean_env(SPOOLED_DATA_DIR=str(tmp_path), **env), timeout=60)
        assert done.returncode == 2 and done.stderr.startswith("spooled: ") and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


async def test_the_copies_stop_when_their_parent_is_killed(aio_loop, dsn, tmp_path):
    env = clean_env(DATABASE_URL=dsn, SPOOLED_DATA_DIR=str(tmp_path))
    with trio.fail_after(90):
        async with spooled_server(env, "--processes", "2") as server:
            copies = await both_listening(server)
            assert len(copies) == 2 and all(alive(p) for p in copies.values())
            # past the idle timeout of the worker thread that started them (Trio's, 10 s): a parent-death signal
            # tied to that thread (PR_SET_PDEATHSIG) stopped every copy here, with the parent alive
            await trio.sleep(11)
            assert "shutting down" not in server.log() and pids(server.log()) == copies, server.log()[-3000:]
            server.proc.kill()
            await server.proc.wait()
            while any(alive(p) for p in copies.values()):     # their lifeline pipe closed: they drain and exit
                await trio.sleep(0.05)
            # cleanly: each drained and logged its stop (stderr is shared with the dead parent's)
            with trio.move_on_after(60):
                while len(re.findall(r"spooled\.supervisor: stopped", server.log())) < 2:
                    await trio.sleep(0.05)
            assert len(re.findall(r"spooled\.supervisor: stopped", server.log())) == 2, server.log()[-6000:]
