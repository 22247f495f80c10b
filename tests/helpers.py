"""Small helpers shared by the REST tests."""

from __future__ import annotations

import datetime as dt

import httpx


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
