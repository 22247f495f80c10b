"""The asyncio island (spooled/island.py): a pass of ready asyncio callbacks per Trio checkpoint, in order."""

from __future__ import annotations

import asyncio

import pytest
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


# -- start_trio: a Trio task started from asyncio code in the loop's nursery, as trio_as_aio's but without its
# trip through the loop's queue
async def _in_asyncio(fn):
    """`fn()` run as an asyncio task of the island, awaited from Trio."""
    from trio_asyncio import aio_as_trio
    return await aio_as_trio(fn)()


async def test_start_trio_returns_the_result_or_the_exception_in_the_callers_context(aio_loop):
    import contextvars
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            async def in_trio(x: int) -> tuple[int, str, str]:
                await trio.sleep(0)
                return x + 1, var.get(), sniffio_library()

            async def boom() -> None:
                await trio.sleep(0)
                raise LookupError("from trio")

            async def caller() -> tuple:
                var.set("set by the asyncio caller")
                got = await island.start_trio(aio_loop, in_trio, 1)
                try:
                    await island.start_trio(aio_loop, boom)
                except LookupError as exc:
                    return got, str(exc)
                raise AssertionError("the exception did not reach the caller")

            assert await _in_asyncio(caller) == ((2, "set by the asyncio caller", "trio"), "from trio")


def sniffio_library() -> str:
    import sniffio
    return sniffio.current_async_library()


async def test_cancelling_the_caller_cancels_the_trio_task_and_waits_for_its_end(aio_loop):
    with trio.fail_after(10):
        order: list[str] = []
        started = trio.Event()
        async with trio.open_nursery() as nursery:
            async def in_trio() -> None:
                try:
                    started.set()
                    await trio.sleep_forever()
                finally:
                    with trio.CancelScope(shield=True):
                        await trio.sleep(0.05)       # its cleanup takes a while (a release of leased jobs)
                    order.append("trio side ended")

            async def caller() -> None:
                try:
                    await island.start_trio(aio_loop, in_trio)
                except asyncio.CancelledError:
                    order.append("caller cancelled")
                    raise

            async def main() -> str:
                task = asyncio.ensure_future(caller())
                while not started.is_set():
                    await asyncio.sleep(0.005)
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    return "cancelled"
                return "not cancelled"

            assert await _in_asyncio(main) == "cancelled"
        assert order == ["trio side ended", "caller cancelled"]


async def test_a_call_cancelled_before_its_task_started_never_runs(aio_loop):
    with trio.fail_after(10):
        ran: list[str] = []
        async with trio.open_nursery() as nursery:
            async def in_trio() -> None:
                ran.append("ran")

            async def caller() -> str:
                call = island.start_trio(aio_loop, in_trio)
                call.cancel()               # synchronously: the Trio task has not run yet
                try:
                    await call
                except asyncio.CancelledError:
                    return "cancelled"
                return "completed"

            assert await _in_asyncio(caller) == "cancelled"
        assert ran == []


async def test_a_trio_cancellation_from_outside_ends_the_call_and_keeps_propagating(aio_loop):
    with trio.fail_after(10):
        outcome: list[str] = []
        started = trio.Event()
        done = trio.Event()

        async def in_trio() -> None:
            started.set()
            await trio.sleep_forever()

        async def caller(nursery) -> None:
            try:
                await island.start_in(nursery, aio_loop, in_trio)
                outcome.append("returned")
            except asyncio.CancelledError:
                outcome.append("cancelled")
            finally:
                done.set()

        async with trio.open_nursery() as outer:
            async with trio.open_nursery() as calls:
                outer.start_soon(_in_asyncio, lambda: caller(calls))
                await started.wait()
                calls.cancel_scope.cancel()     # its nursery cancelled (the loop's, as the island closes)
            assert calls.cancel_scope.cancelled_caught   # the Cancelled reached its scope
            await done.wait()
        assert outcome == ["cancelled"]


# -- run_here: an asyncio coroutine driven from a Trio task, synchronously until it first suspends
async def test_run_here_runs_a_coroutine_that_does_not_suspend_at_once_without_a_checkpoint(aio_loop):
    with trio.fail_after(10):
        steps: list[str] = []

        async def no_wait(x: int) -> int:
            steps.append("ran")
            return x * 2

        passes = _Passes()
        trio.lowlevel.add_instrument(passes)
        try:
            got = await island.run_here(no_wait(21))
            seen_passes = passes.n          # read before anything below yields
        finally:
            trio.lowlevel.remove_instrument(passes)
        assert (got, steps, seen_passes) == (42, ["ran"], 0)


async def test_run_here_finishes_a_suspended_coroutine_in_an_asyncio_task_in_order(aio_loop):
    with trio.fail_after(10):
        steps: list[object] = []

        async def waits() -> str:
            steps.append(("before", asyncio.current_task()))   # in the Trio task: no asyncio task
            fut = aio_loop.create_future()
            aio_loop.call_later(0.01, fut.set_result, "resolved")
            got = await fut
            await asyncio.sleep(0)                             # a bare yield, too
            steps.append(("after", asyncio.current_task() is not None))
            return got

        assert await island.run_here(waits()) == "resolved"
        assert steps == [("before", None), ("after", True)]


async def test_run_here_raises_what_the_coroutine_raises_before_or_after_suspending(aio_loop):
    with trio.fail_after(10):
        async def at_once() -> None:
            raise LookupError("at once")

        async def later() -> None:
            await asyncio.sleep(0.01)
            raise KeyError("later")

        with pytest.raises(LookupError, match="at once"):
            await island.run_here(at_once())
        with pytest.raises(KeyError, match="later"):
            await island.run_here(later())


async def test_cancelling_run_here_cancels_the_suspended_rest_and_waits_for_it(aio_loop):
    with trio.fail_after(10):
        ended: list[str] = []

        async def stuck() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                ended.append("cancelled")
                raise
            finally:
                ended.append("finally")

        with trio.move_on_after(0.05) as scope:
            await island.run_here(stuck())
        assert scope.cancelled_caught
        assert ended == ["cancelled", "finally"]
