"""The operator's API over REST: `/admin/...` with `X-Admin-Key` (SPOOLED_ADMIN_KEY), the SDK's `admin`
resource. Without a configured admin key every admin route is 401."""

from __future__ import annotations

import functools
import json

import trio
from quart import Blueprint, request

import spooled

from spooled.domain import errors, inputs
from spooled.domain.plans import TIERS
from spooled.transports.http import views
from spooled.transports.http.handlers import body, body_as, json_response, no_content, services
from spooled.transports.http.pagination import int_arg
from spooled.transports.http.routes_orgs import CREATED_ORG, admin_key_ok, created_view
from spooled.transports.http.schema import ANY, INTEGER, STRING, array, const, obj
from spooled.transports.http.spec import EMPTY, OFFSET, Body, empty, flag, limit, one_of, op

bp = Blueprint("admin", __name__)


def admin(fn):
    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        if not admin_key_ok():
            await body()     # read the body before answering (keep-alive connections)
            raise errors.Unauthorized("A valid X-Admin-Key is required")
        return await fn(*args, **kwargs)
    wrapper.security = ("adminKey",)
    return wrapper


@bp.get("/admin/organizations")
@op("List every organization", query=(one_of("plan_tier", TIERS), limit(50), OFFSET), ok=obj({
    "organizations": array(views.ORGANIZATION), "total": INTEGER, "limit": INTEGER, "offset": INTEGER}))
@admin
async def list_orgs():
    limit, offset = int_arg("limit", 50), int_arg("offset", 0)
    if offset < 0:
        raise errors.invalid("offset", "must be 0 or more")
    orgs, total = await services().admin.list(plan=request.args.get("plan_tier") or None, limit=limit,
                                              offset=offset)
    return json_response({"organizations": [views.org(o) for o in orgs], "total": total,
                          "limit": min(max(limit, 1), 100), "offset": max(offset, 0)})


@bp.post("/admin/organizations")
@op("Create an organization (any plan)", body=inputs.CreateOrg, alias={"plan_tier": "plan"},
    ok={201: Body(CREATED_ORG)}, errors=(409,))
@admin
async def create_org():
    spec, _ = await body_as(inputs.CreateOrg, plan_tier="plan")
    return json_response(created_view(await services().admin.create(spec)), 201)


@bp.get("/admin/organizations/<org_id>")
@op("Get an organization", ok=views.ORGANIZATION)
@admin
async def get_org(org_id: str):
    return json_response(views.org(await services().admin.get(org_id)))


@bp.route("/admin/organizations/<org_id>", methods=["PATCH", "PUT"])
@op("Update an organization, its plan, limits and suspension", body=inputs.UpdateOrg,
    alias={"plan_tier": "plan"}, ok=views.ORGANIZATION)
@admin
async def update_org(org_id: str):
    spec, raw = await body_as(inputs.UpdateOrg, plan_tier="plan")
    return json_response(views.org(await services().admin.update(org_id, spec, set(raw))))


@bp.delete("/admin/organizations/<org_id>")
@op("Delete an organization", ok=empty("Deleted"), errors=(409,), query=(
    flag("hard_delete", "Delete it even while it has active jobs, workers or schedules"),
    flag("hard", "Alias of hard_delete")))
@admin
async def delete_org(org_id: str):
    hard = (request.args.get("hard_delete") or request.args.get("hard") or "").lower() in ("1", "true", "yes")
    await services().admin.delete(org_id, hard=hard)
    return no_content()


@bp.post("/admin/organizations/<org_id>/api-keys")
@op("Create an API key for an organization", body=inputs.CreateApiKey, ok={201: Body(views.NEW_KEY)})
@admin
async def create_key(org_id: str):
    spec, _ = await body_as(inputs.CreateApiKey)
    row, key = await services().admin.create_key(org_id, spec)
    return json_response(views.new_key(row, key), 201)


@bp.post("/admin/organizations/<org_id>/reset-usage")
@op("Reset an organization's daily usage counters", body=EMPTY,
    ok=obj({"success": const(True), "organization_id": STRING}))
@admin
async def reset_usage(org_id: str):
    await body()
    await services().admin.reset_usage(org_id)
    return json_response({"success": True, "organization_id": org_id})


@bp.get("/admin/stats")
@op("Platform-wide counts", ok=obj({
    "organizations": obj({"total": INTEGER, "by_plan": ANY, "created_today": INTEGER, "created_this_week": INTEGER}),
    "jobs": obj({k: INTEGER for k in ("total_active", "pending", "scheduled", "processing", "completed_24h",
                                      "failed_24h")}),
    "workers": obj({"total": INTEGER, "healthy": INTEGER, "degraded": INTEGER}),
    "system": obj({"api_version": STRING, "uptime_seconds": INTEGER})}))
@admin
async def stats():
    s = await services().admin.stats()
    return json_response({
        "organizations": {"total": s.orgs_total, "by_plan": json.loads(s.orgs_by_plan),
                          "created_today": s.orgs_today, "created_this_week": s.orgs_week},
        "jobs": {"total_active": s.jobs_pending + s.jobs_scheduled + s.jobs_processing, "pending": s.jobs_pending,
                 "scheduled": s.jobs_scheduled, "processing": s.jobs_processing,
                 "completed_24h": s.jobs_completed_24h, "failed_24h": s.jobs_failed_24h},
        "workers": {"total": s.workers_total, "healthy": s.workers_healthy, "degraded": s.workers_degraded},
        "system": {"api_version": spooled.__version__, "uptime_seconds": int(trio.current_time() - services().started_at)},
    })


@bp.get("/admin/plans")
@op("The plans and their limits", ok=array(views.LIMITS))
@admin
async def plans():
    return json_response([views.limits(p) for p in services().admin.plans()])
