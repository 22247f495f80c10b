"""CORS for browser clients (docs/api-notes.md "Browsers and CORS"): off unless SPOOLED_CORS_ORIGINS lists
origins. For a listed origin, a preflight (`OPTIONS` with `Access-Control-Request-Method`) on an existing
route is answered 204 with the route's methods and the request headers the API reads, and every response
carries `Access-Control-Allow-Origin` and exposes the API's headers (rate limits, pagination, request id).
Any other origin gets no CORS headers at all, so browsers keep it out. Credentials travel as bearer tokens,
never cookies, so `Access-Control-Allow-Credentials` is never sent."""

from __future__ import annotations

from quart import Response, request

ALLOW_HEADERS = "Authorization, Content-Type, X-Api-Key, X-Request-Id, Idempotency-Key"
EXPOSE_HEADERS = ("X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, X-RateLimit-Scope, "
                  "X-Has-More, X-Next-Cursor, Link, Retry-After")
MAX_AGE_SECS = "600"


def install(app, origins: tuple[str, ...]) -> None:
    """Answer preflights and stamp responses for `origins` (exact `scheme://host[:port]`, or `*` for any)."""
    if not origins:
        return
    any_origin = "*" in origins
    allowed = frozenset(o for o in origins if o != "*")

    def allow(origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for this request's Origin, or None."""
        if not origin:
            return None
        if origin in allowed:
            return origin
        return "*" if any_origin else None

    @app.before_request
    async def _preflight():
        wanted = request.headers.get("Access-Control-Request-Method")
        if request.method != "OPTIONS" or not wanted or request.url_rule is None:
            return None
        value = allow(request.headers.get("Origin"))
        from quart.globals import request_ctx
        methods = set(request_ctx.url_adapter.allowed_methods())     # every rule of this path
        if value is None or wanted.upper() not in methods:
            return None               # the plain OPTIONS answer, without CORS headers: the browser refuses
        response = Response(b"", status=204)
        del response.headers["Content-Type"]
        response.headers.update({
            "Access-Control-Allow-Origin": value,
            "Access-Control-Allow-Methods": ", ".join(sorted(methods - {"HEAD", "OPTIONS"})),
            "Access-Control-Allow-Headers": ALLOW_HEADERS, "Access-Control-Max-Age": MAX_AGE_SECS})
        return response

    @app.after_request
    async def _stamp(response: Response) -> Response:
        value = allow(request.headers.get("Origin"))
        preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        if value is not None and not preflight:     # (a preflight answered above has its headers already)
            response.headers["Access-Control-Allow-Origin"] = value
            response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        if allowed:
            response.vary.add("Origin")    # the answer depends on the Origin: caches must keep them apart
        return response
