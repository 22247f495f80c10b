"""The SDK's `organizations` resource, every method we serve (the webhook-token ones are the events routes')."""

import uuid

from spooled import SpooledClient

from _sdkcheck import API_KEY, BASE_URL, Checks

checks = Checks()
client = SpooledClient(api_key=API_KEY, base_url=BASE_URL)
slug = "sdk-" + uuid.uuid4().hex[:8]

with checks("organizations.create"):
    created = client.organizations.create({"name": "SDK Org", "slug": slug, "billing_email": "sdk@example.com"})
    checks.expect(created.organization.slug == slug and created.api_key.key.startswith("sk_live_"), "created",
                  created)
    checks.expect(created.organization.updated_at is not None and created.api_key.name, "fields", created)
    mine = SpooledClient(api_key=created.api_key.key, base_url=BASE_URL)
    org_id = created.organization.id
with checks("organizations.list"):
    listed = mine.organizations.list()
    checks.expect([o.id for o in listed] == [org_id], "list", listed)
with checks("organizations.get"):
    got = mine.organizations.get(org_id)
    checks.expect(got.billing_email == "sdk@example.com" and got.settings == {}, "get", got)
with checks("organizations.update"):
    updated = mine.organizations.update(org_id, {"name": "SDK Org 2", "settings": {"github_queue": "gh"}})
    checks.expect(updated.name == "SDK Org 2" and updated.settings == {"github_queue": "gh"}, "update", updated)
with checks("organizations.get_usage"):
    usage = mine.organizations.get_usage()
    checks.expect(usage.plan == got.plan_tier and usage.usage.api_keys.current == 1, "usage", usage)
    checks.expect(usage.limits.rate_limit_requests_per_second > 0, "limits", usage.limits)
with checks("organizations.get_members"):
    members = mine.organizations.get_members(org_id)
    checks.expect([m.email for m in members] == ["sdk@example.com"], "members", members)
with checks("organizations.check_slug"):
    checks.expect(mine.organizations.check_slug(slug).available is False, "taken", None)
    checks.expect(mine.organizations.check_slug(slug + "-free").available is True, "free", None)
with checks("organizations.generate_slug"):
    checks.expect(mine.organizations.generate_slug("Hello World").slug.startswith("hello-world"), "slug", None)
with checks("organizations.delete"):
    mine.organizations.delete(org_id)
    try:
        mine.organizations.get(org_id)
    except Exception as exc:          # its key went with it
        checks.expect(getattr(exc, "status_code", None) == 401, "after delete", exc)
    else:
        raise AssertionError("the deleted organization is still there")
checks.finish()
