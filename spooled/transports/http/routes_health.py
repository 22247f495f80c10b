"""Health probes at the root (no auth)."""

from __future__ import annotations

import trio
from quart import Blueprint

import spooled
from spooled.transports.http.handlers import json_response, services
from spooled.transports.http.errors import error_body
from spooled.transports.http.schema import BOOLEAN, INTEGER, STRING, component, const, enum, obj
from spooled.transports.http.spec import Body, op

bp = Blueprint("health", __name__)
HEALTH = component("Health", obj({"status": enum("healthy", "degraded"), "version": STRING, "database": BOOLEAN,
                                  "uptime_seconds": INTEGER}))


@bp.get("/health")
@op("Health: version, database, uptime", security=(), ok={200: Body(HEALTH), 503: Body(HEALTH, description="The database is unreachable")},
    description="503 (with the same body, `status: degraded`) while the database is unreachable.")
async def health():
    svc = services()
    ok = await svc.db.ping()
    body = {"status": "healthy" if ok else "degraded", "version": spooled.__version__, "database": ok,
            "uptime_seconds": int(trio.current_time() - svc.started_at)}
    return json_response(body, 200 if ok else 503)


@bp.get("/health/live")
@op("Liveness: the process answers", security=(), ok=obj({"status": const("alive")}))
async def live():
    return json_response({"status": "alive"})


@bp.get("/health/ready")
@op("Readiness: the database is reachable and the server is not shutting down", security=(),
    ok=obj({"status": const("ready"), "database": const(True)}))
async def ready():
    svc = services()
    if svc.shutting_down.is_set():
        return json_response(error_body(503, "Shutting down"), 503)
    if not await svc.db.ping():
        return json_response(error_body(503, "The database is unavailable", {"database": False}), 503)
    return json_response({"status": "ready", "database": True})
