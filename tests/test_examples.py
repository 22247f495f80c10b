"""Every example in examples/ runs against a real server: the SDK worker (in the SDK tier's own venv), the httpx
and grpcio workers, the curl session (bash), and the systemd unit passes `systemd-analyze verify`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import trio

from tests.helpers import enqueue, job
from tests.procs import ROOT
from tests.sdk.runner import sdk_python
from tests.test_grpc import key_of

EXAMPLES = ROOT / "examples"
GOOD = [{"to": f"user{i}@example.com"} for i in range(3)]


async def run_example(argv: list[str], env: dict[str, str], timeout: float = 90) -> str:
    full = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    full.update(env, PYTHONUNBUFFERED="1")
    with trio.fail_after(timeout):
        done = await trio.run_process(argv, env=full, cwd=str(ROOT), capture_stdout=True, capture_stderr=True,
                                      check=False, stdin=subprocess.DEVNULL)
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, f"{argv} exited {done.returncode}\n{out[-3000:]}\n{err[-3000:]}"
    return out


async def worker_processes(api, queue: str, argv: list[str], env: dict[str, str]) -> str:
    """Enqueue three good jobs and one bad one, run the worker until it handled four, check the outcome."""
    good = [(await enqueue(api, queue, payload))["id"] for payload in GOOD]
    bad = (await enqueue(api, queue, {"to": "nobody"}, max_retries=0))["id"]
    out = await run_example(argv, {"SPOOLED_API_KEY": key_of(api), "SPOOLED_QUEUE": queue,
                                   "SPOOLED_MAX_JOBS": "4", **env})
    for job_id, payload in zip(good, GOOD):
        j = await job(api, job_id)
        assert (j["status"], j["result"]) == ("completed", {"sent_to": payload["to"]}), j
    j = await job(api, bad)
    assert j["status"] == "deadletter" and "not an address" in j["last_error"], j
    assert "stopped after 4 jobs" in out, out
    workers = (await api.get("/api/v1/workers")).json()
    assert workers and all(w["status"] == "offline" for w in workers)    # deregistered on the way out
    return out


async def test_sdk_worker(server, api):
    python = await trio.to_thread.run_sync(sdk_python)
    await worker_processes(api, "ex-sdk", [str(python), str(EXAMPLES / "sdk_worker.py")],
                           {"SPOOLED_URL": server.http_url})


async def test_http_worker(server, api):
    await worker_processes(api, "ex-http", [sys.executable, str(EXAMPLES / "http_worker.py")],
                           {"SPOOLED_URL": server.http_url})


async def test_grpc_worker(server, api):
    await worker_processes(api, "ex-grpc", [sys.executable, str(EXAMPLES / "grpc_worker.py")],
                           {"SPOOLED_GRPC": server.grpc_address})


async def test_curl_session(server, api):
    out = await run_example(["bash", str(EXAMPLES / "curl_session.sh")],
                            {"SPOOLED_URL": server.http_url, "SPOOLED_API_KEY": key_of(api)})
    assert "success: True" in out and "completed, result {'sent': True}" in out, out
    assert "trace 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" in out
    assert "failed: now deadletter" in out and "retried 1 dead letter(s)" in out, out
    stats = (await api.get("/api/v1/queues/curl-demo/stats")).json()
    assert (stats["pending_jobs"], stats["deadletter_jobs"]) == (0, 0)
    assert stats["completed_jobs_24h"] == 1


def test_systemd_unit_verifies(tmp_path):
    """The unit as shipped, with its ExecStart pointed at this checkout's `spooled` (verify checks that the
    command exists) and its environment file optional (verify checks that too)."""
    unit = (EXAMPLES / "spooled.service").read_text()
    here = shutil.which("spooled", path=str(ROOT / ".venv" / "bin")) or str(ROOT / ".venv" / "bin" / "spooled")
    assert "/opt/spooled/venv/bin/spooled serve" in unit and "EnvironmentFile=/etc/spooled/spooled.env" in unit
    checked = tmp_path / "spooled.service"
    checked.write_text(unit.replace("/opt/spooled/venv/bin/spooled", here)
                       .replace("EnvironmentFile=/etc", "EnvironmentFile=-/etc"))
    r = subprocess.run(["systemd-analyze", "verify", str(checked)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
