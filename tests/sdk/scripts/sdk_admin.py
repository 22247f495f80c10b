"""The SDK's `admin` resource, every method (X-Admin-Key)."""

import os
import uuid

from spooled import SpooledClient
from spooled.errors import NotFoundError

from _sdkcheck import BASE_URL, Checks

checks = Checks()
admin = SpooledClient(admin_key=os.environ["SDK_ADMIN_KEY"], base_url=BASE_URL).admin
slug = "adm-" + uuid.uuid4().hex[:8]

with checks("admin.create_organization"):
    created = admin.create_organization({"name": "Admin Made", "slug": slug, "plan_tier": "pro",
                                         "custom_limits": {"max_queues": 3}})
    checks.expect(created.organization.plan_tier == "pro" and created.api_key.key, "created", created)
    org_id = created.organization.id
with checks("admin.list_organizations"):
    listed = admin.list_organizations({"plan_tier": "pro", "limit": 10})
    checks.expect(org_id in [o.id for o in listed], "listed", listed)
with checks("admin.get_organization"):
    got = admin.get_organization(org_id)
    checks.expect(got.slug == slug and got.custom_limits == {"max_queues": 3}, "get", got)
with checks("admin.update_organization"):
    updated = admin.update_organization(org_id, {"plan_tier": "starter", "name": "Renamed"})
    checks.expect(updated.plan_tier == "starter" and updated.name == "Renamed", "updated", updated)
with checks("admin.create_api_key"):
    key = admin.create_api_key(org_id, {"name": "ops", "queues": ["q"]})
    checks.expect(key.key.startswith("sk_live_") and key.name == "ops", "key", key)
    tenant = SpooledClient(api_key=key.key, base_url=BASE_URL)
    tenant.jobs.create({"queue_name": "q", "payload": {}})
with checks("admin.reset_usage"):
    checks.expect(tenant.organizations.get_usage().usage.jobs_today.current == 1, "before", None)
    admin.reset_usage(org_id)
    checks.expect(tenant.organizations.get_usage().usage.jobs_today.current == 0, "after", None)
with checks("admin.get_stats"):
    stats = admin.get_stats()
    checks.expect(stats.organizations.total >= 1 and stats.jobs.pending >= 1, "stats", stats)
    checks.expect(stats.system.uptime_seconds >= 0 and stats.system.api_version, "system", stats.system)
with checks("admin.list_plans"):
    plans = admin.list_plans()
    checks.expect([p.tier for p in plans] == ["free", "starter", "pro", "enterprise"], "plans", plans)
with checks("admin.delete_organization"):
    admin.delete_organization(org_id)                      # soft: suspended
    checks.expect(admin.get_organization(org_id).id == org_id, "still there", None)
    admin.delete_organization(org_id, hard=True)
    try:
        admin.get_organization(org_id)
    except NotFoundError:
        pass
    else:
        raise AssertionError("hard delete left the organization")
checks.finish()
