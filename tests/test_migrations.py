"""Schema migrations: schema.sql equals the migrations applied in order, an install of the first released schema
upgrades in place keeping its jobs and keys, and concurrent starts apply each migration once."""

from __future__ import annotations

import hashlib
import re
from functools import partial

import asyncpg
import httpx
import pytest
import trio
import trio_asyncio

from spooled.store.schema import SchemaMismatch, ensure_schema, migrations, schema_sql
from spooled.supervisor import serve
from tests.conftest import make_settings

# Catalog facts that define the schema, independent of column order (ALTER TABLE ADD COLUMN appends, schema.sql
# may place a column anywhere) and of generated names that are not ours (identity sequences).
CATALOG = {
    "columns": """SELECT table_name, column_name, data_type, udt_name, is_nullable, column_default,
                         is_identity, identity_generation, character_maximum_length
                  FROM information_schema.columns WHERE table_schema = 'public'""",
    "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
                      FROM pg_constraint WHERE connamespace = 'public'::regnamespace""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "functions": """SELECT proname, pg_get_function_identity_arguments(oid), pg_get_functiondef(oid)
                    FROM pg_proc WHERE pronamespace = 'public'::regnamespace""",
    "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal",
    "enums": """SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)::text FROM pg_type t
                JOIN pg_enum e ON e.enumtypid = t.oid WHERE t.typnamespace = 'public'::regnamespace
                GROUP BY t.typname""",
    "relations": """SELECT relname, relkind::text, coalesce(reloptions::text, '') FROM pg_class
                    WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'i', 'v', 'm', 'p')""",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'",
    "versions": "SELECT version::text FROM spooled_schema",
}


async def _snapshot(con: asyncpg.Connection) -> dict[str, set]:
    return {name: {tuple(r) for r in await con.fetch(sql)} for name, sql in CATALOG.items()}


async def snapshot(con: asyncpg.Connection) -> dict[str, set]:
    return await trio_asyncio.aio_as_trio(_snapshot)(con)


async def connect(dsn: str) -> asyncpg.Connection:
    return await trio_asyncio.aio_as_trio(asyncpg.connect)(dsn)


async def run(con, what, *args):
    """`what(con)` for a coroutine function (such as ensure_schema), else execute `what` as SQL."""
    if callable(what):
        return await trio_asyncio.aio_as_trio(what)(con)
    return await trio_asyncio.aio_as_trio(con.execute)(what, *args)


async def apply_first_release(con) -> None:
    """The database as the first released server (schema version 1) left it."""
    first = migrations()[0]
    assert first.version == 1
    await run(con, first.sql)
    await run(con, "INSERT INTO spooled_schema (version) VALUES (1)")


def test_migration_files_are_numbered_and_schema_sql_records_them():
    ms = migrations()
    versions = [m.version for m in ms]
    # Numbers are reserved per change and may land out of order: unique and starting at 1, gaps allowed meanwhile.
    assert versions[0] == 1 and versions == sorted(set(versions)), "migration numbers must be unique, from 1"
    recorded = re.search(r"INSERT INTO spooled_schema \(version\) VALUES ([^;]+);", schema_sql())
    assert recorded, "schema.sql must record the migration versions it contains"
    assert sorted(int(v) for v in re.findall(r"\d+", recorded.group(1))) == [m.version for m in ms]


async def fresh_snapshot(empty_dsn: str, pg_admin_dsn: str) -> dict[str, set]:
    """The catalog of schema.sql applied to an empty database."""
    name = "mig_fresh_" + hashlib.sha1(empty_dsn.encode()).hexdigest()[:10]
    admin = await connect(pg_admin_dsn)
    try:
        await run(admin, f'DROP DATABASE IF EXISTS "{name}"')
        await run(admin, f'CREATE DATABASE "{name}"')
        b = await connect(pg_admin_dsn.replace("/postgres?", f"/{name}?"))
        try:
            result = await run(b, ensure_schema)
            assert result.fresh
            return await snapshot(b)
        finally:
            await trio_asyncio.aio_as_trio(b.close)()
    finally:
        await run(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await trio_asyncio.aio_as_trio(admin.close)()


def assert_same(migrated: dict[str, set], fresh: dict[str, set]) -> None:
    for part in CATALOG:
        assert migrated[part] == fresh[part], (
            f"{part} differ: only after migrations {sorted(migrated[part] - fresh[part])}, "
            f"only in schema.sql {sorted(fresh[part] - migrated[part])}")


async def test_schema_sql_equals_the_migrations_applied_in_order(aio_loop, empty_dsn, pg_admin_dsn):
    # database A: every migration from the first, as a long-lived install would have seen them
    a = await connect(empty_dsn)
    try:
        await apply_first_release(a)
        result = await run(a, ensure_schema)
        assert not result.fresh and result.applied == tuple(m.version for m in migrations()[1:])
        migrated = await snapshot(a)
    finally:
        await trio_asyncio.aio_as_trio(a.close)()
    # database B: schema.sql on an empty database
    assert_same(migrated, await fresh_snapshot(empty_dsn, pg_admin_dsn))


# Migrations that landed after higher-numbered ones had shipped: an install has those (up to SHIPPED), then gets
# these with everything newer.
LANDED_LATE = (10,)
SHIPPED = 12


async def test_a_migration_that_landed_late_applies_after_the_higher_ones(aio_loop, empty_dsn, pg_admin_dsn):
    """0010 (the job row records creation, claim and completion) reached installs that had 0011 and on: applied
    then, it gives schema.sql's catalog, and a job claimed before it (its `started` in a history row) keeps one
    `started` event through its completion."""
    a = await connect(empty_dsn)
    try:
        await apply_first_release(a)
        for m in migrations()[1:]:
            if m.version not in LANDED_LATE and m.version <= SHIPPED:
                await run(a, m.sql)
                await run(a, "INSERT INTO spooled_schema (version) VALUES ($1)", m.version)
        org = await trio_asyncio.aio_as_trio(a.fetchval)(
            "INSERT INTO organizations (name, slug) VALUES ('Old', 'old') RETURNING id")
        await run(a, """INSERT INTO jobs (id, organization_id, queue_name, status, payload, max_retries,
                                          timeout_seconds, run_at, created_at, updated_at)
                        SELECT gen_random_uuid(), $1, 'old-q', 'pending', '{}', 3, 300, now(), now(), now()
                        FROM generate_series(1, 2)""", org)
        # the claim before 0010: a `started` history row per job
        held = await trio_asyncio.aio_as_trio(a.fetch)(
            "SELECT * FROM spooled_claim_jobs($1, 'old-q', 2, now(), 'old-worker', 300)", org)
        assert await trio_asyncio.aio_as_trio(a.fetchval)(
            "SELECT count(*) FROM job_history WHERE event_type = 'started'") == 2
        result = await run(a, ensure_schema)
        assert result.applied == LANDED_LATE + tuple(m.version for m in migrations() if m.version > SHIPPED)
        migrated = await snapshot(a)
        # one job completes, the other fails: each keeps exactly one `started` (its history row), by old-worker
        from spooled.store.sql import Q
        first, second = held
        done = await trio_asyncio.aio_as_trio(a.fetch)(*Q.job_complete.bind(
            org=org, ids=[first["id"]], leases=[first["lease_id"]], workers=[None], results=[None], now=None,
            queues=[]))
        assert [r["done"] for r in done] == [True]
        await run(a, "UPDATE jobs SET status = 'failed', lease_id = NULL, lease_expires_at = NULL, "
                     "assigned_worker_id = NULL, completed_at = now() WHERE id = $1", second["id"])
        events = await trio_asyncio.aio_as_trio(a.fetch)(
            "SELECT job_id, event_type, worker_id FROM job_events WHERE job_id = ANY($1::uuid[]) "
            "ORDER BY job_id, part, seq", [first["id"], second["id"]])
        starts = [(r["job_id"], r["worker_id"]) for r in events if r["event_type"] == "started"]
        assert sorted(starts) == sorted([(first["id"], "old-worker"), (second["id"], "old-worker")])
        assert [r["event_type"] for r in events if r["job_id"] == first["id"]] == ["created", "started", "completed"]
    finally:
        await trio_asyncio.aio_as_trio(a.close)()
    assert_same(migrated, await fresh_snapshot(empty_dsn, pg_admin_dsn))


async def test_first_release_upgrades_in_place_keeping_jobs_and_keys(aio_loop, empty_dsn, tmp_path):
    from spooled.services.auth import hash_key
    key = "sp_live_" + "k" * 43
    con = await connect(empty_dsn)
    try:
        await apply_first_release(con)
        org = await trio_asyncio.aio_as_trio(con.fetchval)(
            "INSERT INTO organizations (name, slug) VALUES ('Old', 'old') RETURNING id")
        await run(con, "INSERT INTO api_keys (organization_id, key_hash, key_prefix) VALUES ($1, $2, 'sp_live_kkkk')",
                  org, hash_key(key))
        await run(con, """INSERT INTO jobs (id, organization_id, queue_name, status, payload, max_retries,
                                            timeout_seconds, run_at, created_at, updated_at)
                          SELECT gen_random_uuid(), $1, 'old-q', 'pending', '{"n": 1}', 3, 300, now(), now(), now()
                          FROM generate_series(1, 5)""", org)
    finally:
        await trio_asyncio.aio_as_trio(con.close)()
    settings = make_settings(tmp_path, empty_dsn)
    async with trio.open_nursery() as nursery:
        shutdown = trio.Event()
        with trio.fail_after(30):
            running = await nursery.start(partial(serve, settings, empty_dsn, shutdown=shutdown))
        try:
            async with httpx.AsyncClient(base_url=running.http_url, timeout=10,
                                         headers={"Authorization": f"Bearer {key}"}) as api:
                jobs = (await api.get("/api/v1/jobs", params={"queue_name": "old-q"})).json()
                assert len(jobs) == 5 and all(j["status"] == "pending" and j["payload"] == {"n": 1} for j in jobs)
                r = await api.post("/api/v1/jobs/claim", json={"queue_name": "old-q", "worker_id": "w", "limit": 5})
                assert r.status_code == 200 and len(r.json()["jobs"]) == 5
        finally:
            shutdown.set()
    con = await connect(empty_dsn)
    try:
        versions = await trio_asyncio.aio_as_trio(con.fetch)("SELECT version FROM spooled_schema ORDER BY 1")
        assert [r[0] for r in versions] == [m.version for m in migrations()]
    finally:
        await trio_asyncio.aio_as_trio(con.close)()


async def test_concurrent_starts_apply_each_migration_once(aio_loop, empty_dsn):
    con0 = await connect(empty_dsn)
    try:
        await apply_first_release(con0)
    finally:
        await trio_asyncio.aio_as_trio(con0.close)()
    results = []

    async def one():
        con = await connect(empty_dsn)
        try:
            results.append(await run(con, ensure_schema))
        finally:
            await trio_asyncio.aio_as_trio(con.close)()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(one)
    applied = [v for r in results for v in r.applied]
    assert sorted(applied) == [m.version for m in migrations()[1:]]   # each once, by whichever got the lock


async def test_a_newer_schema_is_refused(aio_loop, empty_dsn):
    con = await connect(empty_dsn)
    try:
        await run(con, ensure_schema)
        await run(con, "INSERT INTO spooled_schema (version) VALUES (9999)")
        with pytest.raises(SchemaMismatch, match="newer than this server"):
            await run(con, ensure_schema)
    finally:
        await trio_asyncio.aio_as_trio(con.close)()


def test_migrate_command(empty_dsn, tmp_path):
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT
    env = {**os.environ, "DATABASE_URL": empty_dsn, "SPOOLED_DATA_DIR": str(tmp_path)}

    def cli(*args):
        out = subprocess.run([sys.executable, "-m", "spooled", "migrate", *args, "--json"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)
    assert cli("--status") == {"empty_database": True, "pending": [m.version for m in migrations()]}
    assert cli() == {"fresh": True, "applied": [m.version for m in migrations()]}
    assert cli("--status") == {"empty_database": False, "pending": []}
    assert cli() == {"fresh": False, "applied": []}
