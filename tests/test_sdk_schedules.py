"""The official SDK's `schedules` resource, every method (sync and async), against the real server."""

from __future__ import annotations

from tests.conftest import new_org
from tests.sdk.runner import run_sdk


async def test_sdk_schedules(server, client):
    _, headers = await new_org(client)
    report = await run_sdk("schedules.py", base_url=server.http_url, api_key=headers["Authorization"].split()[1])
    assert not report["failed"] and len(report["passed"]) == 11
