#!/usr/bin/env python3
"""The rig's gRPC driver (peers/grpc_driver.py) with workload A's fill through `EnqueueBulk`, our extension rpc
(shared/spec/grpc.md: up to 1,000 jobs, one statement), one call per rig batch (`--batch`, 1,000) sent one at a
time: the same shape as graphile-worker's fill (`addJobs` of 1,000 per call). The drain is the rig's own
(`--style`, `--claim-batch`, ...). The rig's driver knows only unary Enqueue (the official spooled.v1 has no bulk
rpc), so this file swaps in the fill and leaves everything else, the measurement included, to the rig.

Run by the rig as a "cmd" contestant (scripts/bench/grpc_bulk_driver.sh), in the rig's venv, with the rig's
peers/ directory as the working directory (where the rig runs every driver).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, os.getcwd())        # the rig's peers/ (grpc_driver, common, grpc_stubs)

import grpc_driver  # noqa: E402
from google.protobuf import struct_pb2  # noqa: E402

PROTO = Path(__file__).resolve().parents[2] / "proto" / "spooled.proto"


class BulkFill(grpc_driver.SpooledGrpc):
    async def fill(self, n: int) -> int:
        pb2, created = self.pb2, 0
        for start in range(0, n, self.a.batch):
            jobs = []
            for i in range(start, min(n, start + self.a.batch)):
                payload = struct_pb2.Struct()
                payload.update({"i": i})
                jobs.append(pb2.EnqueueRequest(queue_name=self.queue, payload=payload))
            answer = await self.stub.EnqueueBulk(pb2.EnqueueBulkRequest(queue_name=self.queue, jobs=jobs),
                                                 metadata=self.md)
            created += sum(1 for r in answer.results if r.job_id)
        return created


grpc_driver.SpooledGrpc = BulkFill

if __name__ == "__main__":
    if "--proto" not in sys.argv:
        sys.argv += ["--proto", str(PROTO)]        # ours: the rig's copy of spooled.v1 has no EnqueueBulk
    grpc_driver.main()
