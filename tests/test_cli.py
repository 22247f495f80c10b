"""A new user's first hour (issue 10): what `python -m spooled` prints when something is wrong is one sentence
naming the problem and the address, with a non-zero exit and no traceback; `--version`; one embedded
PostgreSQL per server."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

import httpx
import pytest
import trio

import spooled
from tests.conftest import _dsn_for
from tests.procs import clean_env, run_cli, spooled_server

SERVE = ["serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"]


def one_sentence(result, *needles: str, code: int | None = None) -> str:
    assert result.returncode != 0, (result.stdout, result.stderr)
    if code is not None:
        assert result.returncode == code, result.stderr
    err = result.stderr.strip()
    assert "Traceback" not in err and "ExceptionGroup" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith("spooled: "), err
    for needle in needles:
        assert needle in last, (needle, err)
    return last


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_version():
    r = run_cli("--version", env=clean_env())
    assert r.returncode == 0 and r.stdout.strip() == f"spooled-server {spooled.__version__}"


def test_closed_port(tmp_path):
    port = free_port()
    env = clean_env(DATABASE_URL=f"postgresql://spooled:secret@127.0.0.1:{port}/spooled",
                    SPOOLED_DATA_DIR=str(tmp_path))
    for command in (SERVE, ["create-org", "Acme"], ["migrate"]):
        last = one_sentence(run_cli(*command, env=env), f"127.0.0.1:{port}/spooled", "refused", code=1)
        assert "secret" not in last


def test_missing_database(pg_admin_dsn, tmp_path):
    env = clean_env(DATABASE_URL=_dsn_for(pg_admin_dsn, "no_such_database"), SPOOLED_DATA_DIR=str(tmp_path))
    one_sentence(run_cli(*SERVE, env=env), "no_such_database", "does not exist", code=1)


@pytest.mark.parametrize("url", ["localhost:5432", "not a url", "mysql://u@h/db", "postgresql://u:pw@h:99999/d"])
def test_not_a_postgresql_url(url, tmp_path):
    r = run_cli(*SERVE, env=clean_env(DATABASE_URL=url, SPOOLED_DATA_DIR=str(tmp_path)))
    last = one_sentence(r, "DATABASE_URL", "postgresql://", code=2)
    assert "pw" not in last


def test_bad_log_level(tmp_path):
    r = run_cli(*SERVE, env=clean_env(SPOOLED_LOG_LEVEL="LOUD", SPOOLED_DATA_DIR=str(tmp_path)))
    one_sentence(r, "SPOOLED_LOG_LEVEL", "LOUD", "INFO", code=2)


@pytest.mark.parametrize("which", ["--http", "--grpc"])
def test_busy_port(which, dsn, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = {"--http": "127.0.0.1:0", "--grpc": "127.0.0.1:0", which: f"127.0.0.1:{port}"}
        r = run_cli("serve", *[x for kv in args.items() for x in kv],
                    env=clean_env(DATABASE_URL=dsn, SPOOLED_DATA_DIR=str(tmp_path)))
    one_sentence(r, f"127.0.0.1:{port}", which, "already in use", code=2)


@pytest.fixture
def data_dir():
    """A data dir the `postgres` user can enter when we are root (pytest's tmp_path is private to root)."""
    d = tempfile.mkdtemp(prefix="spooled-test-data-")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


async def test_a_second_server_on_one_data_dir_is_refused_and_the_first_keeps_its_database(data_dir):
    env = clean_env(SPOOLED_DATA_DIR=data_dir)
    with trio.fail_after(180):
        async with spooled_server(env) as first, httpx.AsyncClient(base_url=first.url, timeout=30) as client:
            second = await trio.to_thread.run_sync(lambda: run_cli(*SERVE, env=env))
            one_sentence(second, "Another Spooled process", f"pid {first.proc.pid}", data_dir,
                         "SPOOLED_DATA_DIR", code=2)
            # a short-lived command shares the running server's cluster and leaves it running
            org = await trio.to_thread.run_sync(lambda: run_cli("create-org", "Shared", "--json", env=env))
            assert org.returncode == 0, org.stderr
            r = await client.get("/health")
            assert r.status_code == 200 and r.json()["database"] is True, r.text
            key = __import__("json").loads(org.stdout)["api_key"]["key"]
            r = await client.post("/api/v1/jobs", headers={"Authorization": f"Bearer {key}"},
                                  json={"queue_name": "q", "payload": {}})
            assert r.status_code == 201, r.text
        assert first.proc.returncode == 0, first.log()[-3000:]
        # the first server stopped the cluster it owned: a new server owns it again
        async with spooled_server(env) as again, httpx.AsyncClient(base_url=again.url, timeout=30) as client:
            assert (await client.get("/health/ready")).status_code == 200
