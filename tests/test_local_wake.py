"""An enqueue through this instance wakes its own waiters at its commit, and the listener drops that insert's
NOTIFY when it comes back (store/listen.py `Echoes`, docs/architecture.md "Local wakeups"): matched by the
sending backend pid and the exact payload, never a notification another instance or another path relies on."""

from __future__ import annotations

import random
from functools import partial

import httpx
import trio
from trio.testing import wait_all_tasks_blocked

from spooled.domain import inputs
from spooled.domain.scope import Scope
from spooled.store.listen import Echoes
from spooled.supervisor import serve
from tests.conftest import make_settings
from tests.helpers import enqueue
from tests.test_claim_group import StatementSpy, start_waiters


class HeldListener:
    """Holds every `spooled_jobs` notification the listener receives (the listener 'stopped'); `release` then
    hands them to the real echo filter and wakeups, as if they had arrived now."""

    def __init__(self, server):
        self.echoes: Echoes = server.services.echoes
        self.wakeups = server.services.wakeups
        self.real_drop = self.echoes.drop
        self.held: list[tuple[int, str]] = []
        self.echoes.drop = self._hold      # the listener calls it for every notification of the channel

    def _hold(self, pid: int, payload: str) -> bool:
        self.held.append((pid, payload))
        return True

    def release(self) -> list[str]:
        """Deliver what was held; the payloads that woke waiters (were not dropped as echoes)."""
        handled = []
        held, self.held = self.held, []
        for pid, payload in held:
            if not self.real_drop(pid, payload):
                self.wakeups.handle(payload)
                handled.append(payload)
        return handled

    def restore(self) -> None:
        self.echoes.drop = self.real_drop


async def test_a_local_enqueue_wakes_a_local_waiter_without_its_notify(api, server):
    held = HeldListener(server)
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            await start_waiters(n, server, api.org_id, "lw", 1, got)
            job = await enqueue(api, "lw")
            while not got or not held.held:
                await trio.sleep(0.01)
    assert [str(j.id) for j in got[0]] == [job["id"]]          # claimed, though no notification reached the wakeups
    assert held.held and held.held[0][1] == f"{api.org_id} lw 1"   # its NOTIFY came, from one of our connections
    assert held.release() == []                           # ...and is the echo: dropped
    held.restore()


async def test_the_echo_does_not_wake_a_second_waiter(api, server):
    """The NOTIFY arrives after the answer (the common case): the local wake served the job, the echo is
    dropped, one claim statement ran, the other waiter still waits."""
    held = HeldListener(server)
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            await start_waiters(n, server, api.org_id, "echo", 2, got)
            spy = StatementSpy(server.services.jobs)
            await enqueue(api, "echo")
            while not got or not held.held:
                await trio.sleep(0.01)
            await wait_all_tasks_blocked()
            dropped = server.services.echoes.dropped
            assert held.release() == []
            assert server.services.echoes.dropped == dropped + 1
            await wait_all_tasks_blocked()
            assert len(spy.calls) == 1                     # the woken waiter's claim only
            assert server.services.wakeups.waiter_count(api.org_id, "echo") == 1
            n.cancel_scope.cancel()
    held.restore()


async def test_a_notify_before_the_answer_wakes_and_the_insert_does_not_wake_again(api, server):
    """The NOTIFY arrives before the insert's answer: it wakes as usual, and the insert does no local wake (one
    claim statement, the other waiter still waits). The echo is delivered (to the real filter and wakeups) just
    before the insert settles; the listener's own copy of it is held and never delivered."""
    echoes, held = server.services.echoes, HeldListener(server)
    real_settle, woke_locally = echoes.settle, []

    def settle(ticket, ready):
        if not ticket.settled and ready:
            payload = ticket.prefix + str(ready)
            assert not held.real_drop(ticket.pid, payload)
            server.services.wakeups.handle(payload)
        woke_locally.append(real_settle(ticket, ready))
        return woke_locally[-1]
    echoes.settle = settle
    got: list[list] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            await start_waiters(n, server, api.org_id, "early", 2, got)
            spy = StatementSpy(server.services.jobs)
            await enqueue(api, "early")
            while not got:
                await trio.sleep(0.01)
            await wait_all_tasks_blocked()
            assert woke_locally and not any(woke_locally)
            assert len(spy.calls) == 1
            assert server.services.wakeups.waiter_count(api.org_id, "early") == 1
            n.cancel_scope.cancel()
    echoes.settle = real_settle
    held.restore()


async def test_a_notify_from_another_connection_or_path_still_wakes(api, server, dsn):
    """A plain NOTIFY from a connection outside the pool (another instance), and one from a pool connection that
    is no armed insert's (another path of ours: a retry, a release), wake a waiter as usual (its claim runs)."""
    import triopg
    jobs = server.services.jobs
    for how in ("outside", "pool"):
        got: list[list] = []
        queue = f"plain-{how}"
        with trio.fail_after(20):
            async with trio.open_nursery() as n:
                await start_waiters(n, server, api.org_id, queue, 1, got)
                spy = StatementSpy(jobs)
                sql = f"NOTIFY spooled_jobs, '{api.org_id} {queue} 1'"
                if how == "pool":
                    await server.services.db.run(lambda con: con.execute(sql))
                else:
                    async with triopg.connect(dsn) as con:
                        await con.execute(sql)
                while not spy.calls:
                    await trio.sleep(0.01)
                n.cancel_scope.cancel()
        jobs._store.claim = spy.real
        assert [c[1] for c in spy.calls] == [queue]


async def test_an_enqueue_through_another_instance_wakes_this_ones_waiter(api, server, tmp_path, dsn):
    other_settings = make_settings(tmp_path / "b", dsn)
    (tmp_path / "b").mkdir()
    got: list[list] = []
    with trio.fail_after(30):
        async with trio.open_nursery() as n:
            shutdown = trio.Event()
            other = await n.start(partial(serve, other_settings, dsn, shutdown=shutdown))
            await start_waiters(n, server, api.org_id, "cross", 1, got)
            async with httpx.AsyncClient(base_url=other.http_url, headers=dict(api.headers)) as b:
                job = await enqueue(b, "cross")
            while not got:
                await trio.sleep(0.01)
            shutdown.set()
    assert [str(j.id) for j in got[0]] == [job["id"]]
    assert other.services.echoes.dropped == 1 or server.services.echoes.dropped == 0   # each drops only its own


async def test_no_lost_wakeup_under_concurrent_enqueues_and_waiters(api, server, tmp_path, dsn):
    """Two instances on one database, long polls on both, producers on both (single enqueues, grouped, and
    bulk ones), interleaved at random: every job is claimed by a waiter that was woken (no waiter's wait runs
    out: they wait longer than the test may run)."""
    other_settings = make_settings(tmp_path / "b", dsn)
    (tmp_path / "b").mkdir()
    total, claimed, rnd = 0, [], random.Random(11)
    with trio.fail_after(90):
        async with trio.open_nursery() as n:
            shutdown = trio.Event()
            other = await n.start(partial(serve, other_settings, dsn, shutdown=shutdown))
            done = trio.Event()

            async def waiter(srv, i):
                while not done.is_set():
                    js = await srv.services.jobs.claim(Scope(api.org_id), inputs.Claim(
                        queue_name="race", worker_id=f"w{i}", limit=rnd.choice((1, 1, 2))), deadline=trio.current_time() + 600)
                    claimed.extend(j.id for j in js)
            async with trio.open_nursery() as waiters:
                for i in range(12):
                    waiters.start_soon(waiter, server if i % 2 else other, i)
                async with httpx.AsyncClient(base_url=other.http_url, headers=dict(api.headers), timeout=30) as b:
                    async def producer(c, k):
                        nonlocal total
                        for _ in range(15):
                            if rnd.random() < 0.2:
                                m = rnd.randint(2, 5)
                                r = await c.post("/api/v1/jobs/bulk", json={"queue_name": "race",
                                                                            "jobs": [{"payload": {}}] * m})
                                assert r.status_code == 200, r.text
                                total += m
                            else:
                                await enqueue(c, "race")
                                total += 1
                            await trio.sleep(rnd.random() * 0.005)
                    async with trio.open_nursery() as producers:
                        for k in range(8):
                            producers.start_soon(producer, api if k % 2 else b, k)
                while len(claimed) < total:
                    await trio.sleep(0.01)
                done.set()
                waiters.cancel_scope.cancel()
            shutdown.set()
    assert len(claimed) == len(set(claimed)) == total


# -- the echo filter on its own (pure bookkeeping, no I/O) ----------------------------------------------------
def test_an_armed_echo_is_dropped_once_and_only_from_its_pid_with_its_payload():
    woken = []
    e = Echoes(lambda org, queue, n: woken.append((org, queue, n)))
    t = e.expect("o", "q")
    e.sending(t, 101)
    assert e.settle(t, 3) == 3 and woken == [("o", "q", 3)]
    assert e.settle(t, 3) == 0 and len(woken) == 1        # once per insert
    assert not e.drop(202, "o q 3")                       # another instance's backend
    assert not e.drop(101, "o q 1")                       # another count: not this insert's NOTIFY
    assert not e.drop(101, "o q2 3")
    assert e.drop(101, "o q 3")
    assert not e.drop(101, "o q 3")                       # once


def test_an_echo_seen_before_the_answer_means_no_local_wake_and_nothing_armed():
    e = Echoes(lambda org, queue, n: None)
    t = e.expect("o", "q")
    e.sending(t, 101)
    assert not e.drop(101, "o q 1")                       # arrives first: handled as usual
    assert e.settle(t, 1) == 0
    assert not e.drop(101, "o q 1")                       # a later one of that connection is not swallowed


def test_a_stale_notify_of_the_same_connection_and_payload_leaves_the_insert_echo_to_wake():
    """An earlier transaction of the connection (a retry) sent the same payload; it arrives while the insert
    runs: it wakes as usual and the insert, not knowing which it was, does no local wake; its own echo then
    wakes too (a spurious wake at worst)."""
    e = Echoes(lambda org, queue, n: None)
    t = e.expect("o", "q")
    e.sending(t, 101)
    assert not e.drop(101, "o q 1")                       # the stale one
    assert e.settle(t, 1) == 0
    assert not e.drop(101, "o q 1")                       # its own


def test_failed_inserts_and_resyncs_arm_nothing():
    e = Echoes(lambda org, queue, n: None)
    t = e.expect("o", "q")
    e.sending(t, 101)
    assert e.settle(t, 0) == 0                            # failed, answer lost, or nothing claimable
    assert not e.drop(101, "o q 0") and not e.drop(101, "o q 1")
    t = e.expect("o", "q")
    e.sending(t, 101)
    e.clear()                                             # notifications lost while it ran (overflow, reconnect)
    assert e.settle(t, 2) == 2                            # wakes locally, but arms nothing
    assert not e.drop(101, "o q 2")
    t = e.expect("o", "q")
    e.sending(t, 101)
    assert e.settle(t, 2) == 2
    e.clear()                                             # armed, then a resync: forgotten
    assert not e.drop(101, "o q 2")
