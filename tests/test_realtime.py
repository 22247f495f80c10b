"""Realtime over SSE and WebSocket (api.md "Realtime") against the real server: frames for a job driven over REST,
filters, job streams that end, auth before the stream, several instances, slow subscribers, resync, shutdown."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected

from tests.events_helpers import instance, kinds, listener_pids, sse, wait_until, ws, ws_frame
from tests.helpers import claim, enqueue

LIFECYCLE = [("JobCreated", "pending"), ("JobStatusChange", "processing"), ("JobStatusChange", "completed"),
             ("JobCompleted", None)]


def key_of(api: httpx.AsyncClient) -> str:
    return api.headers["Authorization"].split()[1]


async def drive_job(api, queue: str = "rt") -> str:
    """Create, claim and complete one job over REST; its id."""
    created = await enqueue(api, queue)
    (leased,) = await claim(api, queue)
    r = await api.post(f"/api/v1/jobs/{leased['id']}/complete", json={"lease_id": leased["lease_id"],
                                                                       "result": {"ok": 1}})
    assert r.status_code == 200, r.text
    return created["id"]


async def test_sse_sees_created_processing_completed(api):
    with trio.fail_after(30):
        async with sse(api, "/api/v1/events") as s:
            job_id = await drive_job(api)
            frames = await s.frames_until(lambda f, out: f["type"] == "JobCompleted")
    assert kinds(frames) == LIFECYCLE
    for f in frames:
        assert f["data"]["job_id"] == job_id and f["data"]["queue_name"] == "rt"
        assert f["timestamp"] == f["data"]["timestamp"] and f["timestamp"].endswith("+00:00")
    assert frames[1]["data"]["old_status"] == "pending" and frames[1]["data"]["worker_id"] == "w1"
    assert frames[2]["data"]["old_status"] == "processing"


async def test_sse_reference_path_with_token_and_filters(api, client):
    with trio.fail_after(30):
        token = (await client.post("/api/v1/auth/login", json={"api_key": key_of(api)})).json()["access_token"]
        async with sse(client, f"/api/v1/events/sse?queue=wanted&token={token}") as s:
            await enqueue(api, "other")
            wanted = await enqueue(api, "wanted")
            first = await s.next_frame()
        assert first["type"] == "JobCreated" and first["data"]["job_id"] == wanted["id"]
        async with sse(client, f"/api/v1/events/sse?job_id={wanted['id']}&token={key_of(api)}") as s:
            await enqueue(api, "wanted")
            (leased,) = await claim(api, "wanted")      # the first one: claim order
            assert leased["id"] == wanted["id"]
            frames = await s.frames_until(lambda f, out: f["data"].get("new_status") == "processing")
        assert [f["data"]["job_id"] for f in frames] == [wanted["id"]] * 2   # its snapshot, then the claim


async def test_sse_queue_path_sends_stats_and_the_queues_jobs(api):
    with trio.fail_after(30):
        await enqueue(api, "statsq")
        async with sse(api, "/api/v1/events/queues/statsq") as s:
            first = await s.next_frame()
            assert first["type"] == "QueueStats"
            assert first["data"]["queue_name"] == "statsq" and first["data"]["pending_jobs"] == 1
            await enqueue(api, "elsewhere")
            created = await enqueue(api, "statsq")
            f = await s.next_frame()
    assert f["type"] == "JobCreated" and f["data"]["job_id"] == created["id"]


async def test_job_stream_ends_after_the_terminal_status(api):
    with trio.fail_after(30):
        created = await enqueue(api, "js")
        async with sse(api, f"/api/v1/events/jobs/{created['id']}") as s:
            (leased,) = await claim(api, "js")
            r = await api.post(f"/api/v1/jobs/{leased['id']}/fail", json={"lease_id": leased["lease_id"],
                                                                           "error": "boom", "retry": False})
            assert r.status_code == 200
            frames = await s.frames_until(lambda f, out: False)
            assert s.ended
        assert kinds(frames) == [("JobStatusChange", "pending"), ("JobStatusChange", "processing"),
                                 ("JobStatusChange", "deadletter"), ("JobFailed", None)]
        assert frames[3]["data"]["error"] == "boom" and frames[3]["data"]["will_retry"] is False
        # a stream opened on a finished job sends its status once and ends
        async with sse(api, f"/api/v1/events/jobs/{created['id']}") as s:
            frames = await s.frames_until(lambda f, out: False)
        assert kinds(frames) == [("JobStatusChange", "deadletter")] and s.ended


async def test_keepalive_comment_when_idle(aio_loop, tmp_path, dsn):
    with trio.fail_after(30):
        async with instance(tmp_path, dsn, realtime_keepalive_secs=0.2) as c:
            async with sse(c, "/api/v1/events") as s:
                async with trio.open_nursery() as inner:
                    async def read():
                        await s.next_frame()
                    inner.start_soon(read)
                    await wait_until(lambda: "keep-alive" in s.comments)
                    inner.cancel_scope.cancel()
            async with ws(c.running.http_url, f"/api/v1/ws?token={key_of(c)}") as conn:
                assert json.loads(await conn.get_message())["type"] == "Ping"


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/events/sse", "/api/v1/events/queues/q",
                                  "/api/v1/events/sse?token=sp_live_nope"])
async def test_sse_refuses_missing_or_bad_credentials_before_streaming(client, path):
    r = await client.get(path, headers={"Authorization": "Bearer sp_live_bad"} if "token" not in path else {})
    assert r.status_code == 401
    assert r.json()["code"] == "UNAUTHORIZED" and r.headers["content-type"].startswith("application/json")
    r = await client.get(path.split("?")[0])
    assert r.status_code == 401


async def test_sse_unknown_job_is_404_and_other_orgs_job_too(api, other_api):
    theirs = await enqueue(other_api, "x")
    for job_id in ("not-a-uuid", "00000000-0000-0000-0000-000000000000", theirs["id"]):
        r = await api.get(f"/api/v1/events/jobs/{job_id}")
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"


async def test_a_queue_restricted_key_streams_only_its_queues(api, client):
    with trio.fail_after(30):
        r = await api.post("/api/v1/api-keys", json={"name": "scoped", "queues": ["mine"]})
        assert r.status_code == 201, r.text
        scoped = {"Authorization": f"Bearer {r.json()['key']}"}
        theirs = await enqueue(api, "not-mine")
        assert (await client.get("/api/v1/events?queue=not-mine", headers=scoped)).status_code == 403
        assert (await client.get(f"/api/v1/events/jobs/{theirs['id']}", headers=scoped)).status_code == 404
        async with sse(client, "/api/v1/events", headers=scoped) as s:
            await enqueue(api, "not-mine")
            mine = await enqueue(api, "mine")
            f = await s.next_frame()
        assert f["data"]["job_id"] == mine["id"]


async def test_streams_are_per_organization(api, other_api):
    with trio.fail_after(30):
        async with sse(api, "/api/v1/events") as mine:
            await enqueue(other_api, "same-name")
            ours = await enqueue(api, "same-name")
            f = await mine.next_frame()
    assert f["data"]["job_id"] == ours["id"]


# -- WebSocket ------------------------------------------------------------------------------------------------
async def test_websocket_sees_the_lifecycle_and_answers_ping(api, server):
    with trio.fail_after(30):
        async with ws(server.http_url, f"/api/v1/ws?token={key_of(api)}") as conn:
            await conn.send_message(json.dumps({"cmd": "ping"}))
            assert (await ws_frame(conn, skip=()))["type"] == "Ping"
            await conn.send_message(json.dumps({"cmd": "Subscribe", "queue": "wsq"}))
            await conn.send_message(json.dumps({"cmd": "ping"}))      # commands are handled in order
            assert (await ws_frame(conn, skip=()))["type"] == "Ping"
            await enqueue(api, "not-this-one")
            job_id = await drive_job(api, "wsq")
            frames = [await ws_frame(conn) for _ in range(4)]
            assert kinds(frames) == LIFECYCLE and {f["data"]["job_id"] for f in frames} == {job_id}
            await conn.send_message(json.dumps({"cmd": "unsubscribe", "queue": "wsq"}))
            await conn.send_message(json.dumps({"cmd": "subscribe", "queue": "later"}))
            await conn.send_message(json.dumps({"cmd": "ping"}))
            assert (await ws_frame(conn, skip=()))["type"] == "Ping"
            await enqueue(api, "wsq")
            later = await enqueue(api, "later")
            f = await ws_frame(conn)
            assert f["type"] == "JobCreated" and f["data"]["job_id"] == later["id"]
            await conn.send_message("not json")
            assert (await ws_frame(conn))["type"] == "Error"


async def test_websocket_reference_path_with_header_auth_and_job_filter(api, server):
    with trio.fail_after(30):
        created = await enqueue(api, "wsj")
        async with ws(server.http_url, f"/api/v1/events/ws?job_id={created['id']}",
                      extra_headers=[("Authorization", api.headers["Authorization"])]) as conn:
            await conn.send_message(json.dumps({"cmd": "ping"}))
            assert (await ws_frame(conn, skip=()))["type"] == "Ping"
            await enqueue(api, "wsj")
            (leased,) = await claim(api, "wsj")
            f = await ws_frame(conn)
            assert f["type"] == "JobStatusChange" and f["data"]["job_id"] == created["id"]
            assert leased["id"] == created["id"]


@pytest.mark.parametrize("path", ["/api/v1/ws", "/api/v1/ws?token=sp_live_nope", "/api/v1/events/ws?token=a.b.c"])
async def test_websocket_refuses_bad_credentials_with_401(server, path):
    with trio.fail_after(30):
        with pytest.raises(ConnectionRejected) as info:
            async with ws(server.http_url, path):
                pass
    assert info.value.status_code == 401
    assert json.loads(info.value.body)["code"] == "UNAUTHORIZED"


async def test_websocket_to_an_unknown_path_is_404(server):
    with trio.fail_after(30):
        with pytest.raises(ConnectionRejected) as info:
            async with ws(server.http_url, "/api/v1/no-such-socket"):
                pass
    assert info.value.status_code == 404


async def test_worker_events_reach_streams(api, server):
    with trio.fail_after(30):
        async with ws(server.http_url, f"/api/v1/ws?token={key_of(api)}") as conn:
            await conn.send_message(json.dumps({"cmd": "ping"}))
            await ws_frame(conn, skip=())
            r = await api.post("/api/v1/workers/register", json={"queue_name": "wq", "hostname": "h",
                                                                 "worker_id": "rt-worker"})
            assert r.status_code == 201
            f = await ws_frame(conn)
            assert f["type"] == "WorkerRegistered" and f["data"]["worker_id"] == "rt-worker"
            assert f["data"]["queue_name"] == "wq"
            r = await api.post("/api/v1/workers/rt-worker/heartbeat", json={"current_jobs": 3})
            assert r.status_code == 200, r.text
            f = await ws_frame(conn)
            assert f["type"] == "WorkerHeartbeat" and f["data"]["worker_id"] == "rt-worker"
            assert (f["data"]["queue_name"], f["data"]["current_jobs"], f["data"]["status"]) == ("wq", 3, "healthy")
            assert (await api.delete("/api/v1/workers/rt-worker")).status_code == 204
            f = await ws_frame(conn)
            assert f["type"] == "WorkerDeregistered" and f["data"]["worker_id"] == "rt-worker"


async def test_big_statements_are_notified_in_chunks_under_the_payload_limit(api):
    """One claim of 60 jobs by a worker whose id is 128 four-byte characters: ~50 kB of events, sent as several
    NOTIFYs (PostgreSQL refuses a payload over 8000 bytes, which would fail the claim itself)."""
    worker = "\U0001D11E" * 128
    with trio.fail_after(30):
        r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "big", "jobs": [{"payload": {}}] * 60})
        ids = [x["job_id"] for x in r.json()["succeeded"]]
        async with sse(api, "/api/v1/events") as s:
            leased = await claim(api, "big", limit=60, worker=worker)
            assert len(leased) == 60
            frames = [await s.next_frame() for _ in range(60)]
        assert sorted(f["data"]["job_id"] for f in frames) == sorted(ids)
        assert {f["data"]["worker_id"] for f in frames} == {worker}
        # a worker of 100 long queue names: its registration event is cut down to fit, the registration works
        names = [f"q{i:02d}-" + "x" * 96 for i in range(100)]
        async with sse(api, "/api/v1/events") as s:
            r = await api.post("/api/v1/workers/register", json={"queue_names": names, "hostname": "h",
                                                                 "worker_id": "wide"})
            assert r.status_code == 201, r.text
            f = await s.next_frame()
        assert f["type"] == "WorkerRegistered" and f["data"]["worker_id"] == "wide"
        assert f["data"]["queue_name"] == names[0] and f["data"]["truncated"] is True


# -- instances, slow subscribers, resync, shutdown --------------------------------------------------------------
async def test_an_event_on_instance_a_reaches_a_subscriber_on_b(aio_loop, tmp_path, dsn, api, server):
    with trio.fail_after(30):
        async with instance(tmp_path, dsn) as b:
            async with httpx.AsyncClient(base_url=b.running.http_url, headers=api.headers) as on_b:
                async with sse(on_b, "/api/v1/events") as s:
                    job_id = await drive_job(api, "across")       # all on instance A
                    frames = await s.frames_until(lambda f, out: f["type"] == "JobCompleted")
            async with ws(b.running.http_url, f"/api/v1/ws?token={key_of(api)}") as conn:
                await conn.send_message(json.dumps({"cmd": "ping"}))
                await ws_frame(conn, skip=())
                created = await enqueue(api, "across")
                f = await ws_frame(conn)
    assert kinds(frames) == LIFECYCLE and frames[0]["data"]["job_id"] == job_id
    assert f["type"] == "JobCreated" and f["data"]["job_id"] == created["id"]


async def test_a_slow_subscriber_is_dropped_and_a_fast_one_keeps_receiving(aio_loop, tmp_path, dsn):
    with trio.fail_after(60):
        async with instance(tmp_path, dsn, realtime_buffer=32) as c:
            broadcaster = c.running.services.broadcaster
            slow = await broadcaster.subscribe(c.org_id)        # never reads
            async with sse(c, "/api/v1/events") as fast:
                ids, seen = [], []
                for _ in range(4):         # 4 x 20 events: the slow one's 32 fill up in the second round
                    r = await c.post("/api/v1/jobs/bulk", json={"queue_name": "flood",
                                                               "jobs": [{"payload": {"i": i}} for i in range(20)]})
                    ids += [x["job_id"] for x in r.json()["succeeded"]]
                    while len(seen) < len(ids):
                        f = await fast.next_frame()
                        assert f["type"] == "JobCreated", f
                        seen.append(f["data"]["job_id"])
                assert broadcaster.subscriber_count(c.org_id) == 1      # the fast one, still attached
            assert seen == ids
            assert slow.dropped and broadcaster.dropped_total == 1
            buffered = []
            with pytest.raises(trio.EndOfChannel):
                while True:
                    buffered.append(await slow.receive())
            assert [ev.job_id for ev in buffered] == ids[:32]    # what fit in its buffer, nothing more was kept


async def test_lost_listen_connection_resyncs_streams(api, server):
    db = server.services.db
    with trio.fail_after(30):
        job = await enqueue(api, "before")
        async with sse(api, "/api/v1/events") as s, sse(api, f"/api/v1/events/jobs/{job['id']}") as js:
            assert (await js.next_frame())["data"]["new_status"] == "pending"         # its snapshot
            (old,) = await listener_pids(db)
            await db.run(lambda con: con.execute("SELECT pg_terminate_backend($1)", old))
            f = await s.next_frame()
            assert f["type"] == "Error" and f["data"]["code"] == "RESYNC"
            f = await js.next_frame()                  # a job stream re-reads its job instead
            assert f["type"] == "JobStatusChange" and f["data"]["new_status"] == "pending"
            assert f["data"]["old_status"] is None
            created = await enqueue(api, "after-resync")
            f = await s.next_frame()
            assert f["type"] == "JobCreated" and f["data"]["job_id"] == created["id"]


async def test_a_notify_overflow_resyncs_only_that_channel():
    """triopg marks a full LISTEN buffer with NOTIFY_OVERFLOW: that channel's consumer resyncs, in order."""
    import triopg

    from spooled.store.listen import Channel, ListenState, _forward
    seen = []
    send, receive = trio.open_memory_channel(10)
    for item in ("a", triopg.NOTIFY_OVERFLOW, "b"):
        send.send_nowait(item)
    send.close()
    with trio.fail_after(5):
        await _forward(receive, Channel(on_payload=seen.append, on_resync=lambda: seen.append("RESYNC")),
                       ListenState())
    assert seen == ["a", "RESYNC", "b"]


async def test_shutdown_closes_streams(aio_loop, tmp_path, dsn):
    with trio.fail_after(30):
        async with instance(tmp_path, dsn) as c:
            async with sse(c, "/api/v1/events") as s, ws(c.running.http_url, f"/api/v1/ws?token={key_of(c)}") as conn:
                await conn.send_message(json.dumps({"cmd": "ping"}))
                await ws_frame(conn, skip=())
                c.shutdown.set()
                assert await s.next_frame() is None and s.ended
                with pytest.raises(ConnectionClosed) as info:
                    while True:
                        await conn.get_message()
                assert info.value.reason.code == 1001


async def test_open_streams_are_counted_in_metrics(api, client):
    from tests.test_metrics import scrape

    async def count(kind: str) -> float:
        return (await scrape(client)).get("spooled_realtime_subscribers", kind=kind)
    with trio.fail_after(30):
        assert (await count("sse"), await count("websocket")) == (0, 0)
        async with sse(api, "/api/v1/events"):      # returns once the stream's body runs
            assert await count("sse") == 1
            async with ws(str(client.base_url), f"/api/v1/ws?token={key_of(api)}") as conn:
                await conn.send_message(json.dumps({"cmd": "ping"}))
                assert (await ws_frame(conn, skip=()))["type"] == "Ping"
                assert await count("websocket") == 1
        while (await count("sse"), await count("websocket")) != (0, 0):   # both closed: the gauges come back
            await trio.sleep(0.02)
