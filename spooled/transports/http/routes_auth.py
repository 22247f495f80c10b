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
from spooled.transports.http.schema import BOOLEAN, INTEGER, OBJECT, STRING, TIME, array, component, const, merge, obj
from spooled.transports.http.spec import NOT_BLANK, Param, empty, op

bp = Blueprint("auth", __name__)
TOKENS_OBJECT = obj({"access_token": STRING, "refresh_token": STRING, "token_type": const("Bearer"),
                     "expires_in": INTEGER, "refresh_expires_in": INTEGER})
TOKENS = component("Tokens", TOKENS_OBJECT)
VALIDATION = component("TokenValidation", {"oneOf": [
    obj({"valid": const(True), "organization_id": STRING, "api_key_id": STRING, "queues": array(STRING),
         "expires_at": TIME, "claims": OBJECT}),
    obj({"valid": const(False), "error": STRING})]})


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
@op("Email a login code", security=(), body=_EmailStart, errors=(429,), ok=obj({
    "message": STRING, "email_sent_to": STRING, "expires_in": INTEGER}),
    description="The same 200 whether or not an organization uses the address (no enumeration).")
async def email_start():
    """Always the same 200 for a well-formed address (known or not); 429 after 5 codes in an hour."""
    spec, _ = await body_as(_EmailStart)
    return json_response(await services().email_login.start(spec.email))


@bp.post("/auth/email/verify")
@op("Exchange an emailed code for tokens", security=(), body=_EmailVerify, errors=(401, 429), ok=merge(
    TOKENS_OBJECT, obj({"type": const("login"), "organization_id": STRING})))
async def email_verify():
    spec, _ = await body_as(_EmailVerify)
    return json_response(await services().email_login.verify(spec.email, spec.code, spec.organization_id))


@bp.get("/auth/check-email")
@op("Whether an organization uses this billing email", query=(Param("email", NOT_BLANK, "The address (surrounding spaces are ignored)", required=True),),
    ok=obj({"exists": BOOLEAN, "has_organizations": BOOLEAN, "available": BOOLEAN, "signup_enabled": BOOLEAN}))
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
@op("Exchange an API key for tokens", security=(), body=_Login, errors=(401, 429), ok=TOKENS)
async def login():
    """Any Authorization header is ignored here: the body's API key is the credential."""
    spec, _ = await body_as(_Login)
    return json_response(await services().auth.login(spec.api_key))


@bp.post("/auth/refresh")
@op("A new access token for a refresh token", security=(), body=_Refresh, errors=(401,), ok=obj({
    "access_token": STRING, "token_type": const("Bearer"), "expires_in": INTEGER}))
async def refresh():
    spec, _ = await body_as(_Refresh)
    return json_response(await services().auth.refresh(spec.refresh_token))


@bp.post("/auth/validate")
@op("Whether a token is valid", security=(), body=_Validate, ok=VALIDATION)
async def validate():
    spec, _ = await body_as(_Validate)
    return json_response(await services().auth.validate(spec.token))


@bp.post("/auth/logout")
@op("Revoke a refresh token", body=_Logout, ok=empty("Logged out"))
@authed_own_session
async def logout():
    spec, _ = await body_as(_Logout)
    await services().auth.logout(principal(), spec.refresh_token)
    return no_content()


@bp.get("/auth/me")
@op("The caller: organization, key, restrictions", ok=obj({
    "organization_id": STRING, "api_key_id": STRING, "queues": array(STRING), "read_only": BOOLEAN,
    "plan_tier": views.PLAN, "issued_at": TIME, "expires_at": TIME, "organization": views.ME_ORG}))
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
