"""The SDK's realtime clients against the server: the unified client (`client.realtime`, SSE and WebSocket), the
SSE clients (sync, async) and the WebSocket clients (sync, async), each seeing a job's created -> processing ->
completed driven through the SDK; a job stream that ends by itself; ping; a bad token refused."""

import asyncio
import threading
import time

from spooled import AsyncSpooledClient, SpooledClient
from spooled.errors import AuthenticationError
from spooled.realtime import (AsyncSSEClient, AsyncWebSocketClient, SSEClient, SubscriptionFilter,
                              UnifiedSubscriptionFilter, WebSocketClient, WebSocketConnectionOptions)

from _sdkcheck import API_KEY, BASE_URL, Checks

checks = Checks()
client = SpooledClient(api_key=API_KEY, base_url=BASE_URL)
WS_URL = BASE_URL.replace("http://", "ws://")
LIFECYCLE = ["job.created", "job.status_changed:processing", "job.status_changed:completed", "job.completed"]
DEADLINE = 15.0


def run_job(queue: str) -> str:
    """Create, claim and complete one job with the SDK; its id."""
    created = client.jobs.create({"queue_name": queue, "payload": {"n": 1}})
    claimed = client.jobs.claim({"queue_name": queue, "worker_id": "sdk-rt", "limit": 1})
    (job,) = claimed.jobs
    client.jobs.complete(job.id, {"worker_id": "sdk-rt", "lease_id": job.lease_id, "result": {"ok": True}})
    return created.id


def label(event) -> str:
    data = event.data if isinstance(event.data, dict) else {}
    return f"{event.type}:{data['new_status']}" if event.type == "job.status_changed" else event.type


def job_labels(events, job_id: str) -> list[str]:
    return [label(e) for e in events if isinstance(e.data, dict) and e.data.get("job_id") == job_id]


def collect_unified(kind: str, queue: str) -> list[str]:
    """Drive a job while the unified realtime client of `kind` listens; the job's events as labels."""
    rt = client.realtime(type=kind, auto_reconnect=False)
    seen, done = [], threading.Event()

    def on_event(event):
        seen.append(event)
        if event.type == "job.completed":
            done.set()
    rt.on_event(on_event)
    rt.connect(UnifiedSubscriptionFilter(queue=queue))
    try:
        if kind == "websocket":
            rt.subscribe(UnifiedSubscriptionFilter(queue=queue))
        job_id = run_job(queue)
        checks.expect(done.wait(DEADLINE), "job.completed seen", [label(e) for e in seen])
        return job_labels(seen, job_id)
    finally:
        rt.disconnect()


with checks("realtime(type=sse) lifecycle"):
    got = collect_unified("sse", "sdk-rt-sse")
    checks.expect(got == LIFECYCLE, "events", got)

with checks("realtime(type=websocket) lifecycle"):
    got = collect_unified("websocket", "sdk-rt-ws")
    checks.expect(got == LIFECYCLE, "events", got)

with checks("SSEClient queue stream"):
    sse = SSEClient(base_url=BASE_URL, token=client.get_jwt_token(), queue="sdk-sse", auto_reconnect=False)
    sse.connect()
    seen, driven = [], []
    try:
        driver = threading.Thread(target=lambda: driven.append(run_job("sdk-sse")), daemon=True)
        driver.start()
        start = time.monotonic()
        for event in sse.events():
            seen.append(event)
            if event.type == "job.completed" or time.monotonic() - start > DEADLINE:
                break
    finally:
        sse.close()
    driver.join(DEADLINE)
    got = job_labels(seen, driven[0])
    checks.expect(got == LIFECYCLE, "events", got)

with checks("SSEClient job stream ends after the terminal status"):
    created = client.jobs.create({"queue_name": "sdk-sse-job", "payload": {}, "max_retries": 0})
    sse = SSEClient(base_url=BASE_URL, token=API_KEY, job_id=created.id, auto_reconnect=False)
    sse.connect()

    def finish():
        (job,) = client.jobs.claim({"queue_name": "sdk-sse-job", "worker_id": "w", "limit": 1}).jobs
        client.jobs.fail(job.id, {"worker_id": "w", "lease_id": job.lease_id, "error": "nope"})
    threading.Thread(target=finish, daemon=True).start()
    got = [label(e) for e in sse.events()]        # returns on its own when the server ends the stream
    checks.expect(got == ["job.status_changed:pending", "job.status_changed:processing",
                          "job.status_changed:deadletter", "job.failed"], "events", got)

with checks("SSEClient bad token -> AuthenticationError"):
    try:
        SSEClient(base_url=BASE_URL, token="sp_live_not-a-key", auto_reconnect=False).connect()
        checks.expect(False, "no error")
    except AuthenticationError as e:
        checks.expect(e.status_code == 401, "status", e.status_code)

with checks("WebSocketClient subscribe, ping, lifecycle"):
    ws = WebSocketClient(WebSocketConnectionOptions(ws_url=WS_URL, token=client.get_jwt_token(),
                                                    auto_reconnect=False))
    seen, done, pinged = [], threading.Event(), threading.Event()

    def on_ws(event):
        seen.append(event)
        if event.type == "ping":
            pinged.set()
        if event.type == "job.completed":
            done.set()
    ws.on_event(on_ws)
    ws.connect()
    try:
        ws.subscribe(SubscriptionFilter(queue="sdk-ws"))
        ws.ping()
        checks.expect(pinged.wait(DEADLINE), "Ping answered")
        job_id = run_job("sdk-ws")
        checks.expect(done.wait(DEADLINE), "job.completed seen", [label(e) for e in seen])
        got = job_labels(seen, job_id)
        checks.expect(got == LIFECYCLE, "events", got)
    finally:
        ws.disconnect()


async def async_clients() -> None:
    async with AsyncSpooledClient(api_key=API_KEY, base_url=BASE_URL) as aclient:
        token = await aclient.get_jwt_token()

        async def drive(queue: str) -> str:
            created = await aclient.jobs.create({"queue_name": queue, "payload": {"n": 2}})
            (job,) = (await aclient.jobs.claim({"queue_name": queue, "worker_id": "a", "limit": 1})).jobs
            await aclient.jobs.complete(job.id, {"worker_id": "a", "lease_id": job.lease_id})
            return created.id

        async def lifecycle(stream, queue: str) -> list:
            """Drive a job while reading `stream.events()` up to its completion; every event read."""
            driver = asyncio.ensure_future(drive(queue))
            seen = []
            async with asyncio.timeout(DEADLINE):
                async for event in stream.events():
                    seen.append(event)
                    if event.type == "job.completed":
                        break
            got = job_labels(seen, await driver)
            checks.expect(got == LIFECYCLE, "events", got)
            return seen

        with checks("AsyncSSEClient lifecycle"):
            async with AsyncSSEClient(base_url=BASE_URL, token=token, queue="sdk-async-sse",
                                      auto_reconnect=False) as sse:
                await lifecycle(sse, "sdk-async-sse")

        with checks("AsyncWebSocketClient lifecycle"):
            options = WebSocketConnectionOptions(ws_url=WS_URL, token=token, auto_reconnect=False)
            async with AsyncWebSocketClient(options) as ws:
                await ws.subscribe(SubscriptionFilter(queue="sdk-async-ws"))
                await ws.ping()
                seen = await lifecycle(ws, "sdk-async-ws")
                checks.expect(any(e.type == "ping" for e in seen), "ping", [e.type for e in seen])


asyncio.run(async_clients())
checks.finish()
