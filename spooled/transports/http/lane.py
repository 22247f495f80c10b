"""The fast lane: an ASGI layer in front of the quart app that serves the hot job routes itself.

A worker's and a producer's requests (`POST /api/v1/jobs`, `/jobs/bulk`, `/jobs/claim`, `/jobs/complete`,
`/jobs/{id}/complete|fail|heartbeat`) are most of the traffic, and quart's per-request machinery (request and app
contexts, werkzeug routing and headers, before/after hooks, the Response object) costs more CPU than the route
itself. The lane matches those paths with a string split (`hot.match`) and runs `hot.serve`: the same admission,
route function, error table and response headers as the app (`routes_jobs.py` calls the same functions), with the
same JSON bodies, in the same order (admission before the body is read: a bad key is a 401 at once). `EdgeApp`
wraps the lane, so the drain guard, /metrics and the access log see every request alike (the lane puts the route
template, request id and organization in the scope as `_stamp` does).

Requests the lane does not take go to the app unchanged: other methods and paths, a query string or a NUL in the
path (the app's 422), an `Expect` header. As quart-trio does, one task reads the body and then watches the
connection: when the client leaves, the request is cancelled (a long-poll claim stops waiting and claims
nothing); a body over `max_request_bytes` (declared or streamed) is the app's 413, one that does not arrive within
`BODY_TIMEOUT` its 408 (`Connection: close`); the response is sent under `RESPONSE_TIMEOUT` (none: long polls
end themselves). With CORS origins configured there is no lane (`around`): every request goes to the app.
"""

from __future__ import annotations

import math
import re
from typing import Any

import trio

from spooled.domain import errors
from spooled.services.container import Services
from spooled.transports.http import hot
from spooled.transports.http.edge import SCOPE_KEY

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")   # as app.py: a path holding these is the app's 422
_WANTED = {b"authorization": "authorization", b"x-request-id": "request_id", b"traceparent": "traceparent",
           b"tracestate": "tracestate", b"content-length": "content_length", b"expect": "expect"}
_CONTENT_TYPE = (b"content-type", b"application/json")


class HotLane:
    def __init__(self, app: Any, svc: Services, *, max_body: int, body_timeout: float,
                 response_timeout: float | None):
        self.app = app
        self.svc = svc
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.response_timeout = math.inf if response_timeout is None else response_timeout

    @classmethod
    def around(cls, app: Any, svc: Services) -> Any:
        """The lane in front of the quart `app`, with its body limit and timeouts; just the app when CORS is on
        (cors.py stamps every response by the request's Origin: the app keeps that in one place)."""
        if svc.settings.cors_origins:
            return app
        return cls(app, svc, max_body=app.config["MAX_CONTENT_LENGTH"], body_timeout=app.config["BODY_TIMEOUT"],
                   response_timeout=app.config["RESPONSE_TIMEOUT"])

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "http" and not scope.get("query_string") and not scope.get("root_path"):
            hit = hot.match(scope["method"], scope["path"])
            if hit is not None and not _BAD_TEXT.search(scope["path"]):
                h: dict[str, str] = {}
                for name, value in scope["headers"]:
                    field = _WANTED.get(name.lower())
                    if field is not None and field not in h:   # the first of repeated headers, as werkzeug's `get`
                        h[field] = value.decode("latin1")
                declared = h.get("content_length")
                if "expect" not in h and (declared is None or declared.isdigit()):
                    await self._serve(hit[0], hit[1], h, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(self, route: hot.HotRoute, job_id: str | None, h: dict[str, str], scope: dict, receive,
                     send) -> None:
        declared = h.get("content_length")
        body = _Body(self.max_body, self.body_timeout, declared is not None and int(declared) > self.max_body)
        req = hot.HotRequest(job_id, h.get("traceparent"), h.get("tracestate"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(body.pump, receive, nursery.cancel_scope)
            served = await hot.serve(self.svc, route, body.read, req, method=scope["method"], path=scope["path"],
                                     authorization=h.get("authorization"), given_request_id=h.get("request_id"))
            scope[SCOPE_KEY] = (route.template, served.request_id, served.org)
            headers = [_CONTENT_TYPE, (b"content-length", str(len(served.body)).encode()),
                       *((k.lower().encode("latin1"), v.encode("latin1")) for k, v in served.headers)]
            with trio.move_on_after(self.response_timeout):
                await send({"type": "http.response.start", "status": served.status, "headers": headers})
                await send({"type": "http.response.body", "body": served.body, "more_body": False})
            nursery.cancel_scope.cancel()


class _Body:
    """The request body, read by `pump` (which then watches for the client leaving, as quart-trio's
    `handle_messages`), awaited by `read`."""

    def __init__(self, max_body: int, timeout: float, too_large: bool):
        self.max_body = max_body
        self.timeout = timeout
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_large = too_large
        self.done = trio.Event()
        if too_large:
            self.done.set()

    async def pump(self, receive, scope: trio.CancelScope) -> None:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "http.disconnect":
                scope.cancel()
                return
            if kind == "http.request" and not self.done.is_set():
                chunk = message.get("body", b"")
                self.chunks.append(chunk)
                self.size += len(chunk)
                if self.size > self.max_body:
                    self.too_large = True
                    self.done.set()
                elif not message.get("more_body", False):
                    self.done.set()

    async def read(self) -> bytes:
        with trio.move_on_after(self.timeout):
            await self.done.wait()
        if not self.done.is_set():
            raise hot.BodyTimeout()
        if self.too_large:
            raise errors.PayloadTooLarge(hot.TOO_LARGE)
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
