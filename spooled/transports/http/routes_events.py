"""Realtime over SSE and WebSocket (api.md "Realtime"). Handlers authenticate (header or `?token=`, before any
stream starts: a bad credential is a plain 401), subscribe to the instance's `Broadcaster`, and turn events into
frames. Streams end on shutdown (WebSocket close 1001), when the subscriber fell too far behind (it was dropped:
an `Error` frame if it can still be sent, WebSocket close 1013), and for a job stream after the job's terminal
status. After the event feed was interrupted, streams get an `Error` frame with code `RESYNC` (a job stream
re-reads the job instead).
"""

from __future__ import annotations

import logging
import weakref

import orjson
import trio
from quart import Blueprint, Response, g, has_request_context, request, websocket

from spooled.domain import errors
from spooled.domain.inputs import QUEUE_NAME
from spooled.domain.models import Job
from spooled.services.auth import Principal
from spooled.services.events import RESYNC, Filter, Subscription
from spooled.transports.http import realtime as rt
from spooled.transports.http import views
from spooled.transports.http.handlers import json_response, services
from spooled.transports.http.errors import for_exception
from spooled.transports.http.schema import OBJECT, STRING, TIME, component, enum, obj
from spooled.transports.http.spec import Body, Param, op

log = logging.getLogger(__name__)
bp = Blueprint("events", __name__)
TOKEN = Param("token", STRING, "An API key or access token (instead of the Authorization header)")
FRAME = component("RealtimeFrame", obj({
    "type": enum("JobCreated", "JobStatusChange", "JobCompleted", "JobFailed", "QueueStats", "WorkerRegistered",
                 "WorkerDeregistered", "Ping", "Error"),
    "data": OBJECT, "timestamp": TIME}))
SSE = dict(security=("bearer", "tokenQuery"), streaming=True, errors=(401, 403, 404, 429, 503), ok=Body(
    {**STRING, "description": "`data: <RealtimeFrame JSON>` frames and `: keep-alive` comments; the stream does "
                              "not end on its own (a job stream ends after the job's terminal status)",
     "contentSchema": FRAME}, media="text/event-stream"))
SEND_TIMEOUT_SECS = 30.0


async def _principal(headers, args) -> Principal:
    """The one admission call of the realtime routes (services/admission.py: credential, key rules, rate limit;
    opening a stream counts as one request): `Authorization: Bearer` or `?token=` (API key or JWT)."""
    header = headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    credential = token.strip() if scheme.lower() == "bearer" and token.strip() else args.get("token") or None
    principal, rate = await services().admission.admit(credential, safe=True)
    if has_request_context():
        g.rate = rate            # the SSE response carries the X-RateLimit-* figures like any other
    return principal


def _filters(principal: Principal, queue: str | None, job_id: str | None) -> list[Filter]:
    """The subscription's filters; a key restricted to some queues only sees those queues."""
    if queue is not None and not QUEUE_NAME.match(queue):
        raise errors.invalid("queue", "is not a valid queue name")
    if principal.queues:
        if queue is not None and not principal.allows(queue):
            raise errors.Forbidden("This API key may not read that queue")
        return [Filter(queue=q, job_id=job_id) for q in ([queue] if queue else principal.queues)]
    return [Filter(queue=queue, job_id=job_id)]


async def _job(svc, principal: Principal, job_id: str):
    return await svc.jobs.get(principal.scope, job_id)       # another queue's job is not found


# -- SSE -----------------------------------------------------------------------------------------------------
@bp.get("/events")
@bp.get("/events/sse")
@op("Server-sent events of the organization", **SSE, query=(
    Param("queue", STRING, "Only this queue's events"), Param("queue_name", STRING, "Alias of queue"),
    Param("job_id", STRING, "Only this job's events"), TOKEN))
async def sse_org():
    return await _sse(request.args.get("queue") or request.args.get("queue_name") or None,
                      request.args.get("job_id") or None)


@bp.get("/events/queues/<name>")
@op("Server-sent events of one queue, with its stats every few seconds", **SSE, query=(TOKEN,))
async def sse_queue(name: str):
    return await _sse(name, None, stats=True)


@bp.get("/events/jobs/<job_id>")
@op("Server-sent events of one job (ends after its terminal status)", **SSE, query=(TOKEN,))
async def sse_job(job_id: str):
    return await _sse(None, job_id)


async def _sse(queue: str | None, job_id: str | None, *, stats: bool = False) -> Response:
    principal = await _principal(request.headers, request.args)
    filters = _filters(principal, queue, job_id)
    svc = services()       # (the body runs outside the app context: it gets what it needs)
    sub = await svc.broadcaster.subscribe(principal.organization_id, filters)   # 503 before the stream starts
    try:
        job = await _job(svc, principal, job_id) if job_id is not None else None  # 404 before it starts
    except BaseException:
        sub.close()
        raise
    body = _sse_body(svc, principal, sub, queue if stats else None, job_id, job)
    weakref.finalize(body, sub.close)      # a body that never ran (the client left first) still lets go
    response = Response(body, status=200, content_type="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.timeout = None
    return response


async def _sse_body(svc, principal: Principal, sub: Subscription, stats_queue: str | None, job_id: str | None,
                    job: Job | None):
    """Frames until the stream ends. No cancel scope is held across a `yield`."""
    keepalive = svc.settings.realtime_keepalive_secs
    stats_every = svc.settings.queue_stats_interval_secs
    next_stats = trio.current_time()
    gauge = svc.metrics.realtime_subscribers.labels("sse")
    gauge.inc()
    try:
        yield b": connected\n\n"      # subscribed before the response: events committed from now on are here
        if job is not None:
            yield rt.sse(rt.snapshot(job))
            if job.status in rt.TERMINAL_STATUSES:
                return
        while True:
            if stats_queue is not None and trio.current_time() >= next_stats:
                yield rt.sse(await _stats_frame(svc, principal, stats_queue))
                next_stats = trio.current_time() + stats_every
            deadline = trio.current_time() + keepalive
            if stats_queue is not None:
                deadline = min(deadline, next_stats)
            item = None
            with trio.move_on_at(deadline):
                try:
                    item = await sub.receive()
                except trio.EndOfChannel:
                    item = _ENDED
            if item is None:
                if stats_queue is None or trio.current_time() < next_stats:
                    yield rt.KEEPALIVE
            elif item is _ENDED:
                if sub.dropped:
                    yield rt.sse(rt.error("SLOW_CONSUMER", rt.SLOW_MESSAGE))
                return
            elif item is RESYNC and job_id is None:
                yield rt.sse(rt.error("RESYNC", rt.RESYNC_MESSAGE))
            elif item is RESYNC:             # a job stream re-reads its job instead
                job = await _job(svc, principal, job_id)
                yield rt.sse(rt.snapshot(job))
                if job.status in rt.TERMINAL_STATUSES:
                    return
            else:
                for f in rt.frames(item):
                    yield rt.sse(f)
                if rt.ends_job(item, job_id):
                    return
    finally:
        gauge.dec()
        sub.close()


_ENDED = object()


async def _stats_frame(svc, principal: Principal, queue: str) -> dict:
    stats = await svc.queues.stats(principal.organization_id, queue, must_exist=False)
    return rt.frame("QueueStats", views.queue_stats(queue, stats))


# -- WebSocket -------------------------------------------------------------------------------------------------
@bp.websocket("/events/ws")
@bp.websocket("/ws")
@op("Events over a WebSocket", security=("bearer", "tokenQuery"), errors=(400, 401, 403, 429, 503),
    query=(Param("queue", STRING, "Only this queue's events"), Param("job_id", STRING, "Only this job's events"),
           TOKEN), streaming=True,
    ok={101: Body(None, description="Switching protocols: frames as JSON text messages; commands "
                                    '`{"cmd": "subscribe"|"unsubscribe"|"ping", "queue"?, "job_id"?}`')},
    description="A WebSocket upgrade (a plain GET is 400). Refused before the upgrade with the error body.")
async def ws_events():
    svc = services()
    try:
        principal = await _principal(websocket.headers, websocket.args)
        queue, job_id = websocket.args.get("queue") or None, websocket.args.get("job_id") or None
        explicit = queue is not None or job_id is not None
        sub = await svc.broadcaster.subscribe(principal.organization_id, _filters(principal, queue, job_id))
    except errors.DomainError as exc:       # refused before the upgrade: a plain HTTP error response
        status, payload, headers = for_exception(exc)
        return json_response(payload, status, headers)
    gauge, counted = svc.metrics.realtime_subscribers.labels("websocket"), False
    try:
        await websocket.accept()
        gauge.inc()
        counted = True
        lock = trio.Lock()

        async def send(f: dict) -> None:
            async with lock:
                with trio.fail_after(SEND_TIMEOUT_SECS):
                    await websocket.send(rt.encode(f).decode())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(_ws_commands, principal, sub, send, explicit)
            code, reason = await _ws_stream(sub, send, svc.settings.realtime_keepalive_secs)
            nursery.cancel_scope.cancel()
        await websocket.close(code, reason)
    except trio.TooSlowError:
        log.info("closing a WebSocket whose client stopped reading")
    finally:
        if counted:
            gauge.dec()
        sub.close()


async def _ws_stream(sub: Subscription, send, keepalive: float) -> tuple[int, str]:
    while True:
        item = None
        with trio.move_on_after(keepalive):
            try:
                item = await sub.receive()
            except trio.EndOfChannel:
                return (1013, "too slow: reconnect") if sub.dropped else (1001, "server shutting down")
        if item is None:
            await send(rt.ping())
        elif item is RESYNC:
            await send(rt.error("RESYNC", rt.RESYNC_MESSAGE))
        else:
            for f in rt.frames(item):
                await send(f)
            if item.job_id is not None and item.new_status in rt.TERMINAL_STATUSES:
                # a finished job sends nothing more: drop the filters that followed it
                sub.filters -= {f for f in sub.filters if f.job_id == item.job_id}


async def _ws_commands(principal: Principal, sub: Subscription, send, explicit: bool) -> None:
    """`{"cmd": "subscribe"|"unsubscribe"|"ping", "queue"?, "job_id"?}` (either case). Until the first
    subscribe, a connection without filters receives every event of the organization."""
    while True:
        message = await websocket.receive()
        try:
            cmd = orjson.loads(message)
            if not isinstance(cmd, dict):
                raise ValueError
            name = str(cmd.get("cmd") or cmd.get("type") or "").lower()
        except ValueError:
            await send(rt.error("BAD_REQUEST", "Commands are JSON objects with a cmd field"))
            continue
        if name == "ping":
            await send(rt.ping())
            continue
        if name not in ("subscribe", "unsubscribe"):
            await send(rt.error("BAD_REQUEST", f"Unknown command {name!r}: subscribe, unsubscribe or ping"))
            continue
        queue, job_id = cmd.get("queue") or None, cmd.get("job_id") or None
        try:
            if not isinstance(queue, (str, type(None))) or not isinstance(job_id, (str, type(None))):
                raise errors.invalid("queue", "queue and job_id must be strings")
            wanted = set(_filters(principal, queue, job_id))
        except errors.DomainError as exc:
            await send(rt.error(for_exception(exc)[1]["code"], exc.message))
            continue
        if name == "subscribe":
            if not explicit:
                sub.filters.clear()          # the first subscribe narrows the implicit "everything"
                explicit = True
            sub.filters |= wanted
        else:
            sub.filters -= wanted
