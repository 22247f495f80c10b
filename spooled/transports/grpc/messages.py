"""Protobuf messages <-> service inputs and domain models. No business rules: zero values become "server default"
(grpc.md: proto3 zero values), and validation is the same attrs inputs REST structures into.

JSON on this path travels as `google.protobuf.Struct`, whose numbers are doubles:
- incoming: a whole double within +-2**53 is stored as an integer (3.0 -> 3), so REST readers see what a JSON
  client would have sent; other numbers are stored as doubles;
- outgoing: every number becomes a double (3 -> 3.0 in Python clients) and integers beyond 2**53 lose precision;
- a job `result` that is not a JSON object (REST accepts any JSON) is sent as `{"value": <result>}`.
"""

from __future__ import annotations

import datetime as dt
import json
import typing

from google.protobuf import struct_pb2, timestamp_pb2

from spooled.convert import NON_FINITE
from spooled.domain import errors, inputs
from spooled.domain.errors import FieldError
from spooled.domain.states import JobStatus
from spooled.domain.inputs import RegisterWorker, WorkerHeartbeat
from spooled.domain.models import Job, QueueStats
from spooled.domain.tracecontext import TraceContext, from_carrier
from spooled.transports.grpc.gen import spooled_pb2 as pb

T = typing.TypeVar("T")

DEFAULT_LEASE_SECS = 30
MAX_BATCH = 100                 # Dequeue batch_size: larger asks are served up to this (clamped, not refused)
MAX_WAIT_SECS = 30.0            # Dequeue wait_ms is capped like REST's wait_secs
MAX_BULK = 1000                 # EnqueueBulk / CompleteBatch items per call

STATUS = {s.value: pb.JobStatus.Value(f"JOB_STATUS_{s.name}") for s in JobStatus}
_EXACT = 2 ** 53
_INF = float("inf")


def build(cls: type[T], **values: typing.Any) -> T:
    """An attrs input from message fields; a validator's complaint becomes `ValidationFailed` (INVALID_ARGUMENT)."""
    try:
        return cls(**values)
    except FieldError as exc:
        raise errors.invalid(exc.field, str(exc)) from None


def _number(x: float) -> typing.Any:
    """A Struct number as JSON: an integral one (within 2^53, exact in a double) as an int. NaN and the
    infinities are not JSON: refused as REST refuses them (protobuf's own JSON mapping raised a ValueError)."""
    if x.is_integer() and -_EXACT <= x <= _EXACT:
        return int(x)
    if x != x or x in (_INF, -_INF):
        raise errors.ValidationFailed(NON_FINITE, {"body": "must not contain NaN or Infinity"})
    return x


def _value(v: struct_pb2.Value) -> typing.Any:
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        return v.string_value
    if kind == "number_value":
        return _number(v.number_value)
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        return {k: _value(c) for k, c in v.struct_value.fields.items()}
    if kind == "list_value":
        return [_value(c) for c in v.list_value.values]
    return None     # null_value, or no kind set


def from_struct(s: struct_pb2.Struct) -> dict:
    """A Struct as JSON, as protobuf's JSON mapping (`json_format.MessageToDict`) reads it, integral numbers as
    ints; walked directly (MessageToDict took ~9 us for a small payload, most of a gRPC job's enqueue cost;
    this ~2 us)."""
    return {k: _value(c) for k, c in s.fields.items()}


def to_struct(value: typing.Any) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value if isinstance(value, dict) else {"value": value})
    return s


def _time(ts) -> dt.datetime:
    return ts.ToDatetime(dt.timezone.utc)


def job(j: Job) -> pb.Job:
    """A job (as REST shows it) as a `Job` message; a payload that is not a JSON object goes as {"value": ...}."""
    msg = pb.Job(
        id=str(j.id), organization_id=str(j.organization_id), queue_name=j.queue_name, status=STATUS[j.status],
        payload=to_struct(json.loads(j.payload)), retry_count=j.retry_count, max_retries=j.max_retries,
        last_error=j.last_error or "", priority=j.priority, timeout_seconds=j.timeout_seconds,
        assigned_worker_id=j.assigned_worker_id or "", idempotency_key=j.idempotency_key or "",
        lease_id=str(j.lease_id) if j.lease_id else "", traceparent=j.traceparent or "",
        tracestate=j.tracestate or "")
    if j.result is not None:
        msg.result.CopyFrom(to_struct(json.loads(j.result)))
    for name in ("created_at", "scheduled_at", "started_at", "completed_at", "lease_expires_at"):
        value = getattr(j, name)
        if value is not None:
            getattr(msg, name).CopyFrom(timestamp(value))
    return msg


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def timestamp(value: dt.datetime) -> timestamp_pb2.Timestamp:
    """`Timestamp.FromDatetime(value)` (naive: UTC) in half its time (it goes through `utctimetuple` and
    `calendar.timegm`; a Dequeue'd job has four)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    d = value - _EPOCH
    return timestamp_pb2.Timestamp(seconds=d.days * 86400 + d.seconds, nanos=d.microseconds * 1000)


# -- requests -> inputs ------------------------------------------------------------------------------------
def job_spec(req: pb.EnqueueRequest, queue_name: str) -> inputs.CreateJob:
    return build(
        inputs.CreateJob, queue_name=queue_name, payload=from_struct(req.payload),
        priority=req.priority or None, max_retries=req.max_retries or None,
        timeout_seconds=req.timeout_seconds or None,
        scheduled_at=_time(req.scheduled_at) if req.HasField("scheduled_at") else None,
        idempotency_key=req.idempotency_key or None, tags=dict(req.tags) or None,
        traceparent=req.traceparent or None, tracestate=req.tracestate or None)


def trace(metadata) -> TraceContext | None:
    """A call's W3C trace context from its `traceparent`/`tracestate` metadata (malformed: none)."""
    if metadata is None:
        return None
    return from_carrier(metadata.get("traceparent"), metadata.get("tracestate"))


def claim(queue_name: str, worker_id: str, lease_secs: int, batch_size: int = 1) -> inputs.Claim:
    if batch_size < 0:
        raise errors.invalid("batch_size", "must not be negative")
    return build(inputs.Claim, queue_name=queue_name, worker_id=worker_id, limit=min(batch_size or 1, MAX_BATCH),
                 lease_duration_secs=lease_secs or DEFAULT_LEASE_SECS)


def wait_secs(wait_ms: int) -> float:
    if wait_ms < 0:
        raise errors.invalid("wait_ms", "must not be negative")
    return min(wait_ms / 1000.0, MAX_WAIT_SECS)


def fence(lease_id: str, worker_id: str) -> None:
    """Complete/Fail/RenewLease need a lease_id, or a worker_id to act on the lease it holds (grpc.md)."""
    if not lease_id and not worker_id:
        raise errors.invalid("lease_id", "is required (or worker_id)")


def result_of(req: pb.CompleteRequest) -> typing.Any:
    return from_struct(req.result) if req.HasField("result") else None


def completion(req: pb.CompleteRequest, batch_worker: str = "") -> tuple[str, str | None, str | None, typing.Any]:
    """(job_id, lease_id, worker_id, result) for `Jobs.complete_many`; INVALID_ARGUMENT without a fence."""
    worker = req.worker_id or batch_worker
    fence(req.lease_id, worker)
    return req.job_id, req.lease_id or None, worker or None, result_of(req)


def fail(req: pb.FailRequest) -> inputs.Fail:
    return build(inputs.Fail, lease_id=req.lease_id or None, error=req.error, worker_id=req.worker_id or None,
                 retry=req.retry if req.HasField("retry") else None)


def renew(req: pb.RenewLeaseRequest) -> inputs.Heartbeat:
    return build(inputs.Heartbeat, lease_id=req.lease_id or None, worker_id=req.worker_id or None,
                 lease_duration_secs=req.extension_secs or DEFAULT_LEASE_SECS)


def register(req: pb.RegisterWorkerRequest) -> RegisterWorker:
    return build(RegisterWorker, hostname=req.hostname, queue_name=req.queue_name or None,
                 worker_id=req.worker_id if req.HasField("worker_id") else None,
                 worker_type=req.worker_type or None, max_concurrency=req.max_concurrency or 5,
                 version=req.version or None, metadata=dict(req.metadata) or None)


def heartbeat(req: pb.HeartbeatRequest) -> WorkerHeartbeat:
    return build(WorkerHeartbeat, current_jobs=req.current_jobs, status=req.status or None,
                 metadata=dict(req.metadata) or None)


def queue_stats(name: str, s: QueueStats) -> pb.GetQueueStatsResponse:
    return pb.GetQueueStatsResponse(
        queue_name=name, pending=s.pending, scheduled=s.scheduled, processing=s.processing, completed=s.completed,
        failed=s.failed, deadletter=s.deadletter, total=s.total,
        max_age_ms=int(s.max_age_secs * 1000) if s.max_age_secs is not None else 0)
