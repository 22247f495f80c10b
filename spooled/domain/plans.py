"""Plans and their limits: one table in code (api.md "Billing"), overridable per tier by the operator
(`SPOOLED_PLAN_LIMITS`) and per organization (`custom_limits`, set through the admin API).

A `None` count limit means unlimited. The figures follow the product's plans, except that the self-hosted
enterprise plan allows 10,000 requests/second (the product's 500 would throttle a single busy tenant of a
self-hosted server; operators lower it with SPOOLED_PLAN_LIMITS).
"""

from __future__ import annotations

import typing

import attrs

from spooled.domain.errors import ValidationFailed

TIERS = ("free", "starter", "pro", "enterprise")
UPGRADE = {"free": "starter", "starter": "pro", "pro": "enterprise"}

# count limits that may be None (unlimited), and always-set numbers
OPTIONAL = ("max_jobs_per_day", "max_active_jobs", "max_queues", "max_workers", "max_api_keys", "max_schedules",
            "max_workflows", "max_webhooks")
REQUIRED = ("max_payload_size_bytes", "rate_limit_requests_per_second", "rate_limit_burst", "job_retention_days",
            "history_retention_days")

# resource name (Quotas.check, usage reports) -> the limit that bounds it
RESOURCE_LIMIT = {"jobs_today": "max_jobs_per_day", "active_jobs": "max_active_jobs", "queues": "max_queues",
                  "workers": "max_workers", "api_keys": "max_api_keys", "schedules": "max_schedules",
                  "workflows": "max_workflows", "webhooks": "max_webhooks"}


@attrs.frozen(slots=True)
class Limits:
    tier: str
    display_name: str
    max_jobs_per_day: int | None
    max_active_jobs: int | None
    max_queues: int | None
    max_workers: int | None
    max_api_keys: int | None
    max_schedules: int | None
    max_workflows: int | None
    max_webhooks: int | None
    max_payload_size_bytes: int
    rate_limit_requests_per_second: int
    rate_limit_burst: int          # = requests per second: the bucket's capacity equals its refill rate (api.md)
    job_retention_days: int
    history_retention_days: int

    def limit_of(self, resource: str) -> int | None:
        return getattr(self, RESOURCE_LIMIT[resource])

    @property
    def upgrade_to(self) -> str | None:
        return UPGRADE.get(self.tier)

    def as_dict(self) -> dict:
        return attrs.asdict(self)


KB = 1024
PLANS: dict[str, Limits] = {
    "free": Limits("free", "Free", 1_000, 10, 2, 1, 2, 1, 0, 1, 64 * KB, 5, 5, 3, 1),
    "starter": Limits("starter", "Starter", 10_000, 500, 10, 5, 5, 10, 5, 5, 256 * KB, 25, 25, 14, 7),
    "pro": Limits("pro", "Pro", 100_000, 5_000, 50, 25, 25, 50, 25, 20, 1024 * KB, 100, 100, 30, 30),
    "enterprise": Limits("enterprise", "Enterprise", None, None, None, None, None, None, None, None, 5 * 1024 * KB,
                         10_000, 10_000, 90, 90),
}


# what `check_overrides` accepts, as JSON Schema (the OpenAPI document shows it for `custom_limits`)
OVERRIDES_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {**{name: {"type": ["integer", "null"], "minimum": 0} for name in OPTIONAL},
                   **{name: {"type": "integer", "minimum": 1} for name in REQUIRED}},
}


def check_overrides(value: object, where: str) -> dict:
    """A JSON object of limit overrides (`custom_limits`, or one tier of SPOOLED_PLAN_LIMITS), validated:
    known names only; counts are integers >= 0 or null (unlimited); the other numbers integers >= 1."""
    if not isinstance(value, dict):
        raise ValidationFailed(f"{where} must be a JSON object", {where: "must be a JSON object"})
    bad: dict[str, str] = {}
    for name, v in value.items():
        field = f"{where}.{name}"
        if type(v) is float and v.is_integer():      # JSON Schema's integer: 5.0 is 5 (`whole_numbers` stores 5)
            v = int(v)
        if name in OPTIONAL:
            if v is not None and (type(v) is not int or v < 0):
                bad[field] = "must be an integer >= 0, or null for unlimited"
        elif name in REQUIRED:
            if type(v) is not int or v < 1:
                bad[field] = "must be an integer >= 1"
        else:
            bad[field] = "is not a known limit"
    if bad:
        first = next(iter(bad))
        raise ValidationFailed(f"{first} {bad[first]}", bad)
    return value


def whole_numbers(value):
    """A limits object with integral numbers as integers (5.0 -> 5), as `check_overrides` reads them."""
    if not isinstance(value, dict):
        return value
    return {k: int(v) if type(v) is float and v.is_integer() else v for k, v in value.items()}


def resolve(tier: str, custom: typing.Mapping | None = None,
            operator: typing.Mapping[str, typing.Mapping] | None = None) -> Limits:
    """The limits of an organization on `tier`: the plan, then the operator's overrides for that tier, then the
    organization's own `custom_limits`. The burst always equals the requests/second (api.md: the bucket's
    capacity equals its refill rate), so a burst override is ignored."""
    base = PLANS.get(tier, PLANS["free"])
    changes: dict = {}
    for layer in ((operator or {}).get(base.tier), custom):
        if layer:
            changes.update({k: v for k, v in layer.items() if k in OPTIONAL or k in REQUIRED})
    if not changes:
        return base
    changes["rate_limit_burst"] = changes.get("rate_limit_requests_per_second", base.rate_limit_requests_per_second)
    return attrs.evolve(base, **changes)


@attrs.frozen
class RetentionWindows:
    """Each plan's retention in days, operator overrides applied (an organization's `custom_limits` override its
    plan's in the statements): `tiers[i]` keeps finished jobs `job_days[i]` days and history (schedule runs,
    webhook deliveries) `history_days[i]` days; dead letters the greater of its job days and `deadletter_days`."""
    tiers: tuple[str, ...]
    job_days: tuple[int, ...]
    history_days: tuple[int, ...]
    deadletter_days: int


def retention_windows(operator: typing.Mapping[str, typing.Mapping] | None, deadletter_days: int
                      ) -> RetentionWindows:
    plans = [resolve(tier, None, operator) for tier in TIERS]
    return RetentionWindows(TIERS, tuple(p.job_retention_days for p in plans),
                            tuple(p.history_retention_days for p in plans), deadletter_days)
