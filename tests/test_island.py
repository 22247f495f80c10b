"""The asyncio island (spooled/island.py): a pass of ready asyncio callbacks per Trio checkpoint, in order."""

from __future__ import annotations

import asyncio

import trio
import trio.lowlevel

from spooled import island


class _Passes(trio.abc.Instrument):
    """Counts passes of Trio's scheduler (one I/O wait each)."""

    def __init__(self) -> None:
        self.n = 0

    def after_io_wait(self, timeout: float) -> None:
        self.n += 1


async def test_the_loop_runs_queued_callbacks_in_one_pass_in_order(aio_loop):
    with trio.fail_after(10):
        assert island.draining(aio_loop)        # the pinned trio-asyncio (a new version: re-check the method)
        ran: list[int] = []
        done = trio.Event()
        passes = _Passes()
        trio.lowlevel.add_instrument(passes)
        try:
            for i in range(50):
                aio_loop.call_soon(ran.append, i)
            aio_loop.call_soon(done.set)
            await done.wait()
        finally:
            trio.lowlevel.remove_instrument(passes)
        assert ran == list(range(50))
        assert passes.n < 10        # trio-asyncio's own loop takes a pass per callback: 51 or more


async def test_callbacks_queued_by_a_pass_run_in_a_later_one_and_timers_still_fire(aio_loop):
    with trio.fail_after(10):
        order: list[str] = []
        done = trio.Event()

        def first() -> None:
            order.append("first")
            aio_loop.call_soon(order.append, "queued by first")
            aio_loop.call_soon(done.set)

        aio_loop.call_later(0.05, order.append, "timer")
        aio_loop.call_soon(first)
        aio_loop.call_soon(order.append, "second")
        await done.wait()
        assert order == ["first", "second", "queued by first"]
        await trio.sleep(0.1)
        assert order[-1] == "timer"


async def test_asyncio_tasks_and_trio_calls_cross_both_ways(aio_loop):
    with trio.fail_after(10):
        from trio_asyncio import aio_as_trio, trio_as_aio

        async def in_trio(x: int) -> int:
            await trio.sleep(0)
            return x + 1

        async def in_asyncio(x: int) -> int:
            await asyncio.sleep(0)
            return await trio_as_aio(in_trio)(x) * 2

        results = [await aio_as_trio(in_asyncio)(i) for i in range(20)]
        assert results == [(i + 1) * 2 for i in range(20)]
