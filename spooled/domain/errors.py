"""Domain errors. They carry no HTTP or gRPC codes: each transport maps them once (its error table)."""

from __future__ import annotations


class DomainError(Exception):
    """Base class; `message` is safe to show to the client."""

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(DomainError):
    """Malformed request (not JSON, wrong content)."""


class Unauthorized(DomainError):
    """Missing, invalid, revoked or expired credentials."""


class Forbidden(DomainError):
    """Valid credentials, not allowed."""


class NotFound(DomainError):
    """Unknown resource (or another organization's: never leak existence)."""


class Conflict(DomainError):
    """The resource's state does not allow the operation."""


class LeaseExpired(Conflict):
    """The lease given is not the job's current unexpired lease."""

    # The official SDKs recognise a lost lease by this wording ("lease expired", or "does not match the job's
    # current lease"), on gRPC where there is no LEASE_EXPIRED code: keep it.
    MESSAGE = "lease expired: lease_id does not match the job's current lease"

    def __init__(self, message: str = MESSAGE, details: dict | None = None):
        super().__init__(message, details)


class PayloadTooLarge(DomainError):
    """A body or payload over the configured limit."""


class ValidationFailed(DomainError):
    """Well-formed but invalid input; `details` names the fields."""

    def __init__(self, message: str, fields: dict[str, str]):
        first = next(iter(fields), None)
        super().__init__(message, {"field": first, "fields": fields} if first else None)
        self.fields = fields


class Unavailable(DomainError):
    """Database unreachable, server shutting down, or a needed service (Stripe) not configured."""


class RateLimited(DomainError):
    """Too many requests: the caller's token bucket is empty; `retry_after` whole seconds (>= 1)."""

    def __init__(self, retry_after: int, message: str = "Rate limit exceeded"):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class QuotaExceeded(DomainError):
    """A plan limit (jobs per day, active jobs, queues, workers...). The message contains "limit reached"
    (gRPC clients tell a quota from a rate limit by it); nothing was created."""

    def __init__(self, resource: str, current: int, limit: int, plan: str, upgrade_to: str | None):
        message = f"{resource.replace('_', ' ')} limit reached ({current}/{limit})"
        if upgrade_to:
            message += f". Upgrade to {upgrade_to} for higher limits."
        super().__init__(message, {"resource": resource, "current": current, "limit": limit, "plan": plan,
                                   "upgrade_to": upgrade_to})
        self.resource = resource


class FieldError(ValueError):
    """Raised by an input model's validator: `field` is the attribute, the message says what is wrong
    (`convert.structure` collects these into one `ValidationFailed` naming every field)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def invalid(field: str, message: str) -> ValidationFailed:
    """One invalid field."""
    return ValidationFailed(f"{field}: {message}", {field: message})
