"""The SDK's `api_keys` resource, every method."""

import datetime as dt

from spooled import SpooledClient
from spooled.errors import AuthenticationError

from _sdkcheck import API_KEY, BASE_URL, Checks

checks = Checks()
client = SpooledClient(api_key=API_KEY, base_url=BASE_URL)
expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7)

with checks("api_keys.create"):
    created = client.api_keys.create({"name": "sdk", "queues": ["emails"], "rate_limit": 600, "expires_at": expires})
    checks.expect(created.key.startswith("sk_live_") and created.name == "sdk", "created", created)
    checks.expect(abs((created.expires_at - expires).total_seconds()) < 1, "expires", created.expires_at)
with checks("api_keys.list"):
    listed = client.api_keys.list()
    mine = [k for k in listed if k.id == created.id]
    checks.expect(len(mine) == 1 and mine[0].queues == ["emails"] and mine[0].rate_limit == 600, "listed", mine)
    checks.expect(mine[0].key_prefix == created.key[:12] and mine[0].is_active, "prefix", mine)
with checks("api_keys.get"):
    got = client.api_keys.get(created.id)
    checks.expect(got.organization_id and got.expires_at is not None and got.rate_limit == 600, "get", got)
with checks("api_keys.update"):
    updated = client.api_keys.update(created.id, {"name": "sdk-2", "rate_limit": 60, "is_active": False})
    checks.expect(updated.name == "sdk-2" and updated.rate_limit == 60 and updated.is_active is False, "upd", updated)
    try:
        SpooledClient(api_key=created.key, base_url=BASE_URL).queues.list()
    except AuthenticationError:
        pass
    else:
        raise AssertionError("a deactivated key still works")
    checks.expect(client.api_keys.update(created.id, {"is_active": True}).is_active, "reactivated", None)
    checks.expect(SpooledClient(api_key=created.key, base_url=BASE_URL).queues.list() == [], "works again", None)
with checks("api_keys.delete"):
    client.api_keys.delete(created.id)
    checks.expect(client.api_keys.get(created.id).is_active is False, "revoked", None)
checks.finish()
