"""The job state machine, mirrored once from `schema.sql` (`CREATE TYPE job_status`); a test checks they agree."""

from __future__ import annotations

import enum


class JobStatus(str, enum.Enum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    DEADLETTER = "deadletter"
    CANCELLED = "cancelled"


P, S, R = JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.PROCESSING
C, F, D, X = JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.DEADLETTER, JobStatus.CANCELLED

# (from, event) -> allowed destinations; the SQL statements in store/queries/jobs.sql guard on exactly these.
TRANSITIONS: dict[tuple[JobStatus, str], frozenset[JobStatus]] = {
    (P, "claim"): frozenset({R}),
    (S, "due"): frozenset({P}),
    (R, "complete"): frozenset({C}),
    (R, "fail"): frozenset({S, D, F}),
    (R, "lease_expired"): frozenset({P, D, F}),
    (R, "worker_lost"): frozenset({P, D, F}),
    (R, "release"): frozenset({P}),          # leased but never delivered (a gRPC send failed): no retry counted
    (F, "retry"): frozenset({P}),
    (D, "retry"): frozenset({P}),
    (X, "retry"): frozenset({P}),
    (P, "cancel"): frozenset({X}),
    (S, "cancel"): frozenset({X}),
    (R, "cancel"): frozenset({X}),
    (P, "expire"): frozenset({X}),
    (S, "expire"): frozenset({X}),
}

TERMINAL = frozenset({C, F, D, X})
ACTIVE = frozenset({P, S, R})
RETRYABLE = frozenset(s for (s, ev) in TRANSITIONS if ev == "retry")
CANCELLABLE = frozenset(s for (s, ev) in TRANSITIONS if ev == "cancel")


def sources(event: str) -> frozenset[JobStatus]:
    """The states from which `event` is allowed."""
    return frozenset(s for (s, ev) in TRANSITIONS if ev == event)
