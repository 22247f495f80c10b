"""Helpers of the access tests (admission, rate limits, quotas, keys, orgs, admin, billing, email login)."""

from __future__ import annotations

import time

import httpx

from tests.conftest import make_settings

ADMIN_KEY = "admin-key-of-the-access-tests-0123456789"
ADMIN = {"X-Admin-Key": ADMIN_KEY}


class Clock:
    """An injected clock (Unix seconds) that moves only when told: `svc.set_clock(clock)`."""

    def __init__(self, start: float | None = None):
        self.now = start if start is not None else float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, secs: float) -> None:
        self.now += secs


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def key_of(api: httpx.AsyncClient) -> str:
    return api.headers["Authorization"].split(" ", 1)[1]


async def admin_org(client: httpx.AsyncClient, *, plan: str = "free", custom_limits: dict | None = None,
                    name: str = "Tenant", billing_email: str | None = None) -> tuple[str, str]:
    """(organization id, API key) of a new organization on `plan`, created through the admin API."""
    body = {"name": name, "plan_tier": plan}
    if custom_limits is not None:
        body["custom_limits"] = custom_limits
    if billing_email is not None:
        body["billing_email"] = billing_email
    r = await client.post("/api/v1/admin/organizations", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()["organization"]["id"], r.json()["api_key"]["key"]


def settings_with_admin(tmp_path, dsn, **overrides):
    """Test settings with the admin API on (modules define their `settings` fixture with this)."""
    return make_settings(tmp_path, dsn, admin_key=ADMIN_KEY, **overrides)
