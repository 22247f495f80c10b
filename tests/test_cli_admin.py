"""The operator's commands (spooled/cli/admin.py) as real subprocesses on the server's settings (DATABASE_URL),
next to a real server on the same database: each command's JSON and its table, the rules of the services it
shares with the server, and progress on a bulk dead-letter retry."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import asyncpg
import httpx
import trio
import trio_asyncio

from tests.helpers import claim, enqueue, job
from tests.procs import ROOT, clean_env


class Cli:
    def __init__(self, dsn: str, data_dir: str):
        self.env = clean_env(DATABASE_URL=dsn, SPOOLED_DATA_DIR=data_dir)

    async def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        with trio.fail_after(60):
            done = await trio.run_process([sys.executable, "-m", "spooled", *args], env=self.env, cwd=ROOT,
                                          capture_stdout=True, capture_stderr=True, check=False,
                                          stdin=subprocess.DEVNULL)
        done.out, done.err = done.stdout.decode(), done.stderr.decode()
        if ok:
            assert done.returncode == 0, (args, done.out, done.err)
        return done

    async def json(self, *args: str):
        return json.loads((await self(*args, "--json")).out)


async def sql(dsn: str, statement: str, *args):
    async def go():
        con = await asyncpg.connect(dsn)
        try:
            return await con.execute(statement, *args)
        finally:
            await con.close()
    return await trio_asyncio.aio_as_trio(go)()


def fails_in_one_sentence(done, *needles: str) -> str:
    assert done.returncode == 1, (done.out, done.err)
    err = done.err.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith("spooled: "), err
    for needle in needles:
        assert needle in last, (needle, last)
    return last


async def test_orgs_and_status(server, api, dsn, tmp_path):
    cli = Cli(dsn, str(tmp_path))
    orgs = await cli.json("orgs", "list")
    assert api.org_id in [o["id"] for o in orgs]
    assert api.org_id in (await cli("orgs", "list")).out

    for _ in range(3):
        await enqueue(api, "st-q")
    await claim(api, "st-q")
    await server.services.admission.run_once()          # the instance heartbeat, carrying its loops' health
    status = await cli.json("status", "--org", api.org_id)
    (row,) = [q for q in status["queues"] if q["queue"] == "st-q"]
    assert (row["org"], row["pending"], row["processing"], row["deadletter"]) == (api.org_id, 2, 1, 0)
    assert status["workers"] == []
    (instance,) = [i for i in status["instances"] if i["id"] == str(server.services.admission.instance_id)]
    assert instance["alive"] and {"lease reaper", "heartbeat expirer", "scheduler"} <= set(instance["loops"])
    reaper = instance["loops"]["lease reaper"]
    assert reaper["runs"] >= 1 and reaper["consecutive_errors"] == 0 and reaper["last_success"] > 0
    text = (await cli("status")).out
    assert "st-q" in text and "lease reaper" in text and "Server instances" in text


async def test_jobs_commands(api, other_api, dsn, tmp_path):
    cli = Cli(dsn, str(tmp_path))
    done = await enqueue(api, "cj", max_retries=0)
    (leased,) = await claim(api, "cj")
    r = await api.post(f"/api/v1/jobs/{leased['id']}/fail", json={"lease_id": leased["lease_id"], "error": "x"})
    assert r.json()["status"] == "deadletter"
    waiting = await enqueue(api, "cj")

    listed = await cli.json("jobs", "list", "--org", api.org_id, "--queue", "cj", "--status", "deadletter")
    assert [j["id"] for j in listed] == [done["id"]]
    assert done["id"] in (await cli("jobs", "list", "--org", api.org_id)).out
    got = await cli.json("jobs", "get", "--org", api.org_id, done["id"])
    assert got["status"] == "deadletter" and [h["event_type"] for h in got["history"]][:2] == ["created", "started"]
    assert "history:" in (await cli("jobs", "get", "--org", api.org_id, done["id"])).out

    retried = await cli.json("jobs", "retry", "--org", api.org_id, done["id"])
    assert retried["status"] == "pending" and (await job(api, done["id"]))["status"] == "pending"
    await cli("jobs", "cancel", "--org", api.org_id, waiting["id"])
    assert (await job(api, waiting["id"]))["status"] == "cancelled"

    # the services' rules hold: a cancelled job cannot be cancelled again; another org's job is not found
    fails_in_one_sentence(await cli("jobs", "cancel", "--org", api.org_id, waiting["id"], ok=False),
                          "Cannot cancel a job that is cancelled")
    fails_in_one_sentence(await cli("jobs", "get", "--org", other_api.org_id, done["id"], ok=False),
                          "Job not found")
    fails_in_one_sentence(await cli("jobs", "list", "--org", "00000000-0000-0000-0000-000000000000", ok=False),
                          "Organization 00000000-0000-0000-0000-000000000000 not found")
    slug = (await api.get(f"/api/v1/organizations/{api.org_id}")).json()["slug"]
    by_slug = await cli.json("jobs", "list", "--org", slug, "--queue", "cj", "--status", "pending")
    assert [j["id"] for j in by_slug] == [done["id"]]           # retried above; `waiting` was cancelled
    fails_in_one_sentence(await cli("jobs", "list", "--org", "no-such-slug", ok=False),
                          "Organization no-such-slug not found")
    fails_in_one_sentence(await cli("jobs", "list", "--org", api.org_id, "--status", "lost", ok=False), "lost")


async def test_queues_pause_and_resume(api, dsn, tmp_path):
    cli = Cli(dsn, str(tmp_path))
    await enqueue(api, "pq")
    paused = await cli.json("queues", "pause", "--org", api.org_id, "pq", "--reason", "maintenance")
    assert paused["paused"] is True and paused["reason"] == "maintenance"
    assert (await api.get("/api/v1/queues/pq")).json()["paused"] is True
    assert await claim(api, "pq") == []
    assert "resumed" in (await cli("queues", "resume", "--org", api.org_id, "pq")).out
    assert len(await claim(api, "pq")) == 1
    fails_in_one_sentence(await cli("queues", "pause", "--org", api.org_id, "nope", ok=False), "Queue nope not found")


async def test_dlq_retry_in_batches_with_progress(api, dsn, tmp_path):
    cli = Cli(dsn, str(tmp_path))
    for _ in range(25):
        r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "dead", "jobs": [{"payload": {}}] * 100})
        assert r.json()["success_count"] == 100
    await enqueue(api, "alive")
    # 2,500 dead letters at once (the test's setup, not the code under test)
    await sql(dsn, "UPDATE jobs SET status = 'deadletter', completed_at = now() WHERE queue_name = 'dead'")

    done = await cli("dlq", "retry", "--org", api.org_id, "--queue", "dead", "--batch", "1000", "--limit", "2200",
                     "--json")
    assert json.loads(done.out)["retried_count"] == 2200
    lines = done.err.strip().splitlines()
    assert lines[-1].startswith("dlq retry: 2200/2200 (100%)"), done.err
    stats = (await api.get("/api/v1/queues/dead/stats")).json()
    assert (stats["pending_jobs"], stats["deadletter_jobs"]) == (2200, 300)
    rest = await cli("dlq", "retry", "--org", api.org_id)
    assert "retried 300 dead letters" in rest.out
    assert (await api.get("/api/v1/queues/dead/stats")).json()["deadletter_jobs"] == 0
    fails_in_one_sentence(await cli("dlq", "retry", "--org", api.org_id, "--batch", "5000", ok=False), "batch")


async def test_api_keys(server, api, dsn, tmp_path):
    cli = Cli(dsn, str(tmp_path))
    made = await cli.json("api-keys", "create", "--org", api.org_id, "--name", "ci", "--queues", "a,b",
                          "--read-only")
    assert made["key"].startswith("sk_live_") and made["queues"] == ["a", "b"] and made["read_only"] is True
    async with httpx.AsyncClient(base_url=server.http_url, headers={"Authorization": f"Bearer {made['key']}"}) as c:
        assert (await c.get("/api/v1/queues")).status_code == 200
        assert (await c.post("/api/v1/jobs", json={"queue_name": "a", "payload": {}})).status_code == 403
    text = (await cli("api-keys", "create", "--org", api.org_id, "--name", "spare")).out
    assert "shown only this once" in text
    spare = next(line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("key "))
    listed = await cli.json("api-keys", "list", "--org", api.org_id)
    spare_id = next(k["id"] for k in listed if k["name"] == "spare")
    assert all("key" not in k for k in listed)
    assert spare not in (await cli("api-keys", "list", "--org", api.org_id)).out
    assert (await cli.json("api-keys", "revoke", "--org", api.org_id, spare_id))["revoked"] is True
    async with httpx.AsyncClient(base_url=server.http_url, headers={"Authorization": f"Bearer {spare}"}) as c:
        assert (await c.get("/api/v1/queues")).status_code == 401
    fails_in_one_sentence(await cli("api-keys", "revoke", "--org", api.org_id, str(uuid.uuid4()), ok=False),
                          "API key not found")
