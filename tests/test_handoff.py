"""A single enqueue claims for an idle waiter of its queue in its own insert statement (one round trip, one commit;
services/wakeups.py "Handoff", docs/architecture.md "Handoff: an enqueue claims for an idle waiter"): the waiter
gets the job with no claim statement of its own; the claim rules hold unchanged (paused queue, scheduled jobs,
dependencies, a key's queues); a waiter gone meanwhile leaves the job pending; a failed enqueue sends its waiter
back to claiming; StreamJobs and a held ProcessJobs get the same; the job's events, history and webhook rows are
those of a job claimed by its worker; the insert's NOTIFY still counts (no wake is swallowed)."""

from __future__ import annotations

import datetime as dt
import uuid

import trio
from trio.testing import wait_all_tasks_blocked
from trio_asyncio import aio_as_trio

from spooled.domain import errors, inputs
from spooled.domain.scope import Scope
from spooled.transports.grpc.gen.spooled_grpc import QueueServiceStub
from tests.grpcio_gen import spooled_pb2 as pb
from tests.helpers import claim, enqueue, job
from tests.test_claim_group import StatementSpy, quiet_insert, rows, start_waiters
from tests.test_grpc import key_of, open_aio_channel, until


class InsertSpy:
    """Records the claimers each insert of the service was given; optionally holds it at a gate, or fails once."""

    def __init__(self, jobs, gated: bool = False, fail: bool = False):
        self.real = jobs._store.insert
        self.claimers: list[list] = []
        self.gate = trio.Event() if gated else None
        self.entered = trio.Event()
        self.fail = fail
        jobs._store.insert = self

    async def __call__(self, *args, **kwargs):
        self.claimers.append(list(kwargs.get("claimers", ())))
        self.entered.set()
        if self.gate is not None:
            with trio.fail_after(10):
                await self.gate.wait()
        if self.fail:
            self.fail = False
            raise errors.Unavailable("The database is unavailable")
        return await self.real(*args, **kwargs)


async def one_waiter(nursery, server, org: str, queue: str, got: list, scope: Scope | None = None,
                     worker: str = "w0", wait_secs: int = 10, cancel: trio.CancelScope | None = None) -> None:
    """A long poll of `queue` (its result appended to `got`; `cancel` ends it), once it waits."""
    async def waiter():
        with cancel or trio.CancelScope():
            got.append(await server.services.jobs.claim(scope or Scope(org), inputs.Claim(
                queue_name=queue, worker_id=worker, wait_secs=wait_secs)))
    nursery.start_soon(waiter)
    while server.services.wakeups.waiter_count(org, queue) < 1 or server.services.jobs._claims._lanes:
        await trio.sleep(0.01)
    await wait_all_tasks_blocked()


async def held_enqueue(nursery, api, jobs, queue: str) -> tuple[InsertSpy, list[dict]]:
    """An enqueue into `queue` started and held at its insert (open `InsertSpy.gate`); its answer lands in the list."""
    inserts = InsertSpy(jobs, gated=True)
    created: list[dict] = []

    async def producer():
        created.append(await enqueue(api, queue))
    nursery.start_soon(producer)
    await inserts.entered.wait()
    return inserts, created


async def test_an_idle_long_poll_gets_the_job_from_the_enqueues_own_statement(api, server):
    jobs = server.services.jobs
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            await one_waiter(n, server, api.org_id, "hand", got)
            claims, inserts = StatementSpy(jobs), InsertSpy(jobs)
            created = await enqueue(api, "hand")
            while not got:
                await trio.sleep(0.01)
            await wait_all_tasks_blocked()
            assert claims.calls == []                      # no claim statement of the waiter's own
            assert [[c[0] for c in cs] for cs in inserts.claimers] == [["w0"]]   # the insert claimed for it
    assert [str(j.id) for j in got[0]] == [created["id"]]
    held = await job(api, created["id"])
    assert held["status"] == "processing" and held["assigned_worker_id"] == "w0"
    assert held["lease_id"] == str(got[0][0].lease_id)


async def test_a_handed_off_job_has_the_events_history_and_webhook_rows_of_a_claimed_one(api, server):
    r = await api.post("/api/v1/outgoing-webhooks", json={"name": "all", "url": "https://example.com/hook",
                                                           "events": ["job.created", "job.started"]})
    assert r.status_code == 201, r.text
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            await one_waiter(n, server, api.org_id, "same", got)
            inserts = InsertSpy(server.services.jobs)
            handed = await enqueue(api, "same")
            while not got:
                await trio.sleep(0.01)
    assert len(inserts.claimers[0]) == 1
    plain = await enqueue(api, "same")                     # no waiter: claimed by its worker afterwards
    (c,) = await claim(api, "same", worker="w0")
    assert c["id"] == plain["id"]

    async def shape(job_id: str) -> dict:
        jid = uuid.UUID(job_id)
        events = await rows(server, "SELECT event_type, worker_id FROM job_events WHERE job_id = $1 ORDER BY id",
                            jid)
        history = await rows(server, "SELECT event_type, old_status, new_status, worker_id FROM job_history"
                                     " WHERE job_id = $1 ORDER BY id", jid)
        hooks = await rows(server, "SELECT event, payload->>'status', payload->>'old_status' FROM webhook_deliveries"
                                   " WHERE payload->>'job_id' = $1 ORDER BY created_at, event", job_id)
        api_history = (await api.get(f"/api/v1/jobs/{job_id}/history")).json()
        return {"events": [tuple(e) for e in events], "history": [tuple(h) for h in history],
                "hooks": [tuple(h) for h in hooks],
                "api": [(e["event_type"], e.get("new_status")) for e in api_history]}
    a, b = await shape(handed["id"]), await shape(plain["id"])
    assert a == b
    assert [e[0] for e in a["events"]][:2] == ["created", "started"] and len(a["hooks"]) == 2


async def test_the_claim_rules_hold_in_a_handoff(api, server):
    """Paused queue: nothing handed out; a dependent job not ready and a job scheduled for later are not handed
    out."""
    jobs = server.services.jobs
    got: list[list] = []
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
    with trio.fail_after(30):
        async with trio.open_nursery() as n:
            # paused: the handoff claims nothing, the waiter goes on waiting
            assert (await api.post("/api/v1/queues", json={"name": "rules"})).status_code == 201
            assert (await api.post("/api/v1/queues/rules/pause", json={})).status_code == 200
            await one_waiter(n, server, api.org_id, "rules", got)
            inserts = InsertSpy(jobs)
            first = await enqueue(api, "rules", priority=1)
            while jobs._claims._lanes or server.services.wakeups.waiter_count(api.org_id, "rules") < 1:
                await trio.sleep(0.01)
            await wait_all_tasks_blocked()
            assert len(inserts.claimers) == 1 and len(inserts.claimers[0]) == 1 and not got
            assert (await job(api, first["id"]))["status"] == "pending"
            # scheduled for later: no waiter reserved, nothing handed out
            await enqueue(api, "rules", scheduled_at=later)
            await wait_all_tasks_blocked()
            assert inserts.claimers[1] == [] and not got
            # naming a parent: the plain path (the parent is checked first), nothing handed out
            await enqueue(api, "rules", parent_job_id=first["id"])
            await wait_all_tasks_blocked()
            assert inserts.claimers[2] == [] and not got
            assert (await api.post("/api/v1/queues/rules/resume", json={})).status_code == 200
            while not got:          # the resume wakes the waiter: it claims the oldest ready job itself
                await trio.sleep(0.01)
            assert [str(j.id) for j in got[0]] == [first["id"]]
            n.cancel_scope.cancel()
    statuses = {r["status"] for r in await rows(server, "SELECT status FROM jobs WHERE queue_name = 'rules'"
                                                        " AND id <> $1", uuid.UUID(first["id"]))}
    assert statuses == {"scheduled", "pending"}             # neither the scheduled job nor the child was leased


async def test_a_handoff_claims_what_the_claim_picks_not_what_was_inserted(api, server):
    """The waiter gets the claim's pick: an older ready job of higher priority (written without a NOTIFY while it
    waited), not the enqueued one, and never a workflow job whose dependency is still running."""
    jobs = server.services.jobs
    r = await api.post("/api/v1/workflows", json={"name": "dep", "jobs": [
        {"key": "A", "queue_name": "pick", "payload": {}},
        {"key": "B", "queue_name": "pick", "payload": {}, "depends_on": ["A"], "priority": 9}]})
    assert r.status_code == 201, r.text
    ids = {m["key"]: m["job_id"] for m in r.json()["job_ids"]}
    (a,) = await claim(api, "pick", worker="aw")            # A runs: B waits for it
    assert a["id"] == ids["A"]
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            await one_waiter(n, server, api.org_id, "pick", got)
            older = uuid.uuid4()
            await quiet_insert(server, api.org_id, "pick", [older], priority=5)
            inserts = InsertSpy(jobs)
            low = await enqueue(api, "pick", priority=1)
            while not got:
                await trio.sleep(0.01)
            n.cancel_scope.cancel()
    assert len(inserts.claimers[0]) == 1
    assert [j.id for j in got[0]] == [older]                # the claim's pick
    assert (await job(api, low["id"]))["status"] == "pending"
    b = await job(api, ids["B"])
    assert b["status"] == "pending" and b["lease_id"] is None


async def test_a_scoped_waiter_is_handed_jobs_of_its_own_queue_only(api, server):
    jobs = server.services.jobs
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            await one_waiter(n, server, api.org_id, "mine", got, scope=Scope(api.org_id, ("mine",)))
            inserts = InsertSpy(jobs)
            await enqueue(api, "theirs")                   # another queue: nobody reserved
            await wait_all_tasks_blocked()
            assert inserts.claimers == [[]] and not got
            created = await enqueue(api, "mine")
            while not got:
                await trio.sleep(0.01)
    assert len(inserts.claimers[1]) == 1 and [str(j.id) for j in got[0]] == [created["id"]]


async def test_a_waiter_gone_while_its_handoff_runs_leaves_the_job_pending_claimable_once(api, server):
    jobs = server.services.jobs
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            waiting = trio.CancelScope()
            await one_waiter(n, server, api.org_id, "gone", got, worker="w1", cancel=waiting)
            inserts, created = await held_enqueue(n, api, jobs, "gone")
            assert [[c[0] for c in cs] for cs in inserts.claimers] == [["w1"]]   # reserved
            waiting.cancel()                               # the client goes away while the enqueue runs
            await wait_all_tasks_blocked()
            inserts.gate.set()
            while not created:
                await trio.sleep(0.01)
            while jobs._claims._lanes:
                await trio.sleep(0.01)
            await wait_all_tasks_blocked()
    assert got == []                                       # cancelled: it returned nothing
    gone = await job(api, created[0]["id"])
    assert gone["status"] == "pending" and gone["lease_id"] is None and gone["retry_count"] == 0
    r = await api.get(f"/api/v1/jobs/{created[0]['id']}/history")
    assert [e["event_type"] for e in r.json()][-1] == "released"
    first = await claim(api, "gone", worker="w2")
    assert [c["id"] for c in first] == [created[0]["id"]]  # claimable, once
    assert await claim(api, "gone", worker="w3") == []


async def test_a_long_poll_past_its_deadline_during_a_handoff_still_gets_its_job(api, server):
    jobs = server.services.jobs
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            await one_waiter(n, server, api.org_id, "late", got, worker="w1", wait_secs=1)
            inserts, created = await held_enqueue(n, api, jobs, "late")
            await trio.sleep(1.2)                          # its deadline passes while the enqueue is held
            assert not got
            inserts.gate.set()
            while not got:
                await trio.sleep(0.01)
    assert [str(j.id) for j in got[0]] == [created[0]["id"]]
    assert (await job(api, created[0]["id"]))["assigned_worker_id"] == "w1"


async def test_a_failed_enqueue_sends_its_waiter_back_to_claiming(api, server):
    jobs = server.services.jobs
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            await start_waiters(n, server, api.org_id, "retry", 1, got)
            claims, inserts = StatementSpy(jobs), InsertSpy(jobs, fail=True)
            r = await api.post("/api/v1/jobs", json={"queue_name": "retry", "payload": {}})
            assert r.status_code == 503
            while not claims.calls:                        # the waiter claims by itself, finds nothing, waits
                await trio.sleep(0.01)
            while server.services.wakeups.waiter_count(api.org_id, "retry") < 1 or jobs._claims._lanes:
                await trio.sleep(0.01)
            await wait_all_tasks_blocked()
            assert not got
            created = await enqueue(api, "retry")          # the next enqueue hands it over
            while not got:
                await trio.sleep(0.01)
    assert [[c[0] for c in cs] for cs in inserts.claimers] == [["w0"], ["w0"]]
    assert [str(j.id) for j in got[0]] == [created["id"]]


async def test_the_inserts_notify_still_counts_so_no_wake_is_swallowed(api, server):
    """With two idle waiters the enqueue hands its job to one; its NOTIFY (sent as for any insert) then
    wakes the other, which claims, finds nothing and waits again: one empty claim, the price of never dropping a
    NOTIFY that another transaction's job may need."""
    jobs = server.services.jobs
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            await start_waiters(n, server, api.org_id, "echo", 2, got)
            claims, inserts = StatementSpy(jobs), InsertSpy(jobs)
            created = await enqueue(api, "echo")
            while not got or not claims.calls:
                await trio.sleep(0.01)
            while jobs._claims._lanes or server.services.wakeups.waiter_count(api.org_id, "echo") < 1:
                await trio.sleep(0.01)
            await wait_all_tasks_blocked()
            (reserved,), = [[c[0] for c in cs] for cs in inserts.claimers]     # one waiter (the oldest)
            assert [c[2][0][0] for c in claims.calls] == [{"w0": "w1", "w1": "w0"}[reserved]]   # the other's
            assert len(got) == 1 and server.services.wakeups.waiter_count(api.org_id, "echo") == 1
            n.cancel_scope.cancel()
    assert [str(j.id) for j in got[0]] == [created["id"]]


async def test_streams_get_their_jobs_from_the_enqueues_own_statement(api, server):
    """StreamJobs and a held ProcessJobs dequeue wait where long polls do: an enqueue claims for them too."""
    jobs, md = server.services.jobs, {"x-api-key": key_of(api)}
    channel = await open_aio_channel(server.grpc_address)
    try:
        with trio.fail_after(30):
            async with aio_as_trio(QueueServiceStub(channel).StreamJobs.open(metadata=md)) as stream, \
                    aio_as_trio(QueueServiceStub(channel).ProcessJobs.open(metadata=md)) as process:
                await aio_as_trio(stream.send_message)(pb.StreamJobsRequest(queue_name="hs", worker_id="sw"),
                                                       end=True)
                await aio_as_trio(process.send_message)(pb.ProcessRequest(dequeue=pb.DequeueRequest(
                    queue_name="hp", worker_id="pw", batch_size=1)))
                await until(lambda: server.services.wakeups.waiter_count(api.org_id, "hs") == 1
                            and server.services.wakeups.waiter_count(api.org_id, "hp") == 1
                            and not jobs._claims._lanes)
                await wait_all_tasks_blocked()
                claims, inserts = StatementSpy(jobs), InsertSpy(jobs)
                for queue, call, worker in (("hs", stream, "sw"), ("hp", process, "pw")):
                    created = await enqueue(api, queue)
                    got = await aio_as_trio(call.recv_message)()
                    got = got if queue == "hs" else got.job
                    assert (got.id, got.assigned_worker_id) == (created["id"], worker)
                assert [[c[0] for c in cs] for cs in inserts.claimers] == [["sw"], ["pw"]]
                assert [c[1] for c in claims.calls if c[1] == "hp"] == []   # ProcessJobs: no claim of its own
                await aio_as_trio(stream.cancel)()
                await aio_as_trio(process.cancel)()
    finally:
        channel.close()


async def test_a_rest_long_poll_is_handed_the_job(api, server):
    jobs = server.services.jobs
    got: list = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            async def poll():
                r = await api.post("/api/v1/jobs/claim", json={"queue_name": "rest", "worker_id": "rw", "limit": 1,
                                                               "wait_secs": 10})
                got.append(r)
            n.start_soon(poll)
            await until(lambda: server.services.wakeups.waiter_count(api.org_id, "rest") == 1
                        and not jobs._claims._lanes)
            await wait_all_tasks_blocked()
            claims, inserts = StatementSpy(jobs), InsertSpy(jobs)
            created = await enqueue(api, "rest")
            await until(lambda: bool(got))
    assert got[0].status_code == 200
    assert [j["id"] for j in got[0].json()["jobs"]] == [created["id"]]
    assert got[0].json()["jobs"][0]["lease_id"]
    assert [[c[0] for c in cs] for cs in inserts.claimers] == [["rw"]] and claims.calls == []


async def test_an_enqueue_whose_idempotency_key_is_taken_hands_out_nothing_new(api, server):
    jobs = server.services.jobs
    first = await enqueue(api, "idem", idempotency_key="k1")
    (c,) = await claim(api, "idem", worker="cw")
    assert c["id"] == first["id"]
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            await one_waiter(n, server, api.org_id, "idem", got)
            inserts = InsertSpy(jobs)
            r = await api.post("/api/v1/jobs", json={"queue_name": "idem", "payload": {}, "idempotency_key": "k1"})
            assert r.status_code in (200, 201), r.text
            assert r.json()["id"] == first["id"] and r.json()["created"] is False
            while jobs._claims._lanes or server.services.wakeups.waiter_count(api.org_id, "idem") < 1:
                await trio.sleep(0.01)
            await wait_all_tasks_blocked()
            assert len(inserts.claimers[0]) == 1 and not got        # reserved, handed nothing, waits on
            n.cancel_scope.cancel()
    held = await job(api, first["id"])
    assert held["assigned_worker_id"] == "cw" and held["lease_id"] == c["lease_id"]


class HandedSpy(InsertSpy):
    """An InsertSpy that also wraps the insert's `handed` callback (the asyncio-side delivery): records each call
    (the shares, and whether each reserved waiter's handoff was done before it), runs `before` first, and records
    whether the handoffs were done when the store's insert returned (before the crossing back into Trio ended)."""

    def __init__(self, jobs, before=None):
        super().__init__(jobs)
        self.before = before
        self.handed: list = []
        self.done_at_return: list[bool] = []

    async def __call__(self, *args, **kwargs):
        takers = list(kwargs.get("claimers", ()))
        real = kwargs.get("handed")
        if real is not None:
            def handed(shares):
                if self.before is not None:
                    self.before()
                self.handed.append(shares)
                real(shares)
            kwargs["handed"] = handed
        out = await super().__call__(*args, **kwargs)
        if takers:
            self.done_at_return.append(bool(self.handed))
        return out


async def test_a_waiters_share_is_delivered_when_the_statement_is_back_before_the_crossing_into_trio(api, server):
    """The share goes to the waiter from the asyncio side, in the unit that ran the statement (`handed`), not after
    the enqueue's task is back in Trio: the same shares the insert returns, once."""
    jobs = server.services.jobs
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            await one_waiter(n, server, api.org_id, "early", got)
            inserts = HandedSpy(jobs)
            created = await enqueue(api, "early")
            while not got:
                await trio.sleep(0.01)
    assert inserts.done_at_return == [True]            # delivered before the store's insert returned
    (shares,) = inserts.handed
    assert [[str(j.id) for j in c.jobs] for c in shares] == [[created["id"]]]
    assert [str(j.id) for j in got[0]] == [created["id"]]
    assert (await job(api, created["id"]))["assigned_worker_id"] == "w0"


async def test_a_waiter_cancelled_as_its_share_is_delivered_gives_the_job_back(api, server):
    """Cancelled at the moment the statement's answer is delivered (from the asyncio side): the waiter returns
    nothing, its job goes back to pending (a `released` row, no retry counted) and is claimable once."""
    jobs = server.services.jobs
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            waiting = trio.CancelScope()
            await one_waiter(n, server, api.org_id, "midway", got, worker="w1", cancel=waiting)
            inserts = HandedSpy(jobs, before=waiting.cancel)
            created = await enqueue(api, "midway")
            while jobs._claims._lanes or server.services.wakeups.waiter_count(api.org_id, "midway"):
                await trio.sleep(0.01)
            await wait_all_tasks_blocked()
    assert len(inserts.handed) == 1 and got == []
    gone = await job(api, created["id"])
    assert gone["status"] == "pending" and gone["lease_id"] is None and gone["retry_count"] == 0
    r = await api.get(f"/api/v1/jobs/{created['id']}/history")
    assert [e["event_type"] for e in r.json()][-1] == "released"
    assert [c["id"] for c in await claim(api, "midway", worker="w2")] == [created["id"]]
    assert await claim(api, "midway", worker="w3") == []


async def test_a_handed_off_long_poll_is_answered_before_its_producer(api, server, monkeypatch):
    """Both answers are ready when the statement is back; the worker's (whose start is what workload B measures)
    is written to its socket first: its share comes from the asyncio side and its answer has no scheduler pass
    before the write (transports/http/fastpath.py)."""
    from spooled.transports.http import fastpath
    written: list[bytes] = []
    real_send = fastpath.send_bounded

    async def send(stream, data, stall, **kw):
        written.append(bytes(data))
        return await real_send(stream, data, stall, **kw)
    monkeypatch.setattr(fastpath, "send_bounded", send)
    jobs = server.services.jobs
    got: list = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            async def poll():
                got.append(await api.post("/api/v1/jobs/claim", json={
                    "queue_name": "first", "worker_id": "fw", "limit": 1, "wait_secs": 10}))
            n.start_soon(poll)
            await until(lambda: server.services.wakeups.waiter_count(api.org_id, "first") == 1
                        and not jobs._claims._lanes)
            await wait_all_tasks_blocked()
            inserts = InsertSpy(jobs)
            written.clear()
            created = await enqueue(api, "first")
            await until(lambda: bool(got))
    assert [[c[0] for c in cs] for cs in inserts.claimers] == [["fw"]]
    assert [j["id"] for j in got[0].json()["jobs"]] == [created["id"]]
    statuses = [w.split(b" ", 2)[1] for w in written[:2]]
    assert statuses == [b"200", b"201"], written       # the long poll's answer, then the enqueue's
    assert created["id"].encode() in written[0] and b'"jobs"' in written[0]
