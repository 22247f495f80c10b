"""GET /api/v1/dashboard: the organization's summary (of the key's queues, for a restricted key) as the SDK's
DashboardData (api.md "Dashboard")."""

from __future__ import annotations

import datetime as dt

import trio
from quart import Blueprint

import spooled
from spooled.transports.http import views
from spooled.transports.http.handlers import authed, json_response, scope, services
from spooled.transports.http.spec import op

bp = Blueprint("summary", __name__)


@bp.get("/dashboard")
@op("The organization at a glance (the SDK's DashboardData)", ok=views.DASHBOARD)
@authed
async def summary():
    svc = services()
    summary = await svc.dashboard.summary(scope())
    uptime = trio.current_time() - svc.started_at
    system = {"version": spooled.__version__, "uptime_seconds": int(uptime),
              "started_at": dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=uptime),
              "database_status": "healthy", "cache_status": "in_process", "environment": "self-hosted"}
    return json_response(views.dashboard(summary, system))
