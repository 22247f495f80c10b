"""The test rig: one throwaway PostgreSQL cluster per test session (Unix socket in a temp dir, fsync off), a
template database built from schema.sql, a fresh database per test, and the real supervisor on port 0.

Set SPOOLED_TEST_DATABASE_URL (a superuser DSN of an existing server) to use that server instead of a
throwaway cluster; the template and per-test databases are then created there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import trio

from spooled import island
from spooled.embedded_pg import find_bindir
from spooled.settings import Settings
from spooled.store.schema import schema_sql
from spooled.supervisor import Running, serve

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "spooled_template"


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Cluster:
    def __init__(self, *settings: str) -> None:
        """`settings`: `name=value` options for every start of this cluster."""
        self.settings = settings
        self.dir = tempfile.mkdtemp(prefix="spooled-test-pg-")
        os.chmod(self.dir, 0o755)  # the postgres user must be able to enter it when we run as root
        self.pgdata = os.path.join(self.dir, "data")
        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError("No PostgreSQL server binaries found: install them (apt-get install postgresql) "
                               "or set SPOOLED_TEST_DATABASE_URL")
        self.bindir = bindir
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", self.pgdata, "-U", "postgres", "--auth=trust",
                                     "-E", "UTF8", "--no-instructions"]), check=True, capture_output=True)
        self.start()
        self.dsn = f"postgresql://postgres@/postgres?host={self.dir}&port=5432"

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(_as_postgres([str(self.bindir / "pg_ctl"), *args, "-D", self.pgdata]), check=check,
                              capture_output=True)

    def start(self, *settings: str, wait: bool = True) -> None:
        """`pg_ctl start` (again, after `halt`); `settings` are extra `-c name=value` options."""
        opts = (f"-k {self.dir} -c listen_addresses='' -p 5432 -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=300 -c shared_buffers=128MB "
                + " ".join(f"-c {s}" for s in (*self.settings, *settings)))
        self.pg_ctl("start", "-w" if wait else "-W", "-l", os.path.join(self.dir, "log"), "-o", opts)

    def halt(self, mode: str) -> None:
        """`pg_ctl stop -m mode` (immediate: a crash, recovery at the next start; fast: a clean shutdown)."""
        self.pg_ctl("stop", "-m", mode, "-w")

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "immediate", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


async def _admin(dsn: str, *sql: str) -> None:
    con = await asyncpg.connect(dsn)
    try:
        for s in sql:
            await con.execute(s)
    finally:
        await con.close()


def admin(dsn: str, *sql: str) -> None:
    asyncio.run(_admin(dsn, *sql))


@pytest.fixture(scope="session")
def pg_admin_dsn():
    """A superuser DSN (database `postgres`) with a `spooled_template` database holding schema.sql."""
    given = os.environ.get("SPOOLED_TEST_DATABASE_URL")
    cluster = None
    if given:
        dsn = _dsn_for(given, "postgres")
    else:
        cluster = Cluster()
        dsn = cluster.dsn
    template = f"{TEMPLATE}_{os.getpid()}"
    admin(dsn, f'DROP DATABASE IF EXISTS "{template}"', f'CREATE DATABASE "{template}"')
    admin(_dsn_for(dsn, template), schema_sql())
    os.environ["SPOOLED_TEST_TEMPLATE"] = template
    try:
        yield dsn
    finally:
        admin(dsn, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        if cluster is not None:
            cluster.stop()


def _dsn_for(admin_dsn: str, dbname: str) -> str:
    parts = urlsplit(admin_dsn)
    return urlunsplit(parts._replace(path="/" + dbname))


@pytest.fixture
def dsn(pg_admin_dsn):
    """A fresh database with the schema, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin(pg_admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{os.environ["SPOOLED_TEST_TEMPLATE"]}"')
    yield _dsn_for(pg_admin_dsn, name)
    admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_dsn(pg_admin_dsn):
    """A fresh empty database (no schema)."""
    name = f"e_{uuid.uuid4().hex[:16]}"
    admin(pg_admin_dsn, f'CREATE DATABASE "{name}"')
    yield _dsn_for(pg_admin_dsn, name)
    admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def aio_loop():
    """The one trio_asyncio loop of the test, opened as `supervisor.run` opens it (spooled/island.py)."""
    async with island.open_loop() as loop:
        yield loop


def make_settings(tmp_path: Path, dsn: str, **overrides) -> Settings:
    base = dict(http_host="127.0.0.1", http_port=0, grpc_host="127.0.0.1", grpc_port=0, database_url=dsn,
                data_dir=tmp_path, jwt_secret="t" * 48, reaper_interval_secs=3600.0,
                scheduler_interval_secs=3600.0, retention_interval_secs=3600.0, shutdown_grace_secs=2.0,
                pool_min_size=1, pool_max_size=10,
                # the access tests choose plans explicitly (tests/access.py); others get the unlimited plan
                default_plan="enterprise", quota_sync_secs=3600.0, instance_heartbeat_secs=3600.0)
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
def settings(tmp_path, dsn) -> Settings:
    return make_settings(tmp_path, dsn)


@pytest.fixture
async def server(aio_loop, settings, dsn):
    """The real supervisor (REST on port 0) against this test's database."""
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        with trio.fail_after(30):
            running: Running = await nursery.start(partial(serve, settings, dsn, shutdown=shutdown))
        yield running
        shutdown.set()


@pytest.fixture
async def client(server):
    async with httpx.AsyncClient(base_url=server.http_url, timeout=30) as c:
        yield c


async def new_org(client: httpx.AsyncClient, name: str = "Acme") -> tuple[str, dict]:
    r = await client.post("/api/v1/organizations", json={"name": name})
    assert r.status_code == 201, r.text
    body = r.json()
    return body["organization"]["id"], {"Authorization": f"Bearer {body['api_key']['key']}"}


@pytest.fixture
async def api(client):
    """An httpx client authenticated as a fresh organization (`api.org_id` holds its id)."""
    org_id, headers = await new_org(client)
    async with httpx.AsyncClient(base_url=str(client.base_url), headers=headers, timeout=30) as c:
        c.org_id = org_id
        yield c


@pytest.fixture
async def other_api(client):
    """A second organization, for tenancy tests."""
    org_id, headers = await new_org(client, "Other")
    async with httpx.AsyncClient(base_url=str(client.base_url), headers=headers, timeout=30) as c:
        c.org_id = org_id
        yield c


@pytest.fixture
async def receiver():
    """A local HTTP endpoint that records what it receives (tests/receiver.py), serving for the test."""
    from tests.receiver import Receiver
    r = Receiver()
    async with trio.open_nursery() as nursery:
        await nursery.start(r.serve)
        yield r
        nursery.cancel_scope.cancel()
