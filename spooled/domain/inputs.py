"""Request inputs as frozen attrs classes; validators raise `FieldError` naming the field.

Every validator carries its bounds as data too (`json_schema`, a JSON Schema fragment): the REST transport's
OpenAPI document reads them (`transports/http/schema.py`), so the numbers live only here. A class whose
`__attrs_post_init__` adds a rule across fields says so in `__json_schema__`.

Structured from JSON by `spooled.convert.structure` (strict types: "5" is not an integer). Unknown keys are
ignored. Aliases from the reference API (`queue` for `queue_name`, `name` for a queue) are folded in by the
transport before structuring. Also here: the job listing's filter (`JobFilter`), which every transport builds
and the store turns into SQL.
"""

from __future__ import annotations

import datetime as dt
import re
import typing

import attrs

from spooled.domain.errors import FieldError, ValidationFailed
from spooled.domain.firing import CATCH_UP, OVERLAP
from spooled.domain.plans import OVERRIDES_SCHEMA, check_overrides, whole_numbers
from spooled.domain.tracecontext import MAX_TRACESTATE, TRACEPARENT, valid_traceparent, valid_tracestate

JsonObject = typing.NewType("JsonObject", dict)     # a JSON object (structured strictly: not a list or a string)

QUEUE_NAME = re.compile(r"[A-Za-z0-9._:-]{1,100}\Z")
WORKER_ID = re.compile(r"[A-Za-z0-9._-]{1,128}\Z")
HTTP_URL = re.compile(r"https?://[^\s/?#@]+(?:[/?#]\S*)?\Z", re.I)
HTTP_URL_SCHEMA = {"maxLength": 2048, "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@]+(?:[/?#]\S*)?$"}


def bounded(schema: dict):
    """Decorator: record the JSON Schema fragment a validator enforces (on values other than None)."""
    def mark(check):
        check.json_schema = schema
        return check
    return mark


def ecma(pattern: re.Pattern) -> str:
    """A `re.match(...\\Z)` pattern as the anchored JSON Schema (ECMA-262) pattern that accepts the same text."""
    assert not pattern.flags & (re.I | re.M | re.S | re.X) and pattern.pattern.endswith(r"\Z"), pattern
    return "^" + pattern.pattern[:-2] + "$"


def between(lo: float, hi: float):
    @bounded({"minimum": lo, "maximum": hi})
    def check(_inst, attribute, value):
        if value is not None and not lo <= value <= hi:
            raise FieldError(attribute.name, f"must be between {lo} and {hi}")
    return check


def length(lo: int, hi: int):
    @bounded({"minLength": lo, "maxLength": hi})
    def check(_inst, attribute, value):
        if value is not None and not lo <= len(value) <= hi:
            raise FieldError(attribute.name, f"must be {lo} to {hi} characters long")
    return check


def matches(pattern: re.Pattern, what: str, schema: dict | None = None):
    @bounded(schema or {"pattern": ecma(pattern)})
    def check(_inst, attribute, value):
        if value is not None and not pattern.match(value):
            raise FieldError(attribute.name, f"must be {what}")
    return check


def count(lo: int, hi: int, what: str, each=None):
    """A list of `lo` to `hi` items (`what` names them), each checked by the validator `each`."""
    schema = {"minItems": lo, "maxItems": hi}
    if each is not None:
        schema["items"] = each.json_schema

    @bounded(schema)
    def check(inst, attribute, value):
        if value is None:
            return
        if not lo <= len(value) <= hi:
            raise FieldError(attribute.name, f"must hold {lo} to {hi} {what}" if lo else
                             f"must hold at most {hi} {what}")
        if each is not None:
            for item in value:
                each(inst, attribute, item)
    return check


PLANS = ("free", "starter", "pro", "enterprise")


def one_of(options: tuple[str, ...]):
    @bounded({"enum": list(options)})
    def check(_inst, attribute, value):
        if value is not None and value not in options:
            raise FieldError(attribute.name, f"must be one of {', '.join(options)}")
    return check


queue_name_field = matches(QUEUE_NAME, "1 to 100 characters of A-Z a-z 0-9 . _ : -")


def _blank_none(value):
    """An empty id is no id (proto3 sends "" for unset strings; some clients send "" for JSON null)."""
    return None if value == "" else value


_blank_none.accepts_empty = True      # the JSON Schema of such a field also admits "" (openapi: schema.py)


@bounded({"pattern": ecma(TRACEPARENT)})
def _traceparent(_inst, attribute, value) -> None:
    if value is not None and not valid_traceparent(value):
        raise FieldError(attribute.name, "must be a W3C traceparent")


@bounded({"maxLength": MAX_TRACESTATE, "pattern": "^[ -~]*$"})
def _tracestate(_inst, attribute, value) -> None:
    if value is not None and not valid_tracestate(value):
        raise FieldError(attribute.name, "must be a W3C tracestate (printable ASCII, at most 512 characters)")


@bounded(HTTP_URL_SCHEMA)
def _webhook_url(_inst, attribute, value) -> None:
    if value is not None and not (len(value) <= 2048 and HTTP_URL.match(value)):
        raise FieldError(attribute.name, "must be an http:// or https:// URL of at most 2048 characters")


@bounded({"type": ["object", "array"]})
def _tags(_inst, attribute, value) -> None:
    if value is not None and not isinstance(value, (dict, list)):
        raise FieldError(attribute.name, "must be a JSON object or array")


@attrs.frozen
class JobSpec:
    """One job to enqueue (POST /jobs, or one element of POST /jobs/bulk without its queue). `payload` is any
    JSON value (object, array, string, number, boolean or null); `completion_webhook_secret` is write-only."""
    payload: typing.Any
    priority: int | None = attrs.field(default=None, validator=between(-100, 100))
    max_retries: int | None = attrs.field(default=None, validator=between(0, 100))
    timeout_seconds: int | None = attrs.field(default=None, validator=between(1, 86400))
    scheduled_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    idempotency_key: str | None = attrs.field(default=None, validator=length(1, 255))
    tags: typing.Any = attrs.field(default=None, validator=_tags)
    completion_webhook: str | None = attrs.field(default=None, validator=_webhook_url)
    completion_webhook_secret: str | None = attrs.field(default=None, validator=length(1, 255))
    parent_job_id: str | None = attrs.field(default=None, converter=_blank_none, validator=length(1, 64))
    # W3C trace context (ext; the `traceparent`/`tracestate` headers set it for every job of a request)
    traceparent: str | None = attrs.field(default=None, converter=_blank_none,
                                          validator=_traceparent)
    tracestate: str | None = attrs.field(default=None, converter=_blank_none,
                                         validator=_tracestate)


@attrs.frozen
class CreateJob(JobSpec):
    queue_name: str = attrs.field(kw_only=True, validator=queue_name_field)


@attrs.frozen
class BulkJobs:
    """POST /jobs/bulk. Each of `jobs` is a job as POST /jobs takes it, without `queue_name`; it is checked on its
    own, and one that is invalid is reported in the response's `failed` (the others are enqueued)."""
    queue_name: str = attrs.field(validator=queue_name_field)
    jobs: list[typing.Any] = attrs.field(validator=count(1, 100, "jobs"))
    default_priority: int | None = attrs.field(default=None, validator=between(-100, 100))
    default_max_retries: int | None = attrs.field(default=None, validator=between(0, 100))
    default_timeout_seconds: int | None = attrs.field(default=None, validator=between(1, 86400))


@attrs.frozen
class Claim:
    queue_name: str = attrs.field(validator=queue_name_field)
    worker_id: str = attrs.field(validator=length(1, 128))
    limit: int = attrs.field(default=1, validator=between(1, 100))
    lease_duration_secs: int = attrs.field(default=30, validator=between(5, 3600))
    wait_secs: float = attrs.field(default=0.0, validator=between(0, 30))


def _fence(lease_id: str | None, worker_id: str | None, field: str = "lease_id") -> None:
    """api.md "Lease fencing": a lease_id, or else the worker_id whose unexpired lease holds the job."""
    if lease_id is None and worker_id is None:
        raise FieldError(field, "is required (or worker_id, to act on the lease that worker holds)")


_LEASE = dict(default=None, converter=_blank_none, validator=length(1, 64))
# `_fence` as JSON Schema: a non-empty lease_id or worker_id
FENCED = {"anyOf": [{"required": [name], "properties": {name: {"type": "string", "minLength": 1}}}
                    for name in ("lease_id", "worker_id")]}
_WORKER = dict(default=None, converter=_blank_none, validator=length(1, 128))


@attrs.frozen
class Complete:
    __json_schema__ = FENCED
    lease_id: str | None = attrs.field(**_LEASE)
    worker_id: str | None = attrs.field(**_WORKER)
    result: typing.Any = None

    def __attrs_post_init__(self) -> None:
        _fence(self.lease_id, self.worker_id)


@attrs.frozen
class CompleteItem:
    job_id: str
    lease_id: str | None = attrs.field(**_LEASE)
    worker_id: str | None = attrs.field(**_WORKER)   # else the batch's worker_id
    result: typing.Any = None


@attrs.frozen
class CompleteBatch:
    __json_schema__ = {"anyOf": [FENCED["anyOf"][1], {"properties": {"completions": {"items": FENCED}}}]}
    completions: list[CompleteItem] = attrs.field(validator=count(1, 100, "items"))
    worker_id: str | None = attrs.field(**_WORKER)

    def __attrs_post_init__(self) -> None:
        if self.worker_id is None:
            for i, c in enumerate(self.completions):
                _fence(c.lease_id, c.worker_id, f"completions[{i}].lease_id")

    def items(self) -> list[tuple[str, str | None, str | None, typing.Any]]:
        """(job_id, lease_id, worker_id, result) for `Jobs.complete_many`."""
        return [(c.job_id, c.lease_id, c.worker_id or self.worker_id, c.result) for c in self.completions]


def complete_batch_items(data: typing.Any) -> list[tuple[str, str | None, str | None, typing.Any]] | None:
    """`CompleteBatch.items()` of a body in the plain shape, without building the model (a batch is up to 100
    items, and the converter costs ~1 us an item): every field of the right type and length, each item fenced.
    None for anything else, which `convert.structure(data, CompleteBatch)` then judges (and names what is wrong);
    tests/test_jobs.py checks the two agree."""
    if type(data) is not dict:
        return None
    items, top = data.get("completions"), data.get("worker_id")
    if type(items) is not list or not 1 <= len(items) <= 100:
        return None
    if top is not None:
        if type(top) is not str or len(top) > 128:
            return None
        top = top or None
    out = []
    for c in items:
        if type(c) is not dict:
            return None
        job, lease, worker = c.get("job_id"), c.get("lease_id"), c.get("worker_id")
        if type(job) is not str:
            return None
        if lease is not None:
            if type(lease) is not str or len(lease) > 64:
                return None
            lease = lease or None
        if worker is not None:
            if type(worker) is not str or len(worker) > 128:
                return None
            worker = worker or None
        if lease is None and worker is None and top is None:
            return None
        out.append((job, lease, worker or top, c.get("result")))
    return out


@attrs.frozen
class Fail:
    __json_schema__ = FENCED
    error: str = attrs.field(validator=length(1, 2048))
    lease_id: str | None = attrs.field(**_LEASE)
    worker_id: str | None = attrs.field(**_WORKER)
    retry: bool | None = None

    def __attrs_post_init__(self) -> None:
        _fence(self.lease_id, self.worker_id)


@attrs.frozen
class Heartbeat:
    __json_schema__ = FENCED
    lease_id: str | None = attrs.field(**_LEASE)
    worker_id: str | None = attrs.field(**_WORKER)
    lease_duration_secs: int = attrs.field(default=30, validator=between(5, 3600))

    def __attrs_post_init__(self) -> None:
        _fence(self.lease_id, self.worker_id)


@attrs.frozen
class SetPriority:
    priority: int = attrs.field(validator=between(-100, 100))


@attrs.frozen
class DlqRetry:
    queue_name: str | None = attrs.field(default=None, validator=queue_name_field)
    job_ids: list[str] | None = None
    limit: int = attrs.field(default=100, validator=between(1, 1000))


@bounded({"const": True})
def _must_confirm(_inst, attribute, value) -> None:
    if value is not True:
        raise FieldError(attribute.name, "must be true to purge")


@attrs.frozen
class DlqPurge:
    confirm: bool = attrs.field(validator=_must_confirm)
    queue_name: str | None = attrs.field(default=None, validator=queue_name_field)
    older_than: dt.datetime | None = None
    limit: int = attrs.field(default=1000, validator=between(1, 10000))


@attrs.frozen
class QueueConfig:
    """POST /queues, PUT /queues/{name}/config, PATCH /queues/{name} (all optional but the name on create)."""
    name: str | None = attrs.field(default=None, validator=queue_name_field)
    max_retries: int | None = attrs.field(default=None, validator=between(0, 100))
    default_timeout: int | None = attrs.field(default=None, validator=between(1, 86400))
    rate_limit: int | None = attrs.field(default=None, validator=between(1, 1_000_000))
    concurrency_limit: int | None = attrs.field(default=None, validator=between(1, 100_000))
    dead_letter: bool | None = None
    retry_backoff_base_secs: float | None = attrs.field(default=None, validator=between(0.001, 86400))
    retry_backoff_max_secs: float | None = attrs.field(default=None, validator=between(0.001, 7 * 86400))
    settings: JsonObject | None = None
    enabled: bool | None = None      # false pauses the queue, true resumes it (the SDK's update_config)


@attrs.frozen
class Pause:
    reason: str | None = attrs.field(default=None, validator=length(0, 1000))


SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")
# Whitespace spelled out: Python's `\s` also takes \x1c-\x1f and \x85, ECMA-262's (and generators' of JSON
# Schema patterns) does not, so `\s` would let the document admit an address this check refuses.
SPACE = r"\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
EMAIL = re.compile(rf"[^@{SPACE}]{{1,64}}@[^@{SPACE}]+\.[^@{SPACE}]+\Z")
slug_field = matches(SLUG, "1 to 63 lowercase letters, digits and dashes, starting with a letter or digit")


@bounded({"maxLength": 320, "pattern": ecma(EMAIL)})
def email_field(_inst, attribute, value) -> None:
    if value is not None and (len(value) > 320 or not EMAIL.match(value)):
        raise FieldError(attribute.name, "must be an email address")


@bounded(OVERRIDES_SCHEMA)
def _overrides(_inst, attribute, value) -> None:
    if value is not None:
        try:
            check_overrides(value, attribute.name)
        except ValidationFailed as exc:
            field = next(iter(exc.fields))
            raise FieldError(field, exc.fields[field]) from None


@attrs.frozen
class CreateOrg:
    """POST /organizations (plan, settings and custom_limits: operators only) and POST /admin/organizations."""
    name: str = attrs.field(validator=length(1, 200))
    slug: str | None = attrs.field(default=None, validator=slug_field)
    billing_email: str | None = attrs.field(default=None, validator=email_field)
    plan: str | None = attrs.field(default=None, validator=one_of(PLANS))
    settings: JsonObject | None = None
    custom_limits: JsonObject | None = attrs.field(default=None, converter=whole_numbers, validator=_overrides)


@attrs.frozen
class UpdateOrg:
    """PUT/PATCH /organizations/{id}; the admin API may also set plan, custom_limits and suspended."""
    name: str | None = attrs.field(default=None, validator=length(1, 200))
    billing_email: str | None = attrs.field(default=None, validator=email_field)
    settings: JsonObject | None = None
    plan: str | None = attrs.field(default=None, validator=one_of(PLANS))
    custom_limits: JsonObject | None = attrs.field(default=None, converter=whole_numbers, validator=_overrides)
    suspended: bool | None = None


_key_queues = count(0, 100, "queue names", queue_name_field)
@attrs.frozen
class CreateApiKey:
    name: str = attrs.field(default="default", validator=length(1, 200))
    queues: list[str] | None = attrs.field(default=None, validator=_key_queues)
    rate_limit: int | None = attrs.field(default=None, validator=between(1, 1_000_000))    # requests per minute
    expires_at: dt.datetime | None = None
    read_only: bool = False


@attrs.frozen
class UpdateApiKey:
    name: str | None = attrs.field(default=None, validator=length(1, 200))
    queues: list[str] | None = attrs.field(default=None, validator=_key_queues)
    rate_limit: int | None = attrs.field(default=None, validator=between(1, 1_000_000))
    is_active: bool | None = None


# Every status of the SDK's WorkerStatus (docs/api-notes.md "Workers" says what each one does when reported).
HEARTBEAT_STATUSES = ("healthy", "degraded", "offline", "draining")


_queue_list = count(1, 100, "queue names", queue_name_field)


@attrs.frozen
class RegisterWorker:
    """POST /workers/register and WorkerService.Register: `queue_name` or `queue_names` (at least one)."""
    __json_schema__ = {"anyOf": [{"required": ["queue_name"], "properties": {"queue_name": {"type": "string"}}},
                                 {"required": ["queue_names"], "properties": {"queue_names": {"type": "array"}}}]}
    hostname: str = attrs.field(validator=length(1, 255))
    queue_name: str | None = attrs.field(default=None, validator=queue_name_field)
    queue_names: list[str] | None = attrs.field(default=None, validator=_queue_list)
    worker_id: str | None = attrs.field(default=None, validator=matches(WORKER_ID, "1 to 128 of A-Z a-z 0-9 . _ -"))
    worker_type: str | None = attrs.field(default=None, validator=length(0, 100))
    max_concurrency: int = attrs.field(default=5, validator=between(1, 10000))
    version: str | None = attrs.field(default=None, validator=length(0, 100))
    metadata: JsonObject | None = None

    def __attrs_post_init__(self) -> None:
        if self.queue_name is None and not self.queue_names:
            raise FieldError("queue_name", "is required (or queue_names)")

    @property
    def all_queues(self) -> list[str]:
        """queue_name first, then queue_names without duplicates."""
        out = [self.queue_name] if self.queue_name else []
        out += [q for q in (self.queue_names or []) if q not in out]
        return out


@attrs.frozen
class WorkerHeartbeat:
    current_jobs: int = attrs.field(default=0, validator=between(0, 1_000_000))
    status: str | None = attrs.field(default=None, validator=one_of(HEARTBEAT_STATUSES))
    metadata: JsonObject | None = None


WEBHOOK_EVENTS = ("job.created", "job.started", "job.completed", "job.failed", "job.cancelled", "job.deadlettered",
                  "job.retried", "queue.paused", "queue.resumed", "worker.registered", "worker.deregistered",
                  "schedule.triggered", "workflow.completed", "workflow.failed")
WEBHOOK_FORMATS = ("json", "slack", "discord", "teams")


@bounded({"minItems": 1, "maxItems": len(WEBHOOK_EVENTS), "items": {"enum": list(WEBHOOK_EVENTS)}})
def _webhook_events(_inst, attribute, value) -> None:
    if value is None:
        return
    if not 1 <= len(value) <= len(WEBHOOK_EVENTS):
        raise FieldError(attribute.name, "must list 1 or more events")
    for name in value:
        if name not in WEBHOOK_EVENTS:
            raise FieldError(attribute.name, f"unknown event {name!r}; one of {', '.join(WEBHOOK_EVENTS)}")


@attrs.frozen
class CreateWebhook:
    """POST /webhooks and /outgoing-webhooks."""
    name: str = attrs.field(validator=length(1, 100))
    url: str = attrs.field(validator=_webhook_url)
    events: list[str] = attrs.field(validator=_webhook_events)
    enabled: bool = True
    secret: str | None = attrs.field(default=None, validator=length(1, 255))
    format: str | None = attrs.field(default=None, validator=one_of(WEBHOOK_FORMATS))


@attrs.frozen
class UpdateWebhook:
    """PATCH /webhooks/{id}, PUT /outgoing-webhooks/{id}: partial (`secret: null` clears the secret)."""
    __not_null__ = ("name", "url", "events", "enabled", "format")      # absent keeps them; null is 422
    name: str | None = attrs.field(default=None, validator=length(1, 100))
    url: str | None = attrs.field(default=None, validator=_webhook_url)
    events: list[str] | None = attrs.field(default=None, validator=_webhook_events)
    enabled: bool | None = None
    secret: str | None = attrs.field(default=None, validator=length(1, 255))
    format: str | None = attrs.field(default=None, validator=one_of(WEBHOOK_FORMATS))


@bounded({"not": {"type": "null"}})
def _present(_inst, attribute, value) -> None:
    if value is None:
        raise FieldError(attribute.name, "is required")


@attrs.frozen
class CustomWebhook:
    """POST /webhooks/{org_id}/custom."""
    queue_name: str = attrs.field(validator=queue_name_field)
    payload: typing.Any = attrs.field(validator=_present)
    event_type: str | None = attrs.field(default=None, validator=length(1, 200))
    idempotency_key: str | None = attrs.field(default=None, validator=length(1, 255))
    priority: int | None = attrs.field(default=None, validator=between(-100, 100))


# -- the job listing -----------------------------------------------------------------------------------------
JOB_ORDER_COLUMNS = ("created_at", "updated_at", "priority", "scheduled_at", "completed_at")


@attrs.frozen
class JobFilter:
    """GET /jobs (and /jobs/dlq) filters; None means "any"."""
    queue_name: str | None = None
    statuses: list[str] | None = None
    tag: str | None = None                        # "key" (has the key) or "key:value" (tags[key] == value)
    created_after: dt.datetime | None = None      # inclusive
    created_before: dt.datetime | None = None     # exclusive
    q: str | None = None          # search: id prefix, or queue name / payload.job_type / payload text containing it
    job_type: str | None = None   # exact payload.job_type
@attrs.frozen
class CreateSchedule:
    """POST /schedules. `catch_up` and `overlap` go beyond the upstream product (docs/api-notes.md)."""
    name: str = attrs.field(validator=length(1, 255))
    cron_expression: str = attrs.field(validator=length(1, 255))
    queue_name: str = attrs.field(validator=queue_name_field)
    payload_template: JsonObject
    description: str | None = attrs.field(default=None, validator=length(0, 2000))
    timezone: str = attrs.field(default="UTC", validator=length(1, 64))
    priority: int = attrs.field(default=0, validator=between(-100, 100))
    max_retries: int = attrs.field(default=3, validator=between(0, 100))
    timeout_seconds: int = attrs.field(default=300, validator=between(1, 86400))
    tags: typing.Any = attrs.field(default=None, validator=_tags)
    metadata: typing.Any = None
    catch_up: str = attrs.field(default="latest", validator=one_of(CATCH_UP))
    overlap: str = attrs.field(default="allow", validator=one_of(OVERLAP))


@attrs.frozen
class UpdateSchedule:
    """PUT /schedules/{id}: a partial update; an absent or null field keeps its value."""
    name: str | None = attrs.field(default=None, validator=length(1, 255))
    cron_expression: str | None = attrs.field(default=None, validator=length(1, 255))
    queue_name: str | None = attrs.field(default=None, validator=queue_name_field)
    payload_template: JsonObject | None = None
    description: str | None = attrs.field(default=None, validator=length(0, 2000))
    timezone: str | None = attrs.field(default=None, validator=length(1, 64))
    priority: int | None = attrs.field(default=None, validator=between(-100, 100))
    max_retries: int | None = attrs.field(default=None, validator=between(0, 100))
    timeout_seconds: int | None = attrs.field(default=None, validator=between(1, 86400))
    tags: typing.Any = attrs.field(default=None, validator=_tags)
    metadata: typing.Any = None
    catch_up: str | None = attrs.field(default=None, validator=one_of(CATCH_UP))
    overlap: str | None = attrs.field(default=None, validator=one_of(OVERLAP))


# -- workflows and job dependencies --------------------------------------------------------------------------
DEPENDENCY_MODES = ("all", "any")
WORKFLOW_STATUSES = ("pending", "running", "completed", "failed", "cancelled")


_key_list = count(0, 100, "keys", length(1, 100))


@attrs.frozen
class WorkflowJobSpec:
    """One job of POST /workflows: `key` names it within the request; `depends_on` lists other jobs' keys."""
    key: str = attrs.field(validator=length(1, 100))
    queue_name: str = attrs.field(validator=queue_name_field)
    payload: typing.Any
    depends_on: list[str] | None = attrs.field(default=None, validator=_key_list)
    dependency_mode: str | None = attrs.field(default=None, validator=one_of(DEPENDENCY_MODES))
    priority: int | None = attrs.field(default=None, validator=between(-100, 100))
    max_retries: int | None = attrs.field(default=None, validator=between(0, 100))
    timeout_seconds: int | None = attrs.field(default=None, validator=between(1, 86400))


@attrs.frozen
class CreateWorkflow:
    name: str = attrs.field(validator=length(1, 255))
    jobs: list[WorkflowJobSpec] = attrs.field(validator=count(1, 100, "jobs"))
    description: str | None = attrs.field(default=None, validator=length(0, 2000))
    metadata: typing.Any = None


@attrs.frozen
class AddDependencies:
    """POST /jobs/{id}/dependencies: the job then depends on these jobs too, in this mode (for all of them)."""
    depends_on: list[str] = attrs.field(validator=count(1, 100, "job ids"))
    dependency_mode: str = attrs.field(default="all", validator=one_of(DEPENDENCY_MODES))
