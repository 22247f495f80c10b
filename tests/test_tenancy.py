"""Tenancy over every route: organization A owns data; for each REST route of the app's url_map and each gRPC
method of the service descriptors a fresh organization B calls it against A's ids (or A's names), and gets a 404
/ NOT_FOUND, or acts on its own data only. A's data is then exactly as it was.

`test_every_route_has_a_tenancy_case` makes the matrix complete: a new route or RPC without a case here (or an
entry in `NO_ORG_SCOPE`, saying why it has no organization to cross) fails it."""

from __future__ import annotations

import types
import uuid
from typing import Awaitable, Callable

import httpx
import pytest
import trio
from grpclib.exceptions import GRPCError
from trio_asyncio import aio_as_trio

from spooled.settings import Settings
from spooled.transports.grpc.gen import spooled_pb2 as pb
from spooled.transports.grpc.gen.spooled_grpc import QueueServiceStub, WorkerServiceStub
from spooled.transports.http.app import create_app
from tests.access import ADMIN, settings_with_admin
from tests.conftest import new_org
from tests.helpers import claim, enqueue
from tests.test_grpc import key_of, open_aio_channel, until

# Routes and RPCs with no organization to cross, and why.
NO_ORG_SCOPE = {
    ("GET", "/health"): "probe", ("GET", "/health/live"): "probe", ("GET", "/health/ready"): "probe",
    ("GET", "/dashboard"): "static page (its data comes from the API)",
    ("GET", "/dashboard/<path:name>"): "static files",
    ("GET", "/api/v1/openapi.json"): "the API's own description, the same for everyone",
    ("GET", "/docs"): "static page (renders /api/v1/openapi.json)",
    ("GET", "/docs/<path:name>"): "static files",
    ("POST", "/api/v1/organizations"): "creates a new organization (no existing one is named)",
    ("GET", "/api/v1/organizations/check-slug"): "signup helper: whether a slug is free (global by nature)",
    ("POST", "/api/v1/organizations/generate-slug"): "signup helper: a slug for a name",
    ("POST", "/api/v1/auth/login"): "the body's API key is the credential: it names its organization",
    ("POST", "/api/v1/auth/refresh"): "the refresh token is the credential: it names its organization",
    ("POST", "/api/v1/auth/validate"): "reports on the token given: its own organization",
    ("POST", "/api/v1/auth/email/start"): "an address, not an organization (same answer for every address)",
    ("POST", "/api/v1/auth/email/verify"): "the emailed code is the credential (test_email_login.py)",
    ("GET", "/api/v1/auth/check-email"): "whether any organization uses an address (by design, authenticated)",
    ("POST", "/api/v1/billing/webhook"): "Stripe's signed events (test_billing.py); no caller organization",
    ("GET", "/metrics"): "the operator's scrape (SPOOLED_METRICS_TOKEN): every organization's counts by design",
}

Case = Callable[["Ctx"], Awaitable[None]]
CASES: dict[tuple[str, str], Case] = {}


def case(method: str, rule: str):
    def register(fn: Case) -> Case:
        assert (method, rule) not in CASES, (method, rule)
        CASES[(method, rule)] = fn
        return fn
    return register


class Ctx:
    """A's ids, A's client, and B: a fresh organization per case (`b`, `b_id`, `b_key`)."""

    def __init__(self, server, a: httpx.AsyncClient, ids: dict):
        self.server, self.a, self.ids = server, a, ids
        self.b: httpx.AsyncClient = None  # type: ignore[assignment]

    def path(self, rule: str) -> str:
        values = {"job_id": self.ids["processing"], "name": "mine", "org_id": self.a.org_id,
                  "key_id": self.ids["key"], "schedule_id": self.ids["schedule"], "worker_id": "wa",
                  "workflow_id": self.ids["workflow"], "webhook_id": self.ids["webhook"],
                  "delivery_id": self.ids["delivery"]}
        for name, value in values.items():
            rule = rule.replace(f"<{name}>", value)
        return rule


def not_found(method: str, rule: str, body: dict | None = None) -> None:
    async def run(ctx: Ctx) -> None:
        r = await ctx.b.request(method, ctx.path(rule), json=body)
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND", (r.status_code, r.text)
    case(method, rule)(run)


def refused_to_tenants(method: str, rule: str) -> None:
    """Operator routes: an organization's API key is not an admin key."""
    async def run(ctx: Ctx) -> None:
        r = await ctx.b.request(method, ctx.path(rule), json={} if method != "GET" else None)
        assert r.status_code == 401, (r.status_code, r.text)
    case(method, rule)(run)


# -- jobs ----------------------------------------------------------------------------------------------------
for method, rule, body in [
    ("GET", "/api/v1/jobs/<job_id>", None), ("DELETE", "/api/v1/jobs/<job_id>", None),
    ("GET", "/api/v1/jobs/<job_id>/history", None), ("POST", "/api/v1/jobs/<job_id>/retry", None),
    ("PUT", "/api/v1/jobs/<job_id>/priority", {"priority": 7}),
]:
    not_found(method, rule, body)


def with_lease(method: str, rule: str, extra: dict) -> None:
    async def run(ctx: Ctx) -> None:
        r = await ctx.b.request(method, ctx.path(rule), json={"lease_id": ctx.ids["lease"], **extra})
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND", r.text
    case(method, rule)(run)


with_lease("POST", "/api/v1/jobs/<job_id>/complete", {"result": {"stolen": True}})
with_lease("POST", "/api/v1/jobs/<job_id>/fail", {"error": "x"})
with_lease("POST", "/api/v1/jobs/<job_id>/heartbeat", {"lease_duration_secs": 600})


@case("POST", "/api/v1/jobs")
async def _(ctx):
    r = await ctx.b.post("/api/v1/jobs", json={"queue_name": "mine", "payload": {"b": 1},
                                               "idempotency_key": ctx.ids["idem"]})
    assert r.status_code == 201 and r.json()["organization_id"] == ctx.b_id   # A's key is not B's: a new job


@case("POST", "/api/v1/jobs/bulk")
async def _(ctx):
    r = await ctx.b.post("/api/v1/jobs/bulk", json={"queue_name": "mine", "jobs": [{"payload": {}}]})
    (s,) = r.json()["succeeded"]
    assert (await ctx.b.get(f"/api/v1/jobs/{s['job_id']}")).json()["organization_id"] == ctx.b_id


@case("GET", "/api/v1/jobs")
async def _(ctx):
    for query in ("", "?queue_name=mine", f"?q={ctx.ids['pending'][:8]}", "?status=processing,deadletter"):
        r = await ctx.b.get("/api/v1/jobs" + query)
        assert r.status_code == 200 and r.json() == [], (query, r.text)


@case("GET", "/api/v1/jobs/dlq")
async def _(ctx):
    assert (await ctx.b.get("/api/v1/jobs/dlq")).json() == []


@case("GET", "/api/v1/jobs/stats")
async def _(ctx):
    assert (await ctx.b.get("/api/v1/jobs/stats")).json()["total"] == 0


@case("GET", "/api/v1/jobs/status")
async def _(ctx):
    ids = ",".join(ctx.ids[s] for s in ("pending", "processing", "deadletter"))
    assert (await ctx.b.get(f"/api/v1/jobs/status?ids={ids}")).json() == []


@case("POST", "/api/v1/jobs/claim")
async def _(ctx):
    r = await ctx.b.post("/api/v1/jobs/claim", json={"queue_name": "mine", "worker_id": "w", "limit": 10})
    assert r.json() == {"jobs": []}          # A has a pending job in a queue of that name


@case("POST", "/api/v1/jobs/complete")
async def _(ctx):
    r = await ctx.b.post("/api/v1/jobs/complete", json={"completions": [
        {"job_id": ctx.ids["processing"], "lease_id": ctx.ids["lease"]}]})
    assert r.json()["results"] == [{"job_id": ctx.ids["processing"], "success": False, "error": "NOT_FOUND"}]


@case("POST", "/api/v1/jobs/dlq/retry")
async def _(ctx):
    for body in ({"queue_name": "mine"}, {"job_ids": [ctx.ids["deadletter"]]}):
        assert (await ctx.b.post("/api/v1/jobs/dlq/retry", json=body)).json()["retried_count"] == 0


@case("POST", "/api/v1/jobs/dlq/purge")
async def _(ctx):
    for body in ({"confirm": True, "queue_name": "mine"}, {"confirm": True}):
        assert (await ctx.b.post("/api/v1/jobs/dlq/purge", json=body)).json()["purged_count"] == 0


# -- queues --------------------------------------------------------------------------------------------------
for method, rule, body in [
    ("GET", "/api/v1/queues/<name>", None), ("PATCH", "/api/v1/queues/<name>", {"max_retries": 9}),
    ("DELETE", "/api/v1/queues/<name>", None), ("POST", "/api/v1/queues/<name>/pause", {"reason": "x"}),
    ("POST", "/api/v1/queues/<name>/resume", None), ("GET", "/api/v1/queues/<name>/stats", None),
    ("GET", "/api/v1/queues/<name>/throughput", None),
]:
    not_found(method, rule, body)


@case("GET", "/api/v1/queues")
async def _(ctx):
    assert (await ctx.b.get("/api/v1/queues")).json() == []


@case("POST", "/api/v1/queues")
async def _(ctx):
    r = await ctx.b.post("/api/v1/queues", json={"name": "mine", "max_retries": 9})
    assert r.status_code == 201 and r.json()["organization_id"] == ctx.b_id   # its own queue of that name


@case("PUT", "/api/v1/queues/<name>/config")
async def _(ctx):
    r = await ctx.b.put("/api/v1/queues/mine/config", json={"max_retries": 9, "dead_letter": False})
    assert r.status_code in (200, 201) and r.json()["organization_id"] == ctx.b_id


# -- organizations, keys, usage, billing, summary ------------------------------------------------------------
for method, rule, body in [
    ("GET", "/api/v1/organizations/<org_id>", None), ("PUT", "/api/v1/organizations/<org_id>", {"name": "x"}),
    ("PATCH", "/api/v1/organizations/<org_id>", {"name": "x"}), ("DELETE", "/api/v1/organizations/<org_id>", None),
    ("GET", "/api/v1/organizations/<org_id>/members", None),
    ("GET", "/api/v1/api-keys/<key_id>", None), ("PUT", "/api/v1/api-keys/<key_id>", {"is_active": False}),
    ("DELETE", "/api/v1/api-keys/<key_id>", None),
]:
    not_found(method, rule, body)


@case("GET", "/api/v1/organizations")
async def _(ctx):
    assert [o["id"] for o in (await ctx.b.get("/api/v1/organizations")).json()] == [ctx.b_id]


@case("GET", "/api/v1/organizations/usage")
async def _(ctx):
    usage = (await ctx.b.get("/api/v1/organizations/usage")).json()["usage"]
    assert usage["queues"]["current"] == 0 and usage["workers"]["current"] == 0 and usage["schedules"]["current"] == 0


@case("GET", "/api/v1/api-keys")
async def _(ctx):
    ids = {k["id"] for k in (await ctx.b.get("/api/v1/api-keys")).json()}
    assert ctx.ids["key"] not in ids and all(k not in ids for k in ctx.ids["a_keys"])


@case("POST", "/api/v1/api-keys")
async def _(ctx):
    r = await ctx.b.post("/api/v1/api-keys", json={"name": "b"})
    assert r.status_code == 201 and r.json()["organization_id"] == ctx.b_id


@case("GET", "/api/v1/auth/me")
async def _(ctx):
    assert (await ctx.b.get("/api/v1/auth/me")).json()["organization_id"] == ctx.b_id


@case("POST", "/api/v1/auth/logout")
async def _(ctx):
    r = await ctx.b.post("/api/v1/auth/logout", json={"refresh_token": ctx.ids["a_refresh"]})
    assert r.status_code == 401          # another organization's refresh token is not revoked


@case("GET", "/api/v1/billing/status")
async def _(ctx):
    status = (await ctx.b.get("/api/v1/billing/status")).json()
    assert status["usage"]["queues"] == 0 and status["usage"]["schedules"] == 0


@case("POST", "/api/v1/billing/portal")
async def _(ctx):
    r = await ctx.b.post("/api/v1/billing/portal", json={"return_url": "https://b.example.com"})
    assert r.status_code in (400, 503) and "url" not in r.json()     # never a portal for A's customer


@case("GET", "/api/v1/dashboard")
async def _(ctx):
    d = (await ctx.b.get("/api/v1/dashboard")).json()
    assert d["jobs"]["total"] == 0 and d["queues"] == [] and d["workers"]["total"] == 0


# -- schedules -----------------------------------------------------------------------------------------------
for method, rule, body in [
    ("GET", "/api/v1/schedules/<schedule_id>", None), ("PUT", "/api/v1/schedules/<schedule_id>", {"name": "x"}),
    ("DELETE", "/api/v1/schedules/<schedule_id>", None), ("GET", "/api/v1/schedules/<schedule_id>/history", None),
    ("POST", "/api/v1/schedules/<schedule_id>/pause", None), ("POST", "/api/v1/schedules/<schedule_id>/resume", None),
    ("POST", "/api/v1/schedules/<schedule_id>/trigger", None),
]:
    not_found(method, rule, body)


@case("GET", "/api/v1/schedules")
async def _(ctx):
    for query in ("", "?queue_name=mine"):
        assert (await ctx.b.get("/api/v1/schedules" + query)).json() == []


@case("POST", "/api/v1/schedules")
async def _(ctx):
    r = await ctx.b.post("/api/v1/schedules", json={"name": "nightly", "cron_expression": "0 0 * * *",
                                                    "queue_name": "mine", "payload_template": {}})
    assert r.status_code == 201 and r.json()["organization_id"] == ctx.b_id


# -- workers -------------------------------------------------------------------------------------------------
for method, rule, body in [
    ("GET", "/api/v1/workers/<worker_id>", None), ("DELETE", "/api/v1/workers/<worker_id>", None),
    ("POST", "/api/v1/workers/<worker_id>/deregister", None),
    ("POST", "/api/v1/workers/<worker_id>/heartbeat", {"current_jobs": 3, "status": "draining"}),
]:
    not_found(method, rule, body)


@case("GET", "/api/v1/workers")
async def _(ctx):
    for query in ("", "?queue_name=mine"):
        assert (await ctx.b.get("/api/v1/workers" + query)).json() == []


@case("POST", "/api/v1/workers/register")
async def _(ctx):
    r = await ctx.b.post("/api/v1/workers/register", json={"queue_name": "mine", "hostname": "b",
                                                           "worker_id": "wa"})
    assert r.status_code == 201       # B's own worker "wa", a new one


# -- workflows and dependencies ------------------------------------------------------------------------------
for method, rule, body in [
    ("GET", "/api/v1/workflows/<workflow_id>", None), ("POST", "/api/v1/workflows/<workflow_id>/cancel", None),
    ("POST", "/api/v1/workflows/<workflow_id>/retry", None), ("GET", "/api/v1/jobs/<job_id>/dependencies", None),
]:
    not_found(method, rule, body)


@case("GET", "/api/v1/workflows")
async def _(ctx):
    for query in ("", "?status=running", "?status=pending"):
        assert (await ctx.b.get("/api/v1/workflows" + query)).json() == []


@case("POST", "/api/v1/workflows")
async def _(ctx):
    r = await ctx.b.post("/api/v1/workflows", json={"name": "b", "jobs": [
        {"key": "one", "queue_name": "mine", "payload": {}}]})
    assert r.status_code == 201
    (j,) = r.json()["job_ids"]
    assert (await ctx.b.get(f"/api/v1/jobs/{j['job_id']}")).json()["organization_id"] == ctx.b_id


@case("POST", "/api/v1/jobs/<job_id>/dependencies")
async def _(ctx):
    # on A's job: not found; B's own job depending on A's job: A's job is not one of B's (422 naming it)
    r = await ctx.b.post(ctx.path("/api/v1/jobs/<job_id>/dependencies"), json={"depends_on": [ctx.ids["pending"]]})
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND", r.text
    mine = (await ctx.b.post("/api/v1/jobs", json={"queue_name": "b", "payload": {}})).json()["id"]
    r = await ctx.b.post(f"/api/v1/jobs/{mine}/dependencies", json={"depends_on": [ctx.ids["pending"]]})
    assert r.status_code in (404, 422) and r.json()["status"] == r.status_code, r.text
    assert (await ctx.b.get(f"/api/v1/jobs/{mine}")).json()["dependencies_met"] is True


# -- outgoing webhooks (both paths) and the webhook token ---------------------------------------------------
for prefix in ("/api/v1/webhooks", "/api/v1/outgoing-webhooks"):
    for method, rule, body in [
        ("GET", f"{prefix}/<webhook_id>", None), ("PUT", f"{prefix}/<webhook_id>", {"name": "x"}),
        ("PATCH", f"{prefix}/<webhook_id>", {"enabled": False}), ("DELETE", f"{prefix}/<webhook_id>", None),
        ("GET", f"{prefix}/<webhook_id>/deliveries", None), ("POST", f"{prefix}/<webhook_id>/test", None),
        ("POST", f"{prefix}/<webhook_id>/retry/<delivery_id>", None),
    ]:
        not_found(method, rule, body)

    def webhook_cases(prefix=prefix):
        @case("GET", prefix)
        async def _(ctx):
            assert (await ctx.b.get(prefix)).json() == []

        @case("POST", prefix)
        async def _(ctx):
            r = await ctx.b.post(prefix, json={"name": "b", "url": "https://b.example.com/h",
                                               "events": ["worker.deregistered"]})
            assert r.status_code == 201 and r.json()["organization_id"] == ctx.b_id
    webhook_cases()

for method, rule in [("GET", "/api/v1/organizations/<org_id>/webhook-token"),
                     ("POST", "/api/v1/organizations/<org_id>/webhook-token/regenerate")]:
    not_found(method, rule)


@case("GET", "/api/v1/organizations/webhook-token")
async def _(ctx):
    got = (await ctx.b.get("/api/v1/organizations/webhook-token")).json()
    assert got["webhook_token"] != ctx.ids["a_token"] and ctx.b_id in got["webhook_url"]


@case("POST", "/api/v1/organizations/webhook-token/regenerate")
async def _(ctx):
    got = (await ctx.b.post("/api/v1/organizations/webhook-token/regenerate")).json()
    assert got["webhook_token"] != ctx.ids["a_token"] and ctx.b_id in got["webhook_url"]


@case("GET", "/api/v1/webhooks/deliveries")
async def _(ctx):
    assert (await ctx.b.get("/api/v1/webhooks/deliveries")).json() == []      # A's inbound log is A's


# -- incoming webhooks: A's receivers refuse B's credentials and enqueue nothing into A ---------------------
@case("POST", "/api/v1/webhooks/<org_id>/custom")
async def _(ctx):
    token = (await ctx.b.get("/api/v1/organizations/webhook-token")).json()["webhook_token"]
    r = await ctx.b.post(ctx.path("/api/v1/webhooks/<org_id>/custom"), headers={"X-Webhook-Token": token},
                         json={"queue_name": "mine", "event_type": "x", "payload": {}})
    assert r.status_code == 401, r.text


@case("POST", "/api/v1/webhooks/<org_id>/github")
async def _(ctx):
    import hashlib
    import hmac
    body = b'{"zen": "x"}'
    sig = "sha256=" + hmac.new(b"b-secret-0123456789", body, hashlib.sha256).hexdigest()
    await ctx.b.patch(f"/api/v1/organizations/{ctx.b_id}", json={"settings": {
        "github_webhook_secret": "b-secret-0123456789"}})
    r = await ctx.b.post(ctx.path("/api/v1/webhooks/<org_id>/github"), content=body, headers={
        "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-b", "X-Hub-Signature-256": sig,
        "Content-Type": "application/json"})
    assert r.status_code in (401, 503), r.text      # B's secret is not A's (A has none configured)


@case("POST", "/api/v1/webhooks/<org_id>/stripe")
async def _(ctx):
    import stripe
    body = '{"id": "evt_b", "object": "event", "type": "charge.succeeded", "created": 1, "data": {"object": {}}}'
    sig = stripe.WebhookSignature.generate_signature_header(body, "whsec_b_0123456789")
    r = await ctx.b.post(ctx.path("/api/v1/webhooks/<org_id>/stripe"), content=body,
                         headers={"Stripe-Signature": sig, "Content-Type": "application/json"})
    assert r.status_code in (401, 503), r.text


# -- realtime: B's streams see B's events only ---------------------------------------------------------------
A_LIVE = "a-live"        # A enqueues here while B listens (left out of A's before/after snapshot)

async def own_event_only(ctx, frames) -> None:
    """Read frames until B's own job shows up (it was enqueued after A's): none before it is A's."""
    mine = (await ctx.b.post("/api/v1/jobs", json={"queue_name": "mine", "payload": {}})).json()["id"]
    theirs = {ctx.ids[s] for s in ("pending", "processing", "deadletter")} | {ctx.ids["a_live"]}
    while True:
        f = await frames()
        job = f["data"].get("job_id")
        assert job not in theirs and (job is None or job == mine), f
        if job == mine:
            return


def sse_case(rule: str):
    async def run(ctx):
        from tests.events_helpers import sse
        path = ctx.path(rule)
        async with sse(ctx.b, path) as stream:
            await ctx.a.post("/api/v1/jobs", json={"queue_name": A_LIVE, "payload": {"a": 1}})
            if rule.endswith("<name>"):
                stats = await stream.next_frame()         # B's queue named like A's: B's (empty) stats
                assert stats["type"] == "QueueStats" and stats["data"]["pending_jobs"] == 0, stats
            await own_event_only(ctx, stream.next_frame)
    case("GET", rule)(run)


for rule in ("/api/v1/events", "/api/v1/events/sse", "/api/v1/events/queues/<name>"):
    sse_case(rule)
not_found("GET", "/api/v1/events/jobs/<job_id>")


def ws_case(rule: str):
    async def run(ctx):
        from tests.events_helpers import ws, ws_frame
        async with ws(ctx.server.http_url, f"{rule}?token={ctx.b_key}") as conn:
            await ctx.a.post("/api/v1/jobs", json={"queue_name": A_LIVE, "payload": {"a": 1}})
            await own_event_only(ctx, lambda: ws_frame(conn))
    case("GET", rule)(run)


for rule in ("/api/v1/events/ws", "/api/v1/ws"):
    ws_case(rule)


# -- admin (operator routes: an organization's key is refused) -----------------------------------------------
for method, rule in [
    ("GET", "/api/v1/admin/organizations"), ("POST", "/api/v1/admin/organizations"),
    ("GET", "/api/v1/admin/organizations/<org_id>"), ("PATCH", "/api/v1/admin/organizations/<org_id>"),
    ("PUT", "/api/v1/admin/organizations/<org_id>"), ("DELETE", "/api/v1/admin/organizations/<org_id>"),
    ("POST", "/api/v1/admin/organizations/<org_id>/api-keys"),
    ("POST", "/api/v1/admin/organizations/<org_id>/reset-usage"),
    ("GET", "/api/v1/admin/plans"), ("GET", "/api/v1/admin/stats"),
]:
    refused_to_tenants(method, rule)


# -- gRPC ----------------------------------------------------------------------------------------------------
def grpc_case(name: str):
    return case("GRPC", name)


async def rpc(ctx: Ctx, method: str, request):
    stub = ctx.workers if method in ("Register", "Heartbeat", "Deregister") else ctx.queue
    try:
        return "OK", await aio_as_trio(getattr(stub, method))(request, metadata={"x-api-key": ctx.b_key},
                                                                timeout=20)
    except GRPCError as exc:
        return exc.status.name, None


for name, make in [
    ("GetJob", lambda c: pb.GetJobRequest(job_id=c.ids["processing"])),
    ("Complete", lambda c: pb.CompleteRequest(job_id=c.ids["processing"], lease_id=c.ids["lease"])),
    ("Fail", lambda c: pb.FailRequest(job_id=c.ids["processing"], lease_id=c.ids["lease"], error="x")),
    ("RenewLease", lambda c: pb.RenewLeaseRequest(job_id=c.ids["processing"], lease_id=c.ids["lease"],
                                                   extension_secs=600)),
    ("GetQueueStats", lambda c: pb.GetQueueStatsRequest(queue_name="mine")),
    ("Heartbeat", lambda c: pb.HeartbeatRequest(worker_id="wa", current_jobs=3)),
    ("Deregister", lambda c: pb.DeregisterRequest(worker_id="wa")),
]:
    def make_case(name=name, make=make):
        async def run(ctx):
            code, _ = await rpc(ctx, name, make(ctx))
            assert code == "NOT_FOUND", (name, code)
        grpc_case(name)(run)
    make_case()


@grpc_case("Enqueue")
async def _(ctx):
    code, resp = await rpc(ctx, "Enqueue", pb.EnqueueRequest(queue_name="mine", idempotency_key=ctx.ids["idem"]))
    assert code == "OK" and resp.created and resp.job_id != ctx.ids["idem_job"]


@grpc_case("EnqueueBulk")
async def _(ctx):
    code, resp = await rpc(ctx, "EnqueueBulk", pb.EnqueueBulkRequest(queue_name="mine", jobs=[
        pb.EnqueueRequest(idempotency_key=ctx.ids["idem"])]))
    assert code == "OK" and resp.results[0].created and resp.results[0].job_id != ctx.ids["idem_job"]


@grpc_case("Dequeue")
async def _(ctx):
    code, resp = await rpc(ctx, "Dequeue", pb.DequeueRequest(queue_name="mine", worker_id="w", batch_size=10))
    assert code == "OK" and list(resp.jobs) == []


@grpc_case("CompleteBatch")
async def _(ctx):
    code, resp = await rpc(ctx, "CompleteBatch", pb.CompleteBatchRequest(completions=[
        pb.CompleteRequest(job_id=ctx.ids["processing"], lease_id=ctx.ids["lease"])]))
    assert code == "OK" and list(resp.success) == [False]


@grpc_case("Register")
async def _(ctx):
    code, resp = await rpc(ctx, "Register", pb.RegisterWorkerRequest(queue_name="mine", hostname="b",
                                                                       worker_id="wa"))
    assert code == "OK" and resp.worker_id == "wa"        # B's own


@grpc_case("StreamJobs")
async def _(ctx):
    """B's stream on a queue named like A's (which holds a pending job) claims, finds nothing and parks."""
    wakeups = ctx.server.services.wakeups
    async with aio_as_trio(ctx.queue.StreamJobs.open(metadata={"x-api-key": ctx.b_key})) as stream:
        await aio_as_trio(stream.send_message)(pb.StreamJobsRequest(queue_name="mine", worker_id="w"), end=True)
        await aio_as_trio(stream.recv_initial_metadata)()
        await until(lambda: wakeups.waiter_count(ctx.b_id, "mine") == 1)
        await aio_as_trio(stream.cancel)()


@grpc_case("ProcessJobs")
async def _(ctx):
    async with aio_as_trio(ctx.queue.ProcessJobs.open(metadata={"x-api-key": ctx.b_key})) as stream:
        await aio_as_trio(stream.send_message)(pb.ProcessRequest(dequeue=pb.DequeueRequest(
            queue_name="mine", worker_id="w", batch_size=10, wait_ms=1)))
        await aio_as_trio(stream.send_message)(pb.ProcessRequest(complete=pb.CompleteRequest(
            job_id=ctx.ids["processing"], lease_id=ctx.ids["lease"])), end=True)
        kinds = []
        while (m := await aio_as_trio(stream.recv_message)()) is not None:
            kinds.append(m.WhichOneof("response"))
            if m.WhichOneof("response") == "error":
                assert "not found" in m.error.message.lower(), m
    assert "job" not in kinds and "error" in kinds, kinds


# -- the test ------------------------------------------------------------------------------------------------
def registered() -> set[tuple[str, str]]:
    app = create_app(types.SimpleNamespace(settings=Settings(data_dir="/nonexistent")))
    routes = {(m, r.rule) for r in app.url_map.iter_rules() for m in r.methods if m not in ("HEAD", "OPTIONS")}
    rpcs = {("GRPC", m.name) for s in pb.DESCRIPTOR.services_by_name.values() for m in s.methods}
    return routes | rpcs


def test_every_route_has_a_tenancy_case():
    routes = registered()
    missing = sorted(routes - set(CASES) - set(NO_ORG_SCOPE))
    assert not missing, f"routes without a tenancy case (add one to tests/test_tenancy.py): {missing}"
    stale = sorted((set(CASES) | set(NO_ORG_SCOPE)) - routes)
    assert not stale, f"cases for routes that do not exist: {stale}"
    assert not set(CASES) & set(NO_ORG_SCOPE)


@pytest.fixture
def settings(tmp_path, dsn):
    # no heartbeat expirer: the matrix may take longer than 3 heartbeat intervals on a loaded machine, and A's
    # worker taken offline by silence (a worker.deregistered delivery with it) is not B's doing
    return settings_with_admin(tmp_path, dsn, heartbeat_check_interval_secs=3600.0)


async def owned_by_a(server, api, client) -> dict:
    ids = {}
    mine = await enqueue(api, "mine", idempotency_key="a-idem-1")
    ids["idem"], ids["idem_job"] = "a-idem-1", mine["id"]
    (c,) = await claim(api, "mine", lease_duration_secs=3600)
    ids["processing"], ids["lease"] = c["id"], c["lease_id"]
    dead = await enqueue(api, "mine", max_retries=0)
    (d,) = await claim(api, "mine")
    await api.post(f"/api/v1/jobs/{dead['id']}/fail", json={"lease_id": d["lease_id"], "error": "x"})
    ids["deadletter"] = dead["id"]
    ids["pending"] = (await enqueue(api, "mine"))["id"]
    ids["key"] = (await api.post("/api/v1/api-keys", json={"name": "a-key"})).json()["id"]
    ids["a_keys"] = [k["id"] for k in (await api.get("/api/v1/api-keys")).json()]
    assert (await api.post("/api/v1/workers/register", json={"queue_name": "mine", "hostname": "h",
                                                             "worker_id": "wa"})).status_code == 201
    ids["schedule"] = (await api.post("/api/v1/schedules", json={
        "name": "a-nightly", "cron_expression": "0 0 * * *", "queue_name": "mine",
        "payload_template": {}})).json()["id"]
    ids["a_refresh"] = (await client.post("/api/v1/auth/login", json={"api_key": key_of(api)})).json()[
        "refresh_token"]
    wf = (await api.post("/api/v1/workflows", json={"name": "a-flow", "jobs": [
        {"key": "first", "queue_name": "flow", "payload": {}},
        {"key": "second", "queue_name": "flow", "payload": {}, "depends_on": ["first"]}]})).json()
    ids["workflow"] = wf["workflow_id"]
    hook = (await api.post("/api/v1/webhooks", json={"name": "a-hook", "url": "https://a.example.com/h",
                                                     "events": ["worker.deregistered"]})).json()
    ids["webhook"] = hook["id"]
    ids["delivery"] = str((await server.services.db.run(lambda con: con.fetchval(
        "INSERT INTO webhook_deliveries (webhook_id, organization_id, event, payload, status, attempts) "
        "VALUES ($1, $2, 'worker.deregistered', '{}', 'failed', 5) RETURNING id",
        uuid.UUID(hook["id"]), uuid.UUID(api.org_id)))))
    ids["a_token"] = (await api.get("/api/v1/organizations/webhook-token")).json()["webhook_token"]
    r = await client.post(f"/api/v1/webhooks/{api.org_id}/custom", headers={"X-Webhook-Token": ids["a_token"]},
                          json={"queue_name": "inbound", "event_type": "a.event", "payload": {}})
    assert r.status_code == 201, r.text
    ids["a_live"] = r.json()["job_id"]
    return ids


async def snapshot(api, ids) -> dict:
    """A's data as A reads it (the fields another organization could have changed)."""
    out = {}
    for s in ("processing", "deadletter", "pending"):
        j = (await api.get(f"/api/v1/jobs/{ids[s]}")).json()
        out[s] = {k: j[k] for k in ("status", "priority", "lease_id", "lease_expires_at", "result", "retry_count")}
    q = (await api.get("/api/v1/queues/mine")).json()
    out["queue"] = {k: q[k] for k in ("max_retries", "paused", "dead_letter", "organization_id")}
    out["jobs"] = sorted(j["id"] for j in (await api.get("/api/v1/jobs?limit=100")).json()
                         if j["queue_name"] != A_LIVE)
    w = (await api.get("/api/v1/workers/wa")).json()
    out["worker"] = {k: w[k] for k in ("status", "current_jobs", "hostname")}
    k = (await api.get(f"/api/v1/api-keys/{ids['key']}")).json()
    out["key"] = {x: k[x] for x in ("is_active", "name")}
    s = (await api.get(f"/api/v1/schedules/{ids['schedule']}")).json()
    out["schedule"] = {x: s[x] for x in ("name", "is_active", "run_count", "next_run_at")}
    h = (await api.get(f"/api/v1/webhooks/{ids['webhook']}")).json()
    out["webhook"] = {x: h[x] for x in ("name", "enabled", "url", "events")}
    out["deliveries"] = sorted(d["id"] for d in (await api.get(f"/api/v1/webhooks/{ids['webhook']}/deliveries")
                                                 ).json())
    out["token"] = (await api.get("/api/v1/organizations/webhook-token")).json()["webhook_token"]
    o = (await api.get(f"/api/v1/organizations/{api.org_id}")).json()
    out["org"] = {x: o[x] for x in ("name", "plan_tier", "suspended")}
    out["history"] = len((await api.get(f"/api/v1/jobs/{ids['processing']}/history")).json())
    w = (await api.get(f"/api/v1/workflows/{ids['workflow']}")).json()
    out["workflow"] = {"status": w["status"], "jobs": sorted((j["id"], j["status"], j["dependencies_met"])
                                                             for j in w["jobs"])}
    return out


async def test_no_route_crosses_organizations(server, api, client):
    ids = await owned_by_a(server, api, client)
    before = await snapshot(api, ids)
    ctx = Ctx(server, api, ids)
    channel = await open_aio_channel(server.grpc_address)
    ctx.queue, ctx.workers = QueueServiceStub(channel), WorkerServiceStub(channel)
    failures = []
    try:
        with trio.fail_after(240):
            for (method, rule), run in CASES.items():
                ctx.b_id, headers = await new_org(client, f"B {method} {rule}"[:200])
                ctx.b_key = headers["Authorization"].split(" ", 1)[1]
                async with httpx.AsyncClient(base_url=server.http_url, headers=headers, timeout=30) as b:
                    ctx.b = b
                    try:
                        await run(ctx)
                    except AssertionError as exc:
                        failures.append(f"{method} {rule}: {exc}")
    finally:
        channel.close()
    assert not failures, "\n".join(failures)
    assert await snapshot(api, ids) == before
    # A's refresh token (which B tried to revoke) still refreshes
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": ids["a_refresh"]})
    assert r.status_code == 200
    assert (await client.get("/api/v1/admin/stats", headers=ADMIN)).status_code == 200   # the admin key works
