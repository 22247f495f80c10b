"""`GET /metrics` (docs/operations.md "Metrics"): it parses with prometheus_client's own parser, and its figures
move as jobs move through REST and gRPC; route templates keep the HTTP series bounded; the job counts come from
one snapshot per interval shared by every instance; loops, the pool and the LISTEN connection report."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
import trio
from grpclib.exceptions import GRPCError
from prometheus_client.parser import text_string_to_metric_families
from trio_asyncio import aio_as_trio

from spooled.loops import periodic
from spooled.services.metrics import LATENCY_BUCKETS, LoopHealth, Metrics, observe_many
from spooled.store.db import open_database
from spooled.store.metrics import MetricsStore
from spooled.store.sql import Q
from spooled.transports.grpc.gen.spooled_grpc import QueueServiceStub
from tests.access import instance
from tests.conftest import make_settings
from tests.grpcio_gen import spooled_pb2 as pb
from tests.helpers import claim, enqueue
from tests.test_dashboard_summary import FILL, PLAN_ROWS
from tests.test_grpc import key_of, open_aio_channel, struct


class Scrape:
    """One /metrics scrape: sample values by (name, labels)."""

    def __init__(self, text: str):
        self.samples: dict[tuple[str, frozenset], float] = {}
        self.families = {}
        for family in text_string_to_metric_families(text):
            self.families[family.name] = family
            for s in family.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def get(self, name: str, **labels) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def series(self, name: str) -> list[dict]:
        return [dict(labels) for (n, labels) in self.samples if n == name]


async def scrape(client: httpx.AsyncClient, **headers) -> Scrape:
    r = await client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return Scrape(r.text)


async def test_job_figures_move_through_rest_and_grpc(server, client, api):
    with trio.fail_after(30):
        org, q = api.org_id, "metrics-q"
        before = await scrape(client)
        assert before.get("spooled_jobs_enqueued_total", org=org, queue=q) == 0
        waits0 = before.get("spooled_claim_wait_seconds_count", outcome="jobs")
        latency0 = before.get("spooled_job_queue_latency_seconds_count")

        # REST: 3 enqueued (one an idempotent replay, not counted), 2 claimed, 1 completed, 1 failed to retry
        await enqueue(api, q, idempotency_key="k1")
        await enqueue(api, q, idempotency_key="k1")
        await enqueue(api, q)
        await enqueue(api, q)
        jobs = await claim(api, q, limit=2, worker="w1")
        assert len(jobs) == 2
        r = await api.post(f"/api/v1/jobs/{jobs[0]['id']}/complete", json={"lease_id": jobs[0]["lease_id"]})
        assert r.status_code == 200
        r = await api.post(f"/api/v1/jobs/{jobs[1]['id']}/fail", json={"lease_id": jobs[1]["lease_id"],
                                                                        "error": "boom"})
        assert r.json()["will_retry"] is True
        assert (await claim(api, "metrics-empty", wait_secs=0.05)) == []

        mid = await scrape(client)
        assert mid.get("spooled_jobs_enqueued_total", org=org, queue=q) == 3
        assert mid.get("spooled_jobs_claimed_total", org=org, queue=q) == 2
        assert mid.get("spooled_jobs_completed_total", org=org, queue=q) == 1
        assert mid.get("spooled_jobs_failed_total", org=org, queue=q, outcome="retry") == 1
        assert mid.get("spooled_claim_wait_seconds_count", outcome="jobs") == waits0 + 1
        assert mid.get("spooled_claim_wait_seconds_count", outcome="empty") >= 1
        assert mid.get("spooled_job_queue_latency_seconds_count") == latency0 + 2
        # HTTP by route template and status, never by raw path
        assert mid.get("spooled_http_requests_total", method="POST", route="/api/v1/jobs", status="201") == 3
        assert mid.get("spooled_http_requests_total", method="POST", route="/api/v1/jobs", status="200") == 1
        assert mid.get("spooled_http_requests_total", method="POST", route="/api/v1/jobs/<job_id>/complete",
                       status="200") == 1
        assert mid.get("spooled_http_request_duration_seconds_count", method="POST",
                       route="/api/v1/jobs/claim") == 2
        assert not [s for s in mid.series("spooled_http_requests_total") if jobs[0]["id"] in s["route"]]

        # gRPC: enqueue, dequeue, complete, and a stale complete (FAILED_PRECONDITION)
        channel = await open_aio_channel(server.grpc_address)
        try:
            stub = QueueServiceStub(channel)
            md = {"x-api-key": key_of(api)}
            await aio_as_trio(stub.Enqueue)(pb.EnqueueRequest(queue_name=q, payload=struct({"g": 1})), metadata=md)
            got = await aio_as_trio(stub.Dequeue)(pb.DequeueRequest(queue_name=q, worker_id="g1", batch_size=5),
                                                  metadata=md)
            assert len(got.jobs) == 2    # the one enqueued now and the other REST one
            for j in got.jobs:
                await aio_as_trio(stub.Complete)(pb.CompleteRequest(job_id=j.id, lease_id=j.lease_id), metadata=md)
            with pytest.raises(GRPCError):
                await aio_as_trio(stub.Complete)(pb.CompleteRequest(job_id=got.jobs[0].id,
                                                                    lease_id=str(uuid.uuid4())), metadata=md)
        finally:
            channel.close()

        after = await scrape(client)
        assert after.get("spooled_jobs_enqueued_total", org=org, queue=q) == 4
        assert after.get("spooled_jobs_claimed_total", org=org, queue=q) == 4
        assert after.get("spooled_jobs_completed_total", org=org, queue=q) == 3
        method = "/spooled.v1.QueueService/"
        assert after.get("spooled_grpc_requests_total", method=method + "Enqueue", status="OK") == 1
        assert after.get("spooled_grpc_requests_total", method=method + "Dequeue", status="OK") == 1
        assert after.get("spooled_grpc_requests_total", method=method + "Complete", status="OK") == 2
        assert after.get("spooled_grpc_requests_total", method=method + "Complete",
                         status="FAILED_PRECONDITION") == 1
        assert after.get("spooled_grpc_request_duration_seconds_count", method=method + "Complete") == 3


async def test_snapshot_counts_jobs_once_for_every_instance(server, client, api, dsn, tmp_path):
    with trio.fail_after(30):
        org = api.org_id
        for _ in range(3):
            await enqueue(api, "snap-a")
        await enqueue(api, "snap-b", scheduled_at="2099-01-01T00:00:00Z")
        await claim(api, "snap-a", worker="w")
        own = server.services.metrics
        own.snapshot_secs = 0                 # due now: this instance recomputes
        assert (await own.run_once()).recomputed
        s = await scrape(client)
        assert s.get("spooled_jobs", org=org, queue="snap-a", state="pending") == 2
        assert s.get("spooled_jobs", org=org, queue="snap-a", state="processing") == 1
        assert s.get("spooled_jobs", org=org, queue="snap-b", state="scheduled") == 1
        assert s.get("spooled_metrics_snapshot_timestamp_seconds") > 0
        # another instance within the interval reads the stored counts instead of counting again
        async with open_database(dsn, min_size=1, max_size=1) as db:
            other = Metrics(MetricsStore(db), snapshot_secs=3600)
            assert not (await other.run_once()).recomputed
            assert other.snapshot.counts == own.snapshot.counts
            assert other.snapshot.taken_at == own.snapshot.taken_at


LOOPS = ("lease reaper", "heartbeat expirer", "scheduler", "instance heartbeat", "quota sync", "metrics snapshot")


async def test_loops_pool_and_listen_report(server, client, api):
    with trio.fail_after(30):
        # every loop starts with the server but its first pass may still be running (a loaded machine): wait for
        # each one's first success rather than racing it
        while True:
            s = await scrape(client)
            if all(s.get("spooled_loop_runs_total", loop=loop, outcome="ok") >= 1 for loop in LOOPS):
                break
            await trio.sleep(0.05)
        for loop in LOOPS:
            assert s.get("spooled_loop_runs_total", loop=loop, outcome="ok") >= 1, loop
            assert s.get("spooled_loop_last_success_timestamp_seconds", loop=loop) > 0, loop
            assert s.get("spooled_loop_consecutive_errors", loop=loop) == 0, loop
            assert ("spooled_loop_lag_seconds", frozenset({("loop", loop)})) in s.samples
        settings = server.services.settings
        assert s.get("spooled_db_pool_max_connections") == settings.pool_max_size
        assert s.get("spooled_db_connections_opened_total") >= 1
        assert s.get("spooled_listen_connected") == 1
        heard = s.get("spooled_listen_notifications_total")
        await enqueue(api, "listen-q")
        with trio.fail_after(5):
            while (await scrape(client)).get("spooled_listen_notifications_total") <= heard:
                await trio.sleep(0.02)
        assert "spooled_realtime_subscribers" in s.families


async def test_a_failing_loop_reports_its_errors():
    health = LoopHealth("flaky", 0.01, 0.0)
    calls = []

    async def run_once(limit):
        calls.append(limit)
        if len(calls) <= 3:
            raise RuntimeError("boom")
        return _Done()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: periodic.run("flaky", run_once, 0.01, limit=5, health=health,
                                                                  task_status=task_status))
            while health.errors < 3:
                assert health.consecutive_errors == health.errors
                await trio.sleep(0.005)
            while health.last_success is None:
                await trio.sleep(0.005)
            nursery.cancel_scope.cancel()
    assert health.errors == 3 and health.consecutive_errors == 0 and health.runs >= 4
    assert health.lag(health.last_success) == 0 and health.lag(health.last_success + 60) > 59


class _Done:
    total = 0

    def full(self, limit):
        return False


async def test_routes_stay_bounded(client, api):
    with trio.fail_after(30):
        for _ in range(5):
            assert (await api.get(f"/api/v1/jobs/{uuid.uuid4()}")).status_code == 404
            assert (await client.get(f"/no/such/{uuid.uuid4()}")).status_code == 404
        r = await client.request("BREW", "/api/v1/jobs")
        assert r.status_code == 405
        s = await scrape(client)
        assert s.get("spooled_http_requests_total", method="GET", route="/api/v1/jobs/<job_id>", status="404") == 5
        assert s.get("spooled_http_requests_total", method="GET", route="unmatched", status="404") == 5
        assert s.get("spooled_http_requests_total", method="other", route="unmatched", status="405") == 1
        assert all("/no/such" not in labels["route"] for labels in s.series("spooled_http_requests_total"))


def test_queue_series_are_capped():
    m = Metrics(None, max_series=2)
    for queue in ("a", "b", "c", "d"):
        m.series("org", queue).enqueued.inc()
    families = {f.name: f for f in m.registry.collect()}
    seen = {(s.labels["org"], s.labels["queue"]): s.value for s in families["spooled_jobs_enqueued"].samples
            if s.name.endswith("_total")}
    assert seen == {("org", "a"): 1, ("org", "b"): 1, ("_other", "_other"): 2}


def test_a_batch_of_latencies_counts_as_each_one_observed():
    """`observe_many` (the claim path's batch of queue latencies) leaves a histogram exactly as one `observe`
    per value: values on a bucket's bound, between bounds, past the last bound and zero."""
    one, many = Metrics(None), Metrics(None)
    values = [0.0, 0.001, 0.0011, 0.5, 0.5, 3.0, 1e9] + [b for b in LATENCY_BUCKETS] + [7.25] * 3
    for v in values:
        one.queue_latency.observe(v)
    observe_many(many.queue_latency, values)
    observe_many(many.queue_latency, [])

    def samples(m: Metrics) -> dict:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in m.registry.collect()
                if f.name == "spooled_job_queue_latency_seconds" for s in f.samples if not s.name.endswith("_created")}
    got = samples(many)
    assert got == samples(one)
    assert got[("spooled_job_queue_latency_seconds_count", ())] == len(values)


async def test_a_token_guards_metrics_when_set(aio_loop, tmp_path, dsn):
    settings = make_settings(tmp_path, dsn, metrics_token="scrape-" + "x" * 20)
    with trio.fail_after(30):
        async with instance(settings, dsn) as running, httpx.AsyncClient(base_url=running.http_url) as c:
            r = await c.get("/metrics")
            assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"
            assert (await c.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
            s = await scrape(c, Authorization=f"Bearer {settings.metrics_token}")
            assert s.get("spooled_db_pool_max_connections") == settings.pool_max_size


async def test_snapshot_plan_on_a_large_jobs_table(api, server):
    """The dashboard test's table (5% pending, 3% dead letters, 0.1% processing, 87% completed over two days):
    the snapshot reads each live state through its partial index and never the completed history.
    `SPOOLED_PLAN_ROWS=1000000 ... -k snapshot_plan -s` prints the plan and timing on a million jobs."""
    org = uuid.UUID(api.org_id)
    take = Q.metrics_snapshot_take

    async def plan(con):
        await con.execute(FILL, org, PLAN_ROWS)
        await con.execute("VACUUM ANALYZE jobs")
        rows = await con.fetch("EXPLAIN (ANALYZE, BUFFERS) " + take.sql, *take.args(interval=0.0))
        return "\n".join(r[0] for r in rows)

    text = await server.services.db.run(plan)
    print(f"== metrics_snapshot_take on {PLAN_ROWS} jobs\n{text}")
    assert "Seq Scan on jobs" not in text, text
    scans = re.findall(r"(?:Bitmap Index Scan on|Index (?:Only )?Scan using) (jobs_\w+) .*? rows=(\d+) loops=1", text)
    used = {index for index, _ in scans}
    assert {"jobs_ready_idx", "jobs_scheduled_idx", "jobs_deadletter_idx"} <= used, text
    assert used & {"jobs_lease_idx", "jobs_worker_idx"}, text        # processing: either partial index
    assert sum(int(n) for _, n in scans) <= PLAN_ROWS * 9 // 100 + 10, text   # live rows only, not the 87%
    server.services.metrics.snapshot_secs = 3600
    await server.services.metrics.run_once()                    # the stored result, as the next scrape serves it
    counts = {(o, q, s): n for o, q, s, n in server.services.metrics.snapshot.counts if o == api.org_id}
    assert sum(n for (_, _, s), n in counts.items() if s == "pending") == PLAN_ROWS * 5 // 100
    assert sum(n for (_, _, s), n in counts.items() if s == "deadletter") == PLAN_ROWS * 3 // 100
