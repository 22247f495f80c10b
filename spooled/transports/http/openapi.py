"""The OpenAPI 3.1 document of the REST API, generated from the app itself (served at `/api/v1/openapi.json`):

- paths and methods from the app's url_map (every rule; HEAD and OPTIONS, which every GET and every route
  answer on their own, are left out), path parameters from the rules' converters;
- each operation from the `spec.op` its handler carries: summary, request body (an input model, through
  `schema.input_model`), query parameters and success responses (the views' schemas, `views.py`);
- security from the admission decorator (`authed`: bearer API key or access token; `admin`: `X-Admin-Key`), or
  what the operation declares (signatures, the webhook token, the realtime `?token=`);
- the error responses: every 4xx/5xx has the error body of `errors.py`, its `error`/`code` pairs taken from the
  error table; which statuses an operation can answer follows from what it has (credentials: 401/403/429; a
  body: 400/413/422; path or query parameters: 404/422) plus the ones it declares (409 ...).

A route without an `op` is still in the document, so a new route is served and listed the moment it exists: as
an operation marked `x-undeclared` (summary from its docstring, security from its decorator, any JSON body, a
`default` response). `tests/test_openapi.py` fails on each one, naming the route, until its `@op` says more; the
schemathesis runs leave such operations out (there is nothing to check them against).
"""

from __future__ import annotations

import inspect
import re
import typing

import attrs

import spooled
from spooled.transports.http import errors as error_table
from spooled.transports.http.schema import (COMPONENTS, INTEGER, OBJECT, STRING, Schema, accepts_empty, component,
                                            const, enum, input_model, obj)
from spooled.transports.http.spec import JSON, Body, Operation

OPENAPI_PATH = "/api/v1/openapi.json"
AUTOMATIC = frozenset({"HEAD", "OPTIONS"})

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "An API key (`sk_live_…`) or an access token from `POST /api/v1/auth/login`"},
    "adminKey": {"type": "apiKey", "in": "header", "name": "X-Admin-Key",
                 "description": "The operator's key (`SPOOLED_ADMIN_KEY`); without one configured, 401"},
    "tokenQuery": {"type": "apiKey", "in": "query", "name": "token",
                   "description": "Realtime streams: an API key or access token in the query string"},
    "githubSignature": {"type": "apiKey", "in": "header", "name": "X-Hub-Signature-256",
                        "description": "`sha256=<hex HMAC-SHA256 of the raw body>` with the organization's "
                                       "`github_webhook_secret`"},
    "stripeSignature": {"type": "apiKey", "in": "header", "name": "Stripe-Signature",
                        "description": "Stripe's signature of the raw body (300 s tolerance): the "
                                       "organization's `stripe_webhook_secret`, or for `/billing/webhook` the "
                                       "platform's `SPOOLED_STRIPE_WEBHOOK_SECRET`"},
    "webhookToken": {"type": "apiKey", "in": "header", "name": "X-Webhook-Token",
                     "description": "The organization's webhook token (`GET /organizations/{id}/webhook-token`)"},
    "metricsToken": {"type": "http", "scheme": "bearer",
                     "description": "`SPOOLED_METRICS_TOKEN`, when the operator set one"},
}

HEADERS = {
    "X-Request-Id": {"description": "The request's id (the client's own `X-Request-Id` when it looks like one)",
                     "schema": STRING, "required": True},
    "X-RateLimit-Limit": {"description": "The plan's requests per second (the bucket's capacity)",
                          "schema": INTEGER, "required": True},
    "X-RateLimit-Remaining": {"description": "Whole requests left in the bucket", "schema": INTEGER,
                              "required": True},
    "X-RateLimit-Reset": {"description": "Unix seconds when the bucket is full again", "schema": INTEGER,
                          "required": True},
    "X-RateLimit-Scope": {"description": "Which bucket answered: `organization` or `api_key`", "schema": STRING,
                          "required": True},
    "X-Has-More": {"description": "Whether another page follows", "schema": enum("true", "false"),
                   "required": True},
    "X-Next-Cursor": {"description": "The next page's `cursor` (only when X-Has-More is true)", "schema": STRING},
    "Link": {"description": '`<the same URL with cursor=…>; rel="next"` (only when X-Has-More is true)',
             "schema": STRING},
    "Retry-After": {"description": "Seconds to wait (rate limits; a quota has none)", "schema": INTEGER},
}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Scope")
PAGE_HEADERS = ("X-Has-More", "X-Next-Cursor", "Link")

ERROR_DESCRIPTIONS = {
    400: "Malformed JSON or a request that cannot be read", 401: "Missing, invalid or expired credentials",
    403: "Valid credentials that may not do this (a read-only key, a key restricted to other queues)",
    404: "No such resource (another organization's ids are 404 too)", 409: "A state conflict",
    413: "The body is over the size limit (the server's, or the plan's for a payload)",
    422: "Well-formed but invalid: `details` names each field", 429: "Over the rate limit or a plan quota",
    500: "A bug: logged with its traceback, no internals in the body",
    503: "The database is unavailable or the server is shutting down",
}


def _error_schema(status: int) -> Schema:
    """The error body of `status`: its `error`/`code` pairs from the error table (a 429 for a quota also has the
    quota's own fields)."""
    pairs = sorted({(e, c) for _, s, e, c in error_table.TABLE if s == status} or
                   {error_table.BY_STATUS.get(status) or error_table._generic(status)})
    props = {"error": enum(*(e for e, _ in pairs)), "code": enum(*(c for _, c in pairs)), "message": STRING,
             "status": const(status), "details": OBJECT}
    optional = ["details"]
    if status == 429:
        props.update(resource=STRING, current=INTEGER, limit={"type": ["integer", "null"]}, plan=STRING,
                     upgrade_to={"type": ["string", "null"]})
        optional += ["resource", "current", "limit", "plan", "upgrade_to"]
    return obj(props, optional=optional)


def _error_response(status: int) -> dict:
    headers = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    if status == 429:
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    name = f"Error{status}"
    return {"description": ERROR_DESCRIPTIONS[status], "headers": headers,
            "content": {JSON: {"schema": component(name, _error_schema(status))}}}


_ARG = re.compile(r"<(?:(\w+):)?(\w+)>")


def openapi_path(rule: str) -> str:
    return _ARG.sub(lambda m: "{" + m.group(2) + "}", rule)


@attrs.frozen
class Route:
    """One (method, path) of the url_map with the operation its handler declares."""
    method: str
    path: str                    # OpenAPI form: /api/v1/jobs/{job_id}
    endpoint: str
    operation: Operation
    security: tuple[str, ...]
    path_params: tuple[tuple[str, str], ...]    # (name, converter class name)
    websocket: bool


UNDECLARED_BODY: Schema = {"description": "Not described yet (the route declares no @op)"}


def undeclared(fn, methods: typing.Iterable[str]) -> Operation:
    """The operation of a route whose handler declares none: what the route itself says."""
    doc = (inspect.getdoc(inspect.unwrap(fn)) or "").strip().splitlines()
    writes = bool(set(methods) & {"POST", "PUT", "PATCH"})
    return Operation(summary=doc[0] if doc else fn.__name__.replace("_", " "), responses={},
                     body=UNDECLARED_BODY if writes else None, body_required=False, declared=False)


def routes(app) -> list[Route]:
    """Every (method, path) the app serves, minus HEAD/OPTIONS, each with its handler's operation."""
    out = []
    for rule in app.url_map.iter_rules():
        fn = app.view_functions[rule.endpoint]
        methods = ["GET"] if rule.websocket else sorted(set(rule.methods or ()) - AUTOMATIC)
        operation = getattr(fn, "openapi", None) or undeclared(fn, methods)
        security = operation.security if operation.security is not None else getattr(fn, "security", ())
        params = tuple((name, type(conv).__name__) for name, conv in rule._converters.items())
        for method in methods:
            out.append(Route(method, openapi_path(rule.rule), rule.endpoint, operation, tuple(security), params,
                             rule.websocket))
    return sorted(out, key=lambda r: (r.path, r.method))


def _operation_id(route: Route, shared: bool) -> str:
    base = route.endpoint.replace(".", "_")
    if not shared:
        return base
    tail = re.sub(r"\W+", "_", route.path.removeprefix("/api/v1")).strip("_")
    return f"{base}_{route.method.lower()}_{tail}"


def _security(names: tuple[str, ...]) -> list[dict]:
    return [{} if name == "" else {name: []} for name in names]


def _statuses(route: Route) -> list[int]:
    o = route.operation
    out = set(o.errors) | {500}
    if route.path.startswith("/api/") and route.path != OPENAPI_PATH or route.path.startswith("/health"):
        out.add(503)
    if "bearer" in route.security:
        out |= {401, 403, 429}
    if "adminKey" in route.security and "" not in route.security:
        out.add(401)
    if o.body is not None:
        out |= {400, 413, 422}
    if route.path_params:
        out |= {404, 422}
    if o.query:
        out.add(422)
    return sorted(out)


NO_NUL = "^[^\\x00]*$"     # app.py `_check_url_text`: a NUL in the path or a query value is a 422


def _no_nul(schema: Schema) -> Schema:
    """A path or query string as the app takes it: no NUL character."""
    if schema.get("type") == "array":
        return {**schema, "items": _no_nul(schema["items"])}
    if schema.get("type") == "string" and "pattern" not in schema and "format" not in schema:
        return {**schema, "pattern": NO_NUL}
    return schema


def _parameters(route: Route) -> list[dict]:
    out = []
    for name, converter in route.path_params:
        schema = _no_nul({**STRING, "minLength": 1})
        desc = "May contain `/`" if converter == "PathConverter" else ""
        out.append({"name": name, "in": "path", "required": True, "schema": schema,
                    **({"description": desc} if desc else {})})
    for p in route.operation.query:
        item = {"name": p.name, "in": "query", "required": p.required, "schema": _no_nul(p.schema)}
        if p.description:
            item["description"] = p.description
        if p.list_:
            item.update(style="form", explode=False)
        out.append(item)
    return out


def _success(route: Route, status: int, body: Body) -> dict:
    headers = ["X-Request-Id", *body.headers]
    if "bearer" in route.security:
        headers += RATE_HEADERS
    if route.operation.paged and status == 200:
        headers += PAGE_HEADERS
    out: dict = {"description": body.description or _REASONS.get(status, "OK"),
                 "headers": {h: {"$ref": f"#/components/headers/{h}"} for h in headers}}
    if body.schema is not None:
        out["content"] = {body.media: {"schema": body.schema}}
    return out


_REASONS = {200: "OK", 201: "Created", 204: "No content", 101: "Switching protocols (WebSocket)"}


def _request_body(o: Operation) -> dict | None:
    if o.body is None:
        return None
    if isinstance(o.body, dict):
        schema, required = o.body, bool(o.body_required)
    else:
        schema, required = input_model(o.body), not accepts_empty(o.body)
    if o.body_required is not None:
        required = o.body_required
    description = "JSON; an empty body counts as `{}`. Unknown keys are ignored."
    if o.alias:
        description += " Also accepted: " + ", ".join(f"`{a}` for `{c}`" for a, c in o.alias.items()) + "."
    return {"required": required, "description": description, "content": {JSON: {"schema": schema}}}


def document(app) -> dict:
    """The OpenAPI 3.1 document of `app`."""
    all_routes = routes(app)
    per_endpoint: dict[str, int] = {}
    for r in all_routes:
        per_endpoint[r.endpoint] = per_endpoint.get(r.endpoint, 0) + 1
    paths: dict[str, dict] = {}
    for r in all_routes:
        o = r.operation
        item: dict = {"operationId": _operation_id(r, per_endpoint[r.endpoint] > 1), "summary": o.summary,
                      "tags": [r.endpoint.partition(".")[0]]}
        if o.description:
            item["description"] = o.description
        if r.websocket:
            item["x-websocket"] = True
        if not o.declared:
            item["x-undeclared"] = True
        params = _parameters(r)
        if params:
            item["parameters"] = params
        body = _request_body(o)
        if body is not None:
            item["requestBody"] = body
        item["security"] = _security(r.security)
        responses = {str(s): _success(r, s, b) for s, b in sorted(o.responses.items())}
        if not o.declared:
            responses["default"] = {"description": UNDECLARED_BODY["description"]}
        responses.update({str(s): {"$ref": f"#/components/responses/Error{s}"} for s in _statuses(r)
                          if s not in o.responses})
        item["responses"] = responses
        paths.setdefault(r.path, {})[r.method.lower()] = item
    statuses = sorted({int(s) for p in paths.values() for i in p.values() for s in i["responses"]
                       if s.isdigit() and int(s) >= 400})
    error_responses = {f"Error{s}": _error_response(s) for s in statuses}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Spooled", "version": spooled.__version__,
                 "description": "The REST API of a self-hosted Spooled server: durable job queues on PostgreSQL. "
                                "Generated from the server's routes and models. Errors always have the body "
                                "`{error, code, message, status, details?}`.",
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": dict(sorted(COMPONENTS.items())), "responses": error_responses,
                       "headers": HEADERS, "securitySchemes": SECURITY_SCHEMES},
        "tags": [{"name": t} for t in sorted({i["tags"][0] for p in paths.values() for i in p.values()})],
    }


def cached(app) -> bytes:
    """The document as JSON bytes, built once per app."""
    import orjson
    doc = app.config.get("SPOOLED_OPENAPI")
    if doc is None:
        doc = app.config["SPOOLED_OPENAPI"] = orjson.dumps(document(app))
    return typing.cast(bytes, doc)
