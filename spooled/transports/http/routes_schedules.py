"""Schedules over REST (api.md "Schedules (cron)")."""

from __future__ import annotations

from quart import Blueprint, request

from spooled.domain import errors, inputs
from spooled.transports.http import views
from spooled.transports.http.handlers import (authed, body, body_as, json_response, no_content, require_queue, scope,
                                         services)
from spooled.transports.http.pagination import page_args
from spooled.transports.http.schema import STRING, TIME, array, obj
from spooled.transports.http.spec import EMPTY, OFFSET, Body, Param, empty, limit, op, words

bp = Blueprint("schedules", __name__)


def _bool_arg(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise errors.invalid(name, "must be true or false")


@bp.post("/schedules")
@op("Create a cron schedule", body=inputs.CreateSchedule, alias={"queue": "queue_name"},
    ok={201: Body(views.SCHEDULE)})
@authed
async def create_schedule():
    spec, _ = await body_as(inputs.CreateSchedule, queue="queue_name")
    require_queue(spec.queue_name)
    return json_response(views.schedule(await services().schedules.create(scope(), spec)), 201)


@bp.get("/schedules")
@op("List schedules", ok=array(views.SCHEDULE), query=(
    limit(), OFFSET, Param("queue_name", STRING, "Only this queue's schedules"),
    Param("is_active", words("true", "1", "yes", "false", "0", "no"), "true/1/yes or false/0/no (any case)")))
@authed
async def list_schedules():
    limit, offset, _ = page_args()
    queue = request.args.get("queue_name") or None
    require_queue(queue)
    rows = await services().schedules.list(scope(), queue_name=queue,
                                           is_active=_bool_arg("is_active"), limit=limit, offset=offset)
    return json_response([views.schedule(s) for s in rows])


@bp.get("/schedules/<schedule_id>")
@op("Get a schedule", ok=views.SCHEDULE)
@authed
async def get_schedule(schedule_id: str):
    return json_response(views.schedule(await services().schedules.get(scope(), schedule_id)))


@bp.put("/schedules/<schedule_id>")
@op("Update a schedule (partial)", body=inputs.UpdateSchedule, alias={"queue": "queue_name"},
    ok=views.SCHEDULE)
@authed
async def update_schedule(schedule_id: str):
    spec, _ = await body_as(inputs.UpdateSchedule, queue="queue_name")
    require_queue(spec.queue_name)
    return json_response(views.schedule(await services().schedules.update(scope(), schedule_id, spec)))


@bp.delete("/schedules/<schedule_id>")
@op("Delete a schedule", ok=empty("Deleted"))
@authed
async def delete_schedule(schedule_id: str):
    await services().schedules.delete(scope(), schedule_id)
    return no_content()


@bp.post("/schedules/<schedule_id>/pause")
@op("Pause a schedule", body=EMPTY, ok=views.SCHEDULE)
@authed
async def pause_schedule(schedule_id: str):
    await body()
    return json_response(views.schedule(await services().schedules.pause(scope(), schedule_id)))


@bp.post("/schedules/<schedule_id>/resume")
@op("Resume a schedule", body=EMPTY, ok=views.SCHEDULE)
@authed
async def resume_schedule(schedule_id: str):
    await body()
    return json_response(views.schedule(await services().schedules.resume(scope(), schedule_id)))


@bp.post("/schedules/<schedule_id>/trigger")
@op("Enqueue the schedule's job now", body=EMPTY, errors=(409,),
    ok=obj({"job_id": STRING, "triggered_at": TIME}))
@authed
async def trigger_schedule(schedule_id: str):
    await body()
    job_id, at = await services().schedules.trigger(scope(), schedule_id)
    return json_response({"job_id": job_id, "triggered_at": at})


@bp.get("/schedules/<schedule_id>/history")
@op("A schedule's runs, newest first", ok=array(views.SCHEDULE_RUN), query=(limit(), OFFSET))
@authed
async def schedule_history(schedule_id: str):
    limit, offset, _ = page_args()
    runs = await services().schedules.history(scope(), schedule_id, limit=limit, offset=offset)
    return json_response([views.schedule_run(r) for r in runs])
