"""The committed gRPC code matches proto/spooled.proto, and the wire facts the official clients rely on hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpclib.const

from spooled.transports.grpc.gen import spooled_grpc, spooled_pb2

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_current():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--check"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, (
        "generated gRPC code is stale; run `python scripts/gen_proto.py`\n" + proc.stdout + proc.stderr
    )


def test_wire_facts():
    f = spooled_pb2.DESCRIPTOR
    assert f.package == "spooled.v1"
    assert f.name == "spooled.proto"

    def field(message: str, name: str):
        return f.message_types_by_name[message].fields_by_name[name]

    assert field("Job", "lease_id").number == 19
    assert field("Job", "status").enum_type.full_name == "spooled.v1.JobStatus"
    assert field("Job", "payload").message_type.full_name == "google.protobuf.Struct"
    assert field("Job", "created_at").message_type.full_name == "google.protobuf.Timestamp"
    assert field("FailRequest", "retry").number == 4
    assert field("FailRequest", "retry").has_presence  # proto3 `optional`: unset != false
    assert not field("FailRequest", "lease_id").has_presence
    assert field("RegisterWorkerRequest", "worker_id").has_presence
    assert field("GetQueueStatsResponse", "max_age_ms").number == 9
    assert field("ProcessResponse", "error").containing_oneof.name == "response"
    # extensions
    assert field("DequeueRequest", "wait_ms").number == 5
    assert field("CompleteBatchRequest", "completions").number == 2
    assert field("EnqueueBulkRequest", "jobs").number == 2

    status = f.enum_types_by_name["JobStatus"].values_by_name
    assert status["JOB_STATUS_UNSPECIFIED"].number == 0
    assert status["JOB_STATUS_DEADLETTER"].number == 6
    assert spooled_pb2.JOB_STATUS_CANCELLED == 7

    queue = f.services_by_name["QueueService"].methods_by_name
    assert set(queue) == {
        "Enqueue", "Dequeue", "Complete", "Fail", "RenewLease", "GetJob", "GetQueueStats",
        "StreamJobs", "ProcessJobs", "EnqueueBulk", "CompleteBatch",
    }
    assert (queue["StreamJobs"].client_streaming, queue["StreamJobs"].server_streaming) == (False, True)
    assert queue["StreamJobs"].output_type.full_name == "spooled.v1.Job"
    assert (queue["ProcessJobs"].client_streaming, queue["ProcessJobs"].server_streaming) == (True, True)
    assert (queue["Dequeue"].client_streaming, queue["Dequeue"].server_streaming) == (False, False)
    assert set(f.services_by_name["WorkerService"].methods_by_name) == {"Register", "Heartbeat", "Deregister"}

    # the grpclib service base agrees on the paths and cardinalities
    stub_methods = _grpclib_cardinalities()
    assert stub_methods["/spooled.v1.QueueService/StreamJobs"] is grpclib.const.Cardinality.UNARY_STREAM
    assert stub_methods["/spooled.v1.QueueService/ProcessJobs"] is grpclib.const.Cardinality.STREAM_STREAM
    assert stub_methods["/spooled.v1.QueueService/CompleteBatch"] is grpclib.const.Cardinality.UNARY_UNARY


def _grpclib_cardinalities() -> dict[str, grpclib.const.Cardinality]:
    class _Dummy(spooled_grpc.QueueServiceBase):
        pass

    async def _handler(self, stream):  # pragma: no cover - never called
        raise NotImplementedError

    for name in spooled_grpc.QueueServiceBase.__abstractmethods__:
        setattr(_Dummy, name, _handler)
    _Dummy.__abstractmethods__ = frozenset()
    return {path: handler.cardinality for path, handler in _Dummy().__mapping__().items()}


def test_message_round_trip_and_grpcio_stubs_share_messages():
    job = spooled_pb2.Job(id="j1", status=spooled_pb2.JOB_STATUS_PROCESSING, lease_id="lease-1")
    job.payload.update({"n": 3, "s": "x", "nested": {"ok": True}})
    job.lease_expires_at.FromSeconds(1_700_000_000)
    back = spooled_pb2.Job.FromString(job.SerializeToString())
    assert back == job
    assert back.payload["n"] == 3.0  # JSON numbers are doubles on the Struct path

    fail = spooled_pb2.FailRequest(job_id="j1", lease_id="lease-1")
    assert not spooled_pb2.FailRequest.FromString(fail.SerializeToString()).HasField("retry")
    fail.retry = False
    assert spooled_pb2.FailRequest.FromString(fail.SerializeToString()).HasField("retry")

    # Fresh process (cwd = repo root on sys.path): grpclib and grpcio generated modules import together and use
    # one set of message classes (spooled.proto registered once in the descriptor pool).
    code = (
        "import spooled.transports.grpc.gen.spooled_grpc as g, tests.grpcio_gen.spooled_pb2_grpc as o\n"
        "from tests.grpcio_gen import spooled_pb2\n"
        "assert o.spooled__pb2 is g.spooled_pb2 is spooled_pb2\n"
        "assert hasattr(o, 'QueueServiceStub') and hasattr(o, 'add_WorkerServiceServicer_to_server')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
