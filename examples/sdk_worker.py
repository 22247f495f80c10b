"""A worker with the official Python SDK (`pip install spooled`, in its own virtualenv: its import name is
`spooled` too, so it must not share one with the server).

    SPOOLED_URL=http://127.0.0.1:8080 SPOOLED_API_KEY=sk_live_... python sdk_worker.py

It registers as a worker, claims jobs from SPOOLED_QUEUE (default `emails`) under a lease that the SDK keeps
alive with heartbeats, completes each with its handler's result (an exception fails it: retried with backoff,
dead-lettered when out of retries), and on Ctrl-C or SIGTERM stops claiming, finishes what it holds and
deregisters. SPOOLED_MAX_JOBS=N stops it after N jobs (the test suite runs it that way).
"""

import os
import signal
import threading

from spooled import SpooledClient
from spooled.worker import SpooledWorker

URL = os.environ.get("SPOOLED_URL", "http://127.0.0.1:8080")
QUEUE = os.environ.get("SPOOLED_QUEUE", "emails")
MAX_JOBS = int(os.environ.get("SPOOLED_MAX_JOBS", "0"))


def send_email(ctx):
    """The job's work. Whatever it returns is stored as the job's result."""
    to = ctx.payload["to"]
    if "@" not in to:
        raise ValueError(f"not an address: {to!r}")      # fails the job: the server retries it later
    print(f"job {ctx.job_id}: sending to {to} (try {ctx.retry_count + 1})", flush=True)
    return {"sent_to": to}


def main() -> None:
    client = SpooledClient(api_key=os.environ["SPOOLED_API_KEY"], base_url=URL)
    worker = SpooledWorker(client, QUEUE, concurrency=4, poll_interval=0.2)
    worker.process(send_email)
    done = threading.Event()
    finished = [0]

    def count(_event) -> None:
        finished[0] += 1
        if MAX_JOBS and finished[0] >= MAX_JOBS:
            done.set()
    worker.on("job:completed", count)
    worker.on("job:failed", count)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    runner = threading.Thread(target=worker.start, daemon=True)
    runner.start()
    done.wait()
    worker.stop()                     # stops claiming, waits for running jobs, deregisters
    runner.join(30)
    client.close()
    print(f"stopped after {finished[0]} jobs", flush=True)


if __name__ == "__main__":
    main()
