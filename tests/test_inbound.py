"""Incoming webhooks (api.md "Webhooks", incoming) against the real server: GitHub (X-Hub-Signature-256), Stripe
(signed with the `stripe` library's own helper), custom (the org's X-Webhook-Token); redeliveries never
duplicate a job, a bad or missing signature is 401 with nothing enqueued, and the inbound log."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import stripe
import trio

GITHUB_SECRET = "gh-secret-0123456789"
STRIPE_SECRET = "whsec_test_0123456789abcdef"


async def configure(api, **settings) -> None:
    r = await api.patch(f"/api/v1/organizations/{api.org_id}", json={"settings": settings})
    assert r.status_code == 200, r.text


async def job_count(api) -> int:
    return (await api.get("/api/v1/jobs/stats")).json()["total"]


def github_headers(body: bytes, *, event="push", delivery="d-1", secret=GITHUB_SECRET) -> dict:
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sig,
            "Content-Type": "application/json"}


async def test_github_delivery_becomes_one_job_and_redelivery_finds_it(api, client):
    with trio.fail_after(30):
        await configure(api, github_webhook_secret=GITHUB_SECRET)
        body = json.dumps({"ref": "refs/heads/main", "commits": [{"id": 12345678901234567890}]}).encode()
        url = f"/api/v1/webhooks/{api.org_id}/github"
        r = await client.post(url, content=body, headers=github_headers(body, delivery="guid-1"))
        assert r.status_code == 201, r.text
        created = r.json()
        assert (created["queue_name"], created["status"]) == ("github", "created")
        job = (await api.get(f"/api/v1/jobs/{created['job_id']}")).json()
        assert job["payload"] == {"event": "push", "delivery_id": "guid-1",
                                  "body": {"ref": "refs/heads/main", "commits": [{"id": 12345678901234567890}]}}
        assert job["idempotency_key"] == "guid-1" and job["queue_name"] == "github"
        again = await client.post(url, content=body, headers=github_headers(body, delivery="guid-1"))
        assert again.status_code == 200 and again.json() == {**created, "status": "duplicate"}
        assert await job_count(api) == 1


async def test_github_bad_or_missing_signature_is_401_and_enqueues_nothing(api, client, other_api):
    with trio.fail_after(30):
        await configure(api, github_webhook_secret=GITHUB_SECRET)
        body = b'{"zen": "x"}'
        url = f"/api/v1/webhooks/{api.org_id}/github"
        cases = [github_headers(body, secret="wrong"), {**github_headers(body), "X-Hub-Signature-256": ""},
                 {k: v for k, v in github_headers(body).items() if k != "X-Hub-Signature-256"},
                 github_headers(body + b" ")]          # signed over another body
        for headers in cases:
            r = await client.post(url, content=body, headers=headers)
            assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"
        # an org without a secret, another org's secret, an unknown org: all the same 401
        r = await client.post(f"/api/v1/webhooks/{other_api.org_id}/github", content=body,
                              headers=github_headers(body))
        assert r.status_code == 401
        for org in ("00000000-0000-0000-0000-000000000000", "nope"):
            r = await client.post(f"/api/v1/webhooks/{org}/github", content=body, headers=github_headers(body))
            assert r.status_code == 401
        assert await job_count(api) == 0 and await job_count(other_api) == 0


async def test_github_ping_answers_200_and_queue_mapping_is_used(api, client):
    with trio.fail_after(30):
        await configure(api, github_webhook_secret=GITHUB_SECRET, github_queue="gh-events")
        body = b'{"zen": "Design for failure."}'
        url = f"/api/v1/webhooks/{api.org_id}/github"
        r = await client.post(url, content=body, headers=github_headers(body, event="ping"))
        assert r.status_code == 200 and await job_count(api) == 0
        r = await client.post(url, content=body, headers=github_headers(body, event="issues", delivery="guid-2"))
        assert r.status_code == 201 and r.json()["queue_name"] == "gh-events"
        # form-encoded deliveries (a GitHub webhook setting) carry the JSON in `payload`
        form = b"payload=%7B%22a%22%3A1%7D"
        headers = {**github_headers(form, event="issues", delivery="guid-3"),
                   "Content-Type": "application/x-www-form-urlencoded"}
        r = await client.post(url, content=form, headers=headers)
        assert r.status_code == 201
        assert (await api.get(f"/api/v1/jobs/{r.json()['job_id']}")).json()["payload"]["body"] == {"a": 1}
        settings = (await api.get(f"/api/v1/organizations/{api.org_id}")).json()["settings"]
        assert settings == {"github_queue": "gh-events", "github_webhook_secret_set": True}


def stripe_event(event_id: str = "evt_1", kind: str = "invoice.paid") -> str:
    return json.dumps({"id": event_id, "object": "event", "type": kind, "data": {"object": {"id": "in_1"}}})


async def test_stripe_event_verified_by_the_stripe_library(api, client):
    with trio.fail_after(30):
        await configure(api, stripe_webhook_secret=STRIPE_SECRET, stripe_queue="billing")
        url = f"/api/v1/webhooks/{api.org_id}/stripe"
        payload = stripe_event("evt_123")
        header = stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET)
        r = await client.post(url, content=payload, headers={"Stripe-Signature": header})
        assert r.status_code == 201, r.text
        assert (r.json()["queue_name"], r.json()["status"]) == ("billing", "created")
        job = (await api.get(f"/api/v1/jobs/{r.json()['job_id']}")).json()
        assert job["payload"]["event"] == "invoice.paid" and job["payload"]["event_id"] == "evt_123"
        assert job["payload"]["body"]["data"] == {"object": {"id": "in_1"}} and job["idempotency_key"] == "evt_123"
        # Stripe retries the same event: no second job
        header = stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET)
        again = await client.post(url, content=payload, headers={"Stripe-Signature": header})
        assert again.status_code == 200 and again.json()["job_id"] == r.json()["job_id"]
        assert again.json()["status"] == "duplicate" and await job_count(api) == 1


@pytest.mark.parametrize("case", ["wrong secret", "stale", "tampered", "missing"])
async def test_stripe_bad_signatures_are_401(api, client, case):
    with trio.fail_after(30):
        await configure(api, stripe_webhook_secret=STRIPE_SECRET)
        payload = stripe_event()
        header = {
            "wrong secret": stripe.WebhookSignature.generate_signature_header(payload, "whsec_other"),
            "stale": stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET,
                                                                       timestamp=int(time.time()) - 1000),
            "tampered": stripe.WebhookSignature.generate_signature_header(payload, STRIPE_SECRET),
            "missing": None,
        }[case]
        sent = payload.replace("invoice.paid", "invoice.void") if case == "tampered" else payload
        r = await client.post(f"/api/v1/webhooks/{api.org_id}/stripe", content=sent,
                              headers={"Stripe-Signature": header} if header else {})
        assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"
        assert await job_count(api) == 0


async def test_custom_webhook_with_the_org_token(api, client, other_api):
    with trio.fail_after(30):
        r = await api.get(f"/api/v1/organizations/{api.org_id}/webhook-token")
        assert r.status_code == 200
        token = r.json()["webhook_token"]
        assert token and r.json()["webhook_url"].endswith(f"/api/v1/webhooks/{api.org_id}/custom")
        assert (await api.get("/api/v1/organizations/webhook-token")).json()["webhook_token"] == token   # stable
        url = f"/api/v1/webhooks/{api.org_id}/custom"
        body = {"queue_name": "hooks", "event_type": "order.paid", "payload": {"order": 7}, "idempotency_key": "o-7",
                "priority": 5}
        r = await client.post(url, json=body, headers={"X-Webhook-Token": token})
        assert r.status_code == 201 and r.json()["status"] == "created" and r.json()["queue_name"] == "hooks"
        job = (await api.get(f"/api/v1/jobs/{r.json()['job_id']}")).json()
        assert (job["payload"], job["priority"], job["idempotency_key"]) == ({"order": 7}, 5, "o-7")
        r2 = await client.post(url, json=body, headers={"X-Webhook-Token": token})
        assert r2.status_code == 200 and r2.json() == {**r.json(), "status": "duplicate"}
        for headers in ({}, {"X-Webhook-Token": "whk_wrong"}, {"X-Webhook-Token": token + "x"}):
            assert (await client.post(url, json=body, headers=headers)).status_code == 401
        assert (await client.post(url, content=b"{garbage", headers={})).status_code == 401
        r = await client.post(url, json={"payload": {}}, headers={"X-Webhook-Token": token})
        assert r.status_code == 422 and r.json()["details"]["field"] == "queue_name"
        # another org's token routes are 404; its receiver does not take our token
        assert (await api.get(f"/api/v1/organizations/{other_api.org_id}/webhook-token")).status_code == 404
        assert (await api.post(f"/api/v1/organizations/{other_api.org_id}/webhook-token/regenerate")).status_code == 404
        r = await client.post(f"/api/v1/webhooks/{other_api.org_id}/custom", json=body, headers={"X-Webhook-Token": token})
        assert r.status_code == 401
        # regenerating retires the old token
        r = await api.post(f"/api/v1/organizations/{api.org_id}/webhook-token/regenerate")
        fresh = r.json()["webhook_token"]
        assert r.status_code == 200 and fresh != token
        assert (await client.post(url, json={**body, "idempotency_key": "o-8"},
                                  headers={"X-Webhook-Token": token})).status_code == 401
        assert (await client.post(url, json={**body, "idempotency_key": "o-8"},
                                  headers={"X-Webhook-Token": fresh})).status_code == 201
        assert await job_count(api) == 2 and await job_count(other_api) == 0


async def test_inbound_log_lists_accepted_deliveries(api, client, other_api):
    with trio.fail_after(30):
        await configure(api, github_webhook_secret=GITHUB_SECRET)
        token = (await api.get(f"/api/v1/organizations/{api.org_id}/webhook-token")).json()["webhook_token"]
        body = b'{"a": 1}'
        gh = f"/api/v1/webhooks/{api.org_id}/github"
        await client.post(gh, content=body, headers=github_headers(body, event="push", delivery="g-1"))
        await client.post(gh, content=body, headers=github_headers(body, event="push", delivery="g-1"))
        await client.post(gh, content=body, headers=github_headers(body, secret="bad"))      # refused: not logged
        await client.post(f"/api/v1/webhooks/{api.org_id}/custom", json={"queue_name": "c", "payload": {}},
                          headers={"X-Webhook-Token": token})
        r = await api.get("/api/v1/webhooks/deliveries")
        assert r.status_code == 200
        log = r.json()
        assert [(d["provider"], d["event_type"], d["status"], d["matched_queue"]) for d in log] == [
            ("custom", "custom", "created", "c"), ("github", "push", "duplicate", "github"),
            ("github", "push", "created", "github")]
        assert log[1]["job_id"] == log[2]["job_id"] and all(set(d) == {"id", "provider", "event_type", "matched_queue",
                                                                       "job_id", "status", "created_at"} for d in log)
        assert len((await api.get("/api/v1/webhooks/deliveries?status=duplicate")).json()) == 1
        assert len((await api.get("/api/v1/webhooks/deliveries?queue_name=c&limit=1")).json()) == 1
        assert (await api.get("/api/v1/webhooks/deliveries?since=2999-01-01T00:00:00Z")).json() == []
        assert (await api.get("/api/v1/webhooks/deliveries?status=weird")).status_code == 422
        assert (await other_api.get("/api/v1/webhooks/deliveries")).json() == []
        assert (await client.get("/api/v1/webhooks/deliveries")).status_code == 401
