#!/usr/bin/env python3
"""Server CPU, PostgreSQL CPU and commits per job of the request path, one server at a time, on a throwaway cluster:

    .venv/bin/python scripts/bench/request_cost.py                          # our server, every shape
    .venv/bin/python scripts/bench/request_cost.py --server double          # the rig's asyncio test double
    .venv/bin/python scripts/bench/request_cost.py --shapes rest-claim1 --py-spy /tmp/claim1.svg
    .venv/bin/python scripts/bench/request_cost.py --repo /tmp/main-export  # another checkout's server

CPU time, not wall time, is the figure: the machine is shared, and a request's CPU cost does not depend on how
busy the other core is. For each shape the server is started on a fresh database (`python -m spooled` with
DATABASE_URL, or the rig's `mock_server.py --spooled`), an enterprise organization is created, --n jobs are
filled through `POST /jobs/bulk` (not measured), and then the measured phase runs with --workers concurrent
clients. Reported per job of the measured phase: the server's CPU (all its threads, /proc/<pid>/task/*/schedstat),
PostgreSQL's (every backend of the cluster), commits (`pg_stat_database.xact_commit` of the database) and, for
what it is worth here, jobs per second; also the empty claims/Dequeues of the phase (`empty_polls`, each followed
by a 10 ms sleep, as the rig's drivers do), this client's own CPU per job and the machine's idle cores over the
phase (near 0: the figures were taken on a saturated machine). The cluster runs with fsync off unless --durable
(the rig's profile: every commit waits for its WAL flush).

Shapes (the rig's contestants of the same name, without their enqueue phase):
  rest-claim1      POST /jobs/claim {limit 1} then POST /jobs/{id}/complete {lease_id}, per worker, until --n done
  rest-claim100b   claim 100 + one POST /jobs/complete per claim
  rest-enqueue1    POST /jobs, one job each, --workers in flight
  rest-bulk        POST /jobs/bulk, 100 jobs each, --workers in flight (the fill of the other shapes, measured)
  grpc-dequeue1    Dequeue{batch_size 1} + Complete (grpcio), per worker
  grpc-enqueue1    unary Enqueue, --workers in flight
  grpc-bulk        EnqueueBulk, 100 jobs each, --workers in flight
  grpc-process     ProcessJobs: one bidi stream keeping --window (20) jobs leased: `dequeue{batch_size=free}` when
                   half is free, a `complete` per job on the stream (the rig's spooled-grpc-process driver)
  grpc-stream      --workers StreamJobs streams + a unary Complete per job (the rig's spooled-grpc-stream)
  rest-longpoll    workload B: --workers long polls (wait_secs 5), one job enqueued at a time; p50/p99 ms
  grpc-stream-latency   workload B over --workers StreamJobs streams (+ unary Complete), the producer a unary
                   Enqueue on the same grpcio channel, one job at a time (the rig's spooled-grpc-stream, B)
  grpc-process-latency  workload B over one held ProcessJobs (dequeue batch 1, never re-sent: the server holds it
                   until a job comes; a complete per job on the stream), unary Enqueue producer on the same channel
                   (the rig's spooled-grpc-process-hold)

The client is a minimal asyncio HTTP/1.1 keep-alive client (the rig's `--client raw`) and grpcio's aio stubs, in
this process; their CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

HERE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from statement_cost import Cluster, as_postgres, dsn_for  # noqa: E402,F401

RIG = Path(os.environ.get("BENCH_RIG", HERE.parent / "shared" / "bench"))
if not RIG.exists():
    RIG = Path("/work/shared/bench")
RIG_PYTHON = os.environ.get("BENCH_PYTHON", "/tmp/benchdeps/venv/bin/python")
STATS_FLUSH_SECS = 11.0   # PostgreSQL 15: an idle backend flushes its pending statistics after 10 s
SHAPES = ("rest-claim1", "rest-claim100b", "rest-enqueue1", "grpc-dequeue1", "grpc-enqueue1", "rest-longpoll",
          "rest-bulk", "grpc-bulk", "grpc-process", "grpc-stream", "grpc-stream-latency", "grpc-process-latency")


EMPTY = [0]   # empty claims / Dequeues of the measured phase (each followed by a 10 ms sleep)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def task_cpu(pid: int) -> float:
    """CPU seconds of every thread of `pid` so far."""
    total = 0
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((t / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9


def machine_idle() -> float:
    """Idle CPU seconds of the whole machine so far (/proc/stat: idle + iowait, in USER_HZ ticks)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = []
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (t / "children").read_text().split()]
        except FileNotFoundError:
            pass
    return out


def cluster_cpu(postmaster: int) -> float:
    """CPU seconds of the live backends (and other children) of the cluster; the server holds its connections,
    so its backends live through a measured phase."""
    total = 0.0
    for c in children(postmaster):
        try:
            total += task_cpu(c)
        except FileNotFoundError:
            pass
    return total


def postmaster_pid(cluster: Cluster) -> int:
    return int(Path(cluster.pgdata, "postmaster.pid").read_text().split()[0])


# -- the client ----------------------------------------------------------------------------------------------
class Http:
    """HTTP/1.1 keep-alive JSON client on asyncio streams (as the rig's raw client)."""

    def __init__(self, port: int, key: str, conns: int):
        self.port = port
        self.hdr = f"Host: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAuthorization: Bearer {key}\r\n"
        self.idle: list = []
        self.sem = asyncio.Semaphore(conns)

    async def post(self, path: str, obj) -> tuple[int, dict]:
        body = json.dumps(obj).encode()
        head = f"POST {path} HTTP/1.1\r\n{self.hdr}Content-Length: {len(body)}\r\n\r\n".encode()
        async with self.sem:
            r, w = self.idle.pop() if self.idle else await asyncio.open_connection("127.0.0.1", self.port)
            w.write(head + body)
            status = int((await r.readline()).split()[1])
            length = 0
            while (h := await r.readline()) not in (b"\r\n", b""):
                k, _, v = h.partition(b":")
                if k.lower() == b"content-length":
                    length = int(v)
            data = await r.readexactly(length) if length else b""
            self.idle.append((r, w))
        return status, (json.loads(data) if data else {})

    def close(self) -> None:
        for _, w in self.idle:
            w.close()


class Server:
    def __init__(self, kind: str, repo: Path, dsn: str, workdir: str, extra_env: dict):
        self.http_port, self.grpc_port = free_port(), free_port()
        env = {**os.environ, "DATABASE_URL": dsn, **extra_env}
        if kind == "double":
            base = [RIG_PYTHON, str(RIG / "peers" / "mock_server.py"), "--spooled"]
            env.pop("PYTHONPATH", None)
        else:
            base = [str(repo / ".venv" / "bin" / "python") if (repo / ".venv").exists() else sys.executable,
                    "-m", "spooled"]
            env["SPOOLED_DATA_DIR"] = workdir
        self.base, self.env, self.repo = base, env, repo
        self.log = open(os.path.join(workdir, f"server-{self.http_port}.log"), "w")
        self.proc = subprocess.Popen([*base, "--http", f"127.0.0.1:{self.http_port}", "--grpc",
                                      f"127.0.0.1:{self.grpc_port}"], env=env, cwd=repo, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    async def ready(self) -> None:
        for _ in range(600):
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: see {self.log.name}")
            try:
                r, w = await asyncio.open_connection("127.0.0.1", self.http_port)
                w.write(b"GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
                line = await r.readline()
                w.close()
                if b" 200 " in line:
                    s = socket.create_connection(("127.0.0.1", self.grpc_port), timeout=1)
                    s.close()
                    return
            except OSError:
                pass
            await asyncio.sleep(0.1)
        raise SystemExit("server never became ready")

    def create_org(self) -> str:
        out = subprocess.run([*self.base, "create-org", f"bench{uuid.uuid4().hex[:6]}", "--plan", "enterprise",
                              "--json"], env=self.env, cwd=self.repo, capture_output=True, text=True, check=True)
        data = json.loads(out.stdout.strip().splitlines()[-1])
        key = data["api_key"]
        return key["key"] if isinstance(key, dict) else key

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# -- shapes --------------------------------------------------------------------------------------------------
async def fill(http: Http, queue: str, n: int, workers: int = 1) -> int:
    """`n` jobs in `POST /jobs/bulk` requests of 100, `workers` in flight; how many were created."""
    starts = iter(range(0, n, 100))
    done = 0

    async def worker() -> None:
        nonlocal done
        for s in starts:
            st, body = await http.post("/api/v1/jobs/bulk", {"queue_name": queue, "jobs": [
                {"payload": {"i": i}} for i in range(s, min(n, s + 100))]})
            assert st == 200 and body["success_count"] == min(100, n - s), (st, body)
            done += body["success_count"]
    await asyncio.gather(*(worker() for _ in range(workers)))
    return done


async def rest_claim(http: Http, queue: str, n: int, workers: int, limit: int, batch: bool) -> int:
    done = 0
    errors = 0

    async def worker() -> None:
        nonlocal done, errors
        wid = f"w-{uuid.uuid4().hex[:8]}"
        while done < n:
            st, body = await http.post("/api/v1/jobs/claim", {"queue_name": queue, "worker_id": wid, "limit": limit,
                                                              "lease_duration_secs": 30})
            jobs = body.get("jobs") or []
            if not jobs:
                EMPTY[0] += 1
                if st != 200:
                    errors += 1
                if done >= n or errors > 100:
                    return
                await asyncio.sleep(0.01)
                continue
            if batch:
                st, body = await http.post("/api/v1/jobs/complete", {"worker_id": wid, "completions": [
                    {"job_id": j["id"], "lease_id": j["lease_id"]} for j in jobs]})
                done += len(jobs) - len(body.get("failed") or []) if st == 200 else 0
            else:
                for j in jobs:
                    st, _ = await http.post(f"/api/v1/jobs/{j['id']}/complete", {"worker_id": wid,
                                                                                 "lease_id": j["lease_id"]})
                    done += st == 200
                    errors += st != 200
    await asyncio.gather(*(worker() for _ in range(workers)))
    return done


async def rest_enqueue(http: Http, queue: str, n: int, workers: int) -> int:
    todo = iter(range(n))
    done = 0

    async def worker() -> None:
        nonlocal done
        for i in todo:
            st, _ = await http.post("/api/v1/jobs", {"queue_name": queue, "payload": {"i": i}})
            done += st in (200, 201)
    await asyncio.gather(*(worker() for _ in range(workers)))
    return done


def grpc_stub(port: int):
    import grpc
    from google.protobuf import struct_pb2  # noqa: F401
    from tests.grpcio_gen import spooled_pb2_grpc
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return channel, spooled_pb2_grpc.QueueServiceStub(channel)


async def on_channel(channel, worker, workers: int) -> None:
    """Run `workers` copies of `worker` on the channel, then close it."""
    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        await channel.close()


async def grpc_dequeue(port: int, key: str, queue: str, n: int, workers: int) -> int:
    from spooled.transports.grpc.gen import spooled_pb2 as pb
    channel, stub = grpc_stub(port)
    md = (("x-api-key", key),)
    done = 0

    async def worker() -> None:
        nonlocal done
        wid = f"w-{uuid.uuid4().hex[:8]}"
        while done < n:
            r = await stub.Dequeue(pb.DequeueRequest(queue_name=queue, worker_id=wid, lease_duration_secs=30,
                                                     batch_size=1), metadata=md)
            if not r.jobs:
                EMPTY[0] += 1
                await asyncio.sleep(0.01)
                continue
            for j in r.jobs:
                await stub.Complete(pb.CompleteRequest(job_id=j.id, worker_id=wid, lease_id=j.lease_id), metadata=md)
                done += 1
    await on_channel(channel, worker, workers)
    return done


async def grpc_enqueue(port: int, key: str, queue: str, n: int, workers: int) -> int:
    from google.protobuf import struct_pb2

    from spooled.transports.grpc.gen import spooled_pb2 as pb
    channel, stub = grpc_stub(port)
    md = (("x-api-key", key),)
    todo = iter(range(n))
    done = 0

    async def worker() -> None:
        nonlocal done
        for i in todo:
            s = struct_pb2.Struct()
            s.update({"i": i})
            await stub.Enqueue(pb.EnqueueRequest(queue_name=queue, payload=s), metadata=md)
            done += 1
    await on_channel(channel, worker, workers)
    return done


async def grpc_bulk(port: int, key: str, queue: str, n: int, workers: int) -> int:
    from google.protobuf import struct_pb2

    from spooled.transports.grpc.gen import spooled_pb2 as pb
    channel, stub = grpc_stub(port)
    md = (("x-api-key", key),)
    starts = iter(range(0, n, 100))
    done = 0

    def job(i: int):
        s = struct_pb2.Struct()
        s.update({"i": i})
        return pb.EnqueueRequest(payload=s)

    async def worker() -> None:
        nonlocal done
        for s in starts:
            r = await stub.EnqueueBulk(pb.EnqueueBulkRequest(queue_name=queue, jobs=[
                job(i) for i in range(s, min(n, s + 100))]), metadata=md)
            done += sum(x.created for x in r.results)
    await on_channel(channel, worker, workers)
    return done


async def grpc_process(port: int, key: str, queue: str, n: int, window: int) -> int:
    """The rig's `process_loop` (peers/grpc_driver.py): one ProcessJobs stream, `window` jobs leased at most."""
    import grpc

    from spooled.transports.grpc.gen import spooled_pb2 as pb
    channel, stub = grpc_stub(port)
    md = (("x-api-key", key),)
    wid = f"w-{uuid.uuid4().hex[:8]}"
    done = 0
    try:
        call = stub.ProcessJobs(metadata=md)
        inbox: asyncio.Queue = asyncio.Queue()

        async def reader() -> None:
            try:
                while (r := await call.read()) is not grpc.aio.EOF:
                    inbox.put_nowait(r)
            finally:
                inbox.put_nowait(None)
        rt = asyncio.create_task(reader())
        asked = inflight = 0
        while done < n:
            free = window - asked - inflight
            if asked == 0 and free > 0 and (free >= (window + 1) // 2 or inflight == 0):
                await call.write(pb.ProcessRequest(dequeue=pb.DequeueRequest(
                    queue_name=queue, worker_id=wid, lease_duration_secs=30, batch_size=free)))
                asked = free
            try:
                r = await asyncio.wait_for(inbox.get(), 0.01)
            except asyncio.TimeoutError:
                asked = 0
                continue
            if r is None:
                break
            kind = r.WhichOneof("response")
            if kind == "job":
                asked, inflight = max(0, asked - 1), inflight + 1
                await call.write(pb.ProcessRequest(complete=pb.CompleteRequest(
                    job_id=r.job.id, worker_id=wid, lease_id=r.job.lease_id)))
            elif kind == "complete":
                inflight -= 1
                done += r.complete.success
            elif kind == "error":
                inflight = max(0, inflight - 1)
        await call.done_writing()
        while await inbox.get() is not None:
            pass
        await rt
    finally:
        await channel.close()
    return done


async def grpc_stream(port: int, key: str, queue: str, n: int, workers: int) -> int:
    """The rig's `stream_loop`: `workers` StreamJobs streams, a unary Complete per job."""
    from spooled.transports.grpc.gen import spooled_pb2 as pb
    channel, stub = grpc_stub(port)
    md = (("x-api-key", key),)
    done = 0
    finished = asyncio.Event()

    async def worker() -> None:
        nonlocal done
        wid = f"w-{uuid.uuid4().hex[:8]}"
        call = stub.StreamJobs(pb.StreamJobsRequest(queue_name=queue, worker_id=wid, lease_duration_secs=30),
                               metadata=md)
        try:
            async for job in call:
                await stub.Complete(pb.CompleteRequest(job_id=job.id, worker_id=wid, lease_id=job.lease_id),
                                    metadata=md)
                done += 1
                if done >= n:
                    finished.set()
        finally:
            call.cancel()

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    try:
        await finished.wait()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await channel.close()
    return done


async def grpc_latency(port: int, key: str, queue: str, n: int, workers: int, style: str
                       ) -> tuple[int, list[float]]:
    """Workload B over gRPC as the rig's grpc_driver.py runs it: `style` "stream" (`workers` StreamJobs streams,
    a unary Complete per job) or "process" (one ProcessJobs stream, `dequeue{batch_size 1}` never re-sent, a
    `complete` per job on the stream); the producer a unary Enqueue on the same channel, one job at a time, the
    latency from the Enqueue call to the job's arrival at its worker."""
    import grpc
    from google.protobuf import struct_pb2

    from spooled.transports.grpc.gen import spooled_pb2 as pb
    channel, stub = grpc_stub(port)
    md = (("x-api-key", key),)
    waiters: dict[int, asyncio.Future] = {}
    loop = asyncio.get_running_loop()

    def on_start(job) -> None:
        v = job.payload.fields.get("seq")
        fut = waiters.get(int(v.number_value)) if v is not None else None
        if fut is not None and not fut.done():
            fut.set_result(time.perf_counter())

    async def streamer() -> None:
        wid = f"w-{uuid.uuid4().hex[:8]}"
        call = stub.StreamJobs(pb.StreamJobsRequest(queue_name=queue, worker_id=wid, lease_duration_secs=30),
                               metadata=md)
        try:
            async for job in call:
                on_start(job)
                await stub.Complete(pb.CompleteRequest(job_id=job.id, worker_id=wid, lease_id=job.lease_id),
                                    metadata=md)
        finally:
            call.cancel()

    async def processor() -> None:
        wid = f"w-{uuid.uuid4().hex[:8]}"
        call = stub.ProcessJobs(metadata=md)
        try:
            await call.write(pb.ProcessRequest(dequeue=pb.DequeueRequest(
                queue_name=queue, worker_id=wid, lease_duration_secs=30, batch_size=1)))
            while (r := await call.read()) is not grpc.aio.EOF:
                kind = r.WhichOneof("response")
                if kind == "job":
                    on_start(r.job)
                    await call.write(pb.ProcessRequest(complete=pb.CompleteRequest(
                        job_id=r.job.id, worker_id=wid, lease_id=r.job.lease_id)))
                elif kind in ("complete", "error"):    # the window is free again: ask for the next job
                    await call.write(pb.ProcessRequest(dequeue=pb.DequeueRequest(
                        queue_name=queue, worker_id=wid, lease_duration_secs=30, batch_size=1)))
        finally:
            call.cancel()

    tasks = [asyncio.create_task(streamer()) for _ in range(workers)] if style == "stream" else \
        [asyncio.create_task(processor())]
    await asyncio.sleep(0.5)
    lat: list[float] = []
    try:
        for seq in range(-5, n):
            fut = waiters[seq] = loop.create_future()
            s = struct_pb2.Struct()
            s.update({"seq": seq})
            t0 = time.perf_counter()
            await stub.Enqueue(pb.EnqueueRequest(queue_name=queue, payload=s), metadata=md)
            try:
                t1 = await asyncio.wait_for(fut, 5)
                if seq >= 0:
                    lat.append((t1 - t0) * 1000)
            except asyncio.TimeoutError:
                pass
            waiters.pop(seq, None)
            await asyncio.sleep(0.002)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await channel.close()
    return len(lat), lat


async def rest_longpoll(http: Http, producer: Http, queue: str, n: int, workers: int) -> tuple[int, list[float]]:
    started: dict[int, float] = {}
    sent: dict[int, float] = {}
    arrived = asyncio.Event()
    stop = False

    async def worker() -> None:
        wid = f"w-{uuid.uuid4().hex[:8]}"
        while not stop:
            _, body = await http.post("/api/v1/jobs/claim", {"queue_name": queue, "worker_id": wid, "limit": 1,
                                                             "lease_duration_secs": 30, "wait_secs": 2})
            for j in body.get("jobs") or []:
                started[j["payload"]["seq"]] = time.perf_counter()
                arrived.set()
                await http.post(f"/api/v1/jobs/{j['id']}/complete", {"worker_id": wid, "lease_id": j["lease_id"]})
    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await asyncio.sleep(0.5)
    for seq in range(n):
        arrived.clear()
        sent[seq] = time.perf_counter()
        await producer.post("/api/v1/jobs", {"queue_name": queue, "payload": {"seq": seq}})
        try:
            await asyncio.wait_for(arrived.wait(), 5)
        except asyncio.TimeoutError:
            pass
        await asyncio.sleep(0.002)
    stop = True
    await asyncio.sleep(0.05)
    lat = [(started[s] - sent[s]) * 1000 for s in sent if s in started]
    await asyncio.wait(tasks, timeout=3)
    for t in tasks:
        t.cancel()
    return len(lat), lat


async def measure(shape: str, a, cluster: Cluster) -> dict:
    db = f"rc_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(cluster.dsn)
    await admin.execute(f'CREATE DATABASE "{db}"')
    await admin.close()
    dsn = dsn_for(cluster.dsn, db)
    workdir = tempfile.mkdtemp(prefix="rc-")
    env = dict(kv.split("=", 1) for kv in a.env)
    server = Server(a.server, a.repo, dsn, workdir, env)
    http = producer = None
    out: dict = {"shape": shape, "server": a.server if a.server == "double" else str(a.repo)}
    try:
        await server.ready()
        key = server.create_org()
        http = Http(server.http_port, key, a.workers + 2)
        producer = Http(server.http_port, key, 2)
        queue = f"q-{uuid.uuid4().hex[:6]}"
        n = a.n
        if shape in ("rest-claim1", "rest-claim100b", "grpc-dequeue1", "grpc-process", "grpc-stream"):
            await fill(http, queue, n)
        # warm up: a few requests of the measured kind (imports, caches, prepared statements)
        if shape.startswith("rest"):
            await rest_enqueue(http, "warm", 20, 2)
            await rest_claim(http, "warm", 20, 2, 1, False)
        else:
            await grpc_enqueue(server.grpc_port, key, "warm", 20, 2)
            await grpc_dequeue(server.grpc_port, key, "warm", 20, 2)
        stats = await asyncpg.connect(dsn)
        commits = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        await asyncio.sleep(STATS_FLUSH_SECS)   # backends flush their counters when idle, at most every 10 s
        await stats.execute("SELECT pg_stat_clear_snapshot()")
        idle0, i0 = await stats.fetchval(commits), time.perf_counter()
        await asyncio.sleep(STATS_FLUSH_SECS)   # the idle server's own commits (its loops), subtracted below
        await stats.execute("SELECT pg_stat_clear_snapshot()")
        c0, ct0 = await stats.fetchval(commits), time.perf_counter()
        idle_rate = (c0 - idle0 - 2) / (ct0 - i0)
        pm = postmaster_pid(cluster)
        s0, p0, t0 = task_cpu(server.proc.pid), cluster_cpu(pm), time.perf_counter()
        me0, idle0_cpu = task_cpu(os.getpid()), machine_idle()
        spy = None
        if a.py_spy:
            target = a.py_spy.replace("{shape}", shape)
            spy = subprocess.Popen([a.py_spy_bin, "record", "--pid", str(server.proc.pid), "--rate", "250",
                                    "--format", a.py_spy_format, "-o", target, *(["--native"] if a.native else []),
                                    "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1.0)
            s0, p0, t0 = task_cpu(server.proc.pid), cluster_cpu(pm), time.perf_counter()
            me0, idle0_cpu = task_cpu(os.getpid()), machine_idle()
        lat = None
        EMPTY[0] = 0
        if shape == "rest-claim1":
            done = await rest_claim(http, queue, n, a.workers, 1, False)
        elif shape == "rest-claim100b":
            done = await rest_claim(http, queue, n, a.workers, 100, True)
        elif shape == "rest-enqueue1":
            done = await rest_enqueue(http, queue, n, a.workers)
        elif shape == "rest-bulk":
            done = await fill(http, queue, n, a.workers)
        elif shape == "grpc-dequeue1":
            done = await grpc_dequeue(server.grpc_port, key, queue, n, a.workers)
        elif shape == "grpc-enqueue1":
            done = await grpc_enqueue(server.grpc_port, key, queue, n, a.workers)
        elif shape == "grpc-bulk":
            done = await grpc_bulk(server.grpc_port, key, queue, n, a.workers)
        elif shape == "grpc-process":
            done = await grpc_process(server.grpc_port, key, queue, n, a.window)
        elif shape == "grpc-stream":
            done = await grpc_stream(server.grpc_port, key, queue, n, a.workers)
        elif shape == "rest-longpoll":
            done, lat = await rest_longpoll(http, producer, queue, min(n, a.latency_jobs), a.workers)
        elif shape in ("grpc-stream-latency", "grpc-process-latency"):
            done, lat = await grpc_latency(server.grpc_port, key, queue, min(n, a.latency_jobs), a.workers,
                                           shape.split("-")[1])
        else:
            raise SystemExit(f"unknown shape {shape}")
        t1, s1, p1 = time.perf_counter(), task_cpu(server.proc.pid), cluster_cpu(pm)
        me1, idle1_cpu = task_cpu(os.getpid()), machine_idle()
        await asyncio.sleep(STATS_FLUSH_SECS)
        await stats.execute("SELECT pg_stat_clear_snapshot()")
        c1 = await stats.fetchval(commits)
        idle_commits = idle_rate * (time.perf_counter() - ct0 - (t1 - t0))
        await stats.close()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        rss = int(next(line.split()[1] for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines()
                       if line.startswith("VmHWM")))
        out.update(jobs=done, server_us_per_job=round((s1 - s0) / done * 1e6, 1),
                   pg_us_per_job=round((p1 - p0) / done * 1e6, 1), commits_per_job=round((c1 - c0 - 2 - idle_commits) / done, 3),
                   jobs_per_s=round(done / (t1 - t0)), empty_polls=EMPTY[0],
                   client_us_per_job=round((me1 - me0) / done * 1e6, 1),
                   machine_idle_cores=round((idle1_cpu - idle0_cpu) / (t1 - t0), 2), peak_rss_mb=round(rss / 1024, 1))
        if lat:
            lat.sort()
            out.update(p50_ms=round(statistics.median(lat), 2), p99_ms=round(lat[int(len(lat) * 0.99) - 1], 2))
        return out
    finally:
        for c in (http, producer):
            if c is not None:
                c.close()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", choices=["ours", "double"], default="ours")
    p.add_argument("--repo", type=Path, default=HERE, help="the checkout whose server runs (default: this one)")
    p.add_argument("--shapes", default=",".join(SHAPES[:5]))
    p.add_argument("--n", type=int, default=3000, help="jobs per measured phase")
    p.add_argument("--latency-jobs", type=int, default=300)
    p.add_argument("--workers", type=int, default=20)
    p.add_argument("--window", type=int, default=20, help="grpc-process: jobs leased per stream")
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server (repeat)")
    p.add_argument("--py-spy", help="record a py-spy profile of the server per shape ({shape} in the name)")
    p.add_argument("--py-spy-bin", default="/tmp/pyspy/bin/py-spy")
    p.add_argument("--py-spy-format", default="flamegraph", choices=["flamegraph", "speedscope", "raw"])
    p.add_argument("--native", action="store_true")
    p.add_argument("--durable", action="store_true", help="fsync on, as the rig's PostgreSQL (default: off)")
    a = p.parse_args()
    a.repo = a.repo.resolve()
    cluster = Cluster()
    if a.durable:   # the rig's profile: every commit waits for its WAL flush (fsync is a reloadable setting)
        con = await asyncpg.connect(cluster.dsn)
        await con.execute("ALTER SYSTEM SET fsync = on")
        await con.execute("SELECT pg_reload_conf()")
        await con.close()
    try:
        for _ in range(a.reps):
            for shape in a.shapes.split(","):
                print(json.dumps(await measure(shape, a, cluster)), flush=True)
    finally:
        cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
