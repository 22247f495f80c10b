"""Rate limits (api.md "Rate limiting"): per-organization token buckets (and per key with its own limit), the
X-RateLimit-* headers, 429 with Retry-After, RESOURCE_EXHAUSTED with `retry-after` over gRPC, tenants isolated,
buckets sized by the live instance count. Time is an injected clock: nothing sleeps."""

from __future__ import annotations

import math
import grpc
import httpx
import pytest
import trio

from spooled.services.ratelimit import RateLimiter, Throttled
from tests.access import Clock, admin_org, bearer, instance, settings_with_admin, with_grpcio
from tests.grpcio_gen import spooled_pb2 as pb
from tests.grpcio_gen import spooled_pb2_grpc


@pytest.fixture
def settings(tmp_path, dsn):
    return settings_with_admin(tmp_path, dsn)


def test_bucket_arithmetic_with_an_injected_clock():
    clock = Clock(1000.0)
    rl = RateLimiter(clock)
    seen = [rl.take("a", 4) for _ in range(4)]
    assert [d.remaining for d in seen] == [3, 2, 1, 0] and {d.limit for d in seen} == {4}
    assert seen[-1].reset == 1001 and seen[0].scope == "organization"
    with pytest.raises(Throttled) as refused:
        rl.take("a", 4)
    assert refused.value.retry_after == 1 and refused.value.decision.remaining == 0
    assert rl.take("b", 4).remaining == 3          # another tenant: its own full bucket
    clock.advance(0.5)                              # half a second refills 2 of 4
    assert rl.take("a", 4).remaining == 1
    clock.advance(10)
    assert rl.take("a", 4).remaining == 3           # never above the capacity
    # a key's own limit is per minute, and the tighter bucket is reported
    for left in (1, 0):
        d = rl.take("c", 100, "k1", 2)
        assert (d.scope, d.limit, d.remaining) == ("api_key", 2, left)
    with pytest.raises(Throttled) as refused:
        rl.take("c", 100, "k1", 2)
    assert refused.value.retry_after == 30 and refused.value.decision.scope == "api_key"
    assert rl.take("c", 100).remaining == 97        # the refusal took nothing from the organization
    # several instances: each holds limit / n, headers report the organization-wide figures
    rl.instances = 2
    d = rl.take("d", 10)
    assert (d.limit, d.remaining) == (10, 8)        # 5 here, 4 left, reported as 4 * 2
    for _ in range(4):
        rl.take("d", 10)
    with pytest.raises(Throttled):
        rl.take("d", 10)
    clock.advance(1000)
    assert rl.evict_full() == 5 and rl.take("a", 4).remaining == 2   # a fresh full bucket (2 here, times 2)


async def test_burst_headers_429_and_other_tenant_unaffected(server, client):
    clock = Clock()
    server.services.set_clock(clock)
    _, key = await admin_org(client, plan="free")               # 5 requests/second
    _, other = await admin_org(client, plan="free", name="Other")
    seen = []
    for _ in range(5):
        r = await client.get("/api/v1/jobs", headers=bearer(key))
        assert r.status_code == 200, r.text
        seen.append(r)
    assert [int(r.headers["X-RateLimit-Remaining"]) for r in seen] == [4, 3, 2, 1, 0]
    assert {r.headers["X-RateLimit-Limit"] for r in seen} == {"5"}
    assert {r.headers["X-RateLimit-Scope"] for r in seen} == {"organization"}
    assert int(seen[-1].headers["X-RateLimit-Reset"]) == math.ceil(clock.now + 1)
    # a POST refused with its body unread: the keep-alive connection still answers the next request
    r = await client.post("/api/v1/jobs", headers=bearer(key), json={"queue_name": "q", "payload": {"x": "y" * 5000}})
    assert r.status_code == 429 and r.json()["code"] == "RATE_LIMIT_EXCEEDED" and r.json()["error"] == "rate_limited"
    assert r.headers["Retry-After"] == "1" and r.headers["X-RateLimit-Remaining"] == "0"
    assert (await client.get("/api/v1/jobs", headers=bearer(other))).status_code == 200   # not slowed
    assert (await client.get("/api/v1/jobs", headers=bearer(key))).status_code == 429
    clock.advance(1.0)
    r = await client.get("/api/v1/jobs", headers=bearer(key))
    assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "4"
    jobs = (await client.get("/api/v1/jobs", headers=bearer(key))).json()
    assert jobs == []                                          # the refused POST created nothing


async def test_unauthenticated_and_error_responses(server, client, api):
    r = await client.get("/api/v1/jobs")
    assert r.status_code == 401 and "X-RateLimit-Limit" not in r.headers
    r = await api.get("/api/v1/jobs/not-a-job")                # an error still reports the figures
    assert r.status_code == 404 and r.headers["X-RateLimit-Limit"] == "10000"


async def test_an_api_keys_own_rate_limit(server, client):
    server.services.set_clock(Clock())
    _, key = await admin_org(client, plan="pro")
    r = await client.post("/api/v1/api-keys", headers=bearer(key), json={"name": "slow", "rate_limit": 2})
    slow = r.json()["key"]
    assert r.json()["rate_limit"] == 2
    for _ in range(2):
        r = await client.get("/api/v1/jobs", headers=bearer(slow))
        assert r.status_code == 200 and r.headers["X-RateLimit-Scope"] == "api_key"
    r = await client.get("/api/v1/jobs", headers=bearer(slow))
    assert r.status_code == 429 and r.headers["Retry-After"] == "30" and r.headers["X-RateLimit-Limit"] == "2"
    assert (await client.get("/api/v1/jobs", headers=bearer(key))).status_code == 200   # the org's other key


async def test_grpc_rate_limit_is_resource_exhausted_with_retry_after(server, client):
    server.services.set_clock(Clock())
    _, key = await admin_org(client, plan="free")

    def calls(channel) -> list:
        stub, out = spooled_pb2_grpc.QueueServiceStub(channel), []
        for _ in range(6):
            try:
                stub.Enqueue(pb.EnqueueRequest(queue_name="q"), metadata=(("x-api-key", key),), timeout=20)
                out.append("OK")
            except grpc.RpcError as exc:
                out.append((exc.code().name, exc.details(), dict(exc.trailing_metadata() or ())))
        return out
    out = await with_grpcio(server.grpc_address, calls)
    assert out[:5] == ["OK"] * 5
    code, message, trailing = out[5]
    assert code == "RESOURCE_EXHAUSTED" and "limit reached" not in message and trailing["retry-after"] == "1"
    # /metrics counts the call by the status the handler sent itself (observe.note_status)
    from tests.test_metrics import scrape
    counted = (await scrape(client)).get("spooled_grpc_requests_total", method="/spooled.v1.QueueService/Enqueue",
                                         status="RESOURCE_EXHAUSTED")
    assert counted == 1


async def test_buckets_are_sized_by_the_live_instances(aio_loop, server, client, tmp_path, dsn):
    """Two instances on one database: after their heartbeats each holds half the plan's rate."""
    settings = settings_with_admin(tmp_path / "b", dsn)
    clock = Clock()
    _, key = await admin_org(client, plan="starter")            # 25 requests/second
    async with instance(settings, dsn) as other:
        for running in (server, other):
            running.services.set_clock(clock)
        with trio.fail_after(30):
            for running in (server, other, server):     # each sees the other's heartbeat
                await running.services.admission.run_once()
            assert [r.services.admission.limiter.instances for r in (server, other)] == [2, 2]
            async with httpx.AsyncClient(base_url=other.http_url, headers=bearer(key), timeout=10) as b:
                codes = [(await client.get("/api/v1/queues", headers=bearer(key))).status_code
                         for _ in range(13)]
                assert codes == [200] * 12 + [429]           # 12.5 per instance
                r = await b.get("/api/v1/queues")            # the other instance has its own half
                assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "23"   # 11.5 of 12.5, x2
            # one instance leaves: the survivor's next heartbeat gives it the whole rate again
            await other.services.admission.leave()
            await server.services.admission.run_once()
            assert server.services.admission.limiter.instances == 1
            clock.advance(1)
            codes = [(await client.get("/api/v1/queues", headers=bearer(key))).status_code for _ in range(26)]
            assert codes == [200] * 25 + [429]
