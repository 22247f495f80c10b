"""The one error table of the gRPC transport: domain error -> grpc status (grpc.md "Status mapping").

Unary calls end with the status (`GRPCError`); on ProcessJobs the same mapping fills an `ErrorResponse`
(`code` = the status name) and the stream stays open.

Decisions:
- `PayloadTooLarge` -> INVALID_ARGUMENT: resending the same payload can never succeed, and clients treat
  RESOURCE_EXHAUSTED as retryable (grpc.md keeps RESOURCE_EXHAUSTED for rate limits, with `retry-after`
  trailing metadata (calls.py: `rate_limited`), and plan quotas, whose message contains "limit reached").
- `LeaseExpired` -> FAILED_PRECONDITION with a fixed message containing "lease expired" (the contract's wording).
- Anything else is a bug: logged with its traceback, INTERNAL without internals.
"""

from __future__ import annotations

import logging

from grpclib.const import Status
from grpclib.exceptions import GRPCError

from spooled.domain import errors
from spooled.transports.grpc.gen import spooled_pb2 as pb

log = logging.getLogger(__name__)

LEASE_EXPIRED = errors.LeaseExpired.MESSAGE

TABLE: list[tuple[type[errors.DomainError], Status]] = [
    (errors.Unauthorized, Status.UNAUTHENTICATED),
    (errors.Forbidden, Status.PERMISSION_DENIED),
    (errors.NotFound, Status.NOT_FOUND),
    (errors.LeaseExpired, Status.FAILED_PRECONDITION),      # before its base class Conflict
    (errors.Conflict, Status.FAILED_PRECONDITION),
    (errors.PayloadTooLarge, Status.INVALID_ARGUMENT),
    (errors.ValidationFailed, Status.INVALID_ARGUMENT),
    (errors.BadRequest, Status.INVALID_ARGUMENT),
    (errors.Unavailable, Status.UNAVAILABLE),
    (errors.QuotaExceeded, Status.RESOURCE_EXHAUSTED),
    (errors.RateLimited, Status.RESOURCE_EXHAUSTED),
]


def status_of(exc: BaseException) -> tuple[Status, str]:
    """(status, message) for an exception raised by a service call."""
    if isinstance(exc, GRPCError):
        return exc.status, exc.message or ""
    for kind, status in TABLE:
        if isinstance(exc, kind):
            return status, LEASE_EXPIRED if kind is errors.LeaseExpired else exc.message  # type: ignore[attr-defined]
    log.error("unhandled error in a gRPC call", exc_info=exc)
    return Status.INTERNAL, "Internal server error"


def grpc_error(exc: BaseException) -> GRPCError:
    """The `GRPCError` ending a call that raised `exc`."""
    status, message = status_of(exc)
    return GRPCError(status, message)


def error_response(exc: BaseException) -> pb.ProcessResponse:
    """A ProcessJobs `error` response for `exc` (the stream stays open)."""
    status, message = status_of(exc)
    return pb.ProcessResponse(error=pb.ErrorResponse(code=status.name, message=message))
