"""The SDK's `auth` resource, every method we serve, against the real server."""

import os

from spooled import SpooledClient
from spooled.errors import AuthenticationError

from _sdkcheck import API_KEY, BASE_URL, Checks

checks = Checks()
client = SpooledClient(api_key=API_KEY, base_url=BASE_URL)
EMAIL = os.environ["SDK_EMAIL"]

with checks("auth.login"):
    tokens = client.auth.login({"api_key": API_KEY})
    checks.expect(tokens.token_type == "Bearer" and tokens.expires_in == 3600, "tokens", tokens)
    checks.expect(tokens.refresh_expires_in > tokens.expires_in, "refresh ttl", tokens.refresh_expires_in)
with checks("auth.me"):
    me = client.auth.me()
    checks.expect(me.organization is not None and me.organization.id == me.organization_id, "me", me)
    checks.expect(me.issued_at < me.expires_at and me.queues == [], "times", me)
    checks.expect(client.rate_limit is not None and client.rate_limit.limit and client.rate_limit.scope, "rate",
                  client.rate_limit)
with checks("auth.me (access token)"):
    token_client = SpooledClient(access_token=tokens.access_token, refresh_token=tokens.refresh_token,
                                 base_url=BASE_URL)
    checks.expect(token_client.auth.me().api_key_id == me.api_key_id, "same key", None)
with checks("auth.refresh"):
    fresh = client.auth.refresh({"refresh_token": tokens.refresh_token})
    checks.expect(fresh.access_token and fresh.token_type == "Bearer" and fresh.expires_in == 3600, "fresh", fresh)
with checks("auth.validate"):
    v = client.auth.validate({"token": fresh.access_token})
    checks.expect(v.valid and v.organization_id == me.organization_id and v.api_key_id == me.api_key_id, "v", v)
    checks.expect(v.queues == [] and v.expires_at is not None, "claims", v)
    bad = client.auth.validate({"token": "not.a.token"})
    checks.expect(bad.valid is False and bad.error, "invalid", bad)
with checks("auth.start_email_login"):
    started = client.auth.start_email_login(EMAIL)
    checks.expect(started.message and started.email_sent_to and "***@" in started.email_sent_to, "start", started)
    unknown = client.auth.start_email_login("nobody-" + EMAIL)
    checks.expect(unknown.message == started.message, "same answer", unknown)
with checks("auth.check_email"):
    checks.expect(client.auth.check_email(EMAIL).exists is True, "exists", None)
    checks.expect(client.auth.check_email("nobody-" + EMAIL).exists is False, "not exists", None)
with checks("auth.logout"):
    client.auth.logout(tokens.refresh_token)
    try:
        client.auth.refresh({"refresh_token": tokens.refresh_token})
    except AuthenticationError:
        pass
    else:
        raise AssertionError("a revoked refresh token still refreshed")
checks.finish()
