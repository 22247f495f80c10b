"""Jobs over REST (api.md "Jobs"). Handlers parse, call one service method, and shape the response."""

from __future__ import annotations

import attrs
from quart import Blueprint, request

from spooled.convert import structure
from spooled.domain import errors, inputs
from spooled.domain.states import JobStatus
from spooled.domain.tracecontext import TraceContext, from_carrier
from spooled.transports.http import views
from spooled.transports.http.handlers import (authed, body, body_as, json_response, no_content, require_queue, scope,
                                         services)
from spooled.transports.http.pagination import int_arg, page_args, page_headers, time_arg

bp = Blueprint("jobs", __name__)
STATUSES = {s.value for s in JobStatus}


def trace() -> TraceContext | None:
    """The request's W3C trace context (`traceparent`/`tracestate` headers; malformed ones are ignored)."""
    return from_carrier(request.headers.get("traceparent"), request.headers.get("tracestate"))


@bp.post("/jobs")
@authed
async def create_job():
    spec, _ = await body_as(inputs.CreateJob, queue="queue_name")
    require_queue(spec.queue_name)
    (res,) = await services().jobs.enqueue(scope(), spec.queue_name, [spec], trace=trace())
    if not res.created:
        return json_response({"id": res.job_id, "created": False}, 200)
    return json_response({**views.job(res.job), "created": True}, 201)


@bp.post("/jobs/bulk")
@authed
async def bulk_jobs():
    data = await body()
    if isinstance(data, dict) and "queue" in data and "queue_name" not in data:
        data = {**data, "queue_name": data["queue"]}
    if not isinstance(data, dict):
        raise errors.ValidationFailed("The request body must be a JSON object", {"body": "must be a JSON object"})
    jobs = data.get("jobs")
    if not isinstance(jobs, list) or not 1 <= len(jobs) <= 100:
        raise errors.invalid("jobs", "must be a list of 1 to 100 jobs")
    head = structure({**data, "jobs": []}, _BulkHead)
    require_queue(head.queue_name)
    specs, indexes, failed = [], [], []
    for i, item in enumerate(jobs):
        try:
            specs.append(structure(item, inputs.JobSpec))
            indexes.append(i)
        except errors.ValidationFailed as exc:
            failed.append({"index": i, "error": exc.message, "details": exc.details})
    succeeded = []
    if specs:
        results = await services().jobs.enqueue(
            scope(), head.queue_name, specs, default_priority=head.default_priority,
            default_max_retries=head.default_max_retries, default_timeout=head.default_timeout_seconds,
            trace=trace())
        succeeded = [{"index": i, "job_id": r.job_id, "created": r.created} for i, r in zip(indexes, results)]
    return json_response({"succeeded": succeeded, "failed": failed, "total": len(jobs),
                          "success_count": len(succeeded), "failure_count": len(failed)})


@attrs.frozen
class _BulkHead:
    queue_name: str = attrs.field(validator=inputs.queue_name_field)
    default_priority: int | None = attrs.field(default=None, validator=inputs.between(-100, 100))
    default_max_retries: int | None = attrs.field(default=None, validator=inputs.between(0, 100))
    default_timeout_seconds: int | None = attrs.field(default=None, validator=inputs.between(1, 86400))


@bp.post("/jobs/claim")
@authed
async def claim():
    spec, _ = await body_as(inputs.Claim, queue="queue_name")
    require_queue(spec.queue_name)
    jobs = await services().jobs.claim(scope(), spec)
    return json_response({"jobs": [views.job(j) for j in jobs]})


@bp.post("/jobs/complete")
@authed
async def complete_batch():
    spec, _ = await body_as(inputs.CompleteBatch)
    results = await services().jobs.complete_many(scope(), spec.items())
    return json_response({
        "results": [{"job_id": r.job_id, "success": r.success, "error": r.error} for r in results],
        "succeeded": [r.job_id for r in results if r.success],
        "failed": [{"job_id": r.job_id, "error": r.error} for r in results if not r.success],
    })


@bp.post("/jobs/<job_id>/complete")
@authed
async def complete(job_id: str):
    spec, _ = await body_as(inputs.Complete)
    await services().jobs.complete(scope(), job_id, spec.lease_id, spec.result, worker_id=spec.worker_id)
    return json_response({"success": True})


@bp.post("/jobs/<job_id>/fail")
@authed
async def fail(job_id: str):
    spec, _ = await body_as(inputs.Fail)
    r = await services().jobs.fail(scope(), job_id, spec)
    return json_response({"success": True, "will_retry": r.will_retry,
                          "next_retry_delay_secs": r.next_retry_delay_secs if r.will_retry else None,
                          "status": r.status})


@bp.post("/jobs/<job_id>/heartbeat")
@authed
async def heartbeat(job_id: str):
    spec, _ = await body_as(inputs.Heartbeat)
    expires = await services().jobs.heartbeat(scope(), job_id, spec.lease_id, spec.lease_duration_secs,
                                              worker_id=spec.worker_id)
    return json_response({"success": True, "lease_expires_at": expires})


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
