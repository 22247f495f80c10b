"""The one error table of the REST transport: domain error -> (status, error, code)."""

from __future__ import annotations

from http import HTTPStatus

from spooled.domain import errors

TABLE: list[tuple[type[errors.DomainError], int, str, str]] = [
    (errors.BadRequest, 400, "bad_request", "BAD_REQUEST"),
    (errors.Unauthorized, 401, "unauthorized", "UNAUTHORIZED"),
    (errors.Forbidden, 403, "forbidden", "FORBIDDEN"),
    (errors.NotFound, 404, "not_found", "NOT_FOUND"),
    (errors.LeaseExpired, 409, "lease_expired", "LEASE_EXPIRED"),   # before its base class Conflict
    (errors.Conflict, 409, "conflict", "CONFLICT"),
    (errors.PayloadTooLarge, 413, "payload_too_large", "PAYLOAD_TOO_LARGE"),
    (errors.ValidationFailed, 422, "validation_error", "VALIDATION_ERROR"),
    (errors.QuotaExceeded, 429, "quota_exceeded", "QUOTA_EXCEEDED"),
    (errors.RateLimited, 429, "rate_limited", "RATE_LIMIT_EXCEEDED"),
    (errors.Unavailable, 503, "unavailable", "SERVICE_UNAVAILABLE"),
]

# the generic body per status (the last row wins: a bare 409 is `conflict`)
BY_STATUS = {status: (error, code) for _, status, error, code in TABLE}
BY_STATUS[405] = ("method_not_allowed", "METHOD_NOT_ALLOWED")
BY_STATUS[500] = ("internal_error", "INTERNAL_ERROR")


def error_body(status: int, message: str, details: dict | None = None, error_code: tuple[str, str] | None = None
               ) -> dict:
    error, code = error_code or BY_STATUS.get(status) or _generic(status)
    body = {"error": error, "code": code, "message": message, "status": status}
    if details is not None:
        body["details"] = details
    return body


def _generic(status: int) -> tuple[str, str]:
    """`request_header_fields_too_large`-style names for statuses the table does not name."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    name = "".join(c if c.isalnum() else "_" for c in phrase.lower()).strip("_")
    return name, name.upper()


def for_exception(exc: errors.DomainError) -> tuple[int, dict, dict[str, str]]:
    """(status, body, headers). A rate limit carries `Retry-After`; a quota does not, and its body also has
    the SDK's top-level `resource, current, limit, plan, upgrade_to`."""
    for kind, status, error, code in TABLE:
        if isinstance(exc, kind):
            body = error_body(status, exc.message, exc.details, (error, code))
            if isinstance(exc, errors.QuotaExceeded):
                body.update(exc.details or {})
            if isinstance(exc, errors.RateLimited):
                return status, body, {"Retry-After": str(exc.retry_after)}
            return status, body, {}
    return 500, error_body(500, "Internal server error"), {}
