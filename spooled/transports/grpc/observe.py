"""Every gRPC call timed and counted in /metrics by method and status code, and (with the access log on) one
`spooled.access` line per call with its organization.

Each method's handler is wrapped once, when the server is built (`measured`: the servables grpclib is given
hold the wrapped handlers); a status the handler sends itself (a rate limit's RESOURCE_EXHAUSTED, calls.py) is
noted with `note_status`. The call's record is a context variable of its asyncio task (the Trio side of the call
runs in a copy of that context, so it reaches the same record). No grpclib event listener at all: grpclib builds
an event object (and awaits each listener) for every dispatched event of every call, and with none attached its
dispatch is a no-op.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time

from typing import Iterable

from grpclib.const import Handler
from grpclib.exceptions import GRPCError

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


class _Measured:
    """A servable (grpclib calls `__mapping__`) with another's methods, each timed and counted."""

    def __init__(self, mapping: dict[str, Handler]) -> None:
        self._mapping = mapping

    def __mapping__(self) -> dict[str, Handler]:
        return self._mapping


def measured(servables: Iterable, metrics: Metrics, *, access_log: bool) -> list[_Measured]:
    """`servables` (what grpclib's Server takes) with every method's handler timed, counted by method and status,
    and (with `access_log`) logged."""
    access = logging.getLogger("spooled.access")

    def wrap(method: str, handler):
        async def measured_call(stream) -> None:
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
        return measured_call

    return [_Measured({method: h._replace(func=wrap(method, h.func)) for method, h in s.__mapping__().items()})
            for s in servables]
