#!/usr/bin/env python3
"""A contestant driver for the shared bench rig: the official SDK's `SpooledWorker` (PyPI `spooled`, threads)
against the server, as most users run workers. Runs with the SDK venv's python (`sdk_driver.sh`, with
`SPOOLED_SDK_PYTHON` from `scripts/bench/run.sh`); follows the rig's driver protocol (`../shared/bench/peers/common.py`: common flags, one
`RESULT {json}` line on stdout).

Workload A: `client.jobs.bulk_enqueue` (100 jobs a request) fills the queue, then one `SpooledWorker` with
`--concurrency` slots (the rig's 20) and `--poll-interval` processes them: it claims `limit = free slots`, runs a
no-op handler and completes each job with its own `POST /jobs/{id}/complete` (the SDK's way; a job counts once
its `job:completed` event fires, i.e. after the server answered the complete). Workload B: an idle worker, then
one `client.jobs.create` at a time; latency = client clock before the create -> handler entry. The worker is
stopped (drained, deregistered) at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
import uuid

from spooled import SpooledClient
from spooled.worker import SpooledWorker


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def percentile(ms: list[float], q: float) -> float | None:
    return ms[max(0, min(len(ms) - 1, math.ceil(q / 100 * len(ms)) - 1))] if ms else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workload", choices=["A", "B"], required=True)
    p.add_argument("--dsn")
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--latency-n", type=int, default=500)
    p.add_argument("--deadline", type=float, default=120.0)
    p.add_argument("--job-timeout", type=float, default=5.0)
    p.add_argument("--gap-ms", type=float, default=2.0)
    p.add_argument("--base-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--poll-interval", type=float, default=1.0, help="SpooledWorker poll_interval (SDK default 1.0)")
    a = p.parse_args()
    end = time.monotonic() + a.deadline
    client = SpooledClient(api_key=a.api_key, base_url=a.base_url, timeout=30)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    lock = threading.Lock()
    processed = 0
    first_start: float | None = None
    done_at: float | None = None
    started: dict[int, float] = {}
    finished = threading.Event()
    target = a.n if a.workload == "A" else None

    def handler(ctx):
        nonlocal first_start
        t = time.perf_counter()
        with lock:
            if first_start is None:
                first_start = t
            seq = ctx.payload.get("seq") if isinstance(ctx.payload, dict) else None
            if seq is not None:
                started[seq] = t
        return None

    def on_completed(_event) -> None:
        nonlocal processed, done_at
        with lock:
            processed += 1
            if target is not None and processed >= target:
                done_at = time.perf_counter()
                finished.set()

    config = {"client": "spooled SDK SpooledWorker", "concurrency": a.concurrency, "poll_interval": a.poll_interval}
    result: dict
    if a.workload == "A":
        t0 = time.perf_counter()
        enqueued = 0
        for s in range(0, a.n, 100):
            r = client.jobs.bulk_enqueue({"queue_name": queue, "jobs": [
                {"payload": {"i": i}} for i in range(s, min(a.n, s + 100))]})
            enqueued += r.success_count
        t1 = time.perf_counter()
    worker = SpooledWorker(client, queue, concurrency=a.concurrency, poll_interval=a.poll_interval)
    worker.process(handler)
    worker.on("job:completed", on_completed)
    runner = threading.Thread(target=worker.start, daemon=True)
    worker_t0 = time.perf_counter()
    runner.start()
    if a.workload == "A":
        finished.wait(max(0.0, end - time.monotonic()))
        result = {"workload": "A", "n": a.n, "enqueued": enqueued, "enqueue_s": round(t1 - t0, 4),
                  "enqueue_jobs_per_s": round(enqueued / (t1 - t0), 1), "processed": processed,
                  "timed_out": not finished.is_set(), "config": config}
        if first_start is not None and done_at is not None and done_at > first_start:
            result.update(process_s=round(done_at - first_start, 4),
                          process_jobs_per_s=round(processed / (done_at - first_start), 1),
                          process_s_from_worker_start=round(done_at - worker_t0, 4))
        else:
            result.update(process_s=None, process_jobs_per_s=None)
    else:
        for seq in range(3):     # warm-up jobs, not measured
            client.jobs.create({"queue_name": queue, "payload": {"warm": seq}})
        time.sleep(min(3.0, 3 * a.poll_interval + 0.5))
        sent: dict[int, float] = {}
        for seq in range(a.latency_n):
            if time.monotonic() > end:
                break
            sent[seq] = time.perf_counter()
            client.jobs.create({"queue_name": queue, "payload": {"seq": seq}})
            wait_until = time.monotonic() + a.job_timeout
            while seq not in started and time.monotonic() < wait_until:
                time.sleep(0.0005)
            time.sleep(a.gap_ms / 1000)
        ms = sorted((started[s] - sent[s]) * 1000 for s in sent if s in started)
        result = {"workload": "B", "started": len(ms), "p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
                  "p99_ms": percentile(ms, 99), "max_ms": ms[-1] if ms else None,
                  "mean_ms": sum(ms) / len(ms) if ms else None, "config": config}
    worker.stop()
    runner.join(30)
    client.close()
    print("RESULT " + json.dumps(result, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
