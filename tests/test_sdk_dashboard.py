"""The official SDK's `dashboard` resource against the real server."""

from __future__ import annotations

import json

from tests.conftest import new_org
from tests.helpers import claim, enqueue
from tests.sdk.runner import run_sdk


async def test_sdk_dashboard(server, client):
    _, headers = await new_org(client)
    client.headers.update(headers)
    for q in ("alpha", "alpha", "beta"):
        await enqueue(client, queue=q)
    await claim(client, queue="alpha")
    await client.post("/api/v1/queues/beta/pause")
    expect = {"jobs": [3, 2, 1], "queues": [["alpha", 1, False], ["beta", 1, True]]}
    report = await run_sdk("dashboard.py", base_url=server.http_url, api_key=headers["Authorization"].split()[1],
                           env={"EXPECT": json.dumps(expect)})
    assert not report["failed"] and set(report["passed"]) == {"dashboard.get", "async dashboard.get"}
