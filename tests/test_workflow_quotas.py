"""Plan quotas on workflows: `max_workflows` bounds the workflows not over yet, and a workflow's jobs count
against the job quotas like any enqueue; refused means nothing created."""

from __future__ import annotations

import httpx
import pytest

from tests.access import admin_org, bearer, settings_with_admin
from tests.test_quotas import quota_refusal
from tests.test_workflows import diamond, run_to_end


@pytest.fixture
def settings(tmp_path, dsn):
    return settings_with_admin(tmp_path, dsn)


async def test_workflow_quotas(server, client):
    _, key = await admin_org(client, plan="pro", custom_limits={"max_workflows": 1, "max_active_jobs": 6})
    async with httpx.AsyncClient(base_url=str(client.base_url), headers=bearer(key), timeout=30) as api:
        seven = {"name": "big", "jobs": [{"key": str(i), "queue_name": "wf", "payload": i} for i in range(7)]}
        quota_refusal(await api.post("/api/v1/workflows", json=seven), "active_jobs", 0, 6)
        r = await api.post("/api/v1/workflows", json=diamond())
        assert r.status_code == 201, r.text
        wid = r.json()["workflow_id"]
        quota_refusal(await api.post("/api/v1/workflows", json=diamond("other")), "workflows", 1, 1)
        await run_to_end(api, "wf")                               # over: it no longer counts
        assert (await api.get(f"/api/v1/workflows/{wid}")).json()["status"] == "completed"
        one = {"name": "one", "jobs": [{"key": "a", "queue_name": "wf", "payload": 1}]}
        assert (await api.post("/api/v1/workflows", json=one)).status_code == 201
        assert len((await api.get("/api/v1/workflows")).json()) == 2
        assert (await api.get("/api/v1/jobs/stats")).json()["total"] == 5
        usage = (await api.get("/api/v1/organizations/usage")).json()
        assert usage["usage"]["workflows"]["current"] == 1
