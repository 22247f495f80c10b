"""Organizations and API keys over REST."""

from __future__ import annotations

import hmac

from quart import Blueprint, request

from spooled.domain import errors, inputs
from spooled.services.orgs import public_settings
from spooled.transports.http import views
from spooled.transports.http.app import authed, body_as, json_response, no_content, principal, services

bp = Blueprint("orgs", __name__)


@bp.post("/organizations")
async def create_org():
    settings = services().settings
    if not settings.registration_open:
        given = request.headers.get("X-Admin-Key", "")
        if not settings.admin_key or not hmac.compare_digest(given.encode(), settings.admin_key.encode()):
            raise errors.Unauthorized("Registration is closed: a valid X-Admin-Key is required")
    spec, _ = await body_as(inputs.CreateOrg, plan_tier="plan")
    org, key = await services().orgs.create(spec)
    return json_response({"organization": views.org(org), "api_key": key}, 201)


@bp.get("/organizations/<org_id>")
@authed
async def get_org(org_id: str):
    row = await services().orgs.get(principal().organization_id, org_id)
    return json_response(views.org(row, public_settings(row["settings"])))


@bp.patch("/organizations/<org_id>")
@authed
async def patch_org(org_id: str):
    spec, raw = await body_as(inputs.UpdateOrg)
    row = await services().orgs.update(principal().organization_id, org_id, spec, raw)
    return json_response(views.org(row, public_settings(row["settings"])))


@bp.get("/api-keys")
@authed
async def list_keys():
    return json_response([views.api_key(r) for r in await services().orgs.list_keys(principal().organization_id)])


@bp.post("/api-keys")
@authed
async def create_key():
    spec, _ = await body_as(inputs.CreateApiKey)
    row, key = await services().orgs.create_key(principal().organization_id, spec)
    return json_response({**views.api_key(row), "key": key}, 201)


@bp.get("/api-keys/<key_id>")
@authed
async def get_key(key_id: str):
    return json_response(views.api_key(await services().orgs.get_key(principal().organization_id, key_id)))


@bp.put("/api-keys/<key_id>")
@authed
async def update_key(key_id: str):
    spec, _ = await body_as(inputs.UpdateApiKey)
    row = await services().orgs.update_key(principal().organization_id, key_id, spec)
    return json_response(views.api_key(row))


@bp.delete("/api-keys/<key_id>")
@authed
async def revoke_key(key_id: str):
    await services().orgs.revoke_key(principal().organization_id, key_id)
    return no_content()
