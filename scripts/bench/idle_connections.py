"""Memory and latency with thousands of idle connections (docs/benchmarks.md "Idle connections").

    .venv/bin/python scripts/bench/idle_connections.py [--connections 2000] [--polls 2000] [--requests 500]

Starts `python -m spooled` on a throwaway embedded PostgreSQL (a temp data dir, removed afterwards), then:
1. baseline: the server's RSS, and the latency of `--requests` authenticated GETs of a job by a separate client;
2. `--connections` keep-alive connections that each made one request and then sit idle: RSS, and the same GETs;
3. `--polls` workers long-polling (`POST /jobs/claim` with `wait_secs: 30` on empty queues, polling again when a
   poll ends; spread over organizations so no per-organization cap applies): RSS, and the same GETs.
Prints one JSON object with the figures. Not a test: run it by hand (RSS and latency depend on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parents[2]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start_server(data_dir: str, extra_env: dict) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "SPOOLED_DATA_DIR": data_dir, "SPOOLED_DEFAULT_PLAN": "enterprise",
           "SPOOLED_HTTP_KEEP_ALIVE_SECS": "600", "SPOOLED_HTTP_HEADER_TIMEOUT_SECS": "600",
           "SPOOLED_LOG_LEVEL": "WARNING", **extra_env}
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "spooled", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        m = re.search(r"REST on (http://\S+?),", line)
        if m:
            return proc, m.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError("the server did not start")


async def latencies(url: str, headers: dict, job_id: str, n: int) -> dict:
    out = []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as c:
        for _ in range(n):
            t = time.perf_counter()
            r = await c.get(f"/api/v1/jobs/{job_id}")
            out.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text
    out.sort()
    return {"p50_ms": round(statistics.median(out), 2), "p99_ms": round(out[int(len(out) * 0.99) - 1], 2),
            "mean_ms": round(statistics.fmean(out), 2)}


async def idle_connection(url: str, held: list, ready: trio.Semaphore) -> None:
    u = httpx.URL(url)
    stream = await trio.open_tcp_stream(u.host, u.port)
    await stream.send_all(b"GET /health/live HTTP/1.1\r\nHost: bench\r\n\r\n")
    got = b""
    while b"alive" not in got:
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise RuntimeError("closed")
        got += chunk
    held.append(stream)
    ready.release()


async def long_poll(client: httpx.AsyncClient, queue: str, started: list) -> None:
    """A worker's loop: poll again as soon as a poll ends empty (every 30 s), until cancelled."""
    started.append(1)
    while True:
        r = await client.post("/api/v1/jobs/claim", json={"queue_name": queue, "worker_id": "w", "wait_secs": 30})
        assert r.status_code == 200, r.text


async def main(args) -> dict:
    data_dir = tempfile.mkdtemp(prefix="spooled-idle-", dir="/tmp")
    os.chmod(data_dir, 0o755)
    proc, url = start_server(data_dir, {"SPOOLED_MAX_STREAMS": str(args.polls + 100)})
    result: dict = {"connections": args.connections, "polls": args.polls, "requests": args.requests}
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            orgs = []
            for i in range(max(1, args.polls // 400 + 1)):
                r = await c.post("/api/v1/organizations", json={"name": f"bench {i}"})
                orgs.append({"Authorization": f"Bearer {r.json()['api_key']['key']}"})
            r = await c.post("/api/v1/jobs", json={"queue_name": "q", "payload": {"n": 1}}, headers=orgs[0])
            job_id = r.json()["id"]
        await latencies(url, orgs[0], job_id, 50)            # warm up
        result["baseline"] = {"rss_mib": round(rss_kib(proc.pid) / 1024, 1),
                              **await latencies(url, orgs[0], job_id, args.requests)}
        held: list = []
        ready = trio.Semaphore(0, max_value=args.connections)
        async with trio.open_nursery() as nursery:
            for _ in range(args.connections):
                nursery.start_soon(idle_connection, url, held, ready)
        await trio.sleep(1)
        rss = rss_kib(proc.pid)
        result["idle"] = {"open": len(held), "rss_mib": round(rss / 1024, 1),
                          "kib_per_connection": round((rss - result["baseline"]["rss_mib"] * 1024) / len(held), 1),
                          **await latencies(url, orgs[0], job_id, args.requests)}
        for s in held:
            await s.aclose()
        await trio.sleep(1)
        if args.polls:
            limits = httpx.Limits(max_connections=args.polls + 10, max_keepalive_connections=args.polls + 10)
            clients = [httpx.AsyncClient(base_url=url, headers=h, timeout=60, limits=limits) for h in orgs]
            started: list = []
            async with trio.open_nursery() as nursery:
                for i in range(args.polls):
                    nursery.start_soon(long_poll, clients[i % len(clients)], f"empty{i % 50}", started)
                while len(started) < args.polls:
                    await trio.sleep(0.1)
                await trio.sleep(3)                           # all parked
                rss = rss_kib(proc.pid)
                result["long_polls"] = {"waiting": args.polls, "rss_mib": round(rss / 1024, 1),
                                        "kib_per_poll": round((rss - result["baseline"]["rss_mib"] * 1024)
                                                              / args.polls, 1),
                                        **await latencies(url, orgs[0], job_id, args.requests)}
                nursery.cancel_scope.cancel()
            for c in clients:
                await c.aclose()
        result["after"] = {"rss_mib": round(rss_kib(proc.pid) / 1024, 1)}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=2000)
    p.add_argument("--polls", type=int, default=2000)
    p.add_argument("--requests", type=int, default=500)
    print(json.dumps(trio.run(main, p.parse_args()), indent=2))
