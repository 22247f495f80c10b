"""Queues over REST (api.md "Queues")."""

from __future__ import annotations

from quart import Blueprint, request

from spooled.domain import inputs
from spooled.services.queues import BUCKET_SECS, MAX_BUCKETS, THROUGHPUT_MINUTES
from spooled.transports.http import views
from spooled.transports.http.handlers import (authed, body_as, json_response, no_content, principal, require_queue, scope,
                                         services)
from spooled.transports.http.pagination import int_arg
from spooled.transports.http.schema import INTEGER, STRING, TIME, array, const, merge, nullable, obj
from spooled.transports.http.spec import Body, Param, empty, flag, op

bp = Blueprint("queues", __name__)

ALIASES = {"queue_name": "name", "default_timeout_seconds": "default_timeout"}


def org() -> str:
    return principal().organization_id


@bp.post("/queues")
@op("Create a queue", body=inputs.QueueConfig, alias=ALIASES, ok={201: Body(views.QUEUE)}, errors=(409,))
@authed
async def create_queue():
    spec, _ = await body_as(inputs.QueueConfig, **ALIASES)
    require_queue(spec.name)
    row = await services().queues.create(org(), spec)
    return json_response(views.queue(row), 201)


@bp.get("/queues")
@op("List queues", ok=array(views.QUEUE))
@authed
async def list_queues():
    return json_response([views.queue(r) for r in await services().queues.list(scope())])


@bp.get("/queues/<name>")
@op("Get a queue with its stats", ok=merge(views.QUEUE_OBJECT, obj({"stats": views.QUEUE_STATS})))
@authed
async def get_queue(name: str):
    require_queue(name)
    q = services().queues
    row = await q.get(org(), name)
    stats = await q.stats(org(), name, must_exist=False)
    return json_response({**views.queue(row), "stats": views.queue_stats(name, stats)})


@bp.patch("/queues/<name>")
@op("Update a queue (partial)", body=inputs.QueueConfig, alias=ALIASES, ok=views.QUEUE)
@authed
async def patch_queue(name: str):
    require_queue(name)
    spec, raw = await body_as(inputs.QueueConfig, **ALIASES)
    row = await services().queues.update(org(), name, spec, set(raw))
    return json_response(views.queue(row))


@bp.put("/queues/<name>/config")
@op("Create or update a queue", body=inputs.QueueConfig, alias=ALIASES, ok=views.QUEUE)
@authed
async def put_config(name: str):
    require_queue(name)
    spec, raw = await body_as(inputs.QueueConfig, **ALIASES)
    row = await services().queues.upsert(org(), name, spec, set(raw))
    return json_response(views.queue(row))


@bp.delete("/queues/<name>")
@op("Delete a queue", ok=empty("Deleted"), errors=(409,),
    query=(flag("delete_jobs", "Delete its jobs too (else 409 while it has active jobs)"),))
@authed
async def delete_queue(name: str):
    require_queue(name)
    delete_jobs = (request.args.get("delete_jobs") or "").lower() in ("1", "true", "yes")
    await services().queues.delete(org(), name, delete_jobs=delete_jobs)
    return no_content()


@bp.post("/queues/<name>/pause")
@op("Pause a queue (it hands out no jobs)", body=inputs.Pause, ok=obj({
    "queue_name": STRING, "paused": const(True), "paused_at": TIME, "reason": nullable(STRING)}))
@authed
async def pause(name: str):
    require_queue(name)
    spec, _ = await body_as(inputs.Pause)
    paused = await services().queues.pause(org(), name, spec.reason)
    return json_response({"queue_name": paused.name, "paused": True, "paused_at": paused.paused_at,
                          "reason": paused.pause_reason})


@bp.post("/queues/<name>/resume")
@op("Resume a paused queue", ok=obj({
    "queue_name": STRING, "resumed": const(True), "paused_duration_secs": INTEGER}))
@authed
async def resume(name: str):
    require_queue(name)
    paused_secs = await services().queues.resume(org(), name)
    return json_response({"queue_name": name, "resumed": True, "paused_duration_secs": int(paused_secs)})


@bp.get("/queues/<name>/stats")
@op("A queue's job counts and workers", ok=views.QUEUE_STATS)
@authed
async def queue_stats(name: str):
    require_queue(name)
    return json_response(views.queue_stats(name, await services().queues.stats(org(), name)))


@bp.get("/queues/<name>/throughput")
@op("Finished jobs per time bucket", ok=views.THROUGHPUT, query=(
    Param("bucket_secs", {**INTEGER, "minimum": BUCKET_SECS[0], "maximum": BUCKET_SECS[1], "default": 60},
          "Bucket width in seconds"),
    Param("minutes", {**INTEGER, "minimum": THROUGHPUT_MINUTES[0], "maximum": THROUGHPUT_MINUTES[1], "default": 60},
          f"How far back (the latest {MAX_BUCKETS} buckets at most)")))
@authed
async def queue_throughput(name: str):
    """ext: finished jobs per bucket (`bucket_secs`, default 60) over the last `minutes` (default 60)."""
    require_queue(name)
    bucket_secs = int_arg("bucket_secs", 60)
    buckets = await services().queues.throughput(org(), name, minutes=int_arg("minutes", 60),
                                                 bucket_secs=bucket_secs)
    return json_response(views.throughput(name, bucket_secs, buckets))
