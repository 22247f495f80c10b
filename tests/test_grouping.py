"""CompletionGrouper: concurrent single completions share statements, each caller gets its own result."""

from __future__ import annotations

import pytest
import trio

from spooled.services.grouping import CompletionGrouper


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
    g = CompletionGrouper(flush, max_batch=100)
    got = {}

    async def one(i):
        got[i] = await g.complete("o", (f"j{i}", "l", None))

    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            for i in range(20):
                n.start_soon(one, i)
    assert got == {i: f"o:j{i}" for i in range(20)}
    assert len(flush.calls) <= 3                      # 20 completions, a handful of statements
    assert sorted(j for _, items in flush.calls for j in items) == sorted(f"j{i}" for i in range(20))


async def test_lone_completion_is_flushed_at_once():
    flush = FakeFlush(delay=0)
    g = CompletionGrouper(flush)
    with trio.fail_after(1):
        assert await g.complete("o", ("j", "l", None)) == "o:j"


async def test_batches_are_per_organization_and_bounded():
    flush = FakeFlush()
    g = CompletionGrouper(flush, max_batch=4)

    async def one(org, i):
        assert await g.complete(org, (f"j{i}", "l", None)) == f"{org}:j{i}"

    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            for i in range(10):
                n.start_soon(one, "a" if i % 2 else "b", i)
    assert all(len({org}) == 1 and len(items) <= 4 for org, items in flush.calls)
    assert sum(len(items) for _, items in flush.calls) == 10


async def test_a_failed_flush_fails_its_callers_only():
    flush = FakeFlush(fail_on="bad")
    g = CompletionGrouper(flush)
    results = {}

    async def one(name, org):
        try:
            results[name] = await g.complete(org, (name, "l", None))
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


async def test_cancelled_waiter_is_dropped_and_nothing_stalls():
    flush = FakeFlush(delay=0.2)
    g = CompletionGrouper(flush)
    results = {}

    async def one(name, cancel_after=None):
        with trio.move_on_after(cancel_after or 60):
            results[name] = await g.complete("o", (name, "l", None))

    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            n.start_soon(one, "leader")
            await trio.sleep(0.05)
            n.start_soon(one, "quitter", 0.05)   # waits behind the leader's flush, then gives up
            n.start_soon(one, "patient")
    assert "quitter" not in results
    assert results == {"leader": "o:leader", "patient": "o:patient"}
    assert all("quitter" not in items for _, items in flush.calls)   # it never happened


@pytest.mark.parametrize("n", [1, 7])
async def test_handover_when_the_leader_is_done(n):
    flush = FakeFlush(delay=0.02)
    g = CompletionGrouper(flush, max_batch=2)
    got = []

    async def one(i):
        got.append(await g.complete("o", (f"j{i}", "l", None)))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)
    assert sorted(got) == sorted(f"o:j{i}" for i in range(n))
