"""Organizations (every route of api.md, in the shapes the SDK parses), registration rules, and the admin
API (`X-Admin-Key`)."""

from __future__ import annotations

import httpx
import pytest

from tests.access import ADMIN, bearer, instance, settings_with_admin

ORG_FIELDS = {"id", "name", "slug", "plan_tier", "billing_email", "settings", "custom_limits", "stripe_customer_id",
              "stripe_subscription_id", "stripe_subscription_status", "stripe_current_period_end",
              "stripe_cancel_at_period_end", "created_at", "updated_at"}


@pytest.fixture
def settings(tmp_path, dsn):
    # new organizations are on the free plan, with the rate raised by the operator (SPOOLED_PLAN_LIMITS)
    return settings_with_admin(tmp_path, dsn, default_plan="free",
                               plan_limits={"free": {"rate_limit_requests_per_second": 1000}})


async def test_create_returns_the_key_object_and_the_full_organization(client):
    r = await client.post("/api/v1/organizations", json={"name": "Acme Inc", "slug": "acme",
                                                          "billing_email": "billing@acme.test"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert ORG_FIELDS <= set(body["organization"]) and body["organization"]["plan_tier"] == "free"
    assert body["organization"]["slug"] == "acme" and body["organization"]["settings"] == {}
    key = body["api_key"]
    assert set(key) >= {"id", "key", "name", "created_at"} and key["key"].startswith("sk_live_")
    assert (await client.get("/api/v1/auth/me", headers=bearer(key["key"]))).json()["api_key_id"] == key["id"]
    r = await client.post("/api/v1/organizations", json={"name": "Again", "slug": "acme"})
    assert r.status_code == 409
    # a plan or limits of one's choosing needs the admin key
    r = await client.post("/api/v1/organizations", json={"name": "Greedy", "plan_tier": "enterprise"})
    assert r.status_code == 403
    r = await client.post("/api/v1/organizations", json={"name": "Greedy", "plan_tier": "enterprise"}, headers=ADMIN)
    assert r.status_code == 201 and r.json()["organization"]["plan_tier"] == "enterprise"
    r = await client.post("/api/v1/organizations", json={"name": "x", "billing_email": "not-an-email"})
    assert r.status_code == 422


async def test_own_organization_routes(client):
    created = (await client.post("/api/v1/organizations", json={"name": "Mine", "billing_email": "me@mine.test"})
               ).json()
    org_id, h = created["organization"]["id"], bearer(created["api_key"]["key"])
    assert [o["id"] for o in (await client.get("/api/v1/organizations", headers=h)).json()] == [org_id]
    got = (await client.get(f"/api/v1/organizations/{org_id}", headers=h)).json()
    assert got["billing_email"] == "me@mine.test"
    for method in ("PUT", "PATCH"):
        r = await client.request(method, f"/api/v1/organizations/{org_id}", headers=h,
                                 json={"name": f"Renamed {method}", "settings": {"github_webhook_secret": "s3",
                                                                                 "github_queue": "gh"}})
        assert r.status_code == 200 and r.json()["name"] == f"Renamed {method}"
        assert r.json()["settings"] == {"github_queue": "gh", "github_webhook_secret_set": True}
    r = await client.patch(f"/api/v1/organizations/{org_id}", headers=h, json={"plan_tier": "enterprise"})
    assert r.status_code == 403
    r = await client.patch(f"/api/v1/organizations/{org_id}", headers=h, json={"custom_limits": None})
    assert r.status_code == 403
    members = (await client.get(f"/api/v1/organizations/{org_id}/members", headers=h)).json()
    assert members[0]["email"] == "me@mine.test" and members[0]["role"] == "owner"
    r = await client.get("/api/v1/organizations/check-slug", params={"slug": got["slug"]})
    assert r.json()["available"] is False and r.json()["suggestion"]
    assert (await client.get("/api/v1/organizations/check-slug", params={"slug": "free-one"})).json() == {
        "available": True, "valid": True}
    assert (await client.get("/api/v1/organizations/check-slug", params={"slug": "Bad Slug"})).json()["valid"] is False
    assert (await client.post("/api/v1/organizations/generate-slug", json={"name": "Brand New Co"})).json() == {
        "slug": "brand-new-co"}
    # delete: refused while there is work, then everything goes
    r = await client.post("/api/v1/jobs", headers=h, json={"queue_name": "q", "payload": {}})
    job = r.json()
    r = await client.delete(f"/api/v1/organizations/{org_id}", headers=h)
    assert r.status_code == 409 and "1 active jobs" in r.json()["message"]
    assert (await client.delete(f"/api/v1/jobs/{job['id']}", headers=h)).status_code == 204
    r = await client.post("/api/v1/schedules", headers=h, json={"name": "nightly", "cron_expression": "0 3 * * *",
                                                                 "queue_name": "q", "payload_template": {}})
    assert r.status_code == 201, r.text
    schedule_id = r.json()["id"]
    usage = (await client.get("/api/v1/organizations/usage", headers=h)).json()
    assert usage["usage"]["schedules"] == {"current": 1, "limit": 1, "percentage": 100.0, "is_disabled": False}
    r = await client.delete(f"/api/v1/organizations/{org_id}", headers=h)
    assert r.status_code == 409 and "1 active schedules" in r.json()["message"]
    assert (await client.delete(f"/api/v1/schedules/{schedule_id}", headers=h)).status_code == 204
    assert (await client.delete(f"/api/v1/organizations/{org_id}", headers=h)).status_code == 204
    assert (await client.get("/api/v1/jobs", headers=h)).status_code == 401
    assert (await client.get(f"/api/v1/admin/organizations/{org_id}", headers=ADMIN)).status_code == 404


async def test_closed_registration(aio_loop, tmp_path, dsn):
    async with instance(settings_with_admin(tmp_path, dsn, registration_open=False), dsn) as running:
        async with httpx.AsyncClient(base_url=running.http_url, timeout=30) as client:
            assert (await client.post("/api/v1/organizations", json={"name": "x"})).status_code == 401
            r = await client.post("/api/v1/organizations", json={"name": "x"}, headers={"X-Admin-Key": "wrong"})
            assert r.status_code == 401
            assert (await client.post("/api/v1/organizations", json={"name": "x"}, headers=ADMIN)).status_code == 201


async def test_admin_api(server, client):
    assert (await client.get("/api/v1/admin/stats")).status_code == 401
    assert (await client.get("/api/v1/admin/stats", headers={"X-Admin-Key": "nope"})).status_code == 401
    r = await client.post("/api/v1/admin/organizations", headers=ADMIN, json={
        "name": "Big", "slug": "big", "plan_tier": "pro", "billing_email": "ops@big.test",
        "custom_limits": {"max_queues": 3, "max_workers": None}, "settings": {"stripe_queue": "s"}})
    assert r.status_code == 201, r.text
    org = r.json()["organization"]
    assert org["plan_tier"] == "pro" and org["custom_limits"] == {"max_queues": 3, "max_workers": None}
    key = r.json()["api_key"]["key"]
    usage = (await client.get("/api/v1/organizations/usage", headers=bearer(key))).json()
    assert usage["limits"]["max_queues"] == 3 and usage["limits"]["max_workers"] is None
    assert usage["limits"]["max_api_keys"] == 25                     # the rest from the plan
    r = await client.post("/api/v1/admin/organizations", headers=ADMIN,
                          json={"name": "Bad", "custom_limits": {"max_queues": -1, "nonsense": 1}})
    assert r.status_code == 422 and r.json()["details"]["field"] == "custom_limits.max_queues"

    listed = (await client.get("/api/v1/admin/organizations", params={"plan_tier": "pro"}, headers=ADMIN)).json()
    assert listed["total"] == 1 and [o["id"] for o in listed["organizations"]] == [org["id"]]
    assert (await client.get("/api/v1/admin/organizations", params={"limit": 1, "offset": 5},
                             headers=ADMIN)).json()["total"] == 1
    assert (await client.get(f"/api/v1/admin/organizations/{org['id']}", headers=ADMIN)).json()["slug"] == "big"
    r = await client.patch(f"/api/v1/admin/organizations/{org['id']}", headers=ADMIN,
                           json={"plan_tier": "starter", "custom_limits": {"max_queues": 7}})
    assert r.json()["plan_tier"] == "starter" and r.json()["custom_limits"] == {"max_queues": 7, "max_workers": None}
    usage = (await client.get("/api/v1/organizations/usage", headers=bearer(key))).json()
    assert usage["plan"] == "starter" and usage["limits"]["max_queues"] == 7          # applied at once
    r = await client.patch(f"/api/v1/admin/organizations/{org['id']}", headers=ADMIN, json={"custom_limits": None})
    assert r.json()["custom_limits"] is None
    r = await client.post(f"/api/v1/admin/organizations/{org['id']}/api-keys", headers=ADMIN,
                          json={"name": "ops", "queues": ["q"]})
    assert r.status_code == 201 and r.json()["key"].startswith("sk_live_") and r.json()["queues"] == ["q"]
    assert (await client.post("/api/v1/admin/organizations/00000000-0000-0000-0000-000000000000/api-keys",
                              headers=ADMIN, json={"name": "x"})).status_code == 404
    plans = (await client.get("/api/v1/admin/plans", headers=ADMIN)).json()
    assert [p["tier"] for p in plans] == ["free", "starter", "pro", "enterprise"]
    assert plans[0]["max_jobs_per_day"] == 1000 and plans[3]["max_queues"] is None
    assert all(p["rate_limit_burst"] == p["rate_limit_requests_per_second"] for p in plans)
    await client.post("/api/v1/jobs", headers=bearer(key), json={"queue_name": "q", "payload": {}})
    stats = (await client.get("/api/v1/admin/stats", headers=ADMIN)).json()
    assert stats["organizations"]["total"] == 1 and stats["jobs"]["pending"] == 1
    assert {"plan": "starter", "count": 1} in stats["organizations"]["by_plan"]
    assert stats["system"]["uptime_seconds"] >= 0
    # hard delete removes it even with work in it
    r = await client.delete(f"/api/v1/admin/organizations/{org['id']}", params={"hard_delete": "true"},
                            headers=ADMIN)
    assert r.status_code == 204
    assert (await client.get(f"/api/v1/admin/organizations/{org['id']}", headers=ADMIN)).status_code == 404
    assert (await client.get("/api/v1/jobs", headers=bearer(key))).status_code == 401


async def test_settings_keep_integers_beyond_64_bits(client):
    """Found by schemathesis: settings holding 2**70 were stored, then every read of the organization was a 500
    (orjson writes 64-bit integers only). They read back exactly, as job payloads do."""
    big = 2 ** 70
    created = (await client.post("/api/v1/organizations", json={"name": "Big", "settings": {"n": big}})).json()
    org_id, h = created["organization"]["id"], bearer(created["api_key"]["key"])
    assert created["organization"]["settings"] == {"n": big}
    r = await client.get(f"/api/v1/organizations/{org_id}", headers=h)
    assert r.status_code == 200 and f'"n":{big}'.encode() in r.content
    r = await client.patch(f"/api/v1/organizations/{org_id}", headers=h,
                           json={"settings": {"n": -big, "github_webhook_secret": "s"}})
    assert r.status_code == 200 and r.json()["settings"] == {"n": -big, "github_webhook_secret_set": True}
