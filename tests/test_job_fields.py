"""Job fields of the contract (any JSON payload, parent_job_id, a write-only completion_webhook_secret, the
workflow fields), every SDK worker status on heartbeat, and the listing's search over payload text."""

from __future__ import annotations

import grpc
import trio
import trio_asyncio

from tests.grpcio_gen import spooled_pb2 as pb
from tests.grpcio_gen import spooled_pb2_grpc
from tests.helpers import claim, enqueue, job
from tests.test_migrations import apply_first_release, connect, run

PAYLOADS = ["text", [1, "two", {"3": None}], 42, 1.5, True, None, {"a": {"b": [1]}}]


async def test_payload_is_any_json_value(api, server):
    with trio.fail_after(60):
        ids = []
        for p in PAYLOADS:
            r = await api.post("/api/v1/jobs", json={"queue_name": "anyp", "payload": p})
            assert r.status_code == 201, (p, r.text)
            assert r.json()["payload"] == p
            ids.append(r.json()["id"])
            assert (await job(api, r.json()["id"]))["payload"] == p
        r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "anyp", "jobs": [{"payload": p} for p in PAYLOADS]})
        assert r.json()["success_count"] == len(PAYLOADS) and r.json()["failure_count"] == 0
        listed = (await api.get("/api/v1/jobs", params={"queue_name": "anyp", "limit": 100})).json()
        assert len(listed) == 2 * len(PAYLOADS) and {j["job_type"] for j in listed} == {""}
        assert (await api.get("/api/v1/jobs", params={"q": "two"})).status_code == 200
        got = await claim(api, "anyp", limit=len(PAYLOADS))
        assert [j["payload"] for j in got] == PAYLOADS
        # over gRPC a payload that is not an object travels as {"value": ...}
        key = api.headers["Authorization"].split(" ", 1)[1]

        def get(jid):
            with grpc.insecure_channel(server.grpc_address) as ch:
                return spooled_pb2_grpc.QueueServiceStub(ch).GetJob(
                    pb.GetJobRequest(job_id=jid), metadata=(("x-api-key", key),), timeout=20).job
        text_job = await trio.to_thread.run_sync(get, ids[0])
        assert text_job.payload.fields["value"].string_value == "text"


async def test_parent_job_id_and_write_only_webhook_secret(api, other_api, server):
    with trio.fail_after(30):
        parent = await enqueue(api, "fam")
        r = await api.post("/api/v1/jobs", json={
            "queue_name": "fam", "payload": {}, "parent_job_id": parent["id"],
            "completion_webhook": "https://example.test/hook", "completion_webhook_secret": "s3cret"})
        assert r.status_code == 201, r.text
        child = r.json()
        for view in (child, await job(api, child["id"]), *(await api.get("/api/v1/jobs?queue_name=fam")).json()):
            assert "s3cret" not in str(view) and "completion_webhook_secret" not in view
        got = await job(api, child["id"])
        assert got["parent_job_id"] == parent["id"] and got["completion_webhook"] == "https://example.test/hook"
        assert (got["workflow_id"], got["dependency_mode"], got["dependencies_met"]) == (None, None, True)
        assert (await job(api, parent["id"]))["parent_job_id"] is None
        stored = await server.services.db.run(lambda con: con.fetchval(
            "SELECT completion_webhook_secret FROM jobs WHERE id = $1::uuid", child["id"]))
        assert stored == "s3cret"
        (leased,) = await claim(api, "fam", limit=1)
        assert "completion_webhook_secret" not in leased
        # a parent that is not a job of this organization: 422 naming the field, nothing written
        foreign = await enqueue(other_api, "fam")
        before = len((await api.get("/api/v1/jobs?queue_name=fam")).json())
        for bad in (foreign["id"], "00000000-0000-4000-8000-000000000001", "not-an-id"):
            r = await api.post("/api/v1/jobs", json={"queue_name": "fam", "payload": {}, "parent_job_id": bad})
            assert r.status_code == 422 and r.json()["details"]["field"] == "parent_job_id", r.text
        r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "fam", "jobs": [
            {"payload": 1}, {"payload": 2, "parent_job_id": foreign["id"]}]})
        assert r.status_code == 422 and r.json()["details"]["field"] == "jobs[1].parent_job_id"
        r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "fam", "jobs": [
            {"payload": 1, "parent_job_id": parent["id"]}]})
        assert r.json()["success_count"] == 1
        assert len((await api.get("/api/v1/jobs?queue_name=fam")).json()) == before + 1


async def test_search_matches_payload_text(api):
    with trio.fail_after(30):
        a = await enqueue(api, "srch", {"customer": "Zebra Corp", "n": 1})
        b = await enqueue(api, "srch", ["needle-in-an-array"])
        await enqueue(api, "srch", {"customer": "other"})
        ids = lambda r: {j["id"] for j in r.json()}  # noqa: E731
        assert ids(await api.get("/api/v1/jobs", params={"q": "zebra"})) == {a["id"]}
        assert ids(await api.get("/api/v1/jobs", params={"q": "NEEDLE"})) == {b["id"]}
        assert ids(await api.get("/api/v1/jobs", params={"q": "'; DROP TABLE jobs; --"})) == set()
        assert ids(await api.get("/api/v1/jobs", params={"q": "_"})) == set()        # LIKE wildcards are literal
        assert ids(await api.get("/api/v1/jobs/dlq", params={"q": "zebra"})) == set()


async def register(api, wid: str, queue: str = "wq") -> None:
    r = await api.post("/api/v1/workers/register", json={"queue_name": queue, "hostname": "h", "worker_id": wid})
    assert r.status_code in (200, 201)


async def test_heartbeat_accepts_every_sdk_worker_status(api):
    with trio.fail_after(30):
        await register(api, "ws")
        for status, drain in (("healthy", False), ("degraded", False)):
            r = await api.post("/api/v1/workers/ws/heartbeat", json={"current_jobs": 0, "status": status})
            assert r.json() == {"acknowledged": True, "should_drain": drain}
            assert (await api.get("/api/v1/workers/ws")).json()["status"] == status
        # offline: the worker says it is stopping, handled as a deregistration (its jobs are released)
        held = await enqueue(api, "wq")
        await claim(api, "wq", worker="ws")
        r = await api.post("/api/v1/workers/ws/heartbeat", json={"current_jobs": 1, "status": "offline"})
        assert r.status_code == 200 and r.json() == {"acknowledged": True, "should_drain": False}
        assert (await api.get("/api/v1/workers/ws")).json()["status"] == "offline"
        back = await job(api, held["id"])
        assert (back["status"], back["last_error"], back["assigned_worker_id"]) == ("pending", "worker lost", None)
        # a later heartbeat revives it; draining asks it to drain and sticks
        r = await api.post("/api/v1/workers/ws/heartbeat", json={"current_jobs": 0})
        assert (await api.get("/api/v1/workers/ws")).json()["status"] == "healthy"
        r = await api.post("/api/v1/workers/ws/heartbeat", json={"current_jobs": 0, "status": "draining"})
        assert r.json()["should_drain"] is True
        r = await api.post("/api/v1/workers/ws/heartbeat", json={"current_jobs": 0, "status": "offline"})
        assert r.json()["should_drain"] is False
        assert (await api.get("/api/v1/workers/ws")).json()["status"] == "offline"
        r = await api.post("/api/v1/workers/nobody/heartbeat", json={"current_jobs": 0, "status": "offline"})
        assert r.status_code == 404


async def test_0002_clears_leases_that_0_1_0_left_on_finished_jobs(aio_loop, empty_dsn):
    from spooled.store.schema import ensure_schema
    con = await connect(empty_dsn)
    try:
        await apply_first_release(con)
        org = await trio_asyncio.aio_as_trio(con.fetchval)(
            "INSERT INTO organizations (name, slug) VALUES ('Old', 'old') RETURNING id")
        await run(con, """INSERT INTO jobs (id, organization_id, queue_name, status, payload, max_retries,
                                            timeout_seconds, run_at, created_at, updated_at, completed_at, lease_id,
                                            assigned_worker_id)
                          VALUES ('00000000-0000-4000-8000-0000000000c1', $1, 'q', 'completed', '{}', 3, 300, now(),
                                  now(), now(), now(), '00000000-0000-4000-8000-0000000000e1', 'w'),
                                 ('00000000-0000-4000-8000-0000000000c2', $1, 'q', 'scheduled', '{}', 3, 300, now(),
                                  now(), now(), NULL, '00000000-0000-4000-8000-0000000000e2', 'w')""", org)
        await run(con, ensure_schema)
        rows = await trio_asyncio.aio_as_trio(con.fetch)(
            "SELECT status::text, lease_id, assigned_worker_id, completed_lease_id::text, dependencies_met "
            "FROM jobs ORDER BY id")
        assert [tuple(r) for r in rows] == [
            ("completed", None, None, "00000000-0000-4000-8000-0000000000e1", True),
            ("scheduled", None, None, None, True)]
    finally:
        await trio_asyncio.aio_as_trio(con.close)()
