"""Small helpers shared by the REST tests."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import trio


async def enqueue(api: httpx.AsyncClient, queue: str = "q", payload: dict | None = None, **fields) -> dict:
    r = await api.post("/api/v1/jobs", json={"queue_name": queue, "payload": payload or {"n": 1}, **fields})
    assert r.status_code in (200, 201), r.text
    return r.json()


async def claim(api: httpx.AsyncClient, queue: str = "q", limit: int = 1, worker: str = "w1", **fields) -> list[dict]:
    r = await api.post("/api/v1/jobs/claim", json={"queue_name": queue, "worker_id": worker, "limit": limit,
                                                   **fields})
    assert r.status_code == 200, r.text
    return r.json()["jobs"]


async def job(api: httpx.AsyncClient, job_id: str) -> dict:
    r = await api.get(f"/api/v1/jobs/{job_id}")
    assert r.status_code == 200, r.text
    return r.json()


def parse(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts)


def utc(**delta) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(**delta)


async def run_for_result(argv: list[str], *, what: str, cwd: str, env: dict[str, str], timeout: float,
                         failure: type[AssertionError] = AssertionError) -> dict:
    """Run a subprocess that reports on a `RESULT <json>` line (the SDK and browser tiers); the server keeps
    serving meanwhile. A non-zero exit or no RESULT line raises `failure` with the process's output."""
    with trio.fail_after(timeout):
        done = await trio.run_process(argv, cwd=cwd, env=env, capture_stdout=True, capture_stderr=True, check=False)
    out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise failure(f"{what} exited {done.returncode}\n--- stdout\n{out[-6000:]}\n--- stderr\n{err[-8000:]}")
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise failure(f"{what} printed no RESULT line\n{out[-3000:]}\n{err[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])
