"""Startup, health, auth, error bodies, schema application, CLI and clean SIGTERM shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import asyncpg
import attrs
import httpx
import pytest
import trio
import trio_asyncio

from spooled.domain.models import Job
from spooled.domain.states import TRANSITIONS, JobStatus
from spooled.store.jobs import CompleteOutcome
from spooled.store.schema import SchemaMismatch, ensure_schema
from spooled.store.sql import Q
from tests.conftest import ROOT


async def test_health_endpoints(client):
    r = await client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy" and body["database"] is True
    assert isinstance(body["uptime_seconds"], int) and body["uptime_seconds"] >= 0  # the SDK parses an int
    assert (await client.get("/health/live")).status_code == 200
    r = await client.get("/health/ready")
    assert r.status_code == 200 and r.json()["database"] is True
    assert r.headers["x-request-id"]


async def test_request_id_is_echoed(client):
    r = await client.get("/health/live", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer sp_live_unknownkey", "Basic abc", "Bearer"])
async def test_missing_or_bad_key_is_401(client, header):
    headers = {"Authorization": header} if header is not None else {}
    r = await client.get("/api/v1/jobs", headers=headers)
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized", "code": "UNAUTHORIZED", "message": "Missing or invalid API key",
                        "status": 401}


async def test_good_key_and_revoked_key(api, client):
    assert (await api.get("/api/v1/jobs")).status_code == 200
    r = await api.post("/api/v1/api-keys", json={"name": "ci"})
    assert r.status_code == 201
    created = r.json()
    assert created["key"].startswith("sk_live_") and created["name"] == "ci"
    second = {"Authorization": f"Bearer {created['key']}"}
    assert (await client.get("/api/v1/jobs", headers=second)).status_code == 200
    listed = (await api.get("/api/v1/api-keys")).json()
    assert {k["id"] for k in listed} >= {created["id"]}
    assert all("key" not in k and "key_hash" not in k for k in listed)
    assert (await api.delete(f"/api/v1/api-keys/{created['id']}")).status_code == 204
    assert (await client.get("/api/v1/jobs", headers=second)).status_code == 401
    assert (await api.get(f"/api/v1/api-keys/{created['id']}")).json()["is_active"] is False


async def test_keys_are_stored_only_as_hashes(api, server):
    r = await api.post("/api/v1/api-keys", json={"name": "x"})
    key = r.json()["key"]
    rows = await server.services.db.run(lambda con: con.fetch("SELECT * FROM api_keys"))
    for row in rows:
        assert all(key not in str(v) for v in row.values())
    plan = "\n".join(r[0] for r in await server.services.db.run(lambda con: con.fetch(
        "EXPLAIN (FORMAT TEXT) " + Q.api_key_lookup.sql, b"x" * 32)))
    assert "api_keys_key_hash_key" in plan  # one unique-index lookup, no scan over all keys


async def test_last_used_at_is_recorded(api):
    await api.get("/api/v1/jobs")
    keys = (await api.get("/api/v1/api-keys")).json()
    assert keys[0]["last_used_at"] is not None


async def test_error_bodies(api):
    r = await api.post("/api/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "BAD_REQUEST" and r.json()["status"] == 400
    r = await api.post("/api/v1/jobs", json={"queue_name": 5, "priority": "high"})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_error" and body["code"] == "VALIDATION_ERROR"
    assert set(body["details"]["fields"]) == {"queue_name", "priority", "payload"}
    assert body["details"]["field"] in body["details"]["fields"]
    r = await api.get("/api/v1/no/such/route")
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
    r = await api.post("/api/v1/jobs", content=b"[1,2]")
    assert r.status_code == 422


async def test_body_over_limit_is_413_and_writes_nothing(api, server):
    big = {"queue_name": "q", "payload": {"blob": "x" * (11 * 1024 * 1024)}}
    r = await api.post("/api/v1/jobs", json=big)
    assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"
    payload_over = {"queue_name": "q", "payload": {"blob": "x" * (1024 * 1024 + 10)}}
    r = await api.post("/api/v1/jobs", json=payload_over)
    assert r.status_code == 413
    assert await server.services.db.run(lambda con: con.fetchval("SELECT count(*) FROM jobs")) == 0
    assert await server.services.db.run(lambda con: con.fetchval("SELECT count(*) FROM queues")) == 0


async def test_rejected_requests_write_nothing(api, server):
    await api.post("/api/v1/jobs", json={"queue_name": "bad name!", "payload": {}})
    await api.post("/api/v1/jobs", json={"queue_name": "q"})
    await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}, "parent_job_id": "not-a-job"})
    await api.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}, "priority": 1000})
    assert await server.services.db.run(lambda con: con.fetchval("SELECT count(*) FROM jobs")) == 0


async def test_registration_closed_needs_admin_key(aio_loop, tmp_path, dsn):
    from functools import partial

    from spooled.supervisor import serve
    from tests.conftest import make_settings
    settings = make_settings(tmp_path, dsn, registration_open=False, admin_key="adm-" + "k" * 40)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        running = await nursery.start(partial(serve, settings, dsn, shutdown=shutdown))
        async with httpx.AsyncClient(base_url=running.http_url) as c:
            r = await c.post("/api/v1/organizations", json={"name": "x"})
            assert r.status_code == 401
            r = await c.post("/api/v1/organizations", json={"name": "x"}, headers={"X-Admin-Key": "wrong"})
            assert r.status_code == 401
            r = await c.post("/api/v1/organizations", json={"name": "x"}, headers={"X-Admin-Key": settings.admin_key})
            assert r.status_code == 201
        shutdown.set()


async def test_org_is_own_only(api, other_api):
    r = await api.get(f"/api/v1/organizations/{api.org_id}")
    assert r.status_code == 200 and r.json()["id"] == api.org_id
    assert (await api.get(f"/api/v1/organizations/{other_api.org_id}")).status_code == 404
    assert (await api.get("/api/v1/organizations/not-a-uuid")).status_code == 404
    r = await api.patch(f"/api/v1/organizations/{api.org_id}",
                        json={"name": "Renamed", "settings": {"github_webhook_secret": "s3cret", "github_queue": "gh"}})
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "Renamed"
    assert body["settings"] == {"github_queue": "gh", "github_webhook_secret_set": True}


def test_state_enum_matches_schema(dsn):
    async def read():
        con = await asyncpg.connect(dsn)
        try:
            return await con.fetchval("SELECT enum_range(NULL::job_status)::text[]")
        finally:
            await con.close()
    import asyncio
    assert asyncio.run(read()) == [s.value for s in JobStatus]
    assert {s for pair in TRANSITIONS for s in pair if isinstance(s, JobStatus)} | \
        {d for v in TRANSITIONS.values() for d in v} == set(JobStatus)


def test_every_named_statement_prepares(dsn):
    async def prepare_all():
        con = await asyncpg.connect(dsn)
        try:
            for stmt in Q.all() + [s.scoped for s in Q.all() if s.scoped]:    # both texts of scoped ones
                try:
                    await con.prepare(stmt.sql)
                except asyncpg.PostgresError as exc:
                    raise AssertionError(f"{stmt.name}: {exc}") from None
        finally:
            await con.close()
    import asyncio
    asyncio.run(prepare_all())
    assert len(Q.all()) > 20


def test_the_claim_returns_the_job_fields_in_order(dsn):
    """JobStore.claim builds each Job from the claim's row by position: its columns are Job's fields in the
    model's order, then run_at (for the group claim, which JobStore.claim runs: the job's wait in seconds instead,
    then the row's claimer and `more`)."""
    async def columns(stmt):
        con = await asyncpg.connect(dsn)
        try:
            return [a.name for a in (await con.prepare(stmt.sql)).get_attributes()]
        finally:
            await con.close()
    import asyncio
    fields = [a.name for a in attrs.fields(Job)] + ["run_at"]
    assert asyncio.run(columns(Q.job_claim)) == fields
    assert asyncio.run(columns(Q.job_claim_group)) == fields[:-1] + ["queued_secs", "claimer", "more"]
    # and JobStore.complete builds each CompleteOutcome from the completion's row by position
    assert asyncio.run(columns(Q.job_complete)) == ["done", "prior_status", "replay", "queue_name"] == [
        a.name if a.name != "queue" else "queue_name" for a in attrs.fields(CompleteOutcome)]


async def test_schema_applied_to_empty_database_and_idempotent(aio_loop, empty_dsn):
    con = await trio_asyncio.aio_as_trio(asyncpg.connect)(empty_dsn)
    try:
        assert (await trio_asyncio.aio_as_trio(ensure_schema)(con)).fresh is True
        assert not await trio_asyncio.aio_as_trio(ensure_schema)(con)
        n = await trio_asyncio.aio_as_trio(con.fetchval)("SELECT count(*) FROM information_schema.tables "
                                                         "WHERE table_schema = 'public'")
        assert n >= 8
    finally:
        await trio_asyncio.aio_as_trio(con.close)()


async def test_schema_refuses_a_foreign_database(aio_loop, empty_dsn):
    con = await trio_asyncio.aio_as_trio(asyncpg.connect)(empty_dsn)
    try:
        await trio_asyncio.aio_as_trio(con.execute)("CREATE TABLE customers (id int)")
        with pytest.raises(SchemaMismatch, match="customers"):
            await trio_asyncio.aio_as_trio(ensure_schema)(con)
        assert await trio_asyncio.aio_as_trio(con.fetchval)("SELECT to_regclass('public.jobs')") is None
    finally:
        await trio_asyncio.aio_as_trio(con.close)()


def test_setup_script_is_idempotent(empty_dsn):
    cmd = [sys.executable, str(ROOT / "scripts" / "setup_db.py"), "--database-url", empty_dsn]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and "already" in second.stdout


def _spawn(env_extra: dict, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOOLED_", "DATABASE_URL"))}
    env.update(env_extra)
    return subprocess.Popen([sys.executable, "-m", "spooled", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0",
                             *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_listening(proc: subprocess.Popen, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("Spooled listening"):
            return line.split("REST on ")[1].split(",")[0].strip()
    proc.kill()
    raise AssertionError(f"server did not start: {proc.stderr.read()}")


def _sigterm_and_check(proc: subprocess.Popen) -> str:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert time.monotonic() - t0 < 10
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    return err


def test_subprocess_serves_and_stops_cleanly_on_sigterm(dsn, tmp_path):
    proc = _spawn({"DATABASE_URL": dsn, "SPOOLED_DATA_DIR": str(tmp_path)})
    url = _wait_listening(proc)
    r = httpx.get(url + "/health/ready", timeout=10)
    assert r.status_code == 200
    res = subprocess.run([sys.executable, "-m", "spooled", "create-org", "Acme", "--plan", "pro", "--json"],
                         cwd=ROOT, env={**os.environ, "DATABASE_URL": dsn}, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["api_key"]["key"].startswith("sk_live_") and out["organization"]["plan_tier"] == "pro"
    r = httpx.post(url + "/api/v1/jobs", json={"queue_name": "q", "payload": {"a": 1}},
                   headers={"Authorization": f"Bearer {out['api_key']['key']}"}, timeout=10)
    assert r.status_code == 201
    # a long poll open during shutdown ends promptly
    _sigterm_and_check(proc)


def test_embedded_postgres_when_no_database_url(tmp_path):
    import tempfile
    data_dir = tempfile.mkdtemp(prefix="spooled-embedded-")
    os.chmod(data_dir, 0o755)
    try:
        proc = _spawn({"SPOOLED_DATA_DIR": data_dir})
        url = _wait_listening(proc, timeout=120)
        # create-org reaches the running server's database through the data directory
        res = subprocess.run([sys.executable, "-m", "spooled", "create-org", "Acme", "--json"], cwd=ROOT,
                             env={**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
                                  "SPOOLED_DATA_DIR": data_dir}, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        key = json.loads(res.stdout)["api_key"]["key"]
        r = httpx.get(url + "/api/v1/jobs", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert r.status_code == 200 and r.json() == []
        _sigterm_and_check(proc)
        # the embedded cluster it started is stopped again
        status = subprocess.run(["runuser", "-u", "postgres", "--"] * (os.geteuid() == 0) +
                                [str(__import__("spooled.embedded_pg").embedded_pg.find_bindir() / "pg_ctl"),
                                 "status", "-D", os.path.join(data_dir, "pg")], capture_output=True)
        assert status.returncode != 0
        # create-org also works while no server runs (it starts and stops the cluster itself)
        res = subprocess.run([sys.executable, "-m", "spooled", "create-org", "Beta", "--json"], cwd=ROOT,
                             env={**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
                                  "SPOOLED_DATA_DIR": data_dir}, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
    finally:
        import shutil
        shutil.rmtree(data_dir, ignore_errors=True)


def test_no_postgres_anywhere_is_one_clear_sentence(tmp_path):
    env = {"PATH": "/nonexistent", "SPOOLED_DATA_DIR": str(tmp_path), "SPOOLED_PG_BIN": "/nonexistent",
           "HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c",
                          "import glob, spooled.embedded_pg as e; glob.glob = lambda p: []; "
                          "from spooled.cli import main; raise SystemExit(main(['--http','127.0.0.1:0']))"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "apt-get install postgresql" in res.stderr and "DATABASE_URL" in res.stderr
    assert "Traceback" not in res.stderr


def test_bad_bind_is_a_clear_error():
    res = subprocess.run([sys.executable, "-m", "spooled", "--http", "nonsense"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env={**os.environ, "DATABASE_URL": "postgresql://x@/y"})
    assert res.returncode == 2 and "HOST:PORT" in res.stderr


def test_sql_guards_match_the_transition_table():
    """The state guards written in SQL are the ones the Python table allows (defined once, mirrored once)."""
    import re

    from spooled.domain.states import sources

    def guarded(stmt) -> set[str]:
        m = re.search(r"j\.status IN \(([^)]*)\)", stmt.sql)
        return {x.strip().strip("'") for x in m.group(1).split(",")}

    assert guarded(Q.job_retry) == {s.value for s in sources("retry")}
    assert guarded(Q.job_cancel) == {s.value for s in sources("cancel")}
    from spooled.store.schema import schema_sql
    ready = schema_sql().split("CREATE FUNCTION spooled_ready_jobs")[1].split("$fn$;")[0]
    claim = schema_sql().split("CREATE FUNCTION spooled_claim_jobs")[1].split("$fn$;")[0]
    assert "spooled_claim_jobs(" in Q.job_claim.sql and "spooled_ready_jobs(" in claim
    assert "j.status = 'pending'" in ready
    assert sources("claim") == {JobStatus.PENDING}
    for stmt in (Q.job_fail, Q.job_heartbeat):
        assert "j.status = 'processing'" in stmt.sql and "j.lease_id" in stmt.sql
    # the batch completion guards by an unexpired lease, which only a processing job has (the check constraint)
    assert "j.lease_expires_at > t.now" in Q.job_complete.sql and "j.lease_id" in Q.job_complete.sql
    assert "(status = 'processing') = (lease_expires_at IS NOT NULL)" in schema_sql()
    assert sources("complete") == sources("fail") == {JobStatus.PROCESSING}
    assert "status IN ('pending', 'scheduled')" in Q.reap_expired_jobs.sql
    assert sources("expire") == {JobStatus.PENDING, JobStatus.SCHEDULED}
