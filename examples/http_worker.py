"""A worker over plain HTTP with httpx (`pip install httpx`): no SDK, just the REST API.

    SPOOLED_URL=http://127.0.0.1:8080 SPOOLED_API_KEY=sk_live_... python http_worker.py

The loop: register, then long-poll `POST /jobs/claim` (the server answers as soon as a job is there, or after
`wait_secs` with none), run each job, and complete it with its lease (`lease_id` fences a worker whose lease ran
out: its complete is refused with 409 and the job is someone else's). A failure is reported with
`POST /jobs/{id}/fail`, which schedules the retry. SIGTERM/Ctrl-C: finish the jobs in hand, deregister, exit.
SPOOLED_MAX_JOBS=N stops it after N jobs.

A job enqueued with a W3C `traceparent` comes back with it: continue the producer's trace from there.
"""

import os
import signal
import socket

import httpx

URL = os.environ.get("SPOOLED_URL", "http://127.0.0.1:8080")
QUEUE = os.environ.get("SPOOLED_QUEUE", "emails")
MAX_JOBS = int(os.environ.get("SPOOLED_MAX_JOBS", "0"))
LEASE_SECS = 60
stopping = False


def handle(payload: dict) -> dict:
    to = payload["to"]
    if "@" not in to:
        raise ValueError(f"not an address: {to!r}")
    return {"sent_to": to}


def main() -> None:
    global stopping
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: globals().__setitem__("stopping", True))
    api = httpx.Client(base_url=URL, headers={"Authorization": f"Bearer {os.environ['SPOOLED_API_KEY']}"},
                       timeout=40)
    worker = api.post("/api/v1/workers/register", json={"queue_name": QUEUE, "hostname": socket.gethostname(),
                                                        "worker_type": "example-httpx", "max_concurrency": 10})
    worker.raise_for_status()
    worker_id = worker.json()["id"]
    done = 0
    try:
        while not stopping and not (MAX_JOBS and done >= MAX_JOBS):
            r = api.post("/api/v1/jobs/claim", json={"queue_name": QUEUE, "worker_id": worker_id, "limit": 10,
                                                     "lease_duration_secs": LEASE_SECS, "wait_secs": 5})
            r.raise_for_status()
            jobs = r.json()["jobs"]
            for job in jobs:
                fence = {"worker_id": worker_id, "lease_id": job["lease_id"]}
                try:
                    result = handle(job["payload"])
                except Exception as exc:
                    r = api.post(f"/api/v1/jobs/{job['id']}/fail", json={**fence, "error": str(exc)})
                    print(f"job {job['id']} failed: {exc} (will retry: {r.json().get('will_retry')})", flush=True)
                else:
                    r = api.post(f"/api/v1/jobs/{job['id']}/complete", json={**fence, "result": result})
                    if r.status_code == 409:
                        print(f"job {job['id']}: lease lost before completing", flush=True)
                    else:
                        r.raise_for_status()
                        print(f"job {job['id']} done: {result}", flush=True)
                done += 1
            api.post(f"/api/v1/workers/{worker_id}/heartbeat", json={"current_jobs": 0})
    finally:
        api.post(f"/api/v1/workers/{worker_id}/deregister")
        api.close()
    print(f"stopped after {done} jobs", flush=True)


if __name__ == "__main__":
    main()
