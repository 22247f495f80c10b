"""Realtime frames (api.md "Realtime"): `{"type", "data", "timestamp"}` with the PascalCase types the official
SDKs map (`JobCreated`, `JobStatusChange`, `JobCompleted`, `JobFailed`, `QueueStats`, `WorkerRegistered`,
`WorkerDeregistered`, `WorkerHeartbeat`, `Ping`, `Error`). The timestamp is also inside `data`, where the SDK's SSE client reads it.
"""

from __future__ import annotations

import datetime as dt

import orjson

from spooled.domain.models import Job
from spooled.domain.states import TERMINAL, JobStatus
from spooled.services.events import Event

TERMINAL_STATUSES = frozenset(s.value for s in TERMINAL)
_ATTEMPT_ENDS = frozenset({"scheduled", "pending", "deadletter", "failed"})


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def frame(kind: str, data: dict, at: str | None = None) -> dict:
    at = at or now()
    return {"type": kind, "data": {**data, "timestamp": at}, "timestamp": at}


def frames(ev: Event) -> list[dict]:
    """The frames one event becomes (none for events that have no realtime type, such as queue.paused)."""
    if ev.job_id is not None:
        base = {"job_id": ev.job_id, "queue_name": ev.queue_name}
        if ev.event == "created":
            return [frame("JobCreated", {**base, "status": ev.new_status}, ev.at)]
        out = [frame("JobStatusChange", {**base, "old_status": ev.old_status, "new_status": ev.new_status,
                                         "worker_id": ev.worker_id, "retry_count": ev.retry_count}, ev.at)]
        if ev.new_status == JobStatus.COMPLETED:
            out.append(frame("JobCompleted", {**base, "worker_id": ev.worker_id}, ev.at))
        elif ev.old_status == JobStatus.PROCESSING and ev.new_status in _ATTEMPT_ENDS and ev.event != "released":
            out.append(frame("JobFailed", {**base, "error": ev.error, "retry_count": ev.retry_count,
                                           "will_retry": ev.new_status in ("scheduled", "pending")}, ev.at))
        return out
    data = ev.data or {}
    if ev.event == "worker.registered":
        return [frame("WorkerRegistered", data, ev.at)]
    if ev.event == "worker.deregistered":
        return [frame("WorkerDeregistered", data, ev.at)]
    if ev.event == "worker.heartbeat":
        return [frame("WorkerHeartbeat", data, ev.at)]
    return []


def ends_job(ev: Event, job_id: str | None) -> bool:
    """Whether `ev` is the terminal transition of the job a job stream follows."""
    return job_id is not None and ev.job_id == job_id and ev.new_status in TERMINAL_STATUSES


def snapshot(job: Job) -> dict:
    """A job stream's first frame: the job's status now (`old_status` null)."""
    return frame("JobStatusChange", {"job_id": str(job.id), "queue_name": job.queue_name, "old_status": None,
                                     "new_status": job.status, "worker_id": job.assigned_worker_id,
                                     "retry_count": job.retry_count})


def error(code: str, message: str) -> dict:
    return frame("Error", {"code": code, "message": message})


def ping() -> dict:
    return frame("Ping", {})


RESYNC_MESSAGE = "Events may have been missed (the server's event feed was interrupted): re-read what you need"
SLOW_MESSAGE = "This stream fell too far behind and was closed: reconnect"


def encode(f: dict) -> bytes:
    return orjson.dumps(f)


def sse(f: dict) -> bytes:
    """One data-only SSE frame."""
    return b"data: " + orjson.dumps(f) + b"\n\n"


KEEPALIVE = b": keep-alive\n\n"
