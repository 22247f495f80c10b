"""Jobs over REST (api.md "Jobs"). Handlers parse, call one service method, and shape the response."""

from __future__ import annotations

from quart import Blueprint, request

from spooled.domain import errors, inputs
from spooled.domain.states import JobStatus
from spooled.transports.http import views
from spooled.transports.http import hot
from spooled.transports.http.handlers import (authed, body, body_as, hot_route, json_response, no_content, require_queue,
                                              scope, services)
from spooled.transports.http.pagination import int_arg, page_args, page_headers, time_arg

bp = Blueprint("jobs", __name__)
STATUSES = {s.value for s in JobStatus}


# The hot routes: the same functions the fast lane runs (hot.py)
@bp.post("/jobs")
@authed
async def create_job():
    return await hot_route(hot.create_job)


@bp.post("/jobs/bulk")
@authed
async def bulk_jobs():
    return await hot_route(hot.bulk_jobs)


@bp.post("/jobs/claim")
@authed
async def claim():
    return await hot_route(hot.claim)


@bp.post("/jobs/complete")
@authed
async def complete_batch():
    return await hot_route(hot.complete_batch)


@bp.post("/jobs/<job_id>/complete")
@authed
async def complete(job_id: str):
    return await hot_route(hot.complete, job_id)


@bp.post("/jobs/<job_id>/fail")
@authed
async def fail(job_id: str):
    return await hot_route(hot.fail, job_id)


@bp.post("/jobs/<job_id>/heartbeat")
@authed
async def heartbeat(job_id: str):
    return await hot_route(hot.heartbeat, job_id)


@bp.post("/jobs/<job_id>/retry")
@authed
async def retry(job_id: str):
    await body()
    return json_response(views.job(await services().jobs.retry(scope(), job_id)))


@bp.delete("/jobs/<job_id>")
@authed
async def cancel(job_id: str):
    await services().jobs.cancel(scope(), job_id)
    return no_content()


@bp.put("/jobs/<job_id>/priority")
@authed
async def set_priority(job_id: str):
    spec, _ = await body_as(inputs.SetPriority)
    old, new = await services().jobs.set_priority(scope(), job_id, spec.priority)
    return json_response({"job_id": job_id, "old_priority": old, "new_priority": new})


@bp.get("/jobs/<job_id>")
@authed
async def get_job(job_id: str):
    return json_response(views.job(await services().jobs.get(scope(), job_id)))


@bp.get("/jobs/<job_id>/history")
@authed
async def job_history(job_id: str):
    """Oldest first unless order_dir=desc; limit 1..500 (default 100, clamped), offset."""
    limit = min(max(int_arg("limit", 100), 1), 500)
    offset = int_arg("offset", 0)
    if offset < 0:
        raise errors.invalid("offset", "must be 0 or more")
    order_dir = (request.args.get("order_dir") or "asc").lower()
    if order_dir not in ("asc", "desc"):
        raise errors.invalid("order_dir", "must be asc or desc")
    entries = await services().jobs.history(scope(), job_id, desc=order_dir == "desc", limit=limit + 1,
                                            offset=offset)
    return json_response([views.history(h) for h in entries[:limit]],
                         headers={"X-Has-More": "true" if len(entries) > limit else "false"})


@bp.get("/jobs/stats")
@authed
async def job_stats():
    return json_response(await services().jobs.counts(scope()))


@bp.get("/jobs/status")
@authed
async def job_statuses():
    ids = [i for i in (request.args.get("ids") or "").split(",") if i.strip()]
    if len(ids) > 100:
        raise errors.invalid("ids", "at most 100 ids")
    briefs = await services().jobs.statuses(scope(), [i.strip() for i in ids])
    return json_response([views.job_brief(b) for b in briefs])


def _filter(force_status: str | None = None) -> inputs.JobFilter:
    statuses = None
    raw = request.args.get("status")
    if force_status:
        statuses = [force_status]
    elif raw:
        statuses = [s.strip() for s in raw.split(",") if s.strip()]
        bad = [s for s in statuses if s not in STATUSES]
        if bad:
            raise errors.invalid("status", f"unknown status {bad[0]!r}; one of {', '.join(sorted(STATUSES))}")
    queue = request.args.get("queue_name") or request.args.get("queue") or None
    require_queue(queue)
    return inputs.JobFilter(queue_name=queue,
                     statuses=statuses, tag=request.args.get("tag") or None,
                     created_after=time_arg("created_after"), created_before=time_arg("created_before"),
                     q=request.args.get("q") or None, job_type=request.args.get("job_type") or None)


async def _list(force_status: str | None = None):
    limit, offset, cursor = page_args()
    order_dir = (request.args.get("order_dir") or "desc").lower()
    if order_dir not in ("asc", "desc"):
        raise errors.invalid("order_dir", "must be asc or desc")
    jobs, next_cursor = await services().jobs.list(
        scope(), _filter(force_status), order_by=request.args.get("order_by") or "created_at",
        desc=order_dir == "desc", cursor=cursor, offset=offset, limit=limit)
    return json_response([views.job(j) for j in jobs], headers=page_headers(next_cursor))


@bp.get("/jobs")
@authed
async def list_jobs():
    return await _list()


@bp.get("/jobs/dlq")
@authed
async def list_dlq():
    return await _list("deadletter")


@bp.post("/jobs/dlq/retry")
@authed
async def dlq_retry():
    spec, _ = await body_as(inputs.DlqRetry, queue="queue_name")
    require_queue(spec.queue_name)
    ids = await services().jobs.dlq_retry(scope(), spec)
    return json_response({"retried_count": len(ids), "retried_jobs": ids, "skipped_jobs": [], "job_ids": ids})


@bp.post("/jobs/dlq/purge")
@authed
async def dlq_purge():
    spec, _ = await body_as(inputs.DlqPurge, queue="queue_name")
    require_queue(spec.queue_name)
    return json_response({"purged_count": await services().jobs.dlq_purge(scope(), spec)})
