"""Billing through the real `stripe` library: the Billing Portal against a small local server that answers like
Stripe's API (SPOOLED_STRIPE_API_BASE), and webhook events signed with the library's own signing helper:
applied once per event id, never older over newer, a forged signature changes nothing."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import httpx
import pytest
import stripe

from tests.access import bearer, instance, settings_with_admin

WEBHOOK_SECRET = "whsec_test_" + "s" * 24
SECRET_KEY = "sk_test_fake_" + "k" * 20


class FakeStripe:
    """Answers POST /v1/billing_portal/sessions like Stripe does, and records each request."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail = False
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "form": form})
                if fake.fail:
                    reply, status = {"error": {"type": "api_error", "message": "boom"}}, 500
                elif self.path == "/v1/billing_portal/sessions":
                    reply, status = {"id": "bps_1", "object": "billing_portal.session", "customer": form["customer"],
                                     "return_url": form["return_url"], "livemode": False, "created": int(time.time()),
                                     "url": "https://billing.stripe.test/p/session/bps_1"}, 200
                else:
                    reply, status = {"error": {"type": "invalid_request_error", "message": "no such route"}}, 404
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", "req_test")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_stripe():
    fake = FakeStripe()
    yield fake
    fake.close()


@pytest.fixture
def settings(tmp_path, dsn, fake_stripe):
    return settings_with_admin(tmp_path, dsn, stripe_secret_key=SECRET_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
                               stripe_api_base=fake_stripe.base)


T0 = int(time.time()) - 100


def event(event_id: str, event_type: str, created: int, obj: dict) -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": event_type, "created": created,
                       "api_version": "2024-06-20", "data": {"object": obj}}).encode()


async def deliver(client, payload: bytes, secret: str = WEBHOOK_SECRET) -> httpx.Response:
    signature = stripe.WebhookSignature.generate_signature_header(payload.decode(), secret)
    return await client.post("/api/v1/billing/webhook", content=payload,
                             headers={"Stripe-Signature": signature, "Content-Type": "application/json"})


async def test_portal_and_webhook_events(server, client, api, fake_stripe):
    r = await api.post("/api/v1/billing/portal", json={"return_url": "https://app.example/billing"})
    assert r.status_code == 400 and r.json()["code"] == "BAD_REQUEST"      # no Stripe customer yet
    assert fake_stripe.requests == []

    checkout = event("evt_1", "checkout.session.completed", T0, {
        "object": "checkout.session", "client_reference_id": api.org_id, "customer": "cus_1",
        "subscription": "sub_1", "metadata": {"plan_tier": "starter"}})
    r = await deliver(client, checkout)
    assert r.status_code == 200 and r.json() == {"received": True, "duplicate": False, "applied": True}
    status = (await api.get("/api/v1/billing/status")).json()
    assert status["plan_tier"] == "starter" and status["has_stripe_customer"] is True
    assert status["stripe_subscription_id"] == "sub_1" and status["limits"]["max_queues"] == 10
    assert (await api.get("/api/v1/jobs")).headers["X-RateLimit-Limit"] == "25"    # the new plan, at once

    r = await deliver(client, checkout)                    # Stripe delivers again: processed once
    assert r.status_code == 200 and r.json()["duplicate"] is True and r.json()["applied"] is False

    period_end = T0 + 30 * 86400
    newer = event("evt_3", "customer.subscription.updated", T0 + 10, {
        "object": "subscription", "id": "sub_1", "customer": "cus_1", "status": "active",
        "cancel_at_period_end": True, "current_period_end": period_end,
        "items": {"data": [{"price": {"id": "price_pro", "lookup_key": "pro", "metadata": {}}}]}})
    older = event("evt_2", "customer.subscription.updated", T0 + 5, {
        "object": "subscription", "id": "sub_1", "customer": "cus_1", "status": "trialing",
        "cancel_at_period_end": False, "metadata": {"plan_tier": "starter"}})
    assert (await deliver(client, newer)).json()["applied"] is True
    r = await deliver(client, older)                       # arrives late: recorded, not applied
    assert r.status_code == 200 and r.json() == {"received": True, "duplicate": False, "applied": False}
    org = (await api.get(f"/api/v1/organizations/{api.org_id}")).json()
    assert org["plan_tier"] == "pro" and org["stripe_subscription_status"] == "active"
    assert org["stripe_cancel_at_period_end"] is True and org["stripe_customer_id"] == "cus_1"
    assert org["stripe_current_period_end"].startswith(time.strftime("%Y-%m-%d", time.gmtime(period_end)))

    failed = event("evt_4", "invoice.payment_failed", T0 + 20, {"object": "invoice", "customer": "cus_1",
                                                                "subscription": "sub_1"})
    assert (await deliver(client, failed)).json()["applied"] is True
    assert (await api.get("/api/v1/billing/status")).json()["stripe_subscription_status"] == "past_due"

    # a forged signature: 400, nothing recorded or applied
    forged = event("evt_5", "customer.subscription.deleted", T0 + 30, {"object": "subscription", "id": "sub_1",
                                                                       "customer": "cus_1", "status": "canceled"})
    r = await deliver(client, forged, secret="whsec_wrong")
    assert r.status_code == 400 and r.json()["code"] == "BAD_REQUEST"
    r = await client.post("/api/v1/billing/webhook", content=forged, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    ids = await server.services.db.run(lambda con: con.fetch("SELECT id, applied FROM stripe_events ORDER BY id"))
    assert [(r["id"], r["applied"]) for r in ids] == [("evt_1", True), ("evt_2", False), ("evt_3", True),
                                                      ("evt_4", True)]
    assert (await api.get("/api/v1/billing/status")).json()["plan_tier"] == "pro"

    # the portal, through the stripe library and the fake API
    r = await api.post("/api/v1/billing/portal", json={"return_url": "https://app.example/billing"})
    assert r.status_code == 200 and r.json() == {"url": "https://billing.stripe.test/p/session/bps_1"}
    (req,) = fake_stripe.requests
    assert req["path"] == "/v1/billing_portal/sessions" and req["auth"] == f"Bearer {SECRET_KEY}"
    assert req["form"] == {"customer": "cus_1", "return_url": "https://app.example/billing"}
    fake_stripe.fail = True
    r = await api.post("/api/v1/billing/portal", json={"return_url": "https://app.example/billing"})
    assert r.status_code == 503 and r.json()["code"] == "SERVICE_UNAVAILABLE"

    # the subscription ends: back to free
    assert (await deliver(client, forged)).json()["applied"] is True
    status = (await api.get("/api/v1/billing/status")).json()
    assert status["plan_tier"] == "free" and status["stripe_subscription_id"] is None
    assert status["stripe_subscription_status"] == "canceled"


async def test_without_stripe_configuration_billing_is_503(aio_loop, tmp_path, dsn):
    async with instance(settings_with_admin(tmp_path, dsn), dsn) as running:
        async with httpx.AsyncClient(base_url=running.http_url, timeout=30) as client:
            r = await client.post("/api/v1/organizations", json={"name": "NoStripe"})
            key = r.json()["api_key"]["key"]
            r = await client.post("/api/v1/billing/portal", json={"return_url": "https://x.example"},
                                  headers=bearer(key))
            assert r.status_code == 503 and r.json()["code"] == "SERVICE_UNAVAILABLE"
            r = await client.post("/api/v1/billing/webhook", content=b"{}")
            assert r.status_code == 503
            status = (await client.get("/api/v1/billing/status", headers=bearer(key))).json()
            assert status["plan_tier"] == "enterprise" and status["has_stripe_customer"] is False
