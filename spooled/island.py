"""The one asyncio island (trio-asyncio), whose loop runs a pass of ready callbacks per Trio checkpoint, as
asyncio's own loop does.

trio-asyncio 0.16's loop takes ONE asyncio callback per Trio checkpoint: for each it enters a cancel scope,
`receive`s the callback from its queue (a checkpoint: a pass of Trio's scheduler, an `epoll_wait`) and runs it.
A unary gRPC call is dozens of callbacks (its task's steps, h2 reads, the futures that wake it, asyncpg's
protocol for every statement), so each paid a scheduler pass: on this machine ~150 µs per crossing into asyncio
and back, most of a gRPC call's cost beyond grpclib's own (docs/benchmarks.md, "gRPC one job per call").
`open_loop` opens trio-asyncio's loop and has it run, after the callback it received, the callbacks that were
already queued behind it (not those they queue: each pass is bounded, as asyncio's `_run_once` runs the callbacks
ready when it began), then checkpoint once. Order is unchanged (FIFO; a timer is filed, not run, as upstream);
Trio starts a Trio-flavoured call (`trio_as_aio`) exactly as upstream does.

This replaces one method of the loop object (not the class), so only loops opened here behave so; it is the
method of the pinned trio-asyncio version (pyproject.toml), and any other version keeps its own loop (checked at
open: `draining(loop)` tells).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import types
from typing import AsyncIterator

import trio
import trio_asyncio
from sniffio import thread_local as _sniffio
from trio_asyncio._handles import AsyncHandle, collapse_aware_exception_split

_FOR_VERSION = "0.16.0"


async def _main_loop_one(self, no_wait: bool = False) -> None:
    """trio-asyncio 0.16's `BaseTrioEventLoop._main_loop_one`, then the rest of the pass (marked below)."""
    obj = None
    if self._timers:
        timeout = self._timers[0]._when - self.time()
        if timeout <= 0:
            obj = heapq.heappop(self._timers)
    else:
        timeout = math.inf
    if obj is None:
        if no_wait:
            obj = self._q_recv.receive_nowait()
        else:
            with trio.move_on_after(timeout):
                obj = await self._q_recv.receive()
            if obj is None:
                return
        if isinstance(obj, asyncio.TimerHandle):
            heapq.heappush(self._timers, obj)
            return
    # -- the pass: what was queued behind `obj` when it began, in order, without a checkpoint between
    behind = self._q_recv.statistics().current_buffer_used
    while True:
        if isinstance(obj, AsyncHandle):
            obj._context.run(self._nursery.start_soon, obj._run, name=obj._callback)
            await obj._started.wait()
        elif not obj._cancelled:
            prev_library, _sniffio.name = _sniffio.name, "asyncio"
            try:
                obj._run()
            finally:
                _sniffio.name = prev_library
        while True:
            if behind <= 0:
                return
            behind -= 1
            try:
                obj = self._q_recv.receive_nowait()
            except trio.WouldBlock:
                return
            if not isinstance(obj, asyncio.TimerHandle):
                break
            heapq.heappush(self._timers, obj)


def draining(loop) -> bool:
    """Whether `loop` runs a pass of callbacks per checkpoint (it was opened by `open_loop`, on the pinned
    trio-asyncio)."""
    own = getattr(loop, "_main_loop_one", None)
    return getattr(own, "__func__", None) is _main_loop_one


@contextlib.asynccontextmanager
async def open_loop() -> AsyncIterator[asyncio.AbstractEventLoop]:
    """`trio_asyncio.open_loop()`, draining (above). The loop's main task reads the method on each turn, so it
    takes effect from the next callback on."""
    async with trio_asyncio.open_loop() as loop:
        if trio_asyncio.__version__ == _FOR_VERSION:
            loop._main_loop_one = types.MethodType(_main_loop_one, loop)
        yield loop


class TrioCall(asyncio.Future):
    """The asyncio future of a Trio task started at once from asyncio code (`start_trio`).

    `trio_as_aio` files an AsyncHandle on the loop's queue; the loop's next pass starts the task and waits (a
    checkpoint, so a scheduler pass) for it to start before running the callbacks behind it: ~25 µs of CPU per
    call more than this (docs/benchmarks.md, "fourth session, grpccall"). Asyncio code running in the island runs inside a
    Trio task (the loop's), so it may start a Trio task itself: `nursery.start_soon` right there, in a copy of
    the caller's context, as trio-asyncio's AsyncHandle does.

    Cancellation is trio_as_aio's: cancelling the future (its awaiting asyncio task cancelled) cancels the Trio
    task's scope, and the future is marked cancelled only once that task has finished, so the awaiting task
    sees the end of the Trio side (its `finally`s, a job released) before its own CancelledError. A task
    cancelled before it started does not run. A Trio cancellation from outside (its nursery cancelled) cancels
    the future and keeps propagating in Trio; an exception is the future's."""

    _running = True

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self._scope = trio.CancelScope()

    def cancel(self, msg=None) -> bool:
        if not self._running:
            return super().cancel(msg=msg)
        if self.done():
            return False
        self._scope.cancel()
        return True

    async def _run(self, fn, args) -> None:
        if self._scope.cancel_called:
            self._running = False
            super().cancel()
            return
        try:
            with self._scope:
                result = await fn(*args)
        except BaseException as exc:
            # as AsyncHandle: the future gets what is not Cancelled; Cancelled goes on to its scope
            self._running = False
            cancelled, rest = collapse_aware_exception_split(exc, trio.Cancelled)
            if not self.done():
                if rest is not None:
                    self.set_exception(rest)
                else:
                    super().cancel()
            if cancelled is not None:
                raise cancelled
            if not isinstance(rest, Exception):
                raise rest
            return
        self._running = False
        if not self.done():
            if self._scope.cancelled_caught:
                super().cancel()
            else:
                self.set_result(result)


def start_trio(loop: asyncio.AbstractEventLoop, fn, *args) -> asyncio.Future:
    """(asyncio code in the island, synchronous) start `await fn(*args)` as a Trio task now, in the loop's own
    nursery (where `trio_as_aio` starts its tasks: it lives as long as the loop, so a call arriving on a
    connection that outlives the gRPC server's shutdown still runs, as it did through trio_as_aio); await the
    returned future for its result (TrioCall). On another trio-asyncio version: `trio_as_aio`'s future."""
    nursery = getattr(loop, "_nursery", None) if trio_asyncio.__version__ == _FOR_VERSION else None
    if nursery is None:
        return loop.trio_as_future(fn, *args)
    return start_in(nursery, loop, fn, *args)


def start_in(nursery: trio.Nursery, loop: asyncio.AbstractEventLoop, fn, *args) -> TrioCall:
    """`start_trio` in `nursery`."""
    call = TrioCall(loop)
    nursery.start_soon(call._run, fn, args, name=_CALL_NAME)
    return call


_CALL_NAME = "spooled.island.start_trio"


async def run_here(coro):
    """(Trio, in the island) `await coro`, an asyncio coroutine, from this Trio task: its steps run right here,
    synchronously, as long as it does not suspend; if it does (an asyncio future to wait for), the rest of it
    runs in an asyncio task of the island's loop, which this awaits (cancelling this cancels that task).

    For asyncio code that almost never waits, such as a grpclib `send_message` (it waits only for the
    connection's write buffer or the stream's flow-control window): `aio_as_trio` starts an asyncio task for it,
    whose first step runs on the loop's next pass (a Trio scheduler pass away, behind whatever the loop has
    queued), and the caller resumes a pass after that; here the message is framed and written at once
    (docs/benchmarks.md, "fifth session, grpcwake"). The coroutine must not depend on running inside an asyncio
    task (`asyncio.current_task()`) until it first suspends."""
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return stop.value
    task = trio_asyncio.current_loop.get().create_task(_finish(coro, yielded))
    return await trio_asyncio.run_aio_future(task)


async def _finish(coro, yielded):
    return await _resume(coro, yielded)


@types.coroutine
def _resume(coro, yielded):
    """Go on driving `coro` from where it suspended (having yielded `yielded` to its driver)."""
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value
