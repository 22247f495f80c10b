"""Outgoing webhooks (api.md "Webhooks") against the real server, PostgreSQL and a local HTTP receiver:
subscriptions on both paths, signed at-least-once delivery from the outbox, retries with a stable delivery id,
auto-disable, redelivery, a dispatcher killed mid-delivery, two dispatchers, the SSRF guard, completion webhooks."""

from __future__ import annotations

import datetime as dt
from functools import partial

import attrs
import trio

from spooled.loops import dispatcher as dispatcher_loop
from spooled.services.sender import Sender
from tests import events_helpers
from tests.helpers import claim, enqueue

SUBSCRIPTION_FIELDS = {"id", "organization_id", "name", "url", "events", "enabled", "failure_count",
                       "last_triggered_at", "last_status", "created_at", "updated_at", "format"}


def instance(tmp_path, dsn, **overrides):
    """A server whose webhooks may reach the local receiver (SSRF guard off unless overridden)."""
    return events_helpers.instance(tmp_path, dsn, **{"webhook_allow_private": True, **overrides})


async def subscribe(api, url: str, events: list[str], path: str = "/api/v1/outgoing-webhooks", **fields) -> dict:
    r = await api.post(path, json={"name": "hook", "url": url, "events": events, **fields})
    assert r.status_code == 201, r.text
    return r.json()


async def complete_one(api, queue: str = "wh", result=None) -> str:
    created = await enqueue(api, queue)
    (leased,) = await claim(api, queue)
    r = await api.post(f"/api/v1/jobs/{leased['id']}/complete", json={"lease_id": leased["lease_id"],
                                                                       "result": result})
    assert r.status_code == 200, r.text
    return created["id"]


def later(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)


async def outbox(api) -> list:
    return await api.running.services.db.run(lambda con: con.fetch(
        "SELECT * FROM webhook_deliveries ORDER BY created_at, id"))


# -- subscriptions ---------------------------------------------------------------------------------------------
async def test_subscription_crud_on_both_paths(tmp_path, dsn, aio_loop, receiver):
    async with instance(tmp_path, dsn) as api:
        with trio.fail_after(30):
            ref = await subscribe(api, receiver.url + "/ref", ["job.completed"], path="/api/v1/webhooks",
                                  secret="s3cret")
            sdk = await subscribe(api, receiver.url + "/sdk", ["job.created", "queue.paused"], format="slack")
            assert SUBSCRIPTION_FIELDS <= ref.keys() and "secret" not in ref and ref["secret_set"] is True
            assert (ref["enabled"], ref["failure_count"], ref["last_status"], ref["format"]) == (True, 0, None, "json")
            assert sdk["format"] == "slack" and sdk["secret_set"] is False
            for path in ("/api/v1/webhooks", "/api/v1/outgoing-webhooks"):
                assert [w["id"] for w in (await api.get(path)).json()] == [ref["id"], sdk["id"]]
                assert (await api.get(f"{path}/{ref['id']}")).json()["url"] == receiver.url + "/ref"
            r = await api.patch(f"/api/v1/webhooks/{ref['id']}", json={"name": "renamed", "events": ["job.failed"]})
            assert r.status_code == 200 and (r.json()["name"], r.json()["events"]) == ("renamed", ["job.failed"])
            assert r.json()["secret_set"] is True          # absent: kept
            r = await api.put(f"/api/v1/outgoing-webhooks/{ref['id']}", json={"secret": None, "enabled": False})
            assert r.status_code == 200 and r.json()["secret_set"] is False and r.json()["enabled"] is False
            for bad in ({"url": "ftp://x"}, {"events": ["job.exploded"]}, {"events": []}, {"name": ""},
                        {"format": "xml"}, {"enabled": None}):
                r = await api.put(f"/api/v1/outgoing-webhooks/{ref['id']}", json=bad)
                assert r.status_code == 422, (bad, r.text)
            for url in ("nope", "http://[::1", "HtTP://a[b"):      # (urlsplit raises on the last two: was a 500)
                r = await api.post("/api/v1/outgoing-webhooks", json={"name": "x", "url": url, "events": ["job.created"]})
                assert r.status_code == 422 and r.json()["details"]["field"] == "url", (url, r.text)
            assert (await api.delete(f"/api/v1/outgoing-webhooks/{sdk['id']}")).status_code == 204
            assert (await api.get(f"/api/v1/outgoing-webhooks/{sdk['id']}")).status_code == 404
            assert (await api.delete(f"/api/v1/webhooks/{sdk['id']}")).status_code == 404
            assert (await api.get("/api/v1/webhooks/not-a-uuid")).status_code == 404


async def test_a_queue_restricted_key_may_not_manage_webhooks(api, client):
    with trio.fail_after(30):
        r = await api.post("/api/v1/api-keys", json={"name": "scoped", "queues": ["only-this"]})
        assert r.status_code == 201, r.text
        scoped = {"Authorization": f"Bearer {r.json()['key']}"}
        for method, path in (("GET", "/api/v1/outgoing-webhooks"), ("POST", "/api/v1/webhooks"),
                             ("GET", "/api/v1/webhooks/deliveries"), ("GET", "/api/v1/organizations/webhook-token")):
            r = await client.request(method, path, headers=scoped, json={} if method == "POST" else None)
            assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN", (path, r.text)


async def test_another_orgs_webhook_is_404(api, other_api):
    with trio.fail_after(30):
        r = await other_api.post("/api/v1/webhooks", json={"name": "x", "url": "https://example.com/h",
                                                           "events": ["job.created"]})
        assert r.status_code == 201
        theirs = r.json()["id"]
        assert (await api.get(f"/api/v1/webhooks/{theirs}")).status_code == 404
        assert (await api.put(f"/api/v1/outgoing-webhooks/{theirs}", json={"name": "mine"})).status_code == 404
        assert (await api.delete(f"/api/v1/outgoing-webhooks/{theirs}")).status_code == 404
        assert (await api.get(f"/api/v1/outgoing-webhooks/{theirs}/deliveries")).status_code == 404
        assert (await api.post(f"/api/v1/outgoing-webhooks/{theirs}/test")).status_code == 404
        assert (await api.get("/api/v1/webhooks")).json() == []


# -- delivery --------------------------------------------------------------------------------------------------
async def test_events_are_delivered_signed_with_the_documented_body(tmp_path, dsn, aio_loop, receiver):
    async with instance(tmp_path, dsn) as api:
        with trio.fail_after(30):
            hook = await subscribe(api, receiver.url + "/hook", ["job.created", "job.started", "job.completed"],
                                   secret="topsecret")
            job_id = await complete_one(api, result={"answer": 42})
            order = ["job.created", "job.started", "job.completed"]
            got = sorted(await receiver.wait_for(3), key=lambda g: order.index(g.json()["event"]))  # sent concurrently
            bodies = [g.json() for g in got]
            assert [b["event"] for b in bodies] == order
            for g, b in zip(got, bodies):
                assert g.method == "POST" and g.path == "/hook" and g.headers["content-type"] == "application/json"
                assert g.signature_ok("topsecret") and not g.signature_ok("other")
                assert g.headers["x-spooled-event"] == b["event"] and g.headers["x-spooled-delivery"] == b["id"]
                assert set(b) == {"id", "event", "created_at", "data"} and b["created_at"].endswith("+00:00")
                assert b["data"]["job_id"] == job_id and b["data"]["queue_name"] == "wh"
            assert bodies[2]["data"] == {"job_id": job_id, "queue_name": "wh", "status": "completed",
                                         "old_status": "processing", "retry_count": 0, "result": {"answer": 42},
                                         "last_error": None}
            assert bodies[0]["data"]["status"] == "pending" and bodies[0]["data"]["old_status"] is None
            while (await api.get(f"/api/v1/outgoing-webhooks/{hook['id']}")).json()["last_status"] is None:
                await trio.sleep(0.02)
            while True:     # the outcome is recorded just after the receiver answered
                listed = (await api.get(f"/api/v1/outgoing-webhooks/{hook['id']}/deliveries")).json()
                if all(d["status"] == "success" for d in listed):
                    break
                await trio.sleep(0.02)
            assert [d["event"] for d in listed] == ["job.completed", "job.started", "job.created"]  # newest first
            assert {d["id"] for d in listed} == {b["id"] for b in bodies}
            assert all(d["attempts"] == 1 and d["status_code"] == 200 and d["delivered_at"] for d in listed)
            assert listed[0]["payload"] == bodies[2]
            w = (await api.get(f"/api/v1/outgoing-webhooks/{hook['id']}")).json()
            assert (w["last_status"], w["failure_count"]) == ("success", 0) and w["last_triggered_at"]
            filtered = (await api.get(f"/api/v1/outgoing-webhooks/{hook['id']}/deliveries?status=failed")).json()
            assert filtered == []


async def test_only_subscribed_events_and_enabled_webhooks_get_deliveries(tmp_path, dsn, aio_loop, receiver):
    async with instance(tmp_path, dsn, webhook_dispatcher=False) as api:
        with trio.fail_after(30):
            await subscribe(api, receiver.url, ["job.completed"])
            off = await subscribe(api, receiver.url, ["job.created"], enabled=False)
            await complete_one(api)
            rows = await outbox(api)
            assert [r["event"] for r in rows] == ["job.completed"]
            assert (await api.put(f"/api/v1/outgoing-webhooks/{off['id']}", json={"enabled": True})).status_code == 200
            await enqueue(api, "wh")
            assert [r["event"] for r in await outbox(api)] == ["job.completed", "job.created"]


async def test_queue_and_worker_events(tmp_path, dsn, aio_loop, receiver):
    async with instance(tmp_path, dsn) as api:
        with trio.fail_after(30):
            await subscribe(api, receiver.url, ["queue.paused", "queue.resumed", "worker.registered",
                                                "worker.deregistered"])
            await enqueue(api, "pq")
            assert (await api.post("/api/v1/queues/pq/pause", json={})).status_code == 200
            assert (await api.post("/api/v1/queues/pq/resume")).status_code == 200
            r = await api.post("/api/v1/workers/register", json={"queue_name": "pq", "hostname": "h", "worker_id": "w9"})
            assert r.status_code == 201
            assert (await api.delete("/api/v1/workers/w9")).status_code == 204
            got = sorted((g.json() for g in await receiver.wait_for(4)), key=lambda b: b["created_at"])
    assert [(b["event"], b["data"].get("queue_name")) for b in got] == [
        ("queue.paused", "pq"), ("queue.resumed", "pq"), ("worker.registered", "pq"), ("worker.deregistered", "pq")]
    assert got[2]["data"]["worker_id"] == "w9"


async def test_schedule_and_workflow_events(tmp_path, dsn, aio_loop, receiver):
    """The SDK's schedule.triggered, workflow.completed and workflow.failed: one delivery each, in the
    transaction that made them (a manual trigger; a one-job workflow completed; one whose job failed for good)."""
    async with instance(tmp_path, dsn) as api:
        with trio.fail_after(30):
            await subscribe(api, receiver.url, ["schedule.triggered", "workflow.completed", "workflow.failed"])
            r = await api.post("/api/v1/schedules", json={"name": "nightly", "cron_expression": "0 0 3 * * *",
                                                          "queue_name": "sq", "payload_template": {"r": 1}})
            assert r.status_code == 201, r.text
            sid = r.json()["id"]
            fired = (await api.post(f"/api/v1/schedules/{sid}/trigger")).json()
            wf = {}
            for name in ("ok", "bad"):
                r = await api.post("/api/v1/workflows", json={"name": name, "jobs": [
                    {"key": "a", "queue_name": "wq", "payload": {"w": name}, "max_retries": 0}]})
                assert r.status_code == 201, r.text
                wf[name] = r.json()["workflow_id"]
                (leased,) = await claim(api, "wq")
                verb, body = ("complete", {"result": 1}) if name == "ok" else ("fail", {"error": "boom"})
                r = await api.post(f"/api/v1/jobs/{leased['id']}/{verb}", json={"lease_id": leased["lease_id"], **body})
                assert r.status_code == 200, r.text
            got = {g.json()["event"]: g.json()["data"] for g in await receiver.wait_for(3)}
    assert got["schedule.triggered"] == {
        "schedule_id": sid, "name": "nightly", "run_id": got["schedule.triggered"]["run_id"],
        "job_id": fired["job_id"], "queue_name": "sq", "fire_time": got["schedule.triggered"]["fire_time"],
        "manual": True}
    assert got["workflow.completed"] == {"workflow_id": wf["ok"], "name": "ok", "status": "completed",
                                         "old_status": "running"}
    assert got["workflow.failed"] == {"workflow_id": wf["bad"], "name": "bad", "status": "failed",
                                      "old_status": "running"}


async def test_chat_formats(tmp_path, dsn, aio_loop, receiver):
    async with instance(tmp_path, dsn) as api:
        with trio.fail_after(30):
            await subscribe(api, receiver.url + "/slack", ["job.created"], format="slack")
            await subscribe(api, receiver.url + "/discord", ["job.created"], format="discord")
            created = await enqueue(api, "chat")
            got = {g.path: g.json() for g in await receiver.wait_for(2)}
    assert set(got["/slack"]) == {"text"} and created["id"] in got["/slack"]["text"]
    assert set(got["/discord"]) == {"content"} and "job.created" in got["/discord"]["content"]


async def test_retries_after_500s_keep_the_delivery_id(tmp_path, dsn, aio_loop, receiver):
    async with instance(tmp_path, dsn, webhook_dispatcher=False) as api:
        d = api.running.services.dispatcher
        with trio.fail_after(30):
            await subscribe(api, receiver.url, ["job.created"], secret="k")
            await enqueue(api, "retry")
            receiver.statuses = [500, 503, 200]
            assert (await d.run_once(now=later(1))).failed == 1
            assert (await d.run_once(now=later(2))).total == 0          # backing off (10 s after the 1st failure)
            assert (await d.run_once(now=later(12))).failed == 1
            assert (await d.run_once(now=later(25))).total == 0         # 20 s after the 2nd
            assert (await d.run_once(now=later(40))).sent == 1
            assert (await d.run_once(now=later(4000))).total == 0       # delivered: never again
            got = receiver.requests
            assert len(got) == 3
            assert len({g.headers["x-spooled-delivery"] for g in got}) == 1
            assert len({g.body for g in got}) == 1                     # the same bytes every time
            assert all(g.signature_ok("k") for g in got)
            (row,) = await outbox(api)
            assert (row["status"], row["attempts"], row["status_code"], row["locked_until"]) == ("success", 3, 200,
                                                                                                  None)


async def test_a_delivery_out_of_attempts_fails_and_redelivery_sends_it_again(tmp_path, dsn, aio_loop, receiver):
    async with instance(tmp_path, dsn, webhook_dispatcher=False) as api:
        d = api.running.services.dispatcher
        with trio.fail_after(30):
            hook = await subscribe(api, receiver.url, ["job.created"])
            await enqueue(api, "gives-up")
            receiver.statuses = [500] * 5
            for i, at in enumerate((1, 20, 50, 100, 200)):
                assert (await d.run_once(now=later(at))).failed == 1, i
            assert (await d.run_once(now=later(100_000))).total == 0
            (row,) = await outbox(api)
            assert (row["status"], row["attempts"], row["error"]) == ("failed", 5, "HTTP 500")
            w = (await api.get(f"/api/v1/webhooks/{hook['id']}")).json()
            assert (w["failure_count"], w["last_status"], w["enabled"]) == (1, "failed", True)
            (listed,) = (await api.get(f"/api/v1/outgoing-webhooks/{hook['id']}/deliveries")).json()
            assert listed["status"] == "failed" and listed["status_code"] == 500
            r = await api.post(f"/api/v1/outgoing-webhooks/{hook['id']}/retry/{listed['id']}")
            assert r.status_code == 200 and r.json()["success"] is True
            assert (await d.run_once(now=later(1))).sent == 1
            assert len({g.headers["x-spooled-delivery"] for g in receiver.requests}) == 1 == len(
                {g.json()["id"] for g in receiver.requests})
            w = (await api.get(f"/api/v1/webhooks/{hook['id']}")).json()
            assert (w["failure_count"], w["last_status"]) == (0, "success")   # any success resets the count
            bad = await api.post(f"/api/v1/outgoing-webhooks/{hook['id']}/retry/00000000-0000-0000-0000-000000000000")
            assert bad.status_code == 404


async def test_twenty_failed_deliveries_in_a_row_disable_the_webhook(tmp_path, dsn, aio_loop, receiver):
    async with instance(tmp_path, dsn, webhook_dispatcher=False, webhook_max_attempts=1) as api:
        d = api.running.services.dispatcher
        with trio.fail_after(60):
            hook = await subscribe(api, receiver.url, ["job.created"])
            r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "many",
                                                          "jobs": [{"payload": {"i": i}} for i in range(21)]})
            assert r.json()["success_count"] == 21
            receiver.statuses = [500] * 21
            failed = 0
            while (res := await d.run_once(now=later(1), limit=5)).total:
                failed += res.failed
            w = (await api.get(f"/api/v1/webhooks/{hook['id']}")).json()
            assert (w["enabled"], w["last_status"], w["failure_count"]) == (False, "auto_disabled", 20)
            assert failed == 21 and len(receiver.requests) == 20     # the 21st is not sent to a disabled webhook
            rows = await outbox(api)
            assert [r["error"] for r in rows].count("webhook disabled") == 1
            await enqueue(api, "many")                # and nothing new is written for it
            assert len(await outbox(api)) == 21
            r = await api.put(f"/api/v1/outgoing-webhooks/{hook['id']}", json={"enabled": True})
            assert (r.json()["enabled"], r.json()["failure_count"]) == (True, 0)


async def test_a_dispatcher_killed_mid_delivery_delivers_again_with_the_same_id(tmp_path, dsn, aio_loop, receiver):
    async with instance(tmp_path, dsn, webhook_dispatcher=False) as api:
        d = api.running.services.dispatcher
        with trio.fail_after(30):
            await subscribe(api, receiver.url, ["job.created"])
            receiver.hold = trio.Event()
            async with trio.open_nursery() as nursery:   # the dispatcher loop, as the supervisor runs it
                await nursery.start(partial(dispatcher_loop.run, d, concurrency=4, interval=0.05))
                await enqueue(api, "killed")
                await receiver.wait_for(1)               # the request is in flight ...
                nursery.cancel_scope.cancel()            # ... when the dispatcher dies
            (row,) = await outbox(api)
            assert row["status"] == "pending" and row["attempts"] == 1 and row["locked_until"] is not None
            receiver.hold = None
            assert (await d.run_once(now=later(1))).total == 0       # still leased by the dead dispatcher
            assert (await d.run_once(now=later(d.policy.lease_secs + 1))).sent == 1
            first, second = receiver.requests
            assert first.headers["x-spooled-delivery"] == second.headers["x-spooled-delivery"]
            assert first.body == second.body
            (row,) = await outbox(api)
            assert (row["status"], row["attempts"]) == ("success", 2)


async def test_two_dispatchers_never_send_one_delivery_twice(tmp_path, dsn, aio_loop, receiver):
    async with instance(tmp_path, dsn, webhook_dispatcher=False) as a, \
            instance(tmp_path, dsn, webhook_dispatcher=False) as b:
        with trio.fail_after(60):
            await subscribe(a, receiver.url, ["job.created"])
            r = await a.post("/api/v1/jobs/bulk", json={"queue_name": "both",
                                                        "jobs": [{"payload": {"i": i}} for i in range(30)]})
            assert r.json()["success_count"] == 30
            results = []

            async def drain(dispatcher):
                while (res := await dispatcher.run_once(now=later(1), limit=4)).total:
                    results.append(res)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain, a.running.services.dispatcher)
                nursery.start_soon(drain, b.running.services.dispatcher)
            ids = [g.headers["x-spooled-delivery"] for g in receiver.requests]
            assert len(ids) == 30 == len(set(ids)) and sum(r.sent for r in results) == 30


async def test_an_exception_inside_one_delivery_is_recorded_not_raised(tmp_path, dsn, aio_loop, receiver):
    async with instance(tmp_path, dsn, webhook_dispatcher=False) as api:
        d = api.running.services.dispatcher
        with trio.fail_after(30):
            await subscribe(api, receiver.url, ["job.created"])
            await enqueue(api, "boom")
            (leased,) = await d.lease(limit=10, now=later(1))
            broken = attrs.evolve(leased, format="no-such-format")    # rendering it raises inside deliver()
            assert await d.deliver(broken, now=later(1)) is False
            (row,) = await outbox(api)
            assert row["status"] == "pending" and row["error"].startswith("internal error")
            assert row["locked_until"] is None and receiver.requests == []
            assert (await d.run_once(now=later(30))).sent == 1        # the next attempt goes through


async def test_the_test_endpoint_sends_now(tmp_path, dsn, aio_loop, receiver):
    async with instance(tmp_path, dsn, webhook_dispatcher=False) as api:
        with trio.fail_after(30):
            hook = await subscribe(api, receiver.url + "/t", ["job.created"], secret="sig")
            r = await api.post(f"/api/v1/outgoing-webhooks/{hook['id']}/test")
            assert r.status_code == 200
            body = r.json()
            assert (body["success"], body["status_code"], body["error"]) == (True, 200, None)
            assert isinstance(body["response_time_ms"], int)
            (got,) = receiver.requests
            assert got.json()["event"] == "webhook.test" and got.signature_ok("sig")
            assert got.json()["data"]["webhook_id"] == hook["id"]
            receiver.statuses = [500]
            body = (await api.post(f"/api/v1/outgoing-webhooks/{hook['id']}/test")).json()
            assert (body["success"], body["status_code"]) == (False, 500)
            assert await outbox(api) == []     # a test is not an outbox delivery


# -- completion webhooks ------------------------------------------------------------------------------------------
async def test_completion_webhook_is_called_through_the_outbox(tmp_path, dsn, aio_loop, receiver):
    async with instance(tmp_path, dsn) as api:
        with trio.fail_after(30):
            signed = await enqueue(api, "cw", completion_webhook=receiver.url + "/done",
                                   completion_webhook_secret="per-job")
            (leased,) = await claim(api, "cw")
            await api.post(f"/api/v1/jobs/{leased['id']}/complete", json={"lease_id": leased["lease_id"],
                                                                           "result": [1, 2]})
            (got,) = await receiver.wait_for(1)
            assert got.path == "/done" and got.signature_ok("per-job")
            body = got.json()
            assert body["event"] == "job.completed" and body["data"]["job_id"] == signed["id"]
            assert body["data"]["result"] == [1, 2]
            unsigned = await enqueue(api, "cw", completion_webhook=receiver.url + "/dead", max_retries=0)
            (leased,) = await claim(api, "cw")
            await api.post(f"/api/v1/jobs/{leased['id']}/fail", json={"lease_id": leased["lease_id"], "error": "x"})
            got = (await receiver.wait_for(2))[1]
            assert got.json()["event"] == "job.deadlettered" and got.json()["data"]["job_id"] == unsigned["id"]
            assert "x-spooled-signature" not in got.headers and got.json()["data"]["last_error"] == "x"
            r = await api.get(f"/api/v1/jobs/{signed['id']}")
            assert "completion_webhook_secret" not in r.json() and "per-job" not in r.text
            await complete_one(api, "plain")              # no completion webhook: no delivery
            assert len(await outbox(api)) == 2


async def test_ssrf_guard_refuses_private_targets(tmp_path, dsn, aio_loop, receiver):
    async with instance(tmp_path, dsn, webhook_allow_private=False, webhook_dispatcher=False) as api:
        d = api.running.services.dispatcher
        with trio.fail_after(30):
            for url in (receiver.url, "http://localhost:9/x", "http://10.1.2.3/x", "http://169.254.169.254/latest",
                        "http://[::1]:80/", "http://[::ffff:127.0.0.1]/"):
                r = await api.post("/api/v1/webhooks", json={"name": "x", "url": url, "events": ["job.created"]})
                assert r.status_code == 422, url
            # a target that passes the literal check but resolves to loopback is refused when connecting
            port = receiver.url.rsplit(":", 1)[1]
            await enqueue(api, "ssrf", completion_webhook=f"http://localhost:{port}/cw")
            await complete_one(api, "ssrf")
            res = await d.run_once(now=later(1))
            assert res.failed == 1 and receiver.requests == []
            (row,) = await outbox(api)
            assert "refused" in row["error"] and row["status_code"] is None
    guarded, open_ = Sender(allow_private=False, timeout_secs=5), Sender(allow_private=True, timeout_secs=5)
    try:
        with trio.fail_after(30):
            resp = await guarded.post(receiver.url.replace("127.0.0.1", "localhost"), b"{}", {})
            assert resp.status_code is None and "refused" in resp.error and receiver.requests == []
            assert (await open_.post(receiver.url, b"{}", {})).ok and len(receiver.requests) == 1
    finally:
        await guarded.aclose()
        await open_.aclose()


async def test_deliveries_and_the_dispatcher_loop_show_in_metrics(tmp_path, dsn, aio_loop, receiver):
    from tests.test_metrics import scrape
    async with instance(tmp_path, dsn) as api:
        with trio.fail_after(30):
            receiver.statuses = [500]      # the first attempt fails (retried 10 s later), the rest succeed
            hook = await subscribe(api, receiver.url + "/hook", ["job.created"])
            await enqueue(api, "wh")
            await receiver.wait_for(1)
            while (s := await scrape(api)).get("spooled_webhook_deliveries_total", outcome="failed") < 1:
                await trio.sleep(0.02)
            assert s.get("spooled_webhook_deliveries_total", outcome="delivered") == 0
            assert (await api.delete(f"/api/v1/outgoing-webhooks/{hook['id']}")).status_code == 204
            await subscribe(api, receiver.url + "/ok", ["job.created"])
            await enqueue(api, "wh")
            while (s := await scrape(api)).get("spooled_webhook_deliveries_total", outcome="delivered") < 1:
                await trio.sleep(0.02)
            assert s.get("spooled_loop_runs_total", loop="webhook dispatcher", outcome="ok") >= 1
            assert s.get("spooled_loop_consecutive_errors", loop="webhook dispatcher") == 0
