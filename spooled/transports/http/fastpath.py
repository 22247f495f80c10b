"""The HTTP/1.1 fast path: our own connection handler for the hot job routes, hypercorn for everything else.

hypercorn + h11 cost ~40 % of the server's CPU on a worker's claim 1 / complete 1 (h11's event parser, an
HTTPStream, a task and an idle timer per request, two socket writes per response). A worker's and a producer's
requests are simple: `POST /api/v1/jobs…` with a Content-Length JSON body. `FastPath.run` reads such a request
off the connection itself, serves it through `hot.serve` (the same envelope the lane and the app use: admission,
body limit, error table, request id, rate-limit headers, logs), counts it (`observe`: /metrics, access log), and
writes head and body in one send; the connection stays open for the next request.

Anything it does not take exactly — a first line that is not `POST /api/v1/jobs… HTTP/1.1` with a plain path
(no query, no percent-escape), another route, a header line h11 might read otherwise (obs-fold, bare LF, odd
bytes), `Transfer-Encoding`, `Expect`, `Upgrade`, a `Connection` option other than close/keep-alive, a missing or
repeated `Host`, a repeated or non-numeric `Content-Length`, a head over `HEAD_LIMIT`, HTTP/1.0, HTTP/2's preface
— ends the fast path for the rest of the connection: `run` returns a `Replay` stream that yields the bytes already
read first, and `GuardedTCPServer` runs hypercorn on it (so hypercorn answers, 400s and 431s included, or serves
the route, the WebSocket, the SSE stream). It hands over as soon as the first bytes cannot start a hot request,
so a non-hot connection pays one extra `receive_some` wrapper and no parsing.

The edge's guarantees hold here as they do under hypercorn (connections.py, edge.py): the head has
`header_timeout_secs` from the connection opening or from the first byte of a later request (then a JSON 408 and
close); an idle keep-alive connection closes after `keep_alive_secs`; the body has `BODY_TIMEOUT` once the route
reads it (408, close); an answer given before the body came (401, 413 within twice the limit) first drains the
body, at most until the body timeout, so the connection serves the next request; sends are bounded per chunk by
the body timeout; a claim is cancelled when its client leaves. Shutdown: `Connections.stop()` closes every
connection waiting for a request at once (one answering finishes its answer, then closes).
"""

from __future__ import annotations

import math
import re
import time
from http import HTTPStatus
from functools import partial
from typing import Callable

import trio

from spooled.domain import errors
from spooled.services.container import Services
from spooled.transports.http import hot
from spooled.transports.http.connections import TIMEOUT_RESPONSE, Connections, send_bounded
from spooled.transports.http.edge import NO_RESPONSE, SCOPE_KEY, Observer

HEAD_LIMIT = 64 * 1024          # as hypercorn's h11_max_incomplete_size: past it, hypercorn answers
MAX_RECV = 64 * 1024
_START = b"POST /api/v1/jobs"
_END = re.compile(rb"\n\r?\n")  # where h11 ends a head (it also takes bare LFs: those go to hypercorn)
# the request line and header lines: RFC 9110 tokens for names; a value of visible characters, spaces and tabs
# (leading and trailing ones are the optional whitespace around it); no obs-fold, no bare CR or LF
_HEAD = re.compile(rb"POST (/api/v1/jobs[A-Za-z0-9._~/-]{0,1024}) HTTP/1\.1"
                   rb"((?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]+:[ \t\x21-\x7e\x80-\xff]*)*)\Z")
_LENGTH = re.compile(rb"[0-9]{1,18}\Z")
_HAND_OVER = frozenset((b"transfer-encoding", b"expect", b"upgrade", b"http2-settings"))
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


class Replay:
    """A trio stream that yields `buffered` first, then reads `stream` (hypercorn's TCPServer reads it)."""

    def __init__(self, stream: trio.SocketStream, buffered: bytes):
        self.stream = stream
        self.socket = stream.socket
        self._buffered = buffered

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._buffered:
            data, self._buffered = self._buffered, b""
            await trio.lowlevel.checkpoint()
            return data
        return await self.stream.receive_some(max_bytes)

    async def send_all(self, data) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()


class _Gone(Exception):
    """The client closed its end (or the connection broke) while a request was being read."""


class _Left(BaseException):
    """The client left while its body was read: the request ends unanswered (a BaseException, so it passes
    `hot.serve`'s error handling as a cancellation would)."""


class FastPath:
    """The fast path of one REST server (its limits and its services); `run` serves one connection."""

    def __init__(self, svc: Services, *, observe: Observer | None, max_body: int, body_timeout: float,
                 drain_bytes: int, keep_alive: float, response_headers: Callable[[], list[tuple[bytes, bytes]]]):
        self.svc = svc
        self.observe = observe
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.drain_bytes = drain_bytes
        self.keep_alive = keep_alive
        self.response_headers = response_headers
        self._stamp_second = -1
        self._stamp = b""

    def _server_headers(self) -> bytes:
        """`date` and `server`, as hypercorn adds them (formatted once a second)."""
        second = int(time.time())
        if second != self._stamp_second:
            self._stamp = b"".join(k + b": " + v + b"\r\n" for k, v in self.response_headers())
            self._stamp_second = second
        return self._stamp

    async def run(self, stream: trio.SocketStream, guard: Connections, head_deadline: float) -> \
            tuple[Replay, float] | None:
        """Serve hot requests off `stream` until it closes (None) or a request is not ours: then (a `Replay` of
        the stream, the deadline of the pending head) for hypercorn."""
        stall = guard.limits.body_timeout_secs
        buf = bytearray()
        idle_deadline = trio.current_time() + self.keep_alive
        while True:
            # -- the head ---------------------------------------------------------------------------------------
            while True:
                n = min(len(buf), len(_START))
                if buf[:n] != _START[:n]:
                    return Replay(stream, bytes(buf)), head_deadline
                if n == len(_START):
                    m = _END.search(buf)
                    if m is not None:
                        if m.end() - m.start() != 3 or buf[m.start() - 1] != 13 or m.end() > HEAD_LIMIT:
                            return Replay(stream, bytes(buf)), head_deadline     # not "\r\n\r\n", or too long
                        break
                    if len(buf) > HEAD_LIMIT:
                        return Replay(stream, bytes(buf)), head_deadline
                if guard.stopping:
                    return None
                cause = None
                with trio.move_on_at(min(head_deadline, idle_deadline)) as waiting:
                    guard.waiting.add(waiting)
                    try:
                        data = await stream.receive_some(MAX_RECV)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return None
                    finally:
                        guard.waiting.discard(waiting)
                if waiting.cancelled_caught:
                    if guard.stopping:
                        return None
                    cause = "head" if head_deadline <= idle_deadline else "idle"
                if cause == "head":
                    await send_bounded(stream, TIMEOUT_RESPONSE, stall)
                    return None
                if cause == "idle" or not data:
                    return None
                if not buf:
                    head_deadline = min(head_deadline, trio.current_time() + guard.limits.header_timeout_secs)
                buf += data
            head_end = m.end()
            parsed = _parse(bytes(buf[:head_end - 4]))
            if parsed is None:
                return Replay(stream, bytes(buf)), head_deadline
            path, route, job_id, fields, close = parsed
            length = fields.get(b"content-length")
            declared = int(length) if length is not None else 0
            # -- the request ------------------------------------------------------------------------------------
            t0 = time.perf_counter()
            drain_by = trio.current_time() + self.body_timeout
            body_end = head_end + declared

            async def receive_to(end: int, deadline: float) -> bool:
                """Read until `buf` holds `end` bytes: False if the deadline came first; _Gone if the client
                left."""
                with trio.move_on_at(deadline):
                    while len(buf) < end:
                        try:
                            data = await stream.receive_some(MAX_RECV)
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            data = b""
                        if not data:
                            raise _Gone()
                        buf.extend(data)
                return len(buf) >= end

            async def read_body() -> bytes:
                if declared > self.max_body:
                    raise errors.PayloadTooLarge(hot.TOO_LARGE)
                if len(buf) < body_end:
                    try:
                        if not await receive_to(body_end, trio.current_time() + self.body_timeout):
                            raise hot.BodyTimeout()
                    except _Gone:
                        raise _Left() from None
                if nursery is not None:
                    nursery.start_soon(self._watch, stream, buf, body_end, nursery.cancel_scope, watching)
                return bytes(buf[head_end:body_end])

            async def answer(served: hot.Served) -> bool:
                """Write `served`; whether to read the next request."""
                scope = {"method": "POST", "path": path}
                scope[SCOPE_KEY] = (route.template, served.request_id, served.org)
                complete, gone, shut = len(buf) >= body_end, False, close
                if not complete and declared <= self.drain_bytes:
                    try:
                        complete = await receive_to(body_end, drain_by)     # an early answer: drain the body first
                    except _Gone:
                        gone = True
                shut = shut or not complete or guard.stopping
                head = [b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                        % (served.status, _REASONS.get(served.status, b""), len(served.body))]
                for name, value in served.headers:
                    if name == "Connection":
                        shut = True
                        continue
                    head.append(b"%s: %s\r\n" % (name.lower().encode("latin1"), value.encode("latin1")))
                head.append(self._server_headers())
                if shut:
                    head.append(b"connection: close\r\n")
                head.append(b"\r\n")
                head.append(served.body)
                if self.observe is not None:
                    self.observe(scope, served.status, time.perf_counter() - t0, len(served.body))
                guard.fast_requests += 1
                return not (gone or not await send_bounded(stream, b"".join(head), stall, shield=False) or shut)

            h = fields.get
            req = hot.HotRequest(job_id, _text(h(b"traceparent")), _text(h(b"tracestate")))
            served = nursery = None
            go_on = False
            serve = partial(hot.serve, self.svc, route, read_body, req, method="POST", path=path,
                            authorization=_text(h(b"authorization")), given_request_id=_text(h(b"x-request-id")))
            try:
                if route.run is hot.claim and _may_wait(buf, head_end, body_end):
                    # a long poll: one task watches the connection meanwhile and cancels it if the client leaves.
                    # The answer is written before the nursery ends (only the watcher cancelled): waiting for the
                    # watcher to finish first is a scheduler pass, in which whatever else is runnable (the wake
                    # this claim passes on, the enqueue that handed it its job) ran ahead of the worker's answer
                    watching = trio.CancelScope()
                    async with trio.open_nursery() as nursery:
                        served = await serve()
                        watching.cancel()
                        go_on = await answer(served)
                else:
                    served = await serve()
                    go_on = await answer(served)
            except* _Left:
                pass
            if served is None:                  # the client left: nothing to answer
                if self.observe is not None:
                    self.observe({"method": "POST", "path": path}, NO_RESPONSE, time.perf_counter() - t0, 0)
                return None
            if not go_on:
                return None
            del buf[:body_end]
            head_deadline = math.inf if not buf else trio.current_time() + guard.limits.header_timeout_secs
            idle_deadline = trio.current_time() + self.keep_alive

    @staticmethod
    async def _watch(stream: trio.SocketStream, buf: bytearray, body_end: int, request: trio.CancelScope,
                     watching: trio.CancelScope) -> None:
        """While a claim waits (until `watching` is cancelled): cancel it when the client leaves (bytes of a next
        request are kept, up to a head's worth)."""
        with watching:
            while len(buf) - body_end <= HEAD_LIMIT:
                try:
                    data = await stream.receive_some(MAX_RECV)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:
                    request.cancel()
                    return
                buf.extend(data)


def _may_wait(buf: bytearray, start: int, end: int) -> bool:
    """Whether a claim's body may ask to wait (`wait_secs`, possibly spelled with escapes), or is still to come."""
    return len(buf) < end or buf.find(b"wait_secs", start, end) >= 0 or buf.find(b"\\", start, end) >= 0


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin1")


def _parse(head: bytes) -> tuple[str, hot.HotRoute, str | None, dict[bytes, bytes], bool] | None:
    """(path, route, job id, the first of each header by lower-case name, Connection: close) of a head (request
    line and header lines, without the blank line) the fast path serves exactly as hypercorn + the app would;
    None for anything else."""
    m = _HEAD.match(head)
    if m is None:
        return None
    path = m[1].decode("ascii")
    hit = hot.match("POST", path)
    if hit is None:
        return None
    fields: dict[bytes, bytes] = {}
    hosts = lengths = 0
    close = False
    for line in m[2].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.lower()
        value = value.strip(b" \t")
        if name in _HAND_OVER:
            return None
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            lengths += 1
            if _LENGTH.match(value) is None:
                return None
        elif name == b"connection":
            for option in value.lower().split(b","):
                option = option.strip(b" \t")
                if option == b"close":
                    close = True
                elif option != b"keep-alive":
                    return None
        if name not in fields:
            fields[name] = value
    if hosts != 1 or lengths > 1:
        return None
    return path, hit[0], hit[1], fields, close
