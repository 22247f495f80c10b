"""`GET /metrics` at the root: the Prometheus text exposition of this instance (services/metrics.py).

Open by default, like the health probes (bind the server where only your scraper reaches it, or put it behind
the balancer's path rules); with `SPOOLED_METRICS_TOKEN` set it needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Blueprint, Response

from spooled.domain import errors
from spooled.transports.http.handlers import bearer_token, services
from spooled.transports.http.schema import STRING
from spooled.transports.http.spec import Body, op

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@op("Prometheus metrics of this instance", security=("", "metricsToken"), errors=(401,),
    ok=Body({**STRING, "description": "The Prometheus text exposition format"}, media="text/plain"))
async def metrics():
    svc = services()
    token = svc.settings.metrics_token
    if token is not None:
        given = bearer_token() or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise errors.Unauthorized("/metrics needs Authorization: Bearer <SPOOLED_METRICS_TOKEN>")
    return Response(generate_latest(svc.metrics.registry), content_type=CONTENT_TYPE_LATEST)
