"""What every REST handler uses: the JSON body in, JSON out, the caller (admission), the services.

Routes import these from here; `app.py` builds the application and imports the routes (never the other way).
"""

from __future__ import annotations

import functools
from typing import Any, Awaitable, Callable

from quart import Response, g, request

from spooled.convert import parse_json, structure
from spooled.domain import errors
from spooled.services import admission, logs
from spooled.domain.scope import Scope
from spooled.services.auth import Principal
from spooled.services.container import Services
from spooled.transports.http import hot


def json_response(obj: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(hot.dumps(obj), status=status, headers=headers, content_type="application/json")


def no_content(headers: dict | None = None) -> Response:
    response = Response(b"", status=204, headers=headers)
    del response.headers["Content-Type"]
    return response


async def body() -> Any:
    """The parsed JSON body (`convert.parse_json`: strict); an empty body is `{}` (api.md: body-less POSTs)."""
    data = await request.get_data(cache=True)
    if not data:
        return {}
    return parse_json(data)


async def body_as(cls: type, **aliases: str):
    """Body structured as `cls`; `aliases` maps accepted alternative keys to the canonical one."""
    data = hot.aliased(await body(), **aliases)
    return structure(data, cls), data


async def hot_route(run: hot.Route, job_id: str | None = None) -> Response:
    """A hot route (hot.py: the same function the fast lane runs) served by the app."""
    status, obj = await run(services(), principal(), await body(), hot.HotRequest(
        job_id, request.headers.get("traceparent"), request.headers.get("tracestate")))
    return json_response(obj, status)


def services() -> Services:
    from quart import current_app
    return current_app.config["SPOOLED"]


def principal() -> Principal:
    return g.principal


def scope() -> Scope:
    """What the caller may reach (its organization, or only some queues of it): what every queue-scoped service
    method takes (domain/scope.py)."""
    return g.principal.scope


def bearer_token() -> str | None:
    return hot.bearer(request.headers.get("Authorization"))


SAFE_METHODS = frozenset(("GET", "HEAD"))


def authed(fn: Callable[..., Awaitable[Response]], *, read_only_ok: bool = False):
    """Route decorator: admit `Authorization: Bearer <API key or access token>` (services/admission.py) before
    the handler; the response carries the X-RateLimit-* figures (set in `_stamp`). Read-only keys may only
    GET/HEAD, unless `read_only_ok` (see `authed_own_session`)."""
    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        try:
            g.principal, g.rate = await services().admission.admit(
                bearer_token(), safe=read_only_ok or request.method in SAFE_METHODS)
        except errors.RateLimited as exc:
            g.rate = getattr(exc, "decision", None)
            raise
        logs.org.set(g.principal.organization_id)
        return await fn(*args, **kwargs)
    wrapper.security = ("bearer",)       # the OpenAPI document's security of the route (openapi.py)
    return wrapper


def authed_own_session(fn: Callable[..., Awaitable[Response]]):
    """`authed` for a route that only ends the caller's own session (POST /auth/logout): a read-only key may
    call it too (the service keeps such a key to its own tokens)."""
    return authed(fn, read_only_ok=True)


def require_queue(queue: str | None) -> None:
    """403 unless the caller's key may use `queue` (keys restricted to some queues)."""
    admission.require_queue(g.principal, queue)
