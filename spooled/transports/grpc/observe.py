"""Every gRPC call timed and counted in /metrics by method and status code, and (with the access log on) one
`spooled.access` line per call with its organization.

Hooked into grpclib's server events: `RecvRequest` wraps the method's handler (its event lets the handler be
replaced); a status the handler sends itself (a rate limit's RESOURCE_EXHAUSTED, calls.py) is noted with
`note_status`. The call's record is a context variable of its asyncio task (the Trio side of the call runs in a
copy of that context, so it reaches the same record). No listener on the trailers: grpclib builds an event
object for every dispatched event of every call.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time

from grpclib.events import RecvRequest, listen
from grpclib.exceptions import GRPCError
from grpclib.server import Server

from spooled.services import logs
from spooled.services.metrics import Metrics

_call: contextvars.ContextVar[dict | None] = contextvars.ContextVar("spooled_grpc_call", default=None)


def note_org(org: str) -> None:
    """The call's caller was admitted as `org` (for the access line and the call's other log lines)."""
    logs.org.set(org)
    cell = _call.get()
    if cell is not None:
        cell["org"] = org


def note_status(status: str) -> None:
    """The handler ended the call itself with `status` (trailers sent, no exception raised)."""
    cell = _call.get()
    if cell is not None:
        cell["status"] = status


def instrument(server: Server, metrics: Metrics, *, access_log: bool) -> None:
    access = logging.getLogger("spooled.access")

    async def on_request(event: RecvRequest) -> None:
        handler, method = event.method_func, event.method_name

        async def measured(stream) -> None:
            cell = {"status": None, "org": None}
            _call.set(cell)
            t0 = time.perf_counter()
            status = "OK"
            try:
                await handler(stream)
            except GRPCError as exc:
                status = exc.status.name
                raise
            except asyncio.CancelledError:
                status = "CANCELLED"
                raise
            except Exception:
                status = "UNKNOWN"
                raise
            finally:
                if status == "OK" and cell["status"] is not None:
                    status = cell["status"]
                secs = time.perf_counter() - t0
                metrics.grpc(method, status, secs)
                if access_log and access.isEnabledFor(logging.INFO):
                    ms = round(secs * 1000, 2)
                    access.info("gRPC %s %s %.2fms", method, status, ms,
                                extra={"org": cell["org"], "method": method, "status": status,
                                       "duration_ms": ms, "transport": "grpc"})
        event.method_func = measured

    listen(server, RecvRequest, on_request)
