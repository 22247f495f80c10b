"""Domain models -> JSON-ready dicts for REST responses. User JSON stored as text goes out verbatim
(orjson.Fragment).

Each view has its response schema beside it (`JOB` for `job`, ...): the model's field types plus the view's
field list (`schema.model`), named in the OpenAPI document. A view that emits a key its schema does not list, or
omits one it lists, fails `tests/test_openapi.py` (every real response of its session is checked).
"""

from __future__ import annotations

import json

import orjson

from spooled.domain.inputs import DEPENDENCY_MODES, HEARTBEAT_STATUSES, WEBHOOK_FORMATS, WORKFLOW_STATUSES
from spooled.domain.models import (ApiKey, Delivery, DependencyEdge, HistoryEntry, InboundDelivery, Job, JobBrief,
                                   JobCounts, JobDependencies, ListedJob, Organization, Queue, QueueLoad, QueueStats,
                                   RelatedJob, Schedule, ScheduleRun, Summary, ThroughputBucket, Usage, Webhook, Worker,
                                   WorkerCounts, Workflow)
from spooled.domain.plans import RESOURCE_LIMIT, TIERS, Limits
from spooled.domain.states import JobStatus
from spooled.services.orgs import public_settings
from spooled.transports.http.schema import (ANY, BOOLEAN, INTEGER, NUMBER, OBJECT, STRING, TIME, array, component,
                                            const, enum, merge, model, nullable, obj)

JOB_STATUS = component("JobStatus", enum(*(s.value for s in JobStatus)))


def raw(text: str | None):
    return orjson.Fragment(text) if text is not None else None


def opt_str(value) -> str | None:
    return str(value) if value is not None else None


_JOB_TYPES = dict(status=JOB_STATUS, dependency_mode=nullable(enum(*DEPENDENCY_MODES)))
JOB_OBJECT = model(Job, ..., **_JOB_TYPES)
JOB = component("Job", JOB_OBJECT)
LISTED_JOB = component("ListedJob", model(ListedJob, ..., **_JOB_TYPES))


def job(j: Job) -> dict:
    """api.md "Job fields" (+ parent_job_id, workflow_id, dependency_mode, dependencies_met; listings add
    job_type). Never the completion webhook's secret: the model does not carry it."""
    out = {
        "id": str(j.id), "organization_id": str(j.organization_id), "queue_name": j.queue_name,
        "status": j.status, "payload": raw(j.payload), "result": raw(j.result), "priority": j.priority,
        "max_retries": j.max_retries, "retry_count": j.retry_count, "timeout_seconds": j.timeout_seconds,
        "last_error": j.last_error, "tags": raw(j.tags), "idempotency_key": j.idempotency_key,
        "scheduled_at": j.scheduled_at, "started_at": j.started_at, "completed_at": j.completed_at,
        "expires_at": j.expires_at, "lease_id": opt_str(j.lease_id), "lease_expires_at": j.lease_expires_at,
        "assigned_worker_id": j.assigned_worker_id, "completion_webhook": j.completion_webhook,
        "created_at": j.created_at, "updated_at": j.updated_at, "parent_job_id": opt_str(j.parent_job_id),
        "workflow_id": opt_str(j.workflow_id), "dependency_mode": j.dependency_mode,
        "dependencies_met": j.dependencies_met, "traceparent": j.traceparent, "tracestate": j.tracestate,
    }
    if isinstance(j, ListedJob):   # listings: the SDK's job summaries show payload.job_type
        out["job_type"] = j.job_type
    return out


def jobs(js: list[Job]) -> list[dict]:
    """`[job(j) for j in js]`, the same dicts, faster for a claim's answer (up to 100 jobs): a `Job`'s `__dict__`
    holds its fields (models.py), so the view is a copy of it with `job`'s conversions (the keys in the model's
    order; tests/test_jobs.py checks the two agree). Anything but a plain `Job` goes through `job`."""
    out = []
    fragment = orjson.Fragment
    for j in js:
        if type(j) is not Job:
            out.append(job(j))
            continue
        d = dict(j.__dict__)
        d["id"] = str(d["id"])
        d["organization_id"] = str(d["organization_id"])
        for key in ("payload", "result", "tags"):
            if d[key] is not None:
                d[key] = fragment(d[key])
        for key in ("lease_id", "parent_job_id", "workflow_id"):
            if d[key] is not None:
                d[key] = str(d[key])
        out.append(d)
    return out


JOB_BRIEF = component("JobBrief", model(JobBrief, ..., status=JOB_STATUS))


def job_brief(b: JobBrief) -> dict:
    return {"id": str(b.id), "status": b.status, "queue_name": b.queue_name, "retry_count": b.retry_count,
            "created_at": b.created_at, "completed_at": b.completed_at}


QUEUE_OBJECT = model(
    Queue, "id", "organization_id", "name", "max_retries", "default_timeout", "rate_limit", "concurrency_limit",
    "dead_letter", "paused", "paused_at", "pause_reason", "settings", "created_at", "updated_at",
    queue_name="name", retry_backoff_base_secs="backoff_base_secs", retry_backoff_max_secs="backoff_max_secs",
    enabled=BOOLEAN)
QUEUE = component("Queue", QUEUE_OBJECT)


def queue(q: Queue) -> dict:
    return {
        "id": str(q.id), "organization_id": str(q.organization_id), "queue_name": q.name, "name": q.name,
        "max_retries": q.max_retries, "default_timeout": q.default_timeout, "rate_limit": q.rate_limit,
        "concurrency_limit": q.concurrency_limit, "dead_letter": q.dead_letter,
        "retry_backoff_base_secs": q.backoff_base_secs, "retry_backoff_max_secs": q.backoff_max_secs,
        "enabled": not q.paused, "paused": q.paused, "paused_at": q.paused_at, "pause_reason": q.pause_reason,
        "settings": raw(q.settings), "created_at": q.created_at, "updated_at": q.updated_at,
    }


QUEUE_STATS = component("QueueStats", model(
    QueueStats, "active_workers", queue_name=STRING, pending_jobs="pending", scheduled_jobs="scheduled",
    processing_jobs="processing", completed_jobs_24h="completed_24h", failed_jobs_24h="failed_24h",
    deadletter_jobs="deadletter", avg_processing_time_ms="avg_ms", max_job_age_seconds=nullable(INTEGER)))


def queue_stats(name: str, s: QueueStats) -> dict:
    return {
        "queue_name": name, "pending_jobs": s.pending, "scheduled_jobs": s.scheduled,
        "processing_jobs": s.processing, "completed_jobs_24h": s.completed_24h, "failed_jobs_24h": s.failed_24h,
        "deadletter_jobs": s.deadletter, "active_workers": s.active_workers, "avg_processing_time_ms": s.avg_ms,
        "max_job_age_seconds": int(s.max_age_secs) if s.max_age_secs is not None else None,
    }


THROUGHPUT = component("Throughput", obj({"queue_name": STRING, "bucket_secs": INTEGER,
                                          "buckets": array(model(ThroughputBucket, ...))}))


def throughput(name: str, bucket_secs: int, buckets: list[ThroughputBucket]) -> dict:
    return {"queue_name": name, "bucket_secs": bucket_secs,
            "buckets": [{"start": b.start, "completed": b.completed, "failed": b.failed} for b in buckets]}


HISTORY = component("JobHistoryEntry", model(HistoryEntry, ..., id=STRING))


def history(h: HistoryEntry) -> dict:
    return {"id": str(h.id), "job_id": str(h.job_id), "event_type": h.event_type, "old_status": h.old_status,
            "new_status": h.new_status, "worker_id": h.worker_id, "details": raw(h.details),
            "created_at": h.created_at}


WORKER = component("Worker", model(
    Worker, "id", "organization_id", "queue_names", "hostname", "worker_type", "version", "current_jobs",
    "max_concurrency", "last_heartbeat", "jobs_processed", "jobs_failed", "metadata", "registered_at",
    queue_name=STRING, status=enum(*HEARTBEAT_STATUSES)))


def worker(w: Worker) -> dict:
    return {
        "id": w.id, "organization_id": str(w.organization_id), "queue_name": w.queue_names[0],
        "queue_names": list(w.queue_names), "hostname": w.hostname, "worker_type": w.worker_type,
        "version": w.version, "status": w.status, "current_jobs": w.current_jobs,
        "max_concurrency": w.max_concurrency, "last_heartbeat": w.last_heartbeat,
        "jobs_processed": w.jobs_processed, "jobs_failed": w.jobs_failed, "metadata": raw(w.metadata),
        "registered_at": w.registered_at,
    }


PLAN = enum(*TIERS)
ORGANIZATION = component("Organization", model(
    Organization, "id", "name", "slug", "billing_email", "custom_limits", "stripe_customer_id",
    "stripe_subscription_id", "stripe_subscription_status", "stripe_current_period_end",
    "stripe_cancel_at_period_end", "created_at", "updated_at", plan_tier=PLAN, suspended=BOOLEAN,
    settings={**OBJECT, "description": "secrets are write-only: `<name>_set: true` stands for each one set"}))


def org(o: Organization) -> dict:
    """The SDK's `Organization` (api.md): settings with secrets write-only, times, plan and Stripe state."""
    return {
        "id": str(o.id), "name": o.name, "slug": o.slug, "plan_tier": o.plan_tier, "billing_email": o.billing_email,
        # the stdlib writes user integers beyond 64 bits exactly (orjson refuses them)
        "settings": raw(json.dumps(public_settings(o.settings), separators=(",", ":"))),
        "custom_limits": raw(o.custom_limits),
        "stripe_customer_id": o.stripe_customer_id, "stripe_subscription_id": o.stripe_subscription_id,
        "stripe_subscription_status": o.stripe_subscription_status,
        "stripe_current_period_end": o.stripe_current_period_end,
        "stripe_cancel_at_period_end": o.stripe_cancel_at_period_end,
        "suspended": o.suspended_at is not None, "created_at": o.created_at, "updated_at": o.updated_at,
    }


ORG_SUMMARY = component("OrganizationSummary", model(Organization, "id", "name", "slug", "created_at",
                                                    plan_tier=PLAN))


def org_summary(o: Organization) -> dict:
    return {"id": str(o.id), "name": o.name, "slug": o.slug, "plan_tier": o.plan_tier, "created_at": o.created_at}


ME_ORG = model(Organization, "id", "name", "slug", "billing_email", plan_tier=PLAN)


def me_org(o: Organization) -> dict:
    return {"id": str(o.id), "name": o.name, "slug": o.slug, "plan_tier": o.plan_tier,
            "billing_email": o.billing_email}


_API_KEY = model(ApiKey, "id", "organization_id", "name", "key_prefix", "queues", "rate_limit", "read_only",
                 "is_active", "created_at", "last_used_at", "expires_at", last_used="last_used_at")
API_KEY = component("ApiKey", _API_KEY)


def api_key(k: ApiKey) -> dict:
    """The SDK's `ApiKey` / `ApiKeySummary` (`last_used`; `last_used_at` kept for older clients)."""
    return {"id": str(k.id), "organization_id": str(k.organization_id), "name": k.name, "key_prefix": k.key_prefix,
            "queues": list(k.queues), "rate_limit": k.rate_limit, "read_only": k.read_only,
            "is_active": k.is_active, "created_at": k.created_at, "last_used": k.last_used_at,
            "last_used_at": k.last_used_at, "expires_at": k.expires_at}


NEW_KEY = component("NewApiKey", merge(_API_KEY, obj({"key": STRING})))


def new_key(k: ApiKey, secret: str) -> dict:
    """A key just created: the SDK's `CreateApiKeyResponse` (the secret shown this once) and the key's fields."""
    return {**api_key(k), "key": secret}


LIMITS = component("Limits", model(Limits, ..., tier=PLAN))


def limits(lim: Limits) -> dict:
    return lim.as_dict()


USAGE_ITEM = component("UsageItem", obj({"current": INTEGER, "limit": nullable(INTEGER), "is_disabled": BOOLEAN,
                                         "percentage": nullable(NUMBER)}))


def usage_item(current: int, limit: int | None, disabled: bool = False) -> dict:
    return {"current": current, "limit": limit, "is_disabled": disabled,
            "percentage": round(100.0 * current / limit, 1) if limit else None}


USAGE_INFO = component("UsageInfo", obj({
    "plan": PLAN, "plan_display_name": STRING, "limits": LIMITS,
    "usage": obj({resource: USAGE_ITEM for resource in RESOURCE_LIMIT}),
    "warnings": array(obj({"resource": enum(*RESOURCE_LIMIT), "severity": enum("warning", "critical"),
                           "message": STRING}))}))


def usage_info(lim: Limits, u: Usage) -> dict:
    """The SDK's `UsageInfo` (GET /organizations/usage): each resource against its limit, and warnings from
    50 % (free plan) or 80 % (other plans) of a limit."""
    threshold = 50.0 if lim.tier == "free" else 80.0
    usage, warnings = {}, []
    for resource in RESOURCE_LIMIT:
        limit = lim.limit_of(resource)
        item = usage[resource] = usage_item(getattr(u, resource), limit, limit == 0)
        pct = item["percentage"]
        if pct is not None and pct >= threshold:
            warnings.append({"resource": resource, "severity": "critical" if pct >= 100 else "warning",
                             "message": f"{resource.replace('_', ' ')}: {item['current']} of {limit} used"})
    return {"plan": lim.tier, "plan_display_name": lim.display_name, "limits": lim.as_dict(), "usage": usage,
            "warnings": warnings}


BILLING_STATUS = component("BillingStatus", merge(
    model(Organization, "stripe_subscription_id", "stripe_subscription_status", "stripe_current_period_end",
          "stripe_cancel_at_period_end", plan_tier=PLAN, has_stripe_customer=BOOLEAN, limits=LIMITS),
    obj({"usage": model(Usage, "jobs_today", "active_jobs", "queues", "workers", "webhooks", "schedules")})))


def billing_status(o: Organization, lim: Limits, u: Usage) -> dict:
    return {"plan_tier": o.plan_tier, "has_stripe_customer": o.stripe_customer_id is not None,
            "stripe_subscription_id": o.stripe_subscription_id,
            "stripe_subscription_status": o.stripe_subscription_status,
            "stripe_current_period_end": o.stripe_current_period_end,
            "stripe_cancel_at_period_end": o.stripe_cancel_at_period_end,
            "usage": {"jobs_today": u.jobs_today, "active_jobs": u.active_jobs, "queues": u.queues,
                      "workers": u.workers, "webhooks": u.webhooks, "schedules": u.schedules},
            "limits": lim.as_dict()}


MEMBER = component("Member", obj({"id": STRING, "user_id": STRING, "email": STRING, "name": STRING,
                                  "role": const("owner"), "joined_at": TIME, "invited_by": {"type": "null"}}))


def members(o: Organization) -> list[dict]:
    """The organization's people: its billing contact (the server keeps no user accounts)."""
    if not o.billing_email:
        return []
    return [{"id": str(o.id), "user_id": str(o.id), "email": o.billing_email,
             "name": o.billing_email.partition("@")[0], "role": "owner", "joined_at": o.created_at,
             "invited_by": None}]


WEBHOOK = component("OutgoingWebhook", model(
    Webhook, "id", "organization_id", "name", "url", "events", "enabled", "failure_count", "last_triggered_at",
    "last_status", "created_at", "updated_at", format=enum(*WEBHOOK_FORMATS), secret_set=BOOLEAN))


def webhook(w: Webhook) -> dict:
    """An outgoing webhook as the SDK's OutgoingWebhook (never the secret; `secret_set` tells whether one is)."""
    return {"id": str(w.id), "organization_id": str(w.organization_id), "name": w.name, "url": w.url,
            "events": list(w.events), "format": w.format, "enabled": w.enabled, "failure_count": w.failure_count,
            "last_triggered_at": w.last_triggered_at, "last_status": w.last_status, "secret_set": bool(w.secret),
            "created_at": w.created_at, "updated_at": w.updated_at}


DELIVERY = component("WebhookDelivery", model(
    Delivery, "id", "webhook_id", "event", "attempts", "status_code", "response_body", "error", "created_at",
    "delivered_at", status=enum("pending", "success", "failed"),
    payload=obj({"id": STRING, "event": STRING, "created_at": TIME, "data": ANY},
                description="the body it is (or was) sent as")))


def delivery(d: Delivery, body: dict) -> dict:
    """A delivery, with `payload` the body it is (or was) sent as."""
    return {"id": str(d.id), "webhook_id": opt_str(d.webhook_id), "event": d.event, "payload": body,
            "status": d.status, "attempts": d.attempts, "status_code": d.status_code,
            "response_body": d.response_body, "error": d.error, "created_at": d.created_at,
            "delivered_at": d.delivered_at}


INBOUND = component("InboundDelivery", model(InboundDelivery, ..., status=enum("created", "duplicate")))


def inbound(d: InboundDelivery) -> dict:
    return {"id": str(d.id), "provider": d.provider, "event_type": d.event_type, "matched_queue": d.matched_queue,
            "job_id": opt_str(d.job_id), "status": d.status, "created_at": d.created_at}


SCHEDULE = component("Schedule", model(Schedule, ...))


def schedule(s: Schedule) -> dict:
    return {
        "id": str(s.id), "organization_id": str(s.organization_id), "name": s.name, "description": s.description,
        "cron_expression": s.cron_expression, "timezone": s.timezone, "queue_name": s.queue_name,
        "payload_template": raw(s.payload_template), "priority": s.priority, "max_retries": s.max_retries,
        "timeout_seconds": s.timeout_seconds, "is_active": s.is_active, "last_run_at": s.last_run_at,
        "next_run_at": s.next_run_at, "run_count": s.run_count, "tags": raw(s.tags), "metadata": raw(s.metadata),
        "catch_up": s.catch_up, "overlap": s.overlap, "created_at": s.created_at, "updated_at": s.updated_at,
    }


SCHEDULE_RUN = component("ScheduleRun", model(ScheduleRun, ...))


def schedule_run(r: ScheduleRun) -> dict:
    return {"id": str(r.id), "schedule_id": str(r.schedule_id), "job_id": opt_str(r.job_id), "status": r.status,
            "error_message": r.error_message, "fire_time": r.fire_time, "manual": r.manual,
            "started_at": r.started_at, "completed_at": r.completed_at}


DASHBOARD = component("DashboardData", obj({
    "system": obj({"version": STRING, "uptime_seconds": INTEGER, "started_at": TIME, "database_status": STRING,
                   "cache_status": STRING, "environment": STRING}),
    "jobs": model(JobCounts, "total", "pending", "processing", "completed_24h", "failed_24h", "deadletter",
                  avg_wait_time_ms="avg_wait_ms", avg_processing_time_ms="avg_processing_ms",
                  counts_capped_at=INTEGER),
    "queues": array(model(QueueLoad, ...)),
    "workers": model(WorkerCounts, ..., unhealthy=INTEGER),
    "recent_activity": model(JobCounts, jobs_created_1h="created_1h", jobs_completed_1h="completed_1h",
                             jobs_failed_1h="failed_1h")}))


def dashboard(s: Summary, system: dict) -> dict:
    j, w = s.jobs, s.workers
    return {
        "system": system,
        "jobs": {"total": j.total, "pending": j.pending, "processing": j.processing, "completed_24h": j.completed_24h,
                 "failed_24h": j.failed_24h, "deadletter": j.deadletter, "avg_wait_time_ms": j.avg_wait_ms,
                 "avg_processing_time_ms": j.avg_processing_ms, "counts_capped_at": s.count_cap},
        "queues": [{"name": q.name, "pending": q.pending, "processing": q.processing, "paused": q.paused}
                   for q in s.queues],
        "workers": {"total": w.total, "healthy": w.healthy, "unhealthy": w.total - w.healthy},
        "recent_activity": {"jobs_created_1h": j.created_1h, "jobs_completed_1h": j.completed_1h,
                            "jobs_failed_1h": j.failed_1h},
    }


_WORKFLOW = model(Workflow, ..., status=enum(*WORKFLOW_STATUSES), progress_percent=NUMBER)
WORKFLOW = component("Workflow", _WORKFLOW)


def workflow(w: Workflow) -> dict:
    """api.md "Workflows" (+ cancelled_jobs, updated_at, organization_id)."""
    return {
        "id": str(w.id), "organization_id": str(w.organization_id), "name": w.name, "description": w.description,
        "status": w.status, "total_jobs": w.total_jobs, "completed_jobs": w.completed_jobs,
        "failed_jobs": w.failed_jobs, "cancelled_jobs": w.cancelled_jobs,
        "progress_percent": round(100.0 * w.completed_jobs / w.total_jobs, 2) if w.total_jobs else 0.0,
        "created_at": w.created_at, "updated_at": w.updated_at, "started_at": w.started_at,
        "completed_at": w.completed_at, "metadata": raw(w.metadata),
    }


WORKFLOW_DETAIL = component("WorkflowDetail", merge(_WORKFLOW, obj({
    "jobs": array(component("WorkflowJob", merge(JOB_OBJECT, obj({
            "depends_on": array(STRING), "timeout_ms": INTEGER, "attempt": INTEGER, "metadata": ANY,
            "error": nullable(obj({"type": STRING, "message": STRING}))})))),
    "dependencies": array(model(DependencyEdge, ...))})))


def workflow_detail(w: Workflow, jobs: list[Job], edges: list[DependencyEdge]) -> dict:
    """The workflow plus `jobs` and `dependencies: [{parent_job_id, child_job_id}]`. Each job is a full job with
    `depends_on` (its dependencies' ids) and the fields the SDK's WorkflowJob reads: `timeout_ms`, `attempt`
    (retry_count), `error` ({type, message} from last_error) and `metadata` (the job's tags)."""
    parents: dict = {}
    for e in edges:
        parents.setdefault(e.child_job_id, []).append(str(e.parent_job_id))
    out = workflow(w)
    out["jobs"] = [{**job(j), "depends_on": parents.get(j.id, []), "timeout_ms": j.timeout_seconds * 1000,
                    "attempt": j.retry_count, "metadata": raw(j.tags),
                    "error": {"type": "JobError", "message": j.last_error} if j.last_error else None}
                   for j in jobs]
    out["dependencies"] = [{"parent_job_id": str(e.parent_job_id), "child_job_id": str(e.child_job_id)}
                           for e in edges]
    return out


_RELATED = model(RelatedJob, ..., status=JOB_STATUS)
JOB_DEPENDENCIES_OBJECT = model(JobDependencies, "job_id", "dependencies_met",
                                dependency_mode=enum(*DEPENDENCY_MODES), dependencies=array(_RELATED),
                                dependents=array(_RELATED))
JOB_DEPENDENCIES = component("JobDependencies", JOB_DEPENDENCIES_OBJECT)


def job_dependencies(d: JobDependencies) -> dict:
    """GET /jobs/{id}/dependencies. A job that takes no part in dependencies shows mode "all" (the SDK's model
    requires a mode)."""
    def related(items):
        return [{"job_id": str(r.job_id), "status": r.status, "queue_name": r.queue_name} for r in items]
    return {"job_id": str(d.job_id), "dependencies": related(d.dependencies), "dependents": related(d.dependents),
            "dependency_mode": d.dependency_mode or "all", "dependencies_met": d.dependencies_met}
