"""The fast lane (transports/http/lane.py) answers the hot job routes exactly as the quart app does.

A query string sends a request to the app (the lane takes only bare paths), so every case here is sent twice —
`path` (the lane) and `path?via=app` (quart) — on twin jobs, and the two answers must match: status, JSON body
(ids and times aside), header names, the rate-limit headers, the error bodies. The rest of the suite (test_jobs,
test_bad_input, test_ratelimit, test_connections, the SDK scripts) runs through the lane as well."""

from __future__ import annotations

import re

import httpx
import pytest
import trio

from spooled.transports.http import hot
from tests.access import Clock, admin_org, bearer, settings_with_admin

VOLATILE = re.compile(r"^([0-9a-f-]{36}|[0-9a-f]{32}|\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)?)$")
SKIP_HEADERS = {"date", "server", "x-request-id", "x-ratelimit-remaining", "x-ratelimit-reset"}


@pytest.fixture
def settings(tmp_path, dsn):
    return settings_with_admin(tmp_path, dsn)


def shape(value):
    """The body with ids, lease ids and timestamps blanked (twin jobs differ only there)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, str) and (VOLATILE.match(value) or value.startswith("lane-")):
        return "<v>"
    return value


def same(lane: httpx.Response, app: httpx.Response) -> None:
    assert lane.status_code == app.status_code, (lane.text, app.text)
    assert shape(lane.json()) == shape(app.json()), (lane.text, app.text)
    keep = lambda r: {k: v for k, v in r.headers.items() if k not in SKIP_HEADERS}  # noqa: E731
    assert keep(lane) == keep(app)
    assert re.fullmatch(r"[0-9a-f]{32}", lane.headers["x-request-id"])


async def twice(c: httpx.AsyncClient, path: str | tuple[str, str], **kw) -> tuple[httpx.Response, httpx.Response]:
    lane_path, app_path = (path, path) if isinstance(path, str) else path
    return await c.post(lane_path, **kw), await c.post(app_path + "?via=app", **kw)


def test_match_takes_only_the_hot_paths():
    assert hot.match("POST", "/api/v1/jobs")[0].template == "/api/v1/jobs"
    assert hot.match("POST", "/api/v1/jobs/claim")[0].template == "/api/v1/jobs/claim"
    assert hot.match("POST", "/api/v1/jobs/j1/complete") == (hot._PER_JOB["complete"], "j1")
    for method, path in [("GET", "/api/v1/jobs"), ("POST", "/api/v1/jobs/"), ("POST", "/api/v1/jobs//complete"),
                         ("POST", "/api/v1/jobs/j1/retry"), ("POST", "/api/v1/jobsx"), ("POST", "/api/v1/jobs/j/x/y"),
                         ("POST", "/api/v1/queues")]:
        assert hot.match(method, path) is None, path


async def test_enqueue_claim_heartbeat_complete_fail_match_the_app(server, api):
    """Each side works its own queue (`lane-a` through the lane, `lane-b` through the app), step for step."""
    async def both(path, make):
        a = await api.post(path.format(side="a"), json=make("a"))
        b = await api.post(path.format(side="b") + "?via=app", json=make("b"))
        same(a, b)
        return a.json(), b.json()

    with trio.fail_after(30):
        job = lambda s, **x: {"queue_name": f"lane-{s}", "payload": {"n": 1}, "max_retries": 1, **x}  # noqa: E731
        await both("/api/v1/jobs", job)
        await both("/api/v1/jobs", lambda s: job(s, idempotency_key=f"lane-twin-{s}"))
        await both("/api/v1/jobs", lambda s: job(s, idempotency_key=f"lane-twin-{s}"))      # 200, created false
        await both("/api/v1/jobs", lambda s: {"queue": f"lane-{s}", "payload": []})      # 422
        await both("/api/v1/jobs/bulk", lambda s: {"queue": f"lane-{s}", "jobs": [{"payload": {}}, {"x": 1}]})
        claim = lambda s, limit=1: {"queue_name": f"lane-{s}", "worker_id": "w1", "limit": limit}  # noqa: E731
        a, b = await both("/api/v1/jobs/claim", claim)
        held = {"a": a["jobs"][0], "b": b["jobs"][0]}
        lease = lambda s, **x: {"worker_id": "w1", "lease_id": held[s]["lease_id"], **x}  # noqa: E731
        ids = {s: j["id"] for s, j in held.items()}

        async def on_job(verb, make):
            a = await api.post(f"/api/v1/jobs/{ids['a']}/{verb}", json=make("a"))
            b = await api.post(f"/api/v1/jobs/{ids['b']}/{verb}?via=app", json=make("b"))
            same(a, b)
            return a
        await on_job("heartbeat", lease)
        other = {"a": "b", "b": "a"}
        r = await on_job("complete", lambda s: {"worker_id": "w1", "lease_id": held[other[s]]["lease_id"]})
        assert r.status_code == 409                                             # another lease
        r = await on_job("fail", lambda s: lease(s, error="boom"))
        assert r.json()["will_retry"] is True
        a, b = await both("/api/v1/jobs/claim", lambda s: claim(s, 5))
        assert len(a["jobs"]) == 3                                              # 1 + the idempotent 1 + bulk 1
        for side, jobs in (("", a["jobs"]), ("?via=app", b["jobs"])):
            for j in jobs:
                r = await api.post(f"/api/v1/jobs/{j['id']}/complete{side}",
                                   json={"worker_id": "w1", "lease_id": j["lease_id"], "result": {"ok": 1}})
                assert r.status_code == 200 and r.json() == {"success": True}
        await both("/api/v1/jobs/complete", lambda s: {"worker_id": "w1", "completions": [
            {"job_id": ids[s], "lease_id": held[s]["lease_id"]}]})                 # not held any more: failed


async def test_errors_match_the_app(server, client, api, other_api):
    with trio.fail_after(30):
        r = await api.post("/api/v1/jobs", json={"queue_name": "mine", "payload": {}})
        mine = r.json()["id"]
        for path, kw in [("/api/v1/jobs", {"content": b"{not json"}),
                         ("/api/v1/jobs", {"content": b"[1, 2]"}),
                         ("/api/v1/jobs", {"content": b""}),
                         ("/api/v1/jobs/claim", {"json": {"queue_name": "q", "limit": "x"}}),
                         ("/api/v1/jobs/nope/complete", {"json": {"lease_id": "l"}}),
                         (f"/api/v1/jobs/{mine}/heartbeat", {"json": {"lease_id": "l", "worker_id": "w"}})]:
            same(*await twice(api, path, **kw))
            same(*await twice(other_api, path, **kw))                           # another org's job: 404
        for headers in ({}, {"Authorization": "Bearer sk_live_wrong"}, {"Authorization": "Basic x"}):
            a, b = await twice(client, "/api/v1/jobs/claim", json={"queue_name": "q"}, headers=headers)
            same(a, b)
            assert a.status_code == 401 and "x-ratelimit-limit" not in a.headers


async def test_a_restricted_key_and_the_rate_limit_match_the_app(server, client, api):
    with trio.fail_after(30):
        r = await api.post("/api/v1/api-keys", json={"name": "k", "queues": ["allowed"]})
        narrow = {"Authorization": f"Bearer {r.json()['key']}"}
        same(*await twice(client, "/api/v1/jobs", json={"queue_name": "other"}, headers=narrow))   # 403
        same(*await twice(client, "/api/v1/jobs/claim", json={"queue_name": "other"}, headers=narrow))
        server.services.set_clock(Clock())
        _, key = await admin_org(client, plan="pro")
        r = await client.post("/api/v1/api-keys", headers=bearer(key), json={"name": "slow", "rate_limit": 2})
        slow = bearer(r.json()["key"])
        a = await client.post("/api/v1/jobs/claim", json={"queue_name": "q", "worker_id": "w"}, headers=slow)
        b = await client.post("/api/v1/jobs/claim?via=app", json={"queue_name": "q", "worker_id": "w"}, headers=slow)
        assert a.status_code == b.status_code == 200 and a.headers["x-ratelimit-scope"] == "api_key"
        assert (a.headers["x-ratelimit-remaining"], b.headers["x-ratelimit-remaining"]) == ("1", "0")
        a = await client.post("/api/v1/jobs/claim", json={"queue_name": "q", "worker_id": "w"}, headers=slow)
        b = await client.post("/api/v1/jobs/claim?via=app", json={"queue_name": "q", "worker_id": "w"}, headers=slow)
        same(a, b)
        assert a.status_code == 429 and a.headers["retry-after"] == b.headers["retry-after"]


async def test_lane_requests_are_counted_by_route_template(server, api):
    with trio.fail_after(30):
        await api.post("/api/v1/jobs/claim", json={"queue_name": "counted", "worker_id": "w"})
        await api.post("/api/v1/jobs/x1/complete", json={"lease_id": "l"})
        text = (await api.get("/metrics")).text
        assert re.search(r'spooled_http_requests_total\{method="POST",route="/api/v1/jobs/claim",status="200"\} '
                         r'[1-9]', text), text
        assert re.search(r'spooled_http_requests_total\{method="POST",route="/api/v1/jobs/<job_id>/complete",'
                         r'status="404"\} [1-9]', text)
