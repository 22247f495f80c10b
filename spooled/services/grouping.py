"""Group concurrent single calls into one statement (zero delay): completions, claims and enqueues
(services/jobs.py).

Many workers completing one job each (REST `POST /jobs/{id}/complete`, gRPC `Complete`), claiming (REST
`POST /jobs/claim`, gRPC `Dequeue`, long polls woken by one NOTIFY, stream refills), or many producers enqueueing
one job each (REST `POST /jobs`, gRPC `Enqueue`) would each pay a crossing into asyncio and a commit. Here the
first caller becomes the flusher: it lets the callers that are runnable at that moment join (one pass of the scheduler, no timer: the waiters one NOTIFY woke), takes what is queued (its own item
and others'), runs one `flush` for up to `max_batch` items of its scope, hands each waiter its result, and repeats
until its own item is done; then, if items remain, it hands the flushing over to the oldest waiter. `flush`
returns one result per item; a result that is an exception is raised to that item's caller only (one bad item
does not fail the others); an exception `flush` raises goes to every caller of that flush. Each scope (key)
has its own queue and up to `concurrency` flushes under way (claims: 2, so a claim arriving while one statement
runs is not held behind it). Nothing waits for a timer: an idle server flushes a lone call at once.

Cancellation: an item not flushed yet is dropped (it never happened). Once its flush is under way (shielded, it
reports to everyone) the item's effect happens; without `abandoned` only the answer is lost (a completion), with
it the result a cancelled caller will never see is handed to `abandoned` (shielded), which undoes it (a claim's
jobs go back to pending): so `submit` either returns the result to a caller not cancelled, or raises Cancelled
with the effect undone.
"""

from __future__ import annotations

import collections
from typing import Any, Awaitable, Callable, Hashable

import trio


class _Entry:
    __slots__ = ("item", "woken", "popped", "finished", "lead", "result", "error")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.woken = trio.Event()      # finished, or asked to flush next
        self.popped = False            # taken into a flush
        self.finished = False
        self.lead = False              # holds one of its scope's flusher slots
        self.result: Any = None
        self.error: BaseException | None = None

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.finished = result, error, True
        self.woken.set()


class _Lane:
    """One scope's queued items and how many of its flushes are under way (or reserved)."""
    __slots__ = ("queue", "leaders")

    def __init__(self) -> None:
        self.queue: collections.deque[_Entry] = collections.deque()
        self.leaders = 0


class Grouper:
    def __init__(self, flush: Callable[[Any, list[Any]], Awaitable[list[Any]]], *, max_batch: int = 100,
                 concurrency: int = 1, abandoned: Callable[[Any, Any], Awaitable[None]] | None = None):
        """`flush(scope, items)` runs one statement for items of one scope; at most `concurrency` of a scope run
        at once (a caller arriving while a flush runs and a slot is free starts another at once)."""
        self._flush = flush
        self._max = max_batch
        self._concurrency = concurrency
        self._abandoned = abandoned
        self._lanes: dict[Hashable, _Lane] = {}

    def waiting(self) -> int:
        """Items queued, not yet taken by a flush (all scopes)."""
        return sum(len(lane.queue) for lane in self._lanes.values())

    async def submit(self, scope: Hashable, item: Any) -> Any:
        """The result `flush` gave for this item (its error is raised here)."""
        lane = self._lanes.get(scope)
        if lane is None:
            lane = self._lanes[scope] = _Lane()
        entry = _Entry(item)
        lane.queue.append(entry)
        try:
            if lane.leaders < self._concurrency:
                lane.leaders += 1
                entry.lead = True
                await trio.sleep(0)                 # the callers runnable now join this flush
            else:
                await entry.woken.wait()            # finished, or asked to flush next
            if entry.lead:
                await self._lead(scope, lane, entry)   # no checkpoint but shielded flushes
            if not entry.finished:                  # in another flush under way
                entry.woken = trio.Event()
                await entry.woken.wait()
            if self._abandoned is not None:
                await trio.lowlevel.checkpoint_if_cancelled()   # cancelled while flushing: undo, below
        except trio.Cancelled:
            if entry.lead:                          # a flusher slot it will not use: pass it on
                entry.lead = False
                lane.leaders -= 1
            if not entry.popped:                    # not flushed yet: it never happened
                lane.queue.remove(entry)
            self._hand_over(scope, lane)
            if entry.popped and self._abandoned is not None:   # its flush ran or runs (shielded): undo it
                with trio.CancelScope(shield=True):
                    if not entry.finished:
                        await entry.woken.wait()
                    if entry.error is None:
                        await self._abandoned(scope, entry.result)
            raise
        if entry.error is not None:
            raise entry.error
        return entry.result

    async def _lead(self, scope: Hashable, lane: _Lane, own: _Entry) -> None:
        """Flush batches of the scope, oldest first, until our own item is in one."""
        try:
            while not own.popped:
                batch = [lane.queue.popleft() for _ in range(min(self._max, len(lane.queue)))]
                for e in batch:
                    e.popped = True
                try:
                    with trio.CancelScope(shield=True):   # a flush, once started, reports to everyone
                        results = await self._flush(scope, [e.item for e in batch])
                except Exception as exc:
                    for e in batch:
                        e.finish(error=exc)
                    continue
                for e, r in zip(batch, results, strict=True):
                    if isinstance(r, BaseException):
                        e.finish(error=r)
                    else:
                        e.finish(r)
        finally:
            own.lead = False
            lane.leaders -= 1
            self._hand_over(scope, lane)

    def _hand_over(self, scope: Hashable, lane: _Lane) -> None:
        """Wake the oldest waiting entries as the next flushers (slots reserved for them, so newcomers queue
        instead of flushing alongside); forget an idle scope."""
        for e in lane.queue:
            if lane.leaders >= self._concurrency:
                break
            if not e.lead:
                lane.leaders += 1
                e.lead = True
                e.woken.set()
        if not lane.queue and not lane.leaders and self._lanes.get(scope) is lane:
            del self._lanes[scope]
