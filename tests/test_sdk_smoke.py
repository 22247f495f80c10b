"""The official SDK (tests/sdk, its own venv) reaches the real server: the tier every SDK test builds on."""

from __future__ import annotations

from tests.conftest import new_org
from tests.sdk.runner import run_sdk


async def test_sdk_smoke(server, client):
    _, headers = await new_org(client)
    key = headers["Authorization"].split()[1]
    report = await run_sdk("smoke.py", base_url=server.http_url, api_key=key)
    assert set(report["passed"]) == {"health.get", "jobs.create+get"} and not report["failed"]
