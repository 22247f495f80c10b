"""NUL over gRPC (issue 10 "Bad input"): protobuf strings may hold NUL, PostgreSQL text may not. A NUL in a
payload, a result, a worker id or an error is INVALID_ARGUMENT, nothing is written, and the organization's
REST listing keeps working."""

from __future__ import annotations

import pytest
import trio

from tests.grpcio_gen import spooled_pb2 as pb
from tests.helpers import job
from tests.test_grpc import Failed, rpc, struct  # noqa: F401 (rpc is a fixture)


async def test_nul_over_grpc_is_invalid_argument_and_writes_nothing(rpc, api):
    with trio.fail_after(30):
        async def code_of(method, request) -> str:
            with pytest.raises(Failed) as err:
                await rpc.call(method, request)
            return err.value.code

        for payload in [{"job_type": "a\x00b"}, {"k\x00": 1}, {"deep": {"list": ["x", "\x00"]}}]:
            assert await code_of("Enqueue", pb.EnqueueRequest(queue_name="g", payload=struct(payload))) == \
                "INVALID_ARGUMENT", payload
        assert (await api.get("/api/v1/jobs")).json() == []

        jid = (await rpc.call("Enqueue", pb.EnqueueRequest(queue_name="g", payload=struct({"ok": 1})))).job_id
        assert await code_of("Dequeue", pb.DequeueRequest(queue_name="g", worker_id="w\x00")) == "INVALID_ARGUMENT"
        (leased,) = (await rpc.call("Dequeue", pb.DequeueRequest(queue_name="g", worker_id="w"))).jobs
        assert await code_of("Complete", pb.CompleteRequest(job_id=jid, lease_id=leased.lease_id,
                                                            result=struct({"r": "\x00"}))) == "INVALID_ARGUMENT"
        assert await code_of("Fail", pb.FailRequest(job_id=jid, lease_id=leased.lease_id,
                                                    error="boom\x00")) == "INVALID_ARGUMENT"
        assert (await job(api, jid))["status"] == "processing"
        r = await api.get("/api/v1/jobs")
        assert r.status_code == 200 and [j["id"] for j in r.json()] == [jid]
