"""Token authentication over REST (api.md "Authentication"): login with an API key or an emailed code,
refresh, me, validate, logout, check-email."""

from __future__ import annotations

import datetime as dt

import attrs
from quart import Blueprint, request

from spooled.domain import errors, inputs
from spooled.services.auth import ACCESS_TTL_SECS
from spooled.transports.http import views
from spooled.transports.http.handlers import (authed, authed_own_session, body_as, json_response, no_content,
                                              principal, services)

bp = Blueprint("auth", __name__)


@attrs.frozen
class _Login:
    api_key: str = attrs.field(validator=inputs.length(1, 200))


@attrs.frozen
class _Refresh:
    refresh_token: str = attrs.field(validator=inputs.length(1, 4096))


@attrs.frozen
class _Validate:
    token: str = attrs.field(validator=inputs.length(1, 4096))


@attrs.frozen
class _Logout:
    refresh_token: str | None = attrs.field(default=None, validator=inputs.length(1, 4096))


@attrs.frozen
class _EmailStart:
    email: str = attrs.field(validator=inputs.email_field)


@attrs.frozen
class _EmailVerify:
    email: str = attrs.field(validator=inputs.email_field)
    code: str = attrs.field(validator=inputs.length(1, 32))
    organization_id: str | None = None


@bp.post("/auth/email/start")
async def email_start():
    """Always the same 200 for a well-formed address (known or not); 429 after 5 codes in an hour."""
    spec, _ = await body_as(_EmailStart)
    return json_response(await services().email_login.start(spec.email))


@bp.post("/auth/email/verify")
async def email_verify():
    spec, _ = await body_as(_EmailVerify)
    return json_response(await services().email_login.verify(spec.email, spec.code, spec.organization_id))


@bp.get("/auth/check-email")
@authed
async def check_email():
    """Whether an organization uses this billing email. Authenticated callers only (an open lookup would let
    anyone enumerate addresses)."""
    email = (request.args.get("email") or "").strip()
    if not email:
        raise errors.invalid("email", "is required")
    found = await services().email_login.check(email)
    return json_response({**found, "available": not found["exists"],
                          "signup_enabled": services().settings.registration_open})


@bp.post("/auth/login")
async def login():
    """Any Authorization header is ignored here: the body's API key is the credential."""
    spec, _ = await body_as(_Login)
    return json_response(await services().auth.login(spec.api_key))


@bp.post("/auth/refresh")
async def refresh():
    spec, _ = await body_as(_Refresh)
    return json_response(await services().auth.refresh(spec.refresh_token))


@bp.post("/auth/validate")
async def validate():
    spec, _ = await body_as(_Validate)
    return json_response(await services().auth.validate(spec.token))


@bp.post("/auth/logout")
@authed_own_session
async def logout():
    spec, _ = await body_as(_Logout)
    await services().auth.logout(principal(), spec.refresh_token)
    return no_content()


@bp.get("/auth/me")
@authed
async def me():
    """The caller. A token's issued_at/expires_at; an API key (which does not expire) is reported as a
    credential issued now and valid for an access token's lifetime (clients parse both as times)."""
    p = principal()
    org = await services().orgs.get(p.organization_id)
    issued = p.issued_at or dt.datetime.now(dt.timezone.utc)
    expires = p.expires_at or issued + dt.timedelta(seconds=ACCESS_TTL_SECS)
    return json_response({"organization_id": p.organization_id, "api_key_id": p.api_key_id,
                          "queues": list(p.queues), "read_only": p.read_only, "plan_tier": p.plan_tier,
                          "issued_at": issued, "expires_at": expires, "organization": views.me_org(org)})
