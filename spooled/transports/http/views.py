"""Rows -> JSON-ready dicts for REST responses. User JSON stored as text goes out verbatim (orjson.Fragment)."""

from __future__ import annotations

import orjson

from spooled.domain.models import ApiKey, Organization, Queue, QueueStats, Usage
from spooled.domain.plans import RESOURCE_LIMIT, Limits
from spooled.services.orgs import public_settings

JOB_SCALARS = ("queue_name", "status", "priority", "max_retries", "retry_count", "timeout_seconds", "last_error",
               "idempotency_key", "scheduled_at", "started_at", "completed_at", "expires_at", "lease_expires_at",
               "assigned_worker_id", "completion_webhook", "created_at", "updated_at")


def raw(text: str | None):
    return orjson.Fragment(text) if text is not None else None


def opt_str(value) -> str | None:
    return str(value) if value is not None else None


def job(r) -> dict:
    out = {"id": str(r["id"]), "organization_id": str(r["organization_id"])}
    for k in JOB_SCALARS:
        out[k] = r[k]
    out["payload"] = raw(r["payload"])
    out["result"] = raw(r["result"])
    out["tags"] = raw(r["tags"])
    out["lease_id"] = opt_str(r["lease_id"])
    if "job_type" in r:   # listings: the SDK's job summaries show payload.job_type
        out["job_type"] = r["job_type"]
    return out


def queue(q: Queue) -> dict:
    return {
        "id": str(q.id), "organization_id": str(q.organization_id), "queue_name": q.name, "name": q.name,
        "max_retries": q.max_retries, "default_timeout": q.default_timeout, "rate_limit": q.rate_limit,
        "concurrency_limit": q.concurrency_limit, "dead_letter": q.dead_letter,
        "retry_backoff_base_secs": q.backoff_base_secs, "retry_backoff_max_secs": q.backoff_max_secs,
        "enabled": not q.paused, "paused": q.paused, "paused_at": q.paused_at, "pause_reason": q.pause_reason,
        "settings": raw(q.settings), "created_at": q.created_at, "updated_at": q.updated_at,
    }


def queue_stats(name: str, s: QueueStats) -> dict:
    return {
        "queue_name": name, "pending_jobs": s.pending, "scheduled_jobs": s.scheduled,
        "processing_jobs": s.processing, "completed_jobs_24h": s.completed_24h, "failed_jobs_24h": s.failed_24h,
        "deadletter_jobs": s.deadletter, "active_workers": s.active_workers, "avg_processing_time_ms": s.avg_ms,
        "max_job_age_seconds": int(s.max_age_secs) if s.max_age_secs is not None else None,
    }


def history(r) -> dict:
    return {"id": str(r["id"]), "job_id": str(r["job_id"]), "event_type": r["event_type"],
            "old_status": r["old_status"], "new_status": r["new_status"], "worker_id": r["worker_id"],
            "details": raw(r["details"]), "created_at": r["created_at"]}


def org(o: Organization) -> dict:
    """The SDK's `Organization` (api.md): settings with secrets write-only, times, plan and Stripe state."""
    return {
        "id": str(o.id), "name": o.name, "slug": o.slug, "plan_tier": o.plan_tier, "billing_email": o.billing_email,
        "settings": public_settings(o.settings), "custom_limits": raw(o.custom_limits),
        "stripe_customer_id": o.stripe_customer_id, "stripe_subscription_id": o.stripe_subscription_id,
        "stripe_subscription_status": o.stripe_subscription_status,
        "stripe_current_period_end": o.stripe_current_period_end,
        "stripe_cancel_at_period_end": o.stripe_cancel_at_period_end,
        "suspended": o.suspended_at is not None, "created_at": o.created_at, "updated_at": o.updated_at,
    }


def org_summary(o: Organization) -> dict:
    return {"id": str(o.id), "name": o.name, "slug": o.slug, "plan_tier": o.plan_tier, "created_at": o.created_at}


def me_org(o: Organization) -> dict:
    return {"id": str(o.id), "name": o.name, "slug": o.slug, "plan_tier": o.plan_tier,
            "billing_email": o.billing_email}


def api_key(k: ApiKey) -> dict:
    """The SDK's `ApiKey` / `ApiKeySummary` (`last_used`; `last_used_at` kept for older clients)."""
    return {"id": str(k.id), "organization_id": str(k.organization_id), "name": k.name, "key_prefix": k.key_prefix,
            "queues": list(k.queues), "rate_limit": k.rate_limit, "read_only": k.read_only,
            "is_active": k.is_active, "created_at": k.created_at, "last_used": k.last_used_at,
            "last_used_at": k.last_used_at, "expires_at": k.expires_at}


def new_key(k: ApiKey, secret: str) -> dict:
    """A key just created: the SDK's `CreateApiKeyResponse` (the secret shown this once) and the key's fields."""
    return {**api_key(k), "key": secret}


def limits(lim: Limits) -> dict:
    return lim.as_dict()


def usage_item(current: int, limit: int | None, disabled: bool = False) -> dict:
    return {"current": current, "limit": limit, "is_disabled": disabled,
            "percentage": round(100.0 * current / limit, 1) if limit else None}


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


def billing_status(o: Organization, lim: Limits, u: Usage) -> dict:
    return {"plan_tier": o.plan_tier, "has_stripe_customer": o.stripe_customer_id is not None,
            "stripe_subscription_id": o.stripe_subscription_id,
            "stripe_subscription_status": o.stripe_subscription_status,
            "stripe_current_period_end": o.stripe_current_period_end,
            "stripe_cancel_at_period_end": o.stripe_cancel_at_period_end,
            "usage": {"jobs_today": u.jobs_today, "active_jobs": u.active_jobs, "queues": u.queues,
                      "workers": u.workers, "webhooks": u.webhooks, "schedules": u.schedules},
            "limits": lim.as_dict()}


def members(o: Organization) -> list[dict]:
    """The organization's people: its billing contact (the server keeps no user accounts)."""
    if not o.billing_email:
        return []
    return [{"id": str(o.id), "user_id": str(o.id), "email": o.billing_email,
             "name": o.billing_email.partition("@")[0], "role": "owner", "joined_at": o.created_at,
             "invited_by": None}]
