"""Grouper: concurrent single completions share statements, each caller gets its own result."""

from __future__ import annotations

import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from spooled.services.grouping import Grouper


class FakeFlush:
    def __init__(self, delay: float = 0.05, fail_on: str | None = None):
        self.calls: list[tuple[str, list]] = []
        self.delay, self.fail_on = delay, fail_on

    async def __call__(self, org, items):
        self.calls.append((org, [i[0] for i in items]))
        await trio.sleep(self.delay)
        if self.fail_on in [i[0] for i in items]:
            raise RuntimeError("db down")
        return [f"{org}:{i[0]}" for i in items]


async def test_concurrent_completions_share_statements():
    flush = FakeFlush()
    g = Grouper(flush, max_batch=100)
    got = {}

    async def one(i):
        got[i] = await g.submit("o", (f"j{i}", "l", None))

    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            for i in range(20):
                n.start_soon(one, i)
    assert got == {i: f"o:j{i}" for i in range(20)}
    assert len(flush.calls) <= 3                      # 20 completions, a handful of statements
    assert sorted(j for _, items in flush.calls for j in items) == sorted(f"j{i}" for i in range(20))


async def test_lone_completion_is_flushed_at_once():
    flush = FakeFlush(delay=0)
    g = Grouper(flush)
    with trio.fail_after(1):
        assert await g.submit("o", ("j", "l", None)) == "o:j"


async def test_batches_are_per_organization_and_bounded():
    flush = FakeFlush()
    g = Grouper(flush, max_batch=4)

    async def one(org, i):
        assert await g.submit(org, (f"j{i}", "l", None)) == f"{org}:j{i}"

    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            for i in range(10):
                n.start_soon(one, "a" if i % 2 else "b", i)
    assert all(len({org}) == 1 and len(items) <= 4 for org, items in flush.calls)
    assert sum(len(items) for _, items in flush.calls) == 10


async def test_a_failed_flush_fails_its_callers_only():
    flush = FakeFlush(fail_on="bad")
    g = Grouper(flush)
    results = {}

    async def one(name, org):
        try:
            results[name] = await g.submit(org, (name, "l", None))
        except RuntimeError as exc:
            results[name] = exc

    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            n.start_soon(one, "first", "x")
            await trio.sleep(0.01)
            n.start_soon(one, "bad", "y")
            n.start_soon(one, "good", "z")
    assert isinstance(results["bad"], RuntimeError)
    assert results["first"] == "x:first" and results["good"] == "z:good"


class GatedFlush:
    """A flush that holds each statement until the test opens its gate (no timings: the order is the test's)."""

    def __init__(self):
        self.calls: list[tuple[str, list]] = []
        self.gates: list[trio.Event] = []

    async def __call__(self, org, items):
        self.calls.append((org, [i[0] for i in items]))
        gate = trio.Event()
        self.gates.append(gate)
        with trio.fail_after(5):                # the grouper shields its flushes: a stall fails, never hangs
            await gate.wait()
        return [f"{org}:{i[0]}" for i in items]


def completer(g, results):
    """A caller completing item `name` (inside `scope`, if given), its result put in `results`."""
    async def one(name, scope=None):
        with scope or trio.CancelScope():
            results[name] = await g.submit("o", (name, "l", None))
    return one


async def test_cancelled_waiter_is_dropped_and_nothing_stalls():
    flush = GatedFlush()
    g = Grouper(flush)
    results = {}

    one = completer(g, results)
    quitter = trio.CancelScope()
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            n.start_soon(one, "leader")
            await wait_all_tasks_blocked()
            n.start_soon(one, "quitter", quitter)   # waits behind the leader's flush, then gives up
            await wait_all_tasks_blocked()
            n.start_soon(one, "patient")
            await wait_all_tasks_blocked()
            quitter.cancel()
            await wait_all_tasks_blocked()
            flush.gates[0].set()                     # the leader's flush ends: the quitter was to flush next
            await wait_all_tasks_blocked()
            flush.gates[1].set()
    assert "quitter" not in results
    assert results == {"leader": "o:leader", "patient": "o:patient"}
    assert all("quitter" not in items for _, items in flush.calls)   # it never happened


async def test_waiter_cancelled_while_its_flush_runs_gets_cancelled_and_nothing_stalls():
    """Cancelled once another caller's flush holds its item: the completion happens, the caller is cancelled."""
    flush = GatedFlush()
    g = Grouper(flush)
    results = {}

    one = completer(g, results)
    late = trio.CancelScope()
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            n.start_soon(one, "leader")
            await wait_all_tasks_blocked()
            n.start_soon(one, "patient")
            await wait_all_tasks_blocked()
            n.start_soon(one, "late", late)
            await wait_all_tasks_blocked()
            flush.gates[0].set()                     # the patient leads next, flushing its own and the late item
            await wait_all_tasks_blocked()
            assert flush.calls[1] == ("o", ["patient", "late"])
            late.cancel()
            await wait_all_tasks_blocked()
            flush.gates[1].set()
            await wait_all_tasks_blocked()
            n.start_soon(one, "after")              # the grouper still flushes
            await wait_all_tasks_blocked()
            flush.gates[2].set()
    assert results == {"leader": "o:leader", "patient": "o:patient", "after": "o:after"}


@pytest.mark.parametrize("n", [1, 7])
async def test_handover_when_the_leader_is_done(n):
    flush = FakeFlush(delay=0.02)
    g = Grouper(flush, max_batch=2)
    got = []

    async def one(i):
        got.append(await g.submit("o", (f"j{i}", "l", None)))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)
    assert sorted(got) == sorted(f"o:j{i}" for i in range(n))


async def test_an_item_result_that_is_an_error_is_raised_to_its_own_caller_only():
    async def flush(org, items):
        return [ValueError(i[0]) if i[0].startswith("bad") else f"ok:{i[0]}" for i in items]
    g = Grouper(flush)
    got = {}

    async def one(name):
        try:
            got[name] = await g.submit("o", (name,))
        except ValueError as exc:
            got[name] = f"error:{exc}"
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            for name in ("a", "bad1", "b"):
                n.start_soon(one, name)
    assert got == {"a": "ok:a", "bad1": "error:bad1", "b": "ok:b"}


async def test_keys_flush_independently():
    """A statement held for one key does not hold another key's items (one tenant never waits for another)."""
    flush = GatedFlush()
    g = Grouper(flush)
    results = {}

    async def one(key, name):
        results[name] = await g.submit(key, (name,))
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            n.start_soon(one, "a", "a1")
            await wait_all_tasks_blocked()
            n.start_soon(one, "a", "a2")             # waits behind a1's flush
            n.start_soon(one, "b", "b1")             # flushes at once, alongside
            await wait_all_tasks_blocked()
            assert flush.calls == [("a", ["a1"]), ("b", ["b1"])] and g.waiting() == 1
            flush.gates[1].set()
            await wait_all_tasks_blocked()
            assert results == {"b1": "b:b1"}
            flush.gates[0].set()
            await wait_all_tasks_blocked()
            flush.gates[2].set()
    assert results == {"a1": "a:a1", "a2": "a:a2", "b1": "b:b1"}
    assert g.waiting() == 0 and g._lanes == {}       # idle lanes are forgotten
