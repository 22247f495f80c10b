"""The quart-trio application: its routes, request ids, URL checks, and the error table applied once.

The helpers handlers share (JSON in/out, admission) are in `handlers.py`, so the routes never import this module."""

from __future__ import annotations

import logging
import re
import uuid

from quart import Response, g, has_request_context, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from spooled.domain import errors
from spooled.services import logs
from spooled.services.container import Services
from spooled.transports.http import cors, hot
from spooled.transports.http.edge import SCOPE_KEY
from spooled.transports.http.errors import error_body, for_exception
from spooled.transports.http.handlers import json_response, no_content

log = logging.getLogger(__name__)


_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def _check_url_text() -> None:
    """A NUL (or a lone surrogate) in the path or a query value is never a valid name, id or filter: 422."""
    if _BAD_TEXT.search(request.path):
        raise errors.invalid("path", "must not contain NUL characters")
    for key, value in request.args.items(multi=True):
        if _BAD_TEXT.search(key) or _BAD_TEXT.search(value):
            raise errors.invalid(key if not _BAD_TEXT.search(key) else "query", "must not contain NUL characters")


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(adapter, path: str) -> list[str]:
    """The methods of the most specific route at `path` (a literal segment beats a parameter: `/jobs/bulk` is
    POST only, though `/jobs/<job_id>` would match it for GET and DELETE too), and OPTIONS."""
    found: dict[str, int] = {}
    for method in _METHODS:
        try:
            rule, _ = adapter.match(path, method=method, return_rule=True)
        except HTTPException:
            continue
        found[method] = len(rule.arguments)
    best = min(found.values(), default=0)
    return sorted({m for m, n in found.items() if n == best} | {"OPTIONS"})


class _App(QuartTrio):
    async def make_default_options_response(self) -> Response:
        """OPTIONS on a route: 204 with `Allow` (quart's default is an empty text/html 200)."""
        from quart.globals import request_ctx
        return no_content({"Allow": ", ".join(allowed_methods(request_ctx.url_adapter, request.path))})


def _where() -> tuple[str, str]:
    """(method, path) of the current request or WebSocket handshake."""
    if has_request_context():
        return request.method, request.path
    return "GET", websocket.path


def create_app(svc: Services) -> QuartTrio:
    app = _App("spooled", static_folder=None)     # no /static route: the dashboard and /docs serve their own
    app.config["SPOOLED"] = svc
    app.config["MAX_CONTENT_LENGTH"] = svc.settings.max_request_bytes
    app.config["BODY_TIMEOUT"] = svc.settings.body_timeout_secs    # then 408 (and the edge closes the connection)
    app.config["RESPONSE_TIMEOUT"] = None     # long polls and streams end themselves (quart's default cuts at 60 s)
    # `/jobs/` matches `/jobs`, `/jobs//complete` is no route (404): never a 308 redirect
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False

    from spooled.transports.http import (routes_admin, routes_auth, routes_billing, routes_dashboard, routes_docs,
                                         routes_events, routes_health, routes_jobs, routes_metrics, routes_orgs,
                                         routes_queues, routes_schedules, routes_summary, routes_webhooks,
                                         routes_workers, routes_workflows)
    app.register_blueprint(routes_health.bp)
    app.register_blueprint(routes_dashboard.bp)
    app.register_blueprint(routes_docs.bp)
    app.register_blueprint(routes_metrics.bp)
    for module in (routes_jobs, routes_queues, routes_orgs, routes_workers, routes_auth, routes_schedules,
                   routes_summary, routes_admin, routes_billing, routes_workflows, routes_events, routes_webhooks):
        app.register_blueprint(module.bp, url_prefix="/api/v1")

    @app.before_request
    async def _request_id():
        g.request_id = hot.request_id(request.headers.get("X-Request-Id"))
        logs.request_id.set(g.request_id)
        _check_url_text()

    @app.after_request
    async def _stamp(response: Response) -> Response:
        headers = response.headers
        rid = g.get("request_id") or uuid.uuid4().hex
        headers["X-Request-Id"] = rid
        principal_ = g.get("principal")
        rule = request.url_rule
        request.scope[SCOPE_KEY] = (rule.rule if rule is not None else "unmatched", rid,
                                    principal_.organization_id if principal_ is not None else None)
        rate = g.get("rate")
        if rate is not None:   # `add`, not `[]=`: nothing else sets these, and it skips a scan per header
            for name, value in hot.rate_headers(rate):
                headers.add(name, value)
        return response

    cors.install(app, svc.settings.cors_origins)

    @app.errorhandler(errors.DomainError)
    async def _domain(exc: errors.DomainError):
        status, payload, headers = for_exception(exc)
        return json_response(payload, status, headers or None)

    @app.errorhandler(HTTPException)
    async def _http(exc: HTTPException):
        status = exc.code or 500
        method, path = _where()
        if status == 413:   # the rest of the body is drained by the edge (edge.py) before the connection recycles
            return json_response(error_body(413, hot.TOO_LARGE), 413)
        if status == 405 and not has_request_context():
            status = 404   # a WebSocket handshake to an HTTP-only route: there is no WebSocket there
        if status == 405:     # RFC 9110: a 405 lists the methods the resource has
            from quart.globals import request_ctx
            allowed = allowed_methods(request_ctx.url_adapter, path)
            return json_response(error_body(405, f"Method {method} not allowed on {path}"), 405,
                                 {"Allow": ", ".join(allowed)})
        if status == 404:
            return json_response(error_body(404, f"No route {method} {path}"), 404)
        if status == 400:
            return json_response(error_body(400, "Bad request"), 400)
        if status == 408:   # the body did not arrive within the body timeout
            return json_response(error_body(408, hot.BODY_LATE), 408,
                                 {"Connection": "close"})
        log.error("unexpected HTTP exception %r on %s %s", exc, method, path)
        return json_response(error_body(500, "Internal server error"), 500)

    @app.errorhandler(Exception)
    async def _bug(exc: Exception):
        log.exception("unhandled error on %s %s", *_where())
        return json_response(error_body(500, "Internal server error"), 500)

    return app
