"""Rows -> JSON-ready dicts for REST responses. User JSON stored as text goes out verbatim (orjson.Fragment)."""

from __future__ import annotations

import orjson

from spooled.domain.models import Delivery, InboundDelivery, Queue, QueueStats, Webhook

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


def org(r, settings: dict | None = None) -> dict:
    out = {"id": str(r["id"]), "name": r["name"], "slug": r["slug"], "plan_tier": r["plan_tier"],
           "billing_email": r["billing_email"] if "billing_email" in r else None, "created_at": r["created_at"]}
    if settings is not None:
        out["settings"] = settings
        out["updated_at"] = r["updated_at"]
    return out


def api_key(r) -> dict:
    return {"id": str(r["id"]), "name": r["name"], "queues": list(r["queues"]), "is_active": r["is_active"],
            "created_at": r["created_at"], "last_used_at": r["last_used_at"]}


def webhook(w: Webhook) -> dict:
    """An outgoing webhook as the SDK's OutgoingWebhook (never the secret; `secret_set` tells whether one is)."""
    return {"id": str(w.id), "organization_id": str(w.organization_id), "name": w.name, "url": w.url,
            "events": list(w.events), "format": w.format, "enabled": w.enabled, "failure_count": w.failure_count,
            "last_triggered_at": w.last_triggered_at, "last_status": w.last_status, "secret_set": bool(w.secret),
            "created_at": w.created_at, "updated_at": w.updated_at}


def delivery(d: Delivery, body: dict) -> dict:
    """A delivery, with `payload` the body it is (or was) sent as."""
    return {"id": str(d.id), "webhook_id": opt_str(d.webhook_id), "event": d.event, "payload": body,
            "status": d.status, "attempts": d.attempts, "status_code": d.status_code,
            "response_body": d.response_body, "error": d.error, "created_at": d.created_at,
            "delivered_at": d.delivered_at}


def inbound(d: InboundDelivery) -> dict:
    return {"id": str(d.id), "provider": d.provider, "event_type": d.event_type, "matched_queue": d.matched_queue,
            "job_id": opt_str(d.job_id), "status": d.status, "created_at": d.created_at}
