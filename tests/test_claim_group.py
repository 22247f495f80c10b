"""One claim statement serves every concurrent claimer of a queue (services/grouping.py, spooled_claim_jobs_for):
each claimer gets distinct jobs in claim order, within its limit, under its own leases; a claimer cancelled while
the shared statement ran gets nothing and its jobs are pending again; organizations and key scopes never share a
statement; the waiters one NOTIFY wakes share one statement."""

from __future__ import annotations

import datetime as dt
import uuid

import trio
from trio.testing import wait_all_tasks_blocked

from spooled.domain import inputs
from spooled.domain.scope import Scope
from spooled.services.grouping import Grouper
from spooled.store.jobs import JobStore
from tests.helpers import enqueue


class StatementSpy:
    """Records every claim statement the service runs (its org, queue and claimers); optionally holds each one at
    a gate the test opens (the real statement runs after it)."""

    def __init__(self, jobs, gated: bool = False):
        self.real = jobs._store.claim
        self.calls: list[tuple[uuid.UUID, str, list]] = []
        self.gated = gated
        self.gates: list[trio.Event] = []
        self.started = trio.Event()
        jobs._store.claim = self

    async def __call__(self, org, queue, claimers, *, now=None):
        self.calls.append((org, queue, list(claimers)))
        if self.gated:
            gate = trio.Event()
            self.gates.append(gate)
            self.started.set()
            with trio.fail_after(10):
                await gate.wait()
        return await self.real(org, queue, claimers, now=now)


async def rows(server, sql: str, *args):
    return await server.services.db.run(lambda con: con.fetch(sql, *args))


async def quiet_insert(server, org: str, queue: str, ids: list[uuid.UUID], priority: int = 0) -> None:
    """Pending jobs written without their triggers (no NOTIFY: nobody is woken for them)."""
    async def insert(con):
        async with con.transaction():
            await con.execute("SET LOCAL session_replication_role = replica")   # no triggers: no NOTIFY
            await con.execute(
                "INSERT INTO jobs (id, organization_id, queue_name, status, payload, priority, max_retries,"
                " timeout_seconds, run_at, created_at, updated_at) SELECT i, $2, $3, 'pending', '{}', $4, 3, 300,"
                " now(), now(), now() FROM unnest($1::uuid[]) AS i", ids, uuid.UUID(org), queue, priority)
    await server.services.db.run(insert)


async def start_waiters(nursery, server, org: str, queue: str, n: int, got: list) -> None:
    """n long polls on `queue` (their results appended to `got`); returns once all of them wait (registered, and
    their first claims are over: none is still in a statement)."""
    async def waiter(i: int):
        got.append(await server.services.jobs.claim(Scope(org), inputs.Claim(queue_name=queue, worker_id=f"w{i}",
                                                                             wait_secs=10)))
    for i in range(n):
        nursery.start_soon(waiter, i)
    while server.services.wakeups.waiter_count(org, queue) < n or server.services.jobs._claims._lanes:
        await trio.sleep(0.01)
    await wait_all_tasks_blocked()


async def test_one_statement_hands_each_claimer_its_own_jobs_in_claim_order(api, server):
    ids = [(await enqueue(api, queue="order", priority=p))["id"] for p in (1, 5, 3, 4, 2)]
    by_priority = [ids[i] for i in (1, 3, 2, 4, 0)]            # claim order: priority 5, 4, 3, 2, 1
    now = dt.datetime.now(dt.timezone.utc)
    store = JobStore(server.services.db)
    got = await store.claim(uuid.UUID(api.org_id), "order", [("w1", 2, 30.0), ("w2", 2, 600.0), ("w3", 3, 60.0),
                                                             ("w4", 1, 30.0)], now=now)
    assert [[str(j.id) for j in c.jobs] for c in got] == [by_priority[:2], by_priority[2:4], by_priority[4:], []]
    for c, (worker, secs) in zip(got, [("w1", 30), ("w2", 600), ("w3", 60)]):
        for j in c.jobs:
            assert j.status == "processing" and j.assigned_worker_id == worker
            assert j.lease_expires_at == now + dt.timedelta(seconds=secs)
    leases = [j.lease_id for c in got for j in c.jobs]
    assert len(set(leases)) == 5 and None not in leases
    stored = {str(r["id"]): r for r in await rows(server, "SELECT id, lease_id, last_worker_id FROM jobs")}
    for c, worker in zip(got, ["w1", "w2", "w3"]):
        for j in c.jobs:
            assert stored[str(j.id)]["lease_id"] == j.lease_id and stored[str(j.id)]["last_worker_id"] == worker
    started = await rows(server, "SELECT job_id, worker_id FROM job_events WHERE event_type = 'started'")
    assert sorted((str(r["job_id"]), r["worker_id"]) for r in started) == sorted(
        (str(j.id), j.assigned_worker_id) for c in got for j in c.jobs)


async def test_a_claimed_job_carries_its_wait_and_the_claims_time(api, server):
    """What the store hands up per claimed job: how long it waited from becoming due (run_at) to its start,
    and updated_at as the row holds it (the claim's time, as started_at)."""
    due = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    ids = [(await enqueue(api, queue="wait", scheduled_at=(due + dt.timedelta(seconds=s)).isoformat()))["id"]
           for s in (0, 1.5)]
    now = due + dt.timedelta(seconds=42.25)
    (c,) = await JobStore(server.services.db).claim(uuid.UUID(api.org_id), "wait", [("w1", 5, 30.0)], now=now)
    assert [str(j.id) for j in c.jobs] == ids and c.queued_secs == [42.25, 40.75]
    stored = {str(r["id"]): r for r in await rows(server, "SELECT id, started_at, updated_at FROM jobs")}
    for j in c.jobs:
        assert j.started_at == j.updated_at == now == stored[str(j.id)]["updated_at"]


async def test_group_keeps_the_single_claims_rules(api, server):
    """Paused queue, expired jobs and jobs waiting for dependencies are not handed out to a group either."""
    org = uuid.UUID(api.org_id)
    store = JobStore(server.services.db)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
    ready = await enqueue(api, queue="rules")
    expiring = await enqueue(api, queue="rules", expires_at=(later - dt.timedelta(hours=1)).isoformat())
    r = await api.post("/api/v1/workflows", json={"name": "wf", "jobs": [
        {"key": "a", "queue_name": "wfq", "payload": {}},
        {"key": "b", "queue_name": "rules", "payload": {}, "depends_on": ["a"]}]})
    assert r.status_code == 201, r.text
    claimers = [("w1", 5, 30.0), ("w2", 5, 30.0)]
    assert (await api.post("/api/v1/queues/rules/pause", json={})).status_code == 200
    assert [c.jobs for c in await store.claim(org, "rules", claimers)] == [[], []]
    assert (await api.post("/api/v1/queues/rules/resume", json={})).status_code == 200
    got = await store.claim(org, "rules", claimers, now=later)    # `expiring` is past its expires_at then
    assert [[str(j.id) for j in c.jobs] for c in got] == [[ready["id"]], []]
    assert (await api.get(f"/api/v1/jobs/{expiring['id']}")).json()["status"] == "pending"


async def test_concurrent_claimers_share_statements_and_get_disjoint_jobs(api, server):
    r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "many", "jobs": [{"payload": {}}] * 40})
    assert r.status_code == 200
    jobs = server.services.jobs
    spy = StatementSpy(jobs)
    got: dict[int, list] = {}

    async def one(i: int):
        got[i] = await jobs.claim(Scope(api.org_id), inputs.Claim(queue_name="many", worker_id=f"w{i}",
                                                                  limit=1 + i % 3))
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            for i in range(20):
                n.start_soon(one, i)
    assert len(spy.calls) < 20                                 # shared: fewer statements than claimers
    assert sum(len(c) for _, _, c in spy.calls) == 20
    for i, js in got.items():
        assert 1 <= len(js) <= 1 + i % 3 and all(j.assigned_worker_id == f"w{i}" for j in js)
    claimed = [j.id for js in got.values() for j in js]
    assert len(claimed) == len(set(claimed)) == sum(1 + i % 3 for i in range(20))
    assert len({j.lease_id for js in got.values() for j in js}) == len(claimed)


async def test_a_claimer_cancelled_while_the_shared_statement_runs_leases_nothing(api, server):
    first, second, third = [await enqueue(api, queue="cancel", priority=p) for p in (9, 8, 7)]
    jobs = server.services.jobs
    spy = StatementSpy(jobs, gated=True)
    got: dict[str, list] = {}
    quitter = trio.CancelScope()

    async def one(name: str, scope: trio.CancelScope | None = None):
        with scope or trio.CancelScope():
            got[name] = await jobs.claim(Scope(api.org_id), inputs.Claim(queue_name="cancel", worker_id=name))

    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            n.start_soon(one, "leader")
            n.start_soon(one, "quitter", quitter)              # runnable together: one statement for both
            await spy.started.wait()
            await wait_all_tasks_blocked()
            assert [sorted(c[0] for c in claimers) for _, _, claimers in spy.calls] == [["leader", "quitter"]]
            quitter.cancel()                                   # while the shared statement is held
            await wait_all_tasks_blocked()
            spy.gates[0].set()
    # claimer after claimer in arrival order: the first gets the first job in claim order, the next the second
    leaders, quitters = (first, second) if spy.calls[0][2][0][0] == "leader" else (second, first)
    assert "quitter" not in got
    assert [str(j.id) for j in got["leader"]] == [leaders["id"]]
    state = {str(r["id"]): r for r in await rows(
        server, "SELECT id, status::text, lease_id, assigned_worker_id, retry_count FROM jobs")}
    assert state[quitters["id"]]["status"] == "pending" and state[quitters["id"]]["lease_id"] is None
    assert state[quitters["id"]]["assigned_worker_id"] is None and state[quitters["id"]]["retry_count"] == 0
    assert state[third["id"]]["status"] == "pending"
    # given back as if never claimed: the next claimer gets it, in its place in the claim order
    spy.gated = False
    again = await jobs.claim(Scope(api.org_id), inputs.Claim(queue_name="cancel", worker_id="next"))
    assert [str(j.id) for j in again] == [quitters["id"]]
    held = await rows(server, "SELECT id FROM jobs WHERE status = 'processing'")
    assert sorted(str(r["id"]) for r in held) == sorted([first["id"], second["id"]])


async def test_organizations_and_key_scopes_never_share_a_statement(api, other_api, server):
    for c in (api, other_api):
        r = await c.post("/api/v1/jobs/bulk", json={"queue_name": "iso", "jobs": [{"payload": {}}] * 6})
        assert r.status_code == 200
    mine = {str(r["id"]) for r in await rows(server, "SELECT id FROM jobs WHERE organization_id = $1",
                                             uuid.UUID(api.org_id))}
    jobs = server.services.jobs
    spy = StatementSpy(jobs)
    scopes = {"a-all": Scope(api.org_id), "a-iso": Scope(api.org_id, ("iso",)), "b-all": Scope(other_api.org_id)}
    got: dict[str, list] = {}

    async def one(name: str, i: int):
        got[f"{name}{i}"] = await jobs.claim(scopes[name], inputs.Claim(queue_name="iso", worker_id=f"{name}{i}",
                                                                        limit=1))
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            for i in range(2):
                for name in scopes:
                    n.start_soon(one, name, i)
    for org, _, claimers in spy.calls:
        kinds = {c[0][:5] for c in claimers}
        assert len(kinds) == 1                                 # one organization and one scope per statement
        assert (org == uuid.UUID(api.org_id)) == kinds.issubset({"a-all", "a-iso"})
    assert len(spy.calls) >= 3
    for name, js in got.items():
        assert len(js) == 1
        assert (str(js[0].id) in mine) == name.startswith("a-")


async def test_waiters_woken_by_one_notify_share_one_statement(api, server):
    jobs = server.services.jobs
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            await start_waiters(n, server, api.org_id, "herd", 6, got)
            spy = StatementSpy(jobs)
            r = await api.post("/api/v1/jobs/bulk", json={"queue_name": "herd", "jobs": [{"payload": {}}] * 4})
            assert r.status_code == 200
            while len(got) < 4:
                await trio.sleep(0.01)
            n.cancel_scope.cancel()                            # the two left waiting
    woken = [c[0] for c in spy.calls[0][2]]
    assert len(woken) == 4                                     # the four woken waiters: one statement
    assert sorted(len(g) for g in got) == [1, 1, 1, 1]
    assert sorted(g[0].assigned_worker_id for g in got) == sorted(woken)
    assert len({g[0].id for g in got}) == 4


# -- the grouper on its own -----------------------------------------------------------------------------------
class GatedClaims:
    """A fake claim flush: each item is a name; its result is [name]; every flush waits for its gate."""

    def __init__(self):
        self.calls: list[list] = []
        self.gates: list[trio.Event] = []
        self.abandoned: list = []

    async def flush(self, scope, items):
        self.calls.append(list(items))
        gate = trio.Event()
        self.gates.append(gate)
        with trio.fail_after(5):
            await gate.wait()
        return [[i] for i in items]

    async def give_back(self, scope, result):
        self.abandoned.append(result)


async def test_grouper_gives_back_what_a_cancelled_caller_got_and_drops_what_it_never_flushed():
    fake = GatedClaims()
    g = Grouper(fake.flush, abandoned=fake.give_back)
    results = {}
    scopes = {name: trio.CancelScope() for name in ("leader", "inflight", "queued")}

    async def one(name):
        with scopes[name]:
            results[name] = await g.submit("q", name)

    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            n.start_soon(one, "leader")
            n.start_soon(one, "inflight")                      # joins the leader's flush (same scheduler pass)
            await wait_all_tasks_blocked()
            n.start_soon(one, "queued")                        # behind the running flush
            await wait_all_tasks_blocked()
            assert [sorted(c) for c in fake.calls] == [["inflight", "leader"]]
            scopes["inflight"].cancel()
            scopes["queued"].cancel()
            scopes["leader"].cancel()                          # even the flusher: its own share goes back
            await wait_all_tasks_blocked()
            fake.gates[0].set()
    assert results == {}
    assert sorted(fake.abandoned) == [["inflight"], ["leader"]]
    assert [sorted(c) for c in fake.calls] == [["inflight", "leader"]]   # "queued" never ran
    with trio.fail_after(5):                                   # and the grouper still serves
        async with trio.open_nursery() as n:
            scopes["after"] = trio.CancelScope()
            n.start_soon(one, "after")
            await wait_all_tasks_blocked()
            fake.gates[1].set()
    assert results == {"after": ["after"]}


async def test_grouper_runs_up_to_its_concurrency_per_scope_and_scopes_apart():
    fake = GatedClaims()
    g = Grouper(fake.flush, concurrency=2)
    results = {}

    async def one(scope, name):
        results[name] = await g.submit(scope, name)

    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            n.start_soon(one, "q", "a")
            await wait_all_tasks_blocked()
            n.start_soon(one, "q", "b")                        # a slot is free: its own flush, at once
            await wait_all_tasks_blocked()
            n.start_soon(one, "q", "c")                        # both busy: waits, and groups with the next
            n.start_soon(one, "q", "d")
            n.start_soon(one, "other", "x")                    # another scope never waits for this one
            await wait_all_tasks_blocked()
            assert fake.calls == [["a"], ["b"], ["x"]]
            fake.gates[1].set()                                # b's flush ends: c and d go together
            await wait_all_tasks_blocked()
            assert sorted(fake.calls[3]) == ["c", "d"]
            for gate in fake.gates:
                gate.set()
    assert results == {k: [k] for k in "abcdx"}


async def test_a_full_claim_passes_the_wake_on_only_while_jobs_are_left(api, server):
    jobs = server.services.jobs
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            await start_waiters(n, server, api.org_id, "pass", 3, got)
            spy = StatementSpy(jobs)
            await enqueue(api, queue="pass")
            while not got or not spy.calls:     # (the NOTIFY's echo comes over the network: wait for it)
                await trio.sleep(0.01)
            await wait_all_tasks_blocked()
            assert len(spy.calls) == 1     # nothing left: no wake went on (the enqueue claimed for the oldest
                                           # waiter, test_handoff.py; its NOTIFY woke one more, which found nothing)
            assert server.services.wakeups.waiter_count(api.org_id, "pass") == 2
            # jobs left after a full claim (two jobs, written without their NOTIFY, and one wake): the wake goes on
            await quiet_insert(server, api.org_id, "pass", [uuid.uuid4(), uuid.uuid4()])
            server.services.wakeups.notify(api.org_id, "pass", 1)
            while len(got) < 2 or len(spy.calls) < 3:          # (without the wake passed on, no third claim)
                await trio.sleep(0.01)
            await wait_all_tasks_blocked()
            assert len(spy.calls) == 3                         # the woken one passed its wake on
            while len(got) < 3:
                await trio.sleep(0.01)
    assert sorted(len(g) for g in got) == [1, 1, 1]


async def test_the_group_claim_is_pinned_to_generic_plans(api, server):
    """A custom plan sees the arrays' length: for one claimer it looked cheaper than the generic one and the query
    was planned again on every call (docs/benchmarks.md); the function runs with generic plans, by primary key."""
    (config,) = await rows(server, "SELECT proconfig FROM pg_proc WHERE proname = 'spooled_claim_jobs_for'")
    assert {"plan_cache_mode=force_generic_plan", "enable_seqscan=off", "jit=off"} <= set(config["proconfig"])
