"""A worker over gRPC with the official grpcio stack (`pip install grpcio grpcio-tools`), from the wire contract
`proto/spooled.proto` (compiled here at start; commit generated stubs in a real project).

    SPOOLED_GRPC=127.0.0.1:50051 SPOOLED_API_KEY=sk_live_... python grpc_worker.py

It registers (WorkerService.Register), then asks `Dequeue` for up to 10 jobs, letting the server hold the call
up to 5 s while the queue is empty (`wait_ms`, woken by the enqueue, no polling), and completes each
(`Complete` with its lease) or fails it (`Fail`: retried with backoff). The API key travels as `x-api-key`
metadata. SIGTERM/Ctrl-C: finish the jobs in hand, deregister, exit. SPOOLED_MAX_JOBS=N stops it after N jobs.
"""

import importlib.resources
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

import grpc
from google.protobuf import json_format
from grpc_tools import protoc

ADDRESS = os.environ.get("SPOOLED_GRPC", "127.0.0.1:50051")
QUEUE = os.environ.get("SPOOLED_QUEUE", "emails")
MAX_JOBS = int(os.environ.get("SPOOLED_MAX_JOBS", "0"))
PROTO = Path(os.environ.get("SPOOLED_PROTO", Path(__file__).resolve().parent.parent / "proto" / "spooled.proto"))
stopping = False


def load_stubs():
    """spooled_pb2 / spooled_pb2_grpc generated from the proto into a temporary directory."""
    out = tempfile.mkdtemp(prefix="spooled-stubs-")
    include = importlib.resources.files("grpc_tools") / "_proto"
    code = protoc.main(["protoc", f"-I{PROTO.parent}", f"-I{include}", f"--python_out={out}",
                        f"--grpc_python_out={out}", PROTO.name])
    if code != 0:
        sys.exit(f"could not compile {PROTO}")
    sys.path.insert(0, out)
    import spooled_pb2
    import spooled_pb2_grpc
    return spooled_pb2, spooled_pb2_grpc


def handle(payload: dict) -> dict:
    to = payload["to"]
    if "@" not in to:
        raise ValueError(f"not an address: {to!r}")
    return {"sent_to": to}


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: globals().__setitem__("stopping", True))
    pb, rpc = load_stubs()
    md = (("x-api-key", os.environ["SPOOLED_API_KEY"]),)
    with grpc.insecure_channel(ADDRESS) as channel:
        queue, workers = rpc.QueueServiceStub(channel), rpc.WorkerServiceStub(channel)
        me = workers.Register(pb.RegisterWorkerRequest(queue_name=QUEUE, hostname=socket.gethostname(),
                                                       worker_type="example-grpcio", max_concurrency=10),
                              metadata=md, timeout=10)
        done = 0
        try:
            while not stopping and not (MAX_JOBS and done >= MAX_JOBS):
                got = queue.Dequeue(pb.DequeueRequest(queue_name=QUEUE, worker_id=me.worker_id, batch_size=10,
                                                      lease_duration_secs=60, wait_ms=5000),
                                    metadata=md, timeout=15)
                for job in got.jobs:
                    payload = json_format.MessageToDict(job.payload)
                    try:
                        result = handle(payload)
                    except Exception as exc:
                        queue.Fail(pb.FailRequest(job_id=job.id, lease_id=job.lease_id, worker_id=me.worker_id,
                                                  error=str(exc)), metadata=md, timeout=10)
                        print(f"job {job.id} failed: {exc}", flush=True)
                    else:
                        r = pb.CompleteRequest(job_id=job.id, lease_id=job.lease_id, worker_id=me.worker_id)
                        r.result.update(result)
                        queue.Complete(r, metadata=md, timeout=10)
                        print(f"job {job.id} done: {result}", flush=True)
                    done += 1
                workers.Heartbeat(pb.HeartbeatRequest(worker_id=me.worker_id, current_jobs=0), metadata=md,
                                  timeout=10)
        finally:
            workers.Deregister(pb.DeregisterRequest(worker_id=me.worker_id), metadata=md, timeout=10)
    print(f"stopped after {done} jobs", flush=True)


if __name__ == "__main__":
    main()
