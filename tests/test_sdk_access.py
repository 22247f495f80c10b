"""The official SDK's auth, organizations, api_keys, admin and billing resources against the real server (every
method we serve; tests/sdk/scripts/sdk_*.py)."""

from __future__ import annotations

from tests.access import ADMIN_KEY, admin_org
from tests.sdk.runner import run_sdk
from tests.test_billing import deliver, event
from tests.test_billing import fake_stripe, settings  # noqa: F401  (fixtures: the server bills through the fake)


def passed(report: dict, names: set[str]) -> None:
    assert not report["failed"] and set(report["passed"]) == names, report


async def test_sdk_auth(server, client):
    _, key = await admin_org(client, plan="pro", billing_email="sdk-auth@example.com")
    report = await run_sdk("sdk_auth.py", base_url=server.http_url, api_key=key,
                           env={"SDK_EMAIL": "sdk-auth@example.com"})
    passed(report, {"auth.login", "auth.me", "auth.me (access token)", "auth.refresh", "auth.validate",
                    "auth.start_email_login", "auth.check_email", "auth.logout"})


async def test_sdk_organizations(server, client):
    _, key = await admin_org(client, plan="pro")
    report = await run_sdk("sdk_organizations.py", base_url=server.http_url, api_key=key)
    passed(report, {f"organizations.{m}" for m in ("create", "list", "get", "update", "get_usage", "get_members",
                                                   "check_slug", "generate_slug", "delete")})


async def test_sdk_api_keys(server, client):
    _, key = await admin_org(client, plan="pro")
    report = await run_sdk("sdk_api_keys.py", base_url=server.http_url, api_key=key)
    passed(report, {f"api_keys.{m}" for m in ("create", "list", "get", "update", "delete")})


async def test_sdk_admin(server):
    report = await run_sdk("sdk_admin.py", base_url=server.http_url, env={"SDK_ADMIN_KEY": ADMIN_KEY})
    passed(report, {f"admin.{m}" for m in ("create_organization", "list_organizations", "get_organization",
                                           "update_organization", "create_api_key", "reset_usage", "get_stats",
                                           "list_plans", "delete_organization")})


async def test_sdk_billing(server, client):
    org_id, key = await admin_org(client, plan="free")
    r = await deliver(client, event("evt_sdk", "checkout.session.completed", 1_700_000_000, {
        "object": "checkout.session", "client_reference_id": org_id, "customer": "cus_sdk",
        "subscription": "sub_sdk", "metadata": {"plan_tier": "pro"}}))
    assert r.status_code == 200 and r.json()["applied"] is True
    report = await run_sdk("sdk_billing.py", base_url=server.http_url, api_key=key)
    passed(report, {"billing.get_status", "billing.create_portal"})
