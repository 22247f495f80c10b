"""The SDK tier for the existing surface (issue 10 "Done when"): the official SDK drives, against the real
server, every method it has that we serve for jobs (and the DLQ), queues, workers, its gRPC client and both
worker runtimes. Each script bounds its calls; the runner bounds the script."""

from __future__ import annotations

import pytest

from functools import partial

import httpx
import trio

from spooled.supervisor import serve
from tests.conftest import make_settings, new_org
from tests.sdk.runner import run_sdk

SCRIPTS = {   # script -> every check it must pass (so a check that silently stopped running fails too)
    "jobs.py": {"jobs.create", "jobs.create.any_payload_and_fields", "jobs.get", "jobs.create_and_get", "jobs.list",
                "jobs.get_stats", "jobs.batch_status", "jobs.boost_priority", "jobs.bulk_enqueue",
                "jobs.claim+heartbeat+complete", "jobs.complete.worker_only", "jobs.fail+history",
                "jobs.stale_lease_is_409", "jobs.retry", "jobs.cancel", "jobs.create.invalid",
                "jobs.dlq.list+retry+purge", "async.jobs"},
    "queues_workers.py": {"queues.update_config", "queues.get", "queues.list", "queues.get_stats",
                          "queues.pause+resume", "queues.delete", "workers.register", "workers.heartbeat",
                          "workers.list", "workers.get", "workers.deregister", "async.queues+workers"},
    "grpc_client.py": {"grpc.wait_for_ready", "grpc.workers.register+heartbeat", "grpc.enqueue+get_job",
                       "grpc.dequeue+renew+complete", "grpc.fail", "grpc.get_queue_stats", "grpc.stream_jobs",
                       "grpc.process_jobs", "grpc.workers.deregister"},
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
async def test_sdk_surface(server, client, script):
    _, headers = await new_org(client, f"SDK {script}")
    key = headers["Authorization"].split()[1]
    report = await run_sdk(script, base_url=server.http_url, api_key=key, grpc_address=server.grpc_address,
                           timeout=180)
    assert not report["failed"] and set(report["passed"]) == SCRIPTS[script], report


async def test_sdk_worker_runtimes(aio_loop, tmp_path, dsn):
    """SpooledWorker and AsyncSpooledWorker end to end. The reaper runs every 0.2 s here (the shared fixture's
    never does), so a failed job's retry becomes due and is claimed again; retries back off from 50 ms."""
    settings = make_settings(tmp_path, dsn, reaper_interval_secs=0.2)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        with trio.fail_after(30):
            running = await nursery.start(partial(serve, settings, dsn, shutdown=shutdown))
        try:
            async with httpx.AsyncClient(base_url=running.http_url, timeout=10) as c:
                _, headers = await new_org(c, "SDK runtimes")
                for q in ("sdk-rt-sync", "sdk-rt-async"):
                    r = await c.put(f"/api/v1/queues/{q}/config", headers=headers,
                                    json={"retry_backoff_base_secs": 0.05, "retry_backoff_max_secs": 0.1})
                    assert r.status_code in (200, 201), r.text
            report = await run_sdk("worker_runtime.py", base_url=running.http_url,
                                   api_key=headers["Authorization"].split()[1], timeout=180)
            assert not report["failed"] and set(report["passed"]) == {"worker.sync", "worker.async"}, report
        finally:
            shutdown.set()
