"""What the store hands up: frozen attrs models, one per stored thing. No I/O, no driver types.

Conventions (docs/architecture.md "Layers"):
- a model's field names are the column names its statements return, so `convert.from_row(Model, record)` builds
  it without a mapping table (statements alias columns where they differ);
- user JSON (payload, result, tags, settings, metadata) stays the stored text, typed `RawJson`: transports send
  it out verbatim (orjson.Fragment), so key order, case and big integers survive the round trip;
- ids are `uuid.UUID` (workers: the client's text id), times aware UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
import typing
import uuid

import attrs

RawJson = typing.NewType("RawJson", str)      # JSON text exactly as stored


@attrs.frozen(slots=True)
class Queue:
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    max_retries: int
    default_timeout: int
    rate_limit: int | None
    concurrency_limit: int | None
    dead_letter: bool
    backoff_base_secs: float
    backoff_max_secs: float
    paused: bool
    paused_at: dt.datetime | None
    pause_reason: str | None
    settings: RawJson
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen(slots=True)
class QueueStats:
    """Counts of one queue's jobs by state (all time), the last day's outcomes, and its live workers."""
    pending: int
    scheduled: int
    processing: int
    completed: int
    failed: int
    deadletter: int
    cancelled: int
    total: int
    completed_24h: int
    failed_24h: int
    avg_ms: float | None            # mean processing time of the last day's completions
    max_age_secs: float | None      # age of the oldest pending job
    active_workers: int


@attrs.frozen(slots=True)
class Paused:
    name: str
    paused_at: dt.datetime
    pause_reason: str | None


@attrs.frozen(slots=True)
class Organization:
    id: uuid.UUID
    name: str
    slug: str
    plan_tier: str
    billing_email: str | None
    settings: RawJson                       # jsonb as text (secrets inside: transports show public_settings)
    custom_limits: RawJson | None           # jsonb as text: limit overrides (domain/plans.py)
    stripe_customer_id: str | None
    stripe_subscription_id: str | None
    stripe_subscription_status: str | None
    stripe_current_period_end: dt.datetime | None
    stripe_cancel_at_period_end: bool | None
    suspended_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen(slots=True)
class ApiKey:
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    key_prefix: str
    queues: list[str]                       # empty: every queue
    rate_limit: int | None                  # the key's own limit, requests per minute
    read_only: bool
    is_active: bool
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None


@attrs.frozen(slots=True)
class KeyGrant:
    """What authenticating with one active API key grants: its rules and its organization's plan."""
    id: uuid.UUID
    organization_id: uuid.UUID
    queues: list[str]
    rate_limit: int | None
    read_only: bool
    expires_at: dt.datetime | None
    plan_tier: str
    custom_limits: RawJson | None
    suspended: bool


@attrs.frozen(slots=True)
class Usage:
    """An organization's counted resources (jobs_today comes from the daily counters, see services/quotas.py)."""
    jobs_today: int
    active_jobs: int
    queues: int
    workers: int
    api_keys: int
    webhooks: int
    schedules: int
    workflows: int


@attrs.frozen(slots=True)
class PlatformStats:
    orgs_total: int
    orgs_by_plan: RawJson                   # [{plan, count}]
    orgs_today: int
    orgs_week: int
    jobs_pending: int
    jobs_scheduled: int
    jobs_processing: int
    jobs_completed_24h: int
    jobs_failed_24h: int
    workers_total: int
    workers_healthy: int
    workers_degraded: int
