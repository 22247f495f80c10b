"""Organizations and API keys over REST (api.md "Organizations, API keys, admin")."""

from __future__ import annotations

import hmac

import attrs
from quart import Blueprint, request

from spooled.domain import errors, inputs
from spooled.transports.http import views
from spooled.transports.http.handlers import authed, body_as, json_response, no_content, principal, services
from spooled.transports.http.schema import BOOLEAN, STRING, TIME, array, component, obj
from spooled.transports.http.spec import Body, Param, empty, op

bp = Blueprint("orgs", __name__)
CREATED_ORG = component("CreatedOrganization", obj({
    "organization": views.ORGANIZATION,
    "api_key": obj({"id": STRING, "key": STRING, "name": STRING, "created_at": TIME})}))


def admin_key_ok() -> bool:
    """A valid `X-Admin-Key` (constant-time comparison); False when the server has none configured."""
    configured = services().settings.admin_key
    given = request.headers.get("X-Admin-Key", "")
    return bool(configured) and hmac.compare_digest(given.encode(), configured.encode())


def created_view(created) -> dict:
    """`{organization, api_key: {id, key, name, created_at}}`: the SDK's CreateOrganizationResponse."""
    return {"organization": views.org(created.org),
            "api_key": {"id": str(created.key.id), "key": created.secret, "name": created.key.name,
                        "created_at": created.key.created_at}}


@bp.post("/organizations")
@op("Create an organization and its first API key", body=inputs.CreateOrg, alias={"plan_tier": "plan"},
    ok={201: Body(CREATED_ORG)}, security=("", "adminKey"), errors=(401, 403, 409),
    description="Open registration (or `X-Admin-Key` when `SPOOLED_REGISTRATION=closed`); choosing `plan`, "
                "`custom_limits` or `settings` needs `X-Admin-Key`. The key is shown this once.")
async def create_org():
    """Open registration (or `X-Admin-Key` when closed). Choosing a plan, limits or settings is an operator's
    act: it needs `X-Admin-Key` either way."""
    spec, raw = await body_as(inputs.CreateOrg, plan_tier="plan")
    operator = admin_key_ok()
    if not services().settings.registration_open and not operator:
        raise errors.Unauthorized("Registration is closed: a valid X-Admin-Key is required")
    if (spec.plan is not None or spec.custom_limits is not None) and not operator:
        raise errors.Forbidden("Choosing a plan or custom limits needs a valid X-Admin-Key")
    created = await services().orgs.create(spec)
    return json_response(created_view(created), 201)


@bp.get("/organizations")
@op("The organizations the caller may see (its own)", ok=array(views.ORG_SUMMARY))
@authed
async def list_orgs():
    """The organizations the caller may see: its own."""
    return json_response([views.org_summary(await services().orgs.get(principal().organization_id))])


@bp.get("/organizations/usage")
@op("The caller's usage against its plan's limits", ok=views.USAGE_INFO)
@authed
async def usage():
    lim, u = await services().quotas.usage(principal().organization_id)
    return json_response(views.usage_info(lim, u))


@bp.get("/organizations/check-slug")
@op("Whether a slug is free", security=(), query=(Param("slug", STRING, "The slug to check"),),
    ok=obj({"available": BOOLEAN, "valid": BOOLEAN, "suggestion": STRING, "error": STRING},
           optional=("suggestion", "error")))
async def check_slug():
    """No credential needed (a signup form asks before it has one)."""
    return json_response(await services().orgs.check_slug(request.args.get("slug") or ""))


@attrs.frozen
class _SlugOf:
    name: str = attrs.field(validator=inputs.length(1, 200))


@bp.post("/organizations/generate-slug")
@op("A free slug for a name", security=(), body=_SlugOf, ok=obj({"slug": STRING}))
async def generate_slug():
    spec, _ = await body_as(_SlugOf)
    return json_response({"slug": await services().orgs.generate_slug(spec.name)})


@bp.get("/organizations/<org_id>")
@op("Get the caller's organization", ok=views.ORGANIZATION)
@authed
async def get_org(org_id: str):
    return json_response(views.org(await services().orgs.get(principal().organization_id, org_id)))


@bp.route("/organizations/<org_id>", methods=["PUT", "PATCH"])
@op("Update the caller's organization (PUT and PATCH: partial)", body=inputs.UpdateOrg,
    alias={"plan_tier": "plan"}, ok=views.ORGANIZATION,
    description="`plan`, `custom_limits` and `suspended` are the admin API's (403 here).")
@authed
async def update_org(org_id: str):
    """PUT and PATCH are the same partial update (api.md)."""
    spec, raw = await body_as(inputs.UpdateOrg, plan_tier="plan")
    org = await services().orgs.update(principal().organization_id, org_id, spec, set(raw))
    return json_response(views.org(org))


@bp.delete("/organizations/<org_id>")
@op("Delete the caller's organization and all it owns", ok=empty("Deleted"), errors=(409,))
@authed
async def delete_org(org_id: str):
    await services().orgs.delete(principal().organization_id, org_id)
    return no_content()


@bp.get("/organizations/<org_id>/members")
@op("The organization's people (its billing contact)", ok=array(views.MEMBER))
@authed
async def members(org_id: str):
    return json_response(views.members(await services().orgs.get(principal().organization_id, org_id)))


@bp.get("/api-keys")
@op("List API keys", ok=array(views.API_KEY))
@authed
async def list_keys():
    return json_response([views.api_key(k) for k in await services().orgs.list_keys(principal().organization_id)])


@bp.post("/api-keys")
@op("Create an API key (shown this once)", body=inputs.CreateApiKey, ok={201: Body(views.NEW_KEY)})
@authed
async def create_key():
    spec, _ = await body_as(inputs.CreateApiKey)
    row, key = await services().orgs.create_key(principal().organization_id, spec)
    return json_response(views.new_key(row, key), 201)


@bp.get("/api-keys/<key_id>")
@op("Get an API key", ok=views.API_KEY)
@authed
async def get_key(key_id: str):
    return json_response(views.api_key(await services().orgs.get_key(principal().organization_id, key_id)))


@bp.put("/api-keys/<key_id>")
@op("Update an API key", body=inputs.UpdateApiKey, ok=views.API_KEY, errors=(409,))
@authed
async def update_key(key_id: str):
    spec, raw = await body_as(inputs.UpdateApiKey)
    row = await services().orgs.update_key(principal().organization_id, key_id, spec, set(raw))
    return json_response(views.api_key(row))


@bp.delete("/api-keys/<key_id>")
@op("Revoke an API key", ok=empty("Revoked"))
@authed
async def revoke_key(key_id: str):
    await services().orgs.revoke_key(principal().organization_id, key_id)
    return no_content()
