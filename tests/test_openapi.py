"""The OpenAPI document (`/api/v1/openapi.json`) is valid OpenAPI 3.1, names every route of the app's url_map,
declares every query parameter and body its handlers read, and describes the real responses: a scripted session
drives every operation through clients whose every response is checked against the document
(`tests/contract.py`: status documented, required headers present, body valid against the schema)."""

from __future__ import annotations

import ast
import hashlib
import hmac
import inspect
import json
import re

import httpx
import pytest
import stripe
import trio
from openapi_spec_validator import validate

from spooled.settings import Settings
from spooled.transports.http import hot
from spooled.transports.http.app import create_app
from tests.access import ADMIN_KEY, settings_with_admin
from tests.contract import Contract, ContractViolation
from tests.events_helpers import ws

STRIPE_PLATFORM_SECRET = "whsec_platform_0123456789"
ORG_STRIPE_SECRET = "whsec_org_0123456789abcdef"
GITHUB_SECRET = "gh-secret-0123456789"


@pytest.fixture
def settings(tmp_path, dsn):
    return settings_with_admin(tmp_path, dsn, webhook_allow_private=True, stripe_webhook_secret=STRIPE_PLATFORM_SECRET)


async def document(client: httpx.AsyncClient) -> dict:
    r = await client.get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    return r.json()


async def test_the_document_is_valid_openapi_3_1(client):
    with trio.fail_after(30):
        doc = await document(client)
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert set(doc["components"]["securitySchemes"]) >= {"bearer", "adminKey", "githubSignature",
                                                          "stripeSignature", "webhookToken"}
    job = doc["paths"]["/api/v1/jobs"]["post"]
    body = doc["components"]["schemas"]["CreateJob"]
    # the bounds come from the validators in domain/inputs.py, the types from the input model
    assert body["properties"]["priority"] == {"type": ["integer", "null"], "minimum": -100, "maximum": 100,
                                              "default": None}
    assert body["properties"]["queue_name"]["pattern"] == "^[A-Za-z0-9._:-]{1,100}$"
    assert set(body["required"]) == {"queue_name", "payload"}
    assert job["security"] == [{"bearer": []}]
    assert {"201", "200", "401", "403", "422", "429"} <= set(job["responses"])
    admin = doc["paths"]["/api/v1/admin/stats"]["get"]
    assert admin["security"] == [{"adminKey": []}]
    assert doc["paths"]["/api/v1/webhooks/{org_id}/github"]["post"]["security"] == [{"githubSignature": []}]
    listing = doc["paths"]["/api/v1/jobs"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"limit", "cursor", "status", "queue_name", "order_by"}
    assert set(listing["responses"]["200"]["headers"]) >= {"X-Has-More", "X-Next-Cursor", "Link"}
    error = doc["components"]["schemas"]["Error409"]
    assert error["properties"]["code"] == {"enum": ["CONFLICT", "LEASE_EXPIRED"]}


def _route_path(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)


async def test_every_route_of_the_url_map_is_in_the_document(server, client):
    with trio.fail_after(30):
        doc = await document(client)
    app = create_app(server.services)
    served = set()
    for rule in app.url_map.iter_rules():
        methods = {"GET"} if rule.websocket else set(rule.methods) - {"HEAD", "OPTIONS"}
        for method in methods:
            served.add((method, _route_path(rule.rule)))
    documented = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert served - documented == set(), "routes missing from the document"
    assert documented - served == set(), "operations the app does not serve"
    assert len(served) > 120


async def test_every_route_declares_its_operation(client):
    with trio.fail_after(30):
        doc = await document(client)
    undeclared = sorted(f"{m.upper()} {p}" for p, item in doc["paths"].items() for m, o in item.items()
                        if o.get("x-undeclared"))
    assert undeclared == [], "routes with no @op (declare each next to its route: spooled/transports/http/spec.py)"


def test_a_route_with_no_op_is_in_the_document_all_the_same():
    """A route lands without its @op: the document still lists it (marked), stays valid, and nothing else moves."""
    from spooled.transports.http import openapi

    app = create_app(type("S", (), {"settings": Settings()})())
    before = openapi.document(app)

    async def purge_everything(name: str):
        """Purge a queue's finished jobs."""
    purge_everything.security = ("bearer",)
    app.add_url_rule("/api/v1/queues/<name>/purge-everything", "queues.purge_everything", purge_everything,
                     methods=["POST"])
    doc = openapi.document(app)
    validate(doc)
    item = doc["paths"]["/api/v1/queues/{name}/purge-everything"]["post"]
    assert item["x-undeclared"] is True and item["summary"] == "Purge a queue's finished jobs."
    assert item["security"] == [{"bearer": []}] and item["requestBody"]["required"] is False
    assert [p["name"] for p in item["parameters"]] == ["name"]
    assert {"default", "401", "404", "422"} <= set(item["responses"])
    assert {p: v for p, v in doc["paths"].items() if p != "/api/v1/queues/{name}/purge-everything"} == before["paths"]


# -- handlers read only what their operation declares ---------------------------------------------------------------
_QUERY_READERS = {"int_arg", "time_arg", "_bool_arg"}


def _reads(module) -> dict[str, tuple[set[str], set[str]]]:
    """For each function of a routes module: (query parameter names, body model names) it reads, directly or
    through the module's own helpers."""
    tree = ast.parse(inspect.getsource(module))
    funcs = {f.name: f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    direct: dict[str, tuple[set[str], set[str], set[str]]] = {}
    for name, f in funcs.items():
        params, bodies, calls = set(), set(), set()
        for node in ast.walk(f):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                    getattr(node.value.func, "id", None) == "page_args":
                (target,) = node.targets      # `limit, offset, _ = page_args()`: the cursor is not used
                ignored = isinstance(target, ast.Tuple) and getattr(target.elts[2], "id", None) == "_"
                params |= {"limit", "offset"} | (set() if ignored else {"cursor"})
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            fname = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
            first = node.args[0] if node.args else None
            literal = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
            if (isinstance(fn, ast.Attribute) and fn.attr in ("get", "getlist") and
                    isinstance(fn.value, ast.Attribute) and fn.value.attr == "args" and literal):
                params.add(literal)
            elif fname in _QUERY_READERS and literal:
                params.add(literal)
            elif fname in ("body_as", "structure") and len(node.args) >= 1:
                model = node.args[0] if fname == "body_as" else node.args[1] if len(node.args) > 1 else None
                if isinstance(model, ast.Attribute):
                    bodies.add(model.attr)
                elif isinstance(model, ast.Name):
                    bodies.add(model.id)
            if fname in funcs and fname != name:
                calls.add(fname)
        direct[name] = (params, bodies, calls)

    def closure(name, seen):
        params, bodies, calls = direct[name]
        params, bodies = set(params), set(bodies)
        for c in calls - seen:
            p, b = closure(c, seen | {c})
            params |= p
            bodies |= b
        return params, bodies
    return {name: closure(name, {name}) for name in direct}


# a quart route that runs the fast lane's function: `return await hot_route(hot.create_job)`
HOT_DELEGATE = re.compile(r"hot_route\(hot\.(\w+)[,)]")
HOT_MODELS = {"_BulkHead": "BulkJobs"}      # the bulk head is BulkJobs without its items (each a JobSpec)

# the service structures the body (after checking the credential, before reading the body)
STRUCTURED_BY_SERVICE = {"webhooks.custom": {"CustomWebhook"}}


def test_handlers_read_only_the_query_parameters_and_bodies_they_declare():
    app = create_app(type("S", (), {"settings": Settings()})())
    checked = 0
    for endpoint, fn in app.view_functions.items():
        operation = getattr(fn, "openapi", None)
        if operation is None:       # test_every_route_declares_its_operation names it
            continue
        handler = inspect.unwrap(fn)
        module = inspect.getmodule(handler)
        reads = _reads(module)[handler.__name__]
        delegate = HOT_DELEGATE.search(inspect.getsource(handler))
        if delegate:                # the route runs the fast lane's function (transports/http/hot.py)
            params, bodies = _reads(hot)[delegate.group(1)]
            reads = (reads[0] | params, reads[1] | {HOT_MODELS.get(b, b) for b in bodies})
        declared = {p.name for p in operation.query}
        if "token" in declared:                # realtime: read from websocket.args/request.args in _principal
            declared.discard("token")
        assert reads[0] == declared, f"{endpoint}: reads query {sorted(reads[0])}, declares {sorted(declared)}"
        body = operation.body
        models = {b for b in reads[1] if b != "JobSpec"}      # bulk: each item structured on its own
        models |= STRUCTURED_BY_SERVICE.get(endpoint, set())
        if isinstance(body, type):
            assert models == {body.__name__}, f"{endpoint}: structures {models}, declares {body.__name__}"
        else:
            assert models == set(), f"{endpoint}: structures {models} but declares no body model"
        checked += 1
    assert checked > 100


def test_every_validator_declares_its_bounds():
    """An input model whose validator carries no `json_schema` cannot be documented: the generator refuses it."""
    import attrs

    from spooled.transports.http.schema import input_model

    @attrs.frozen
    class Bad:
        x: int = attrs.field(validator=lambda _i, _a, _v: None)
    with pytest.raises(TypeError, match="declares no json_schema"):
        input_model(Bad)


# -- the scripted session -------------------------------------------------------------------------------------------
# Operations that answer only errors here, and why (their error responses are still checked against the document).
ERRORS_ONLY = {
    ("POST", "/api/v1/billing/portal"): "needs a Stripe customer and the Stripe API (tests/test_billing.py fakes it)",
    ("POST", "/api/v1/auth/email/verify"): "the code goes by SMTP (tests/test_email_login.py reads it)",
}


def _gh(body: bytes, event: str, delivery: str) -> dict:
    sig = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sig,
            "Content-Type": "application/json"}


async def test_a_scripted_session_matches_the_document(server, client, receiver):
    with trio.fail_after(120):
        contract = Contract(await document(client))
        base = str(client.base_url)
        async with httpx.AsyncClient(base_url=base, timeout=30) as anon, \
                httpx.AsyncClient(base_url=base, timeout=30, headers={"X-Admin-Key": ADMIN_KEY}) as admin:
            contract.attach(anon)
            contract.attach(admin)
            r = await anon.post("/api/v1/organizations", json={"name": "Contract", "billing_email": "c@example.com"})
            assert r.status_code == 201
            org, key = r.json()["organization"]["id"], r.json()["api_key"]["key"]
            async with httpx.AsyncClient(base_url=base, timeout=30, headers={"Authorization": f"Bearer {key}"}) as api:
                contract.attach(api)
                await _session(server, contract, anon, admin, api, org, key, receiver)
        missing = contract.operations() - {(m, t) for m, t, _ in contract.seen}
        assert missing == set(), "operations the session never exercised"
        ok = {(m, t) for m, t, s in contract.seen if 200 <= s < 300 or s == 101}
        assert contract.operations() - ok == set(ERRORS_ONLY)


async def _session(server, contract, anon, admin, api, org, key, receiver):
    async def expect(status, method, path, client=api, **kw):
        r = await client.request(method, path, **kw)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        return r.json() if r.content and r.headers.get("content-type") == "application/json" else r

    # the root: probes, metrics, the dashboard, the reference
    for path in ("/health", "/health/live", "/health/ready", "/metrics", "/dashboard", "/dashboard/app.js",
                 "/docs", "/docs/init.js", "/api/v1/openapi.json"):
        await expect(200, "GET", path, anon)
    await expect(404, "GET", "/dashboard/no-such-file.js", anon)

    # organizations and keys
    await expect(200, "GET", "/api/v1/organizations")
    await expect(200, "GET", "/api/v1/organizations/usage")
    await expect(200, "GET", "/api/v1/organizations/check-slug?slug=contract", anon)
    await expect(200, "GET", "/api/v1/organizations/check-slug?slug=Not_A_Slug", anon)
    await expect(200, "POST", "/api/v1/organizations/generate-slug", anon, json={"name": "Contract Inc"})
    await expect(200, "GET", f"/api/v1/organizations/{org}")
    await expect(200, "PATCH", f"/api/v1/organizations/{org}", json={"settings": {
        "github_webhook_secret": GITHUB_SECRET, "stripe_webhook_secret": ORG_STRIPE_SECRET}})
    await expect(200, "PUT", f"/api/v1/organizations/{org}", json={"name": "Contract Co"})
    await expect(403, "PATCH", f"/api/v1/organizations/{org}", json={"plan_tier": "pro"})
    await expect(200, "GET", f"/api/v1/organizations/{org}/members")
    token = (await expect(200, "GET", "/api/v1/organizations/webhook-token"))["webhook_token"]
    await expect(200, "GET", f"/api/v1/organizations/{org}/webhook-token")
    await expect(200, "POST", "/api/v1/organizations/webhook-token/regenerate")
    token = (await expect(200, "POST", f"/api/v1/organizations/{org}/webhook-token/regenerate"))["webhook_token"]
    await expect(200, "GET", "/api/v1/api-keys")
    made = await expect(201, "POST", "/api/v1/api-keys", json={"name": "ci", "queues": ["q1"], "rate_limit": 600})
    await expect(200, "GET", f"/api/v1/api-keys/{made['id']}")
    await expect(200, "PUT", f"/api/v1/api-keys/{made['id']}", json={"name": "ci2"})
    await expect(204, "DELETE", f"/api/v1/api-keys/{made['id']}")
    await expect(409, "PUT", f"/api/v1/api-keys/{made['id']}", json={"is_active": True})
    await expect(404, "GET", "/api/v1/api-keys/not-a-key")

    # auth
    tokens = await expect(200, "POST", "/api/v1/auth/login", anon, json={"api_key": key})
    await expect(401, "POST", "/api/v1/auth/login", anon, json={"api_key": "sk_live_nope"})
    await expect(200, "POST", "/api/v1/auth/refresh", anon, json={"refresh_token": tokens["refresh_token"]})
    await expect(200, "POST", "/api/v1/auth/validate", anon, json={"token": tokens["access_token"]})
    await expect(200, "POST", "/api/v1/auth/validate", anon, json={"token": "nope"})
    await expect(200, "GET", "/api/v1/auth/me")
    await expect(200, "GET", "/api/v1/auth/me", anon, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    await expect(200, "GET", "/api/v1/auth/check-email?email=c@example.com")
    await expect(200, "POST", "/api/v1/auth/email/start", anon, json={"email": "c@example.com"})
    await expect(401, "POST", "/api/v1/auth/email/verify", anon, json={"email": "c@example.com", "code": "000000"})
    await expect(204, "POST", "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    await expect(401, "GET", "/api/v1/jobs", anon)

    # queues
    await expect(201, "POST", "/api/v1/queues", json={"name": "q1", "max_retries": 1})
    await expect(409, "POST", "/api/v1/queues", json={"name": "q1"})
    await expect(200, "GET", "/api/v1/queues")
    await expect(200, "GET", "/api/v1/queues/q1")
    await expect(200, "PATCH", "/api/v1/queues/q1", json={"rate_limit": 100})
    await expect(200, "PUT", "/api/v1/queues/q2/config", json={"dead_letter": True})
    await expect(200, "POST", "/api/v1/queues/q2/pause", json={"reason": "maintenance"})
    await expect(200, "POST", "/api/v1/queues/q2/resume")
    await expect(200, "GET", "/api/v1/queues/q1/stats")
    await expect(200, "GET", "/api/v1/queues/q1/throughput?minutes=10&bucket_secs=60")
    await expect(422, "GET", "/api/v1/queues/q1/throughput?minutes=0")
    await expect(404, "GET", "/api/v1/queues/nope")
    await expect(204, "DELETE", "/api/v1/queues/q2?delete_jobs=true")

    # jobs
    j1 = await expect(201, "POST", "/api/v1/jobs", json={"queue_name": "q1", "payload": {"n": 1},
                                                        "idempotency_key": "k1", "tags": {"team": "a"}})
    await expect(200, "POST", "/api/v1/jobs", json={"queue_name": "q1", "payload": {"n": 1}, "idempotency_key": "k1"})
    await expect(422, "POST", "/api/v1/jobs", json={"queue_name": "q 1", "payload": 1, "priority": 1000})
    await expect(400, "POST", "/api/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    await expect(413, "POST", "/api/v1/jobs", content=b'{"payload": "' + b"x" * (11 << 20) + b'"}')
    bulk = await expect(200, "POST", "/api/v1/jobs/bulk", json={"queue_name": "q1", "jobs": [
        {"payload": {"n": 2}}, {"payload": {"n": 3}, "priority": 5}, {"priority": "high"}]})
    assert bulk["failure_count"] == 1
    await expect(200, "GET", f"/api/v1/jobs/{j1['id']}")
    await expect(200, "PUT", f"/api/v1/jobs/{j1['id']}/priority", json={"priority": 9})
    claimed = (await expect(200, "POST", "/api/v1/jobs/claim", json={"queue_name": "q1", "worker_id": "w1",
                                                                     "limit": 3}))["jobs"]
    first, second, third = claimed
    await expect(200, "POST", f"/api/v1/jobs/{first['id']}/heartbeat", json={"lease_id": first["lease_id"]})
    await expect(200, "POST", f"/api/v1/jobs/{first['id']}/complete", json={"lease_id": first["lease_id"],
                                                                           "result": {"ok": True}})
    await expect(409, "POST", f"/api/v1/jobs/{first['id']}/complete", json={"lease_id": "stale"})
    await expect(200, "POST", f"/api/v1/jobs/{second['id']}/fail", json={"lease_id": second["lease_id"],
                                                                        "error": "boom", "retry": False})
    await expect(200, "POST", "/api/v1/jobs/complete", json={"completions": [
        {"job_id": third["id"], "lease_id": third["lease_id"]}, {"job_id": first["id"], "lease_id": "x"}]})
    await expect(200, "POST", f"/api/v1/jobs/{second['id']}/retry")
    await expect(409, "DELETE", f"/api/v1/jobs/{first['id']}")
    await expect(204, "DELETE", f"/api/v1/jobs/{second['id']}")
    await expect(404, "GET", "/api/v1/jobs/00000000-0000-0000-0000-000000000000")
    await expect(200, "GET", f"/api/v1/jobs/{first['id']}/history?order_dir=desc")
    await expect(200, "GET", "/api/v1/jobs/stats")
    await expect(200, "GET", f"/api/v1/jobs/status?ids={first['id']},{second['id']}")
    page = await api.get("/api/v1/jobs?limit=1&status=completed,cancelled&order_by=created_at")
    assert page.status_code == 200 and page.headers["X-Has-More"] == "true"
    await expect(200, "GET", f"/api/v1/jobs?limit=1&cursor={page.headers['X-Next-Cursor']}"
                             "&status=completed,cancelled&order_by=created_at")
    await expect(422, "GET", "/api/v1/jobs?status=bogus")
    for _ in range(2):                                # two dead letters
        await expect(201, "POST", "/api/v1/jobs", json={"queue_name": "q1", "payload": {}, "max_retries": 0})
        (dead,) = (await expect(200, "POST", "/api/v1/jobs/claim", json={"queue_name": "q1", "worker_id": "w1"}))[
            "jobs"]
        await expect(200, "POST", f"/api/v1/jobs/{dead['id']}/fail", json={"lease_id": dead["lease_id"],
                                                                          "error": "x"})
    await expect(200, "GET", "/api/v1/jobs/dlq?queue_name=q1")
    await expect(200, "POST", "/api/v1/jobs/dlq/retry", json={"queue_name": "q1", "job_ids": [dead["id"]]})
    await expect(200, "POST", "/api/v1/jobs/dlq/purge", json={"confirm": True, "queue_name": "q1"})
    await expect(200, "GET", f"/api/v1/jobs/{j1['id']}/dependencies")
    child = await expect(201, "POST", "/api/v1/jobs", json={"queue_name": "q1", "payload": {}})
    await expect(200, "POST", f"/api/v1/jobs/{child['id']}/dependencies", json={"depends_on": [j1["id"]]})

    # workers
    await expect(201, "POST", "/api/v1/workers/register", json={"queue_name": "q1", "hostname": "h", "worker_id": "wa"})
    await expect(200, "POST", "/api/v1/workers/register", json={"queue_names": ["q1"], "hostname": "h",
                                                                "worker_id": "wa"})
    await expect(200, "GET", "/api/v1/workers?status=healthy")
    await expect(200, "GET", "/api/v1/workers/wa")
    await expect(200, "POST", "/api/v1/workers/wa/heartbeat", json={"current_jobs": 1, "status": "healthy"})
    await expect(200, "POST", "/api/v1/workers/wa/deregister")
    await expect(201, "POST", "/api/v1/workers/register", json={"queue_name": "q1", "hostname": "h", "worker_id": "wb"})
    await expect(204, "DELETE", "/api/v1/workers/wb")

    # schedules
    s = await expect(201, "POST", "/api/v1/schedules", json={"name": "nightly", "cron_expression": "0 3 * * *",
                                                            "queue_name": "q1", "payload_template": {"r": 1}})
    await expect(422, "POST", "/api/v1/schedules", json={"name": "bad", "cron_expression": "nope",
                                                        "queue_name": "q1", "payload_template": {}})
    await expect(200, "GET", "/api/v1/schedules?is_active=true")
    await expect(200, "GET", f"/api/v1/schedules/{s['id']}")
    await expect(200, "PUT", f"/api/v1/schedules/{s['id']}", json={"timezone": "Europe/Paris"})
    await expect(200, "POST", f"/api/v1/schedules/{s['id']}/pause")
    await expect(200, "POST", f"/api/v1/schedules/{s['id']}/resume")
    await expect(200, "POST", f"/api/v1/schedules/{s['id']}/trigger")
    await expect(200, "GET", f"/api/v1/schedules/{s['id']}/history")
    await expect(204, "DELETE", f"/api/v1/schedules/{s['id']}")

    # workflows
    wf = await expect(201, "POST", "/api/v1/workflows", json={"name": "etl", "jobs": [
        {"key": "a", "queue_name": "wq", "payload": {}},
        {"key": "b", "queue_name": "wq", "payload": {}, "depends_on": ["a"]}]})
    await expect(422, "POST", "/api/v1/workflows", json={"name": "cycle", "jobs": [
        {"key": "a", "queue_name": "wq", "payload": {}, "depends_on": ["a"]}]})
    await expect(200, "GET", "/api/v1/workflows?status=pending")
    await expect(200, "GET", f"/api/v1/workflows/{wf['workflow_id']}")
    await expect(200, "POST", f"/api/v1/workflows/{wf['workflow_id']}/cancel")
    await expect(200, "POST", f"/api/v1/workflows/{wf['workflow_id']}/retry")

    # outgoing webhooks, both paths
    for path in ("/api/v1/webhooks", "/api/v1/outgoing-webhooks"):
        hook = await expect(201, "POST", path, json={"name": "h", "url": receiver.url + "/in",
                                                     "events": ["job.completed"], "secret": "s3cret"})
        await expect(200, "GET", path)
        await expect(200, "GET", f"{path}/{hook['id']}")
        await expect(200, "PATCH", f"{path}/{hook['id']}", json={"enabled": True})
        await expect(200, "PUT", f"{path}/{hook['id']}", json={"secret": None})
        await expect(200, "POST", f"{path}/{hook['id']}/test")
        deliveries = await expect(200, "GET", f"{path}/{hook['id']}/deliveries")
        delivery_id = deliveries[0]["id"] if deliveries else None
        if delivery_id is None:
            await expect(201, "POST", "/api/v1/jobs", json={"queue_name": "hq", "payload": {}})
            (h,) = (await expect(200, "POST", "/api/v1/jobs/claim", json={"queue_name": "hq", "worker_id": "w"}))[
                "jobs"]
            await expect(200, "POST", f"/api/v1/jobs/{h['id']}/complete", json={"lease_id": h["lease_id"]})
            delivery_id = (await expect(200, "GET", f"{path}/{hook['id']}/deliveries"))[0]["id"]
        await expect(200, "POST", f"{path}/{hook['id']}/retry/{delivery_id}")
        await expect(204, "DELETE", f"{path}/{hook['id']}")

    # incoming webhooks
    ping = json.dumps({"zen": "hi"}).encode()
    await expect(200, "POST", f"/api/v1/webhooks/{org}/github", anon, content=ping, headers=_gh(ping, "ping", "p1"))
    push = json.dumps({"ref": "main"}).encode()
    await expect(201, "POST", f"/api/v1/webhooks/{org}/github", anon, content=push, headers=_gh(push, "push", "g1"))
    await expect(200, "POST", f"/api/v1/webhooks/{org}/github", anon, content=push, headers=_gh(push, "push", "g1"))
    await expect(401, "POST", f"/api/v1/webhooks/{org}/github", anon, content=push)
    event = json.dumps({"id": "evt_1", "object": "event", "type": "invoice.paid", "data": {"object": {}}})
    for status in (201, 200):
        sig = stripe.WebhookSignature.generate_signature_header(event, ORG_STRIPE_SECRET)
        await expect(status, "POST", f"/api/v1/webhooks/{org}/stripe", anon, content=event,
                     headers={"Stripe-Signature": sig})
    for status in (201, 200):
        await expect(status, "POST", f"/api/v1/webhooks/{org}/custom", anon, headers={"X-Webhook-Token": token},
                     json={"queue_name": "custom", "payload": {"a": 1}, "idempotency_key": "c1"})
    await expect(200, "GET", "/api/v1/webhooks/deliveries?status=created")

    # billing
    await expect(200, "GET", "/api/v1/billing/status")
    await expect(503, "POST", "/api/v1/billing/portal", json={"return_url": "https://app.example/billing"})
    platform = json.dumps({"id": "evt_p1", "object": "event", "type": "invoice.paid",
                           "created": 1700000000, "data": {"object": {"customer": "cus_x"}}})
    sig = stripe.WebhookSignature.generate_signature_header(platform, STRIPE_PLATFORM_SECRET)
    await expect(200, "POST", "/api/v1/billing/webhook", anon, content=platform, headers={"Stripe-Signature": sig})
    await expect(400, "POST", "/api/v1/billing/webhook", anon, content=platform, headers={"Stripe-Signature": "x"})

    # the dashboard's summary
    await expect(200, "GET", "/api/v1/dashboard")

    # realtime: the streams' status and headers (their bodies do not end), and the WebSocket handshake
    for path in ("/api/v1/events", "/api/v1/events/sse?queue=q1", "/api/v1/events/queues/q1",
                 f"/api/v1/events/jobs/{j1['id']}"):
        async with httpx.AsyncClient(base_url=str(api.base_url), headers=api.headers, timeout=30) as raw:
            async with raw.stream("GET", path) as r:
                contract.check("GET", r.url.path, r.status_code, r.headers, b"")
                assert r.status_code == 200
    await expect(401, "GET", "/api/v1/events", anon)
    await expect(422, "GET", "/api/v1/events?queue=bad%20name")
    for path in ("/api/v1/ws", "/api/v1/events/ws"):
        async with ws(server.http_url, f"{path}?token={key}") as conn:
            await conn.send_message(json.dumps({"cmd": "ping"}))
            assert json.loads(await conn.get_message())["type"] == "Ping"
        contract.seen.add(("GET", path, 101))
        await expect(400, "GET", path)                 # a plain GET (no upgrade)

    # the operator's API
    await expect(401, "GET", "/api/v1/admin/stats", anon)
    listed = await expect(200, "GET", "/api/v1/admin/organizations?plan_tier=enterprise&limit=5", admin)
    assert listed["total"] >= 1
    other = await expect(201, "POST", "/api/v1/admin/organizations", admin, json={"name": "Other", "plan": "pro"})
    oid = other["organization"]["id"]
    await expect(200, "GET", f"/api/v1/admin/organizations/{oid}", admin)
    await expect(200, "PATCH", f"/api/v1/admin/organizations/{oid}", admin, json={"suspended": False})
    await expect(200, "PUT", f"/api/v1/admin/organizations/{oid}", admin, json={"custom_limits": {"max_queues": 5}})
    await expect(201, "POST", f"/api/v1/admin/organizations/{oid}/api-keys", admin, json={"name": "ops"})
    await expect(200, "POST", f"/api/v1/admin/organizations/{oid}/reset-usage", admin)
    await expect(200, "GET", "/api/v1/admin/stats", admin)
    await expect(200, "GET", "/api/v1/admin/plans", admin)
    await expect(204, "DELETE", f"/api/v1/admin/organizations/{oid}?hard_delete=true", admin)

    # the organization itself, last
    await expect(409, "DELETE", f"/api/v1/organizations/{org}")
    gone = await expect(201, "POST", "/api/v1/organizations", anon, json={"name": "Short-lived"})
    await expect(204, "DELETE", f"/api/v1/organizations/{gone['organization']['id']}", anon,
                 headers={"Authorization": f"Bearer {gone['api_key']['key']}"})


async def test_a_response_the_document_does_not_describe_fails(client):
    """The contract check itself: an undocumented key, a missing one and an undocumented status all fail."""
    with trio.fail_after(30):
        contract = Contract(await document(client))
    headers = httpx.Headers({"X-Request-Id": "r", "Content-Type": "application/json"})
    ok = json.dumps({"status": "alive"}).encode()
    assert contract.check("GET", "/health/live", 200, headers, ok) == "/health/live"
    for status, body in ((200, {"status": "alive", "extra": 1}), (200, {}), (201, {"status": "alive"}),
                         (200, {"status": "dead"})):
        with pytest.raises(ContractViolation):
            contract.check("GET", "/health/live", status, headers, json.dumps(body).encode())
    with pytest.raises(ContractViolation, match="X-Request-Id"):
        contract.check("GET", "/health/live", 200, httpx.Headers({"Content-Type": "application/json"}), ok)
    error = {"error": "not_found", "code": "NOT_FOUND", "message": "x", "status": 404}
    contract.check("GET", "/api/v1/jobs/abc", 404, headers, json.dumps(error).encode())
    with pytest.raises(ContractViolation):
        contract.check("GET", "/api/v1/jobs/abc", 404, headers, json.dumps({**error, "status": 409}).encode())

