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
class ThroughputBucket:
    """Jobs of one queue that finished in [start, start + bucket): completed, and failed or dead-lettered."""
    start: dt.datetime
    completed: int
    failed: int


@attrs.frozen(slots=True)
class Paused:
    name: str
    paused_at: dt.datetime
    pause_reason: str | None


@attrs.frozen(slots=False)
class Job:
    """A job as the API shows it (api.md "Job fields"). Internal columns (run_at, the completing lease, the
    completion webhook's secret) are not part of it: nothing above the store can leak them.

    Not slotted, unlike the other models: a claim builds up to 100 of these a call, and a frozen class with a
    `__dict__` is built about twice as fast (attrs writes the dict; a slotted frozen class calls
    `object.__setattr__` per field), and `views.jobs` copies that dict instead of reading 29 attributes
    (docs/benchmarks.md, fourth session)."""
    id: uuid.UUID
    organization_id: uuid.UUID
    queue_name: str
    status: str                         # a JobStatus value
    payload: RawJson
    result: RawJson | None
    priority: int
    max_retries: int
    retry_count: int
    timeout_seconds: int
    last_error: str | None
    tags: RawJson | None
    idempotency_key: str | None
    completion_webhook: str | None
    scheduled_at: dt.datetime | None
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    expires_at: dt.datetime | None
    lease_id: uuid.UUID | None          # set only while processing
    lease_expires_at: dt.datetime | None
    assigned_worker_id: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    parent_job_id: uuid.UUID | None
    workflow_id: uuid.UUID | None
    dependency_mode: str | None
    dependencies_met: bool
    traceparent: str | None             # W3C trace context given at enqueue (docs/operations.md "Tracing")
    tracestate: str | None


@attrs.frozen(slots=True)
class ListedJob(Job):
    """A job in a listing, with `payload.job_type` (the SDK's job summaries show it; "" when absent)."""
    job_type: str


@attrs.frozen(slots=True)
class JobBrief:
    """GET /jobs/status: one job's state."""
    id: uuid.UUID
    status: str
    queue_name: str
    retry_count: int
    created_at: dt.datetime
    completed_at: dt.datetime | None


@attrs.frozen(slots=True)
class Schedule:
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    description: str | None
    cron_expression: str
    timezone: str
    queue_name: str
    payload_template: RawJson
    priority: int
    max_retries: int
    timeout_seconds: int
    tags: RawJson | None
    metadata: RawJson | None
    catch_up: str
    overlap: str
    is_active: bool
    last_run_at: dt.datetime | None
    next_run_at: dt.datetime | None
    run_count: int
    created_at: dt.datetime
    updated_at: dt.datetime


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
class ScheduleRun:
    """A fire as clients see it: `status` follows the run's job (pending/running/completed/failed/cancelled),
    or is `skipped` (overlap policy) or `failed` with `error_message` (the enqueue was refused)."""
    id: uuid.UUID
    schedule_id: uuid.UUID
    job_id: uuid.UUID | None
    status: str
    error_message: str | None
    fire_time: dt.datetime
    manual: bool
    started_at: dt.datetime
    completed_at: dt.datetime | None


@attrs.frozen(slots=True)
class HistoryEntry:
    """One recorded transition of a job: a history row (id: its number), or an event its job row records
    (created, the started and completed of its current lease; id: `<job id>:<event>`)."""
    id: str
    job_id: uuid.UUID
    event_type: str
    old_status: str | None
    new_status: str | None
    worker_id: str | None
    details: RawJson | None
    created_at: dt.datetime


@attrs.frozen(slots=True)
class Worker:
    id: str                             # the client's id (or one the server made)
    organization_id: uuid.UUID
    queue_names: list[str]
    hostname: str
    worker_type: str | None
    version: str | None
    max_concurrency: int
    current_jobs: int
    status: str                         # healthy | degraded | offline | draining
    metadata: RawJson
    heartbeat_interval_secs: int
    lease_duration_secs: int
    jobs_processed: int
    jobs_failed: int
    last_heartbeat: dt.datetime
    registered_at: dt.datetime
    deregistered_at: dt.datetime | None


@attrs.frozen(slots=True)
class RunToEnqueue:
    """A fired run whose job is still to be enqueued, with the template it enqueues."""
    run_id: uuid.UUID
    schedule_id: uuid.UUID
    organization_id: uuid.UUID
    fire_time: dt.datetime
    manual: bool
    queue_name: str
    payload_template: RawJson
    priority: int
    max_retries: int
    timeout_seconds: int
    tags: RawJson | None


@attrs.frozen(slots=True)
class JobCounts:
    """An organization's job counts for the dashboard; each is exact below the store's cap, else the cap."""
    total: int
    pending: int
    processing: int
    deadletter: int
    completed_24h: int
    failed_24h: int
    created_1h: int
    completed_1h: int
    failed_1h: int
    avg_wait_ms: float | None           # over the last 1,000 completions of the day
    avg_processing_ms: float | None


@attrs.frozen(slots=True)
class QueueLoad:
    name: str
    paused: bool
    pending: int
    processing: int


@attrs.frozen(slots=True)
class WorkerCounts:
    total: int
    healthy: int


@attrs.frozen(slots=True)
class Summary:
    """What the dashboard shows of one organization, read in one unit of work."""
    jobs: JobCounts
    queues: list[QueueLoad]
    workers: WorkerCounts
    count_cap: int


@attrs.frozen(slots=True)
class Workflow:
    """A DAG of jobs (api.md "Workflows"); counts and status as the dependency triggers keep them."""
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    description: str | None
    metadata: RawJson | None
    status: str                         # pending | running | completed | failed | cancelled
    total_jobs: int
    completed_jobs: int
    failed_jobs: int                    # failed or dead-lettered
    cancelled_jobs: int
    created_at: dt.datetime
    updated_at: dt.datetime
    started_at: dt.datetime | None
    completed_at: dt.datetime | None


@attrs.frozen(slots=True)
class DependencyEdge:
    parent_job_id: uuid.UUID
    child_job_id: uuid.UUID


@attrs.frozen(slots=True)
class RelatedJob:
    """A dependency or a dependent of a job, as GET /jobs/{id}/dependencies lists it."""
    job_id: uuid.UUID
    status: str
    queue_name: str


@attrs.frozen(slots=True)
class JobDependencies:
    job_id: uuid.UUID
    dependency_mode: str | None
    dependencies_met: bool
    dependencies: list[RelatedJob]
    dependents: list[RelatedJob]


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


@attrs.frozen(slots=True)
class Instance:
    """A live server instance (`server_instances`), with its loop health at its last heartbeat."""
    id: uuid.UUID
    hostname: str
    version: str | None
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    loops: RawJson


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
