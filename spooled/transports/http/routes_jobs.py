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
from spooled.transports.http.schema import (BOOLEAN, INTEGER, NUMBER, OBJECT, STRING, TIME, array, component, const,
                                            merge, nullable, obj)
from spooled.transports.http.spec import (EMPTY, OFFSET, PAGE, SUCCESS, Body, Param, empty, limit, one_of, op,
                                          order_dir, time_param)

bp = Blueprint("jobs", __name__)
STATUSES = {s.value for s in JobStatus}

CREATED_JOB = component("CreatedJob", merge(views.JOB_OBJECT, obj({"created": const(True)})))
EXISTING_JOB = component("ExistingJob", obj({"id": STRING, "created": const(False)}))
BULK_RESULT = component("BulkResult", obj({
    "succeeded": array(obj({"index": INTEGER, "job_id": STRING, "created": BOOLEAN})),
    "failed": array(obj({"index": INTEGER, "error": STRING, "details": nullable(OBJECT)})),
    "total": INTEGER, "success_count": INTEGER, "failure_count": INTEGER}))
LIST_QUERY = (
    *PAGE, one_of("status", [s.value for s in JobStatus], "Statuses, comma-separated", list_=True),
    Param("queue_name", STRING, "Only this queue's jobs"), Param("queue", STRING, "Alias of queue_name"),
    Param("tag", STRING, "`key` (the job's tags have the key) or `key:value` (tags[key] == value)"),
    time_param("created_after", "Created at or after"), time_param("created_before", "Created before"),
    Param("q", STRING, "Search: an id prefix, or text in the queue name, payload.job_type or payload"),
    Param("job_type", STRING, "Exactly this payload.job_type"),
    one_of("order_by", inputs.JOB_ORDER_COLUMNS, "created_at by default"), order_dir("desc"))


# The hot routes: the same functions the fast lane runs (hot.py)
@bp.post("/jobs")
@op("Enqueue a job", body=inputs.CreateJob, alias={"queue": "queue_name"},
    ok={201: Body(CREATED_JOB, description="Created"),
        200: Body(EXISTING_JOB, description="A job with this idempotency_key exists: nothing was changed")},
    description="The queue is created on first use. `traceparent`/`tracestate` headers set the job's trace "
                "context (unless the body sets one).")
@authed
async def create_job():
    return await hot_route(hot.create_job)


@bp.post("/jobs/bulk")
@op("Enqueue up to 100 jobs into one queue", body=inputs.BulkJobs, alias={"queue": "queue_name"}, ok=BULK_RESULT)
@authed
async def bulk_jobs():
    return await hot_route(hot.bulk_jobs)


@bp.post("/jobs/claim")
@op("Claim jobs under a lease", body=inputs.Claim, alias={"queue": "queue_name"},
    ok=obj({"jobs": array(views.JOB)}),
    description="Up to `limit` jobs, highest priority first; with `wait_secs` the call waits (long poll) until "
                "a job is ready or the time is up.")
@authed
async def claim():
    return await hot_route(hot.claim)


@bp.post("/jobs/complete")
@op("Complete a batch of jobs", body=inputs.CompleteBatch, ok=obj({
    "results": array(obj({"job_id": STRING, "success": BOOLEAN, "error": nullable(STRING)})),
    "succeeded": array(STRING), "failed": array(obj({"job_id": STRING, "error": STRING}))}),
    description="Each item is fenced by its own lease (or worker); one that fails does not fail the others.")
@authed
async def complete_batch():
    return await hot_route(hot.complete_batch)


@bp.post("/jobs/<job_id>/complete")
@op("Complete a job", body=inputs.Complete, ok=SUCCESS, errors=(409,))
@authed
async def complete(job_id: str):
    return await hot_route(hot.complete, job_id)


@bp.post("/jobs/<job_id>/fail")
@op("Fail a job's attempt", body=inputs.Fail, errors=(409,), ok=obj({
    "success": const(True), "will_retry": BOOLEAN, "next_retry_delay_secs": nullable(NUMBER),
    "status": views.JOB_STATUS}))
@authed
async def fail(job_id: str):
    return await hot_route(hot.fail, job_id)


@bp.post("/jobs/<job_id>/heartbeat")
@op("Extend a job's lease", body=inputs.Heartbeat, errors=(409,),
    ok=obj({"success": const(True), "lease_expires_at": TIME}))
@authed
async def heartbeat(job_id: str):
    return await hot_route(hot.heartbeat, job_id)


@bp.post("/jobs/<job_id>/retry")
@op("Run a failed, dead-lettered or cancelled job again", body=EMPTY, ok=views.JOB, errors=(409,))
@authed
async def retry(job_id: str):
    await body()
    return json_response(views.job(await services().jobs.retry(scope(), job_id)))


@bp.delete("/jobs/<job_id>")
@op("Cancel a job", ok=empty("Cancelled"), errors=(409,))
@authed
async def cancel(job_id: str):
    await services().jobs.cancel(scope(), job_id)
    return no_content()


@bp.put("/jobs/<job_id>/priority")
@op("Change a job's priority", body=inputs.SetPriority, errors=(409,),
    ok=obj({"job_id": STRING, "old_priority": INTEGER, "new_priority": INTEGER}))
@authed
async def set_priority(job_id: str):
    spec, _ = await body_as(inputs.SetPriority)
    old, new = await services().jobs.set_priority(scope(), job_id, spec.priority)
    return json_response({"job_id": job_id, "old_priority": old, "new_priority": new})


@bp.get("/jobs/<job_id>")
@op("Get a job", ok=views.JOB)
@authed
async def get_job(job_id: str):
    return json_response(views.job(await services().jobs.get(scope(), job_id)))


@bp.get("/jobs/<job_id>/history")
@op("A job's recorded transitions", ok=Body(array(views.HISTORY), headers=("X-Has-More",)),
    query=(limit(100, 500), OFFSET, order_dir("asc")))
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
@op("The organization's jobs counted by status", ok=obj(
    {**{s.value: INTEGER for s in JobStatus}, "total": INTEGER}))
@authed
async def job_stats():
    return json_response(await services().jobs.counts(scope()))


@bp.get("/jobs/status")
@op("The status of up to 100 jobs", ok=array(views.JOB_BRIEF), query=(
    Param("ids", array(STRING, maxItems=100),
          "Job ids, comma-separated (unknown ids and empty entries are left out)", list_=True),))
@authed
async def job_statuses():
    raw = request.args.get("ids")
    entries = raw.split(",") if raw else []
    if len(entries) > 100:      # every entry counts, empty ones too: the document's maxItems
        raise errors.invalid("ids", "at most 100 ids")
    briefs = await services().jobs.statuses(scope(), [i.strip() for i in entries if i.strip()])
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
@op("List jobs", ok=array(views.LISTED_JOB), query=LIST_QUERY, paged=True)
@authed
async def list_jobs():
    return await _list()


@bp.get("/jobs/dlq")
@op("List dead-lettered jobs", ok=array(views.LISTED_JOB), query=LIST_QUERY, paged=True)
@authed
async def list_dlq():
    return await _list("deadletter")


@bp.post("/jobs/dlq/retry")
@op("Retry dead-lettered jobs", body=inputs.DlqRetry, alias={"queue": "queue_name"}, ok=obj({
    "retried_count": INTEGER, "retried_jobs": array(STRING), "skipped_jobs": array(STRING), "job_ids": array(STRING)}))
@authed
async def dlq_retry():
    spec, _ = await body_as(inputs.DlqRetry, queue="queue_name")
    require_queue(spec.queue_name)
    ids = await services().jobs.dlq_retry(scope(), spec)
    return json_response({"retried_count": len(ids), "retried_jobs": ids, "skipped_jobs": [], "job_ids": ids})


@bp.post("/jobs/dlq/purge")
@op("Delete dead-lettered jobs", body=inputs.DlqPurge, alias={"queue": "queue_name"},
    ok=obj({"purged_count": INTEGER}))
@authed
async def dlq_purge():
    spec, _ = await body_as(inputs.DlqPurge, queue="queue_name")
    require_queue(spec.queue_name)
    return json_response({"purged_count": await services().jobs.dlq_purge(scope(), spec)})
