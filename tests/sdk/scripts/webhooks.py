"""Every method of the SDK's `webhooks` resource (sync and async), its `ingest.custom` and the organization's
webhook-token methods against the server. RECEIVER_URL is a local HTTP receiver the test runs (the server allows
private targets for it)."""

import asyncio
import os
import time

from spooled import AsyncSpooledClient, SpooledClient
from spooled.errors import NotFoundError, ValidationError

from _sdkcheck import API_KEY, BASE_URL, Checks

RECEIVER = os.environ["RECEIVER_URL"]
checks = Checks()
client = SpooledClient(api_key=API_KEY, base_url=BASE_URL)
w = client.webhooks
ids = {}


def wait_for(predicate, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


with checks("webhooks.create"):
    hook = w.create({"name": "sdk hook", "url": RECEIVER + "/sdk", "events": ["job.created", "job.completed"],
                     "secret": "sdk-secret"})
    ids["hook"] = hook.id
    checks.expect(hook.name == "sdk hook" and hook.enabled and hook.failure_count == 0 and hook.format == "json"
                  and hook.events == ["job.created", "job.completed"] and hook.last_status is None, "hook", hook)
    ids["chat"] = w.create({"name": "chat", "url": RECEIVER + "/chat", "events": ["queue.paused"],
                            "format": "slack"}).id

with checks("webhooks.create invalid -> 422"):
    try:
        w.create({"name": "bad", "url": "not a url", "events": ["job.created"]})
        checks.expect(False, "no error")
    except ValidationError as e:
        checks.expect(e.status_code == 422, "status", e.status_code)

with checks("webhooks.list"):
    listed = w.list()
    checks.expect([h.id for h in listed] == [ids["hook"], ids["chat"]], "ids", listed)

with checks("webhooks.get"):
    got = w.get(ids["hook"])
    checks.expect(got.id == ids["hook"] and got.url == RECEIVER + "/sdk", "hook", got)

with checks("webhooks.update"):
    events = ["queue.paused", "queue.resumed", "schedule.triggered", "workflow.completed", "workflow.failed"]
    updated = w.update(ids["chat"], {"name": "renamed", "events": events})
    checks.expect(updated.name == "renamed" and updated.events == events
                  and updated.format == "slack", "updated", updated)
    cleared = w.update(ids["chat"], {"secret": None, "enabled": False})
    checks.expect(cleared.enabled is False, "disabled", cleared)

with checks("webhooks.test"):
    result = w.test(ids["hook"])
    checks.expect(result.success and result.status_code == 200 and result.response_time_ms >= 0
                  and result.error is None, "test", result)

with checks("webhooks.get_deliveries"):
    client.jobs.create({"queue_name": "sdk-hooks", "payload": {"x": 1}})
    deliveries = wait_for(lambda: [d for d in w.get_deliveries(ids["hook"]) if d.status == "success"],
                          "a successful delivery")
    d = deliveries[0]
    ids["delivery"] = d.id
    checks.expect(d.event == "job.created" and d.webhook_id == ids["hook"] and d.attempts == 1
                  and d.status_code == 200 and d.delivered_at is not None, "delivery", d)
    checks.expect(d.payload["id"] == d.id and d.payload["data"]["queue_name"] == "sdk-hooks", "payload", d.payload)
    checks.expect(w.get_deliveries(ids["hook"], {"status": "failed", "limit": 10}) == [], "filtered", None)

with checks("webhooks.retry_delivery"):
    r = w.retry_delivery(ids["hook"], ids["delivery"])
    checks.expect(r.success is True and r.message, "retry", r)
    again = wait_for(lambda: [x for x in w.get_deliveries(ids["hook"])
                              if x.id == ids["delivery"] and x.status == "success" and x.attempts == 1
                              and x.delivered_at != d.delivered_at], "the redelivery")
    checks.expect(again[0].id == ids["delivery"], "same delivery id", again)

with checks("organizations.get_webhook_token / regenerate_webhook_token"):
    token = client.organizations.get_webhook_token()
    checks.expect(token.webhook_token and token.webhook_url.endswith("/custom"), "token", token)
    fresh = client.organizations.regenerate_webhook_token()
    checks.expect(fresh.webhook_token != token.webhook_token, "regenerated", fresh)
    ids["token"] = fresh.webhook_token

with checks("ingest.custom"):
    org_id = client.auth.me().organization_id
    ids["org"] = org_id
    resp = client.ingest.custom(org_id, {"queue_name": "sdk-ingest", "event_type": "order.paid",
                                         "payload": {"order": 1}, "idempotency_key": "order-1"},
                                webhook_token=ids["token"])
    checks.expect(resp.job_id and resp.queue_name == "sdk-ingest" and resp.status == "created", "custom", resp)
    dup = client.ingest.custom(org_id, {"queue_name": "sdk-ingest", "payload": {"order": 1},
                                        "idempotency_key": "order-1"}, webhook_token=ids["token"])
    checks.expect(dup.job_id == resp.job_id and dup.status == "duplicate", "duplicate", dup)

with checks("webhooks.list_inbound_deliveries"):
    log = w.list_inbound_deliveries()
    checks.expect([(e.provider, e.status) for e in log] == [("custom", "duplicate"), ("custom", "created")], "log", log)
    checks.expect(log[0].matched_queue == "sdk-ingest" and log[0].job_id, "entry", log[0])
    only = w.list_inbound_deliveries({"status": "created", "queue_name": "sdk-ingest", "limit": 5})
    checks.expect(len(only) == 1 and only[0].status == "created", "filtered", only)

with checks("webhooks.delete"):
    w.delete(ids["chat"])
    try:
        w.get(ids["chat"])
        checks.expect(False, "still there")
    except NotFoundError:
        pass


async def async_resource() -> None:
    async with AsyncSpooledClient(api_key=API_KEY, base_url=BASE_URL) as aclient:
        aw = aclient.webhooks
        with checks("async webhooks: create/list/get/update/test/get_deliveries/retry_delivery/delete"):
            h = await aw.create({"name": "async", "url": RECEIVER + "/async", "events": ["job.created"]})
            checks.expect(h.id in [x.id for x in await aw.list()], "listed", h)
            checks.expect((await aw.get(h.id)).name == "async", "get", h)
            checks.expect((await aw.update(h.id, {"name": "async2"})).name == "async2", "update", h)
            checks.expect((await aw.test(h.id)).success, "test", h)
            await aclient.jobs.create({"queue_name": "sdk-async-hooks", "payload": {}})
            deliveries = []
            for _ in range(300):
                deliveries = [d for d in await aw.get_deliveries(h.id) if d.status == "success"]
                if deliveries:
                    break
                await asyncio.sleep(0.05)
            checks.expect(deliveries, "delivered", deliveries)
            checks.expect((await aw.retry_delivery(h.id, deliveries[0].id)).success, "retry", deliveries)
            checks.expect(isinstance(await aw.list_inbound_deliveries(), list), "inbound", None)
            await aw.delete(h.id)
            checks.expect(h.id not in [x.id for x in await aw.list()], "deleted", h)
        with checks("async ingest.custom"):
            token = (await aclient.organizations.get_webhook_token()).webhook_token
            r = await aclient.ingest.custom(ids["org"], {"queue_name": "sdk-ingest", "payload": {"a": 1}},
                                            webhook_token=token)
            checks.expect(r.status == "created" and r.job_id, "custom", r)


asyncio.run(async_resource())
checks.finish()
