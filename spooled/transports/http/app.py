"""The quart-trio application: JSON in/out, auth, request ids, and the error table applied once."""

from __future__ import annotations

import functools
import json
import logging
import uuid
from typing import Any, Awaitable, Callable

import orjson
import trio
from quart import Response, g, has_request_context, request, websocket
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from spooled.convert import structure
from spooled.domain import errors
from spooled.services.auth import Principal
from spooled.services.container import Services
from spooled.transports.http.errors import error_body, for_exception

log = logging.getLogger(__name__)


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def json_response(obj: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(obj, default=_default), status=status, headers=headers,
                    content_type="application/json")


def no_content() -> Response:
    return Response(b"", status=204)


async def body() -> Any:
    """The parsed JSON body; an empty body is `{}` (api.md: body-less POSTs)."""
    data = await request.get_data(cache=True)
    if not data.strip():
        return {}
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise errors.BadRequest("Malformed JSON body") from None


async def body_as(cls: type, **aliases: str):
    """Body structured as `cls`; `aliases` maps accepted alternative keys to the canonical one."""
    data = await body()
    if isinstance(data, dict):
        for alt, canonical in aliases.items():
            if alt in data and canonical not in data:
                data = {**data, canonical: data[alt]}
    return structure(data, cls), data


def services() -> Services:
    from quart import current_app
    return current_app.config["SPOOLED"]


def principal() -> Principal:
    return g.principal


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authed(fn: Callable[..., Awaitable[Response]]):
    """Route decorator: authenticate `Authorization: Bearer <API key or access token>`; 401 otherwise."""
    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        g.principal = await services().auth.authenticate(bearer_token())
        return await fn(*args, **kwargs)
    return wrapper


def _where() -> tuple[str, str]:
    """(method, path) of the current request or WebSocket handshake."""
    if has_request_context():
        return request.method, request.path
    return "GET", websocket.path


def create_app(svc: Services) -> QuartTrio:
    app = QuartTrio("spooled")
    app.config["SPOOLED"] = svc
    app.config["MAX_CONTENT_LENGTH"] = svc.settings.max_request_bytes
    app.config["BODY_TIMEOUT"] = 60
    app.url_map.strict_slashes = False

    from spooled.transports.http import (routes_auth, routes_dashboard, routes_events, routes_health, routes_jobs,
                                         routes_orgs, routes_queues, routes_schedules, routes_summary,
                                         routes_webhooks, routes_workers)
    app.register_blueprint(routes_health.bp)
    app.register_blueprint(routes_dashboard.bp)
    for module in (routes_jobs, routes_queues, routes_orgs, routes_workers, routes_auth, routes_schedules,
                   routes_summary, routes_events, routes_webhooks):
        app.register_blueprint(module.bp, url_prefix="/api/v1")

    @app.before_request
    async def _request_id():
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex

    @app.after_request
    async def _stamp(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id") or uuid.uuid4().hex
        return response

    @app.errorhandler(errors.DomainError)
    async def _domain(exc: errors.DomainError):
        status, payload = for_exception(exc)
        return json_response(payload, status)

    @app.errorhandler(HTTPException)
    async def _http(exc: HTTPException):
        status = exc.code or 500
        if status == 413:
            # Let the rest of the body arrive (quart drops it unbuffered) so the client, still sending, reads
            # the 413 instead of stalling on a peer that stopped reading.
            with trio.move_on_after(30):
                await request.body._complete.wait()
            return json_response(error_body(413, "The request body is over the size limit"), 413)
        method, path = _where()
        if status == 405 and not has_request_context():
            status = 404   # a WebSocket handshake to an HTTP-only route: there is no WebSocket there
        if status == 405:
            return json_response(error_body(405, f"Method {method} not allowed on {path}"), 405)
        if status == 404:
            return json_response(error_body(404, f"No route {method} {path}"), 404)
        if status == 400:
            return json_response(error_body(400, "Bad request"), 400)
        log.error("unexpected HTTP exception %r", exc)
        return json_response(error_body(500, "Internal server error"), 500)

    @app.errorhandler(Exception)
    async def _bug(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response(error_body(500, "Internal server error"), 500)

    return app
