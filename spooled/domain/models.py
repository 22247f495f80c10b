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
class Webhook:
    """An outgoing webhook subscription (its secret never leaves the store except to sign)."""
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    url: str
    events: list[str]
    enabled: bool
    format: str
    failure_count: int                  # consecutive failed deliveries (not attempts); 20 disable it
    last_triggered_at: dt.datetime | None
    last_status: str | None             # success / failed / auto_disabled
    created_at: dt.datetime
    updated_at: dt.datetime
    secret: str | None = attrs.field(default=None, repr=False)


@attrs.frozen(slots=True)
class Delivery:
    """One outbox row as listed (GET /outgoing-webhooks/{id}/deliveries)."""
    id: uuid.UUID
    webhook_id: uuid.UUID | None
    event: str
    payload: RawJson                    # the event's `data`
    status: str                         # pending / success / failed
    attempts: int
    status_code: int | None
    response_body: str | None
    error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None


@attrs.frozen(slots=True)
class LeasedDelivery:
    """A delivery a dispatcher holds (until `locked_until`, the fencing token of its outcome) with its target."""
    id: uuid.UUID
    webhook_id: uuid.UUID | None
    organization_id: uuid.UUID
    event: str
    payload: RawJson
    attempts: int                       # including this one
    locked_until: dt.datetime
    created_at: dt.datetime
    url: str
    format: str
    enabled: bool                       # False: its subscription was disabled meanwhile (not sent)
    secret: str | None = attrs.field(default=None, repr=False)


@attrs.frozen(slots=True)
class InboundDelivery:
    """One accepted incoming webhook (GET /webhooks/deliveries); never its payload or signature."""
    id: uuid.UUID
    provider: str
    event_type: str
    matched_queue: str | None
    job_id: uuid.UUID | None
    status: str                         # created / duplicate
    created_at: dt.datetime
