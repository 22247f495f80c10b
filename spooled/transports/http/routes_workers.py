"""Workers over REST (api.md "Workers"). Handlers parse, call one service method, and shape the response."""

from __future__ import annotations

from quart import Blueprint, request

from spooled.domain import errors
from spooled.domain.inputs import RegisterWorker, WorkerHeartbeat
from spooled.transports.http.handlers import (authed, body, body_as, json_response, no_content, require_queue, scope,
                                         services)
from spooled.transports.http.views import worker as worker_view

bp = Blueprint("workers", __name__)
STATUSES = ("healthy", "degraded", "offline", "draining")


@bp.post("/workers/register")
@authed
async def register():
    spec, _ = await body_as(RegisterWorker, queue="queue_name")
    for queue in spec.all_queues:
        require_queue(queue)
    w, created = await services().workers.register(scope(), spec)
    return json_response({"id": w.id, "queue_name": w.queue_names[0], "lease_duration_secs": w.lease_duration_secs,
                          "heartbeat_interval_secs": w.heartbeat_interval_secs}, 201 if created else 200)


@bp.get("/workers")
@authed
async def list_workers():
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        raise errors.invalid("status", f"must be one of {', '.join(STATUSES)}")
    queue = request.args.get("queue_name") or request.args.get("queue") or None
    require_queue(queue)
    workers = await services().workers.list(scope(), status=status, queue_name=queue)
    return json_response([worker_view(w) for w in workers])


@bp.get("/workers/<worker_id>")
@authed
async def get_worker(worker_id: str):
    return json_response(worker_view(await services().workers.get(scope(), worker_id)))


@bp.post("/workers/<worker_id>/heartbeat")
@authed
async def heartbeat(worker_id: str):
    spec, _ = await body_as(WorkerHeartbeat)
    should_drain = await services().workers.heartbeat(scope(), worker_id, spec)
    return json_response({"acknowledged": True, "should_drain": should_drain})


@bp.delete("/workers/<worker_id>")
@authed
async def delete_worker(worker_id: str):
    await services().workers.deregister(scope(), worker_id)
    return no_content()


@bp.post("/workers/<worker_id>/deregister")
@authed
async def deregister(worker_id: str):
    await body()
    released = await services().workers.deregister(scope(), worker_id)
    # a body (not 204) for the SDK path: its clients parse JSON from POST responses
    return json_response({"success": True, "id": worker_id, "released_jobs": released})
