"""The official SDK's `workflows` and `workflows.jobs` resources, every method (sync and async), and the job
dependency fields through `jobs.get`, against the real server."""

from __future__ import annotations

from tests.conftest import new_org
from tests.sdk.runner import run_sdk

CHECKS = {"workflows.create", "workflows.create invalid -> 422, nothing created", "workflows.get",
          "workflows.jobs.list+get+get_status", "workflows.jobs.get_dependencies + jobs.get dependency fields",
          "diamond runs in dependency order through SDK claims", "workflows.list",
          "workflows.jobs.add_dependencies", "workflows.cancel", "workflows.retry", "async.workflows"}


async def test_sdk_workflows(server, client):
    _, headers = await new_org(client, "SDK workflows")
    report = await run_sdk("workflows.py", base_url=server.http_url, api_key=headers["Authorization"].split()[1],
                           timeout=180)
    assert not report["failed"] and set(report["passed"]) == CHECKS, report
