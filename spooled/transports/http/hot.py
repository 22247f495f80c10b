"""The hot routes (a worker's and a producer's requests) as plain functions, and the request envelope they run in.

Each route is one function `(services, principal, body JSON, HotRequest) -> (status, JSON object)`: it structures
the body into its input model, checks the key's queue restriction, calls one service method and shapes the
answer. The quart routes in `routes_jobs.py` call these same functions (so there is one set of rules), and so does
the ASGI fast lane (`lane.py`), which runs them inside `serve`: the same steps the quart app takes
around a route, in the same order, without quart's per-request machinery:

1. the request id (`X-Request-Id` when it looks like one, else a new one), in the log context;
2. admission (`services/admission.py`: credential, key rules, rate limit), the organization in the log context;
3. the body (read only now, as the app's route reads it: over the limit is 413): empty is `{}`, else
   `convert.parse_json` (strict);
4. the route; a domain error goes through the one error table (`errors.for_exception`), anything else is logged
   and answered 500;
5. the response headers the app stamps (`X-Request-Id`, `X-RateLimit-*`, an error's own such as `Retry-After`).
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any, Awaitable, Callable

import attrs
import orjson

from spooled.convert import parse_json, structure
from spooled.domain import errors, inputs
from spooled.domain.tracecontext import TraceContext, from_carrier
from spooled.services import admission, logs
from spooled.services.auth import Principal
from spooled.services.container import Services
from spooled.services.ratelimit import RateDecision
from spooled.transports.http import views
from spooled.transports.http.errors import error_body, for_exception

log = logging.getLogger("spooled.transports.http.app")

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")   # a client's X-Request-Id is kept only when it looks like one


def request_id(given: str | None) -> str:
    return given if given and REQUEST_ID.match(given) else uuid.uuid4().hex


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def rate_headers(rate: RateDecision) -> list[tuple[str, str]]:
    return [("X-RateLimit-Limit", str(rate.limit)), ("X-RateLimit-Remaining", str(rate.remaining)),
            ("X-RateLimit-Reset", str(rate.reset)), ("X-RateLimit-Scope", rate.scope)]


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default)


def aliased(data: Any, **aliases: str) -> Any:
    """`data` with each accepted alternative key copied to its canonical name (when that is absent)."""
    if isinstance(data, dict):
        for alt, canonical in aliases.items():
            if alt in data and canonical not in data:
                data = {**data, canonical: data[alt]}
    return data


@attrs.frozen
class HotRequest:
    """What a hot route reads besides its body: the job id of its path, the trace context headers."""
    job_id: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    def trace(self) -> TraceContext | None:
        """The request's W3C trace context (malformed headers are ignored)."""
        return from_carrier(self.traceparent, self.tracestate)


Result = tuple[int, Any]
Route = Callable[[Services, Principal, Any, HotRequest], Awaitable[Result]]


# -- the routes ------------------------------------------------------------------------------------------------
async def create_job(svc: Services, p: Principal, data: Any, req: HotRequest) -> Result:
    spec = structure(aliased(data, queue="queue_name"), inputs.CreateJob)
    admission.require_queue(p, spec.queue_name)
    (res,) = await svc.jobs.enqueue(p.scope, spec.queue_name, [spec], trace=req.trace())
    if not res.created:
        return 200, {"id": res.job_id, "created": False}
    return 201, {**views.job(res.job), "created": True}


@attrs.frozen
class _BulkHead:
    queue_name: str = attrs.field(validator=inputs.queue_name_field)
    default_priority: int | None = attrs.field(default=None, validator=inputs.between(-100, 100))
    default_max_retries: int | None = attrs.field(default=None, validator=inputs.between(0, 100))
    default_timeout_seconds: int | None = attrs.field(default=None, validator=inputs.between(1, 86400))


async def bulk_jobs(svc: Services, p: Principal, data: Any, req: HotRequest) -> Result:
    data = aliased(data, queue="queue_name")
    if not isinstance(data, dict):
        raise errors.ValidationFailed("The request body must be a JSON object", {"body": "must be a JSON object"})
    jobs = data.get("jobs")
    if not isinstance(jobs, list) or not 1 <= len(jobs) <= 100:
        raise errors.invalid("jobs", "must be a list of 1 to 100 jobs")
    head = structure({**data, "jobs": []}, _BulkHead)
    admission.require_queue(p, head.queue_name)
    specs, indexes, failed = [], [], []
    for i, item in enumerate(jobs):
        try:
            specs.append(structure(item, inputs.JobSpec))
            indexes.append(i)
        except errors.ValidationFailed as exc:
            failed.append({"index": i, "error": exc.message, "details": exc.details})
    succeeded = []
    if specs:
        results = await svc.jobs.enqueue(
            p.scope, head.queue_name, specs, default_priority=head.default_priority,
            default_max_retries=head.default_max_retries, default_timeout=head.default_timeout_seconds,
            trace=req.trace())
        succeeded = [{"index": i, "job_id": r.job_id, "created": r.created} for i, r in zip(indexes, results)]
    return 200, {"succeeded": succeeded, "failed": failed, "total": len(jobs),
                 "success_count": len(succeeded), "failure_count": len(failed)}


async def claim(svc: Services, p: Principal, data: Any, req: HotRequest) -> Result:
    spec = structure(aliased(data, queue="queue_name"), inputs.Claim)
    admission.require_queue(p, spec.queue_name)
    jobs = await svc.jobs.claim(p.scope, spec)
    return 200, {"jobs": views.jobs(jobs)}


async def complete_batch(svc: Services, p: Principal, data: Any, req: HotRequest) -> Result:
    items = inputs.complete_batch_items(data) or structure(data, inputs.CompleteBatch).items()
    results = await svc.jobs.complete_many(p.scope, items)
    return 200, {
        "results": [{"job_id": r.job_id, "success": r.success, "error": r.error} for r in results],
        "succeeded": [r.job_id for r in results if r.success],
        "failed": [{"job_id": r.job_id, "error": r.error} for r in results if not r.success],
    }


async def complete(svc: Services, p: Principal, data: Any, req: HotRequest) -> Result:
    spec = structure(data, inputs.Complete)
    await svc.jobs.complete(p.scope, req.job_id, spec.lease_id, spec.result, worker_id=spec.worker_id)
    return 200, {"success": True}


async def fail(svc: Services, p: Principal, data: Any, req: HotRequest) -> Result:
    spec = structure(data, inputs.Fail)
    r = await svc.jobs.fail(p.scope, req.job_id, spec)
    return 200, {"success": True, "will_retry": r.will_retry,
                 "next_retry_delay_secs": r.next_retry_delay_secs if r.will_retry else None, "status": r.status}


async def heartbeat(svc: Services, p: Principal, data: Any, req: HotRequest) -> Result:
    spec = structure(data, inputs.Heartbeat)
    expires = await svc.jobs.heartbeat(p.scope, req.job_id, spec.lease_id, spec.lease_duration_secs,
                                       worker_id=spec.worker_id)
    return 200, {"success": True, "lease_expires_at": expires}


@attrs.frozen
class HotRoute:
    template: str                   # the route template, as quart names it (metrics, access log)
    run: Route


_COLLECTION = {"": HotRoute("/api/v1/jobs", create_job)}
_STATIC = {"bulk": HotRoute("/api/v1/jobs/bulk", bulk_jobs),
           "claim": HotRoute("/api/v1/jobs/claim", claim),
           "complete": HotRoute("/api/v1/jobs/complete", complete_batch)}
_PER_JOB = {"complete": HotRoute("/api/v1/jobs/<job_id>/complete", complete),
            "fail": HotRoute("/api/v1/jobs/<job_id>/fail", fail),
            "heartbeat": HotRoute("/api/v1/jobs/<job_id>/heartbeat", heartbeat)}
PREFIX = "/api/v1/jobs"


def match(method: str, path: str) -> tuple[HotRoute, str | None] | None:
    """The hot route a request goes to and its job id, for the paths quart would route to these same functions
    (`/api/v1/jobs`, `/jobs/bulk|claim|complete`, `/jobs/{id}/complete|fail|heartbeat`, POST). Anything else —
    other methods, trailing or doubled slashes, other routes — is None: the app serves it."""
    if method != "POST" or not path.startswith(PREFIX):
        return None
    rest = path[len(PREFIX):]
    if not rest:
        return _COLLECTION[""], None
    parts = rest.split("/")          # "/claim" -> ["", "claim"]; "/<id>/complete" -> ["", id, "complete"]
    if parts[0] != "":
        return None
    if len(parts) == 2:
        route = _STATIC.get(parts[1])
        return (route, None) if route is not None else None
    if len(parts) == 3 and parts[1]:
        route = _PER_JOB.get(parts[2])
        return (route, parts[1]) if route is not None else None
    return None


# -- the envelope ----------------------------------------------------------------------------------------------
@attrs.define
class Served:
    status: int
    body: bytes
    headers: list[tuple[str, str]]
    request_id: str
    org: str | None


TOO_LARGE = "The request body is over the size limit"   # the app's 413 and 408 messages (app.py: `_http`)
BODY_LATE = "The request body was not received in time"


class BodyTimeout(Exception):
    """The body did not arrive within the app's `BODY_TIMEOUT` (the app's 408, and the connection closes)."""


async def serve(svc: Services, route: HotRoute, read_body: Callable[[], Awaitable[bytes]], req: HotRequest, *,
                method: str, path: str, authorization: str | None, given_request_id: str | None) -> Served:
    """Serve one request of a hot route as the app would (the module's docstring lists the steps). `read_body`
    is awaited after admission, as the app reads a body only in its route: it returns the body, or raises
    `errors.PayloadTooLarge` (over the limit) or `BodyTimeout`."""
    rid = request_id(given_request_id)
    logs.request_id.set(rid)
    logs.org.set(None)      # the fast path serves a connection's requests in one task: no org of a previous one
    principal: Principal | None = None
    rate: RateDecision | None = None
    extra: dict[str, str] = {}
    try:
        try:
            principal, rate = await svc.admission.admit(bearer(authorization), safe=False)
        except errors.RateLimited as exc:
            rate = getattr(exc, "decision", None)
            raise
        logs.org.set(principal.organization_id)
        data_bytes = await read_body()
        data = parse_json(data_bytes) if data_bytes else {}
        status, obj = await route.run(svc, principal, data, req)
        body = dumps(obj)
    except errors.DomainError as exc:
        status, payload, extra = for_exception(exc)
        body = dumps(payload)
    except BodyTimeout:
        status, body = 408, dumps(error_body(408, BODY_LATE))
        extra = {"Connection": "close"}
    except Exception:
        log.exception("unhandled error on %s %s", method, path)
        status, body = 500, dumps(error_body(500, "Internal server error"))
    headers = [("X-Request-Id", rid)]
    if rate is not None:
        headers += rate_headers(rate)
    headers += extra.items()
    return Served(status, body, headers, rid, principal.organization_id if principal is not None else None)
