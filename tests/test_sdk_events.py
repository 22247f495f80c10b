"""The official SDK's webhooks resource (every method we serve, sync and async), ingest and webhook-token methods,
and its realtime clients (unified, SSE and WebSocket, sync and async) against the real server."""

from __future__ import annotations

import trio

from tests.receiver import Receiver
from tests.sdk.runner import run_sdk
from tests.test_webhooks import instance


async def test_sdk_webhooks(tmp_path, dsn, aio_loop):
    receiver = Receiver()
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        async with instance(tmp_path, dsn) as api:
            key = api.headers["Authorization"].split()[1]
            report = await run_sdk("webhooks.py", base_url=api.running.http_url, api_key=key,
                                   env={"RECEIVER_URL": receiver.url})
        nursery.cancel_scope.cancel()
    assert not report["failed"] and len(report["passed"]) == 14, report
    signed = [r for r in receiver.requests if r.path == "/sdk" and r.json()["event"] == "job.created"]
    assert signed and all(r.signature_ok("sdk-secret") for r in signed)


async def test_sdk_realtime(server, api):
    report = await run_sdk("realtime.py", base_url=server.http_url, api_key=api.headers["Authorization"].split()[1])
    assert not report["failed"] and len(report["passed"]) == 8, report
