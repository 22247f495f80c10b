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


async def test_non_finite_numbers_over_grpc_are_invalid_argument_and_write_nothing(rpc, api):
    """A Struct may hold NaN or an infinity; JSON cannot (REST refuses them too)."""
    with trio.fail_after(30):
        for payload in [{"x": float("nan")}, {"x": [1, float("inf")]}, {"d": {"y": float("-inf")}}]:
            with pytest.raises(Failed) as err:
                await rpc.call("Enqueue", pb.EnqueueRequest(queue_name="nf", payload=struct(payload)))
            assert err.value.code == "INVALID_ARGUMENT", payload
        assert (await api.get("/api/v1/jobs")).json() == []


async def test_struct_payloads_round_trip_as_json(rpc, api):
    """Integral numbers come back as integers (within 2^53), others as floats; nesting, lists, null, bool."""
    with trio.fail_after(30):
        payload = {"i": 1, "f": 1.5, "big": 2.0 ** 60, "neg": -3.0, "s": "x\u00e9", "b": True, "n": None,
                   "l": [1, "a", None, [2.5, {"z": False}]], "d": {"e": {}}, "el": []}
        jid = (await rpc.call("Enqueue", pb.EnqueueRequest(queue_name="rt", payload=struct(payload)))).job_id
        got = (await job(api, jid))["payload"]
        assert got == {**payload, "neg": -3, "big": 2.0 ** 60}
        assert type(got["i"]) is int and type(got["neg"]) is int and type(got["big"]) is float
