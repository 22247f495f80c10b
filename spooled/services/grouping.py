"""Group concurrent single requests into one statement (zero delay): completions and enqueues.

Many workers completing one job each (REST `POST /jobs/{id}/complete`, gRPC `Complete`), or many producers
enqueueing one job each (REST `POST /jobs`, gRPC `Enqueue`), would each pay a crossing into asyncio and a
commit. Items are grouped per key (for completions the scope: organization and queue restriction; for enqueues
also the queue), each key a lane of its own: the first caller of a lane becomes its flusher: it takes what is
queued there (its own item and others'), calls `flush(key, items)` for up to `max_batch` items, hands each
waiter its result, and repeats until its own item is done; then, if items remain, it hands the flushing over to
the oldest waiter. Lanes flush independently (one tenant's statement never waits for another's). Nothing waits
for a timer: an idle lane flushes a lone request at once.

`flush` returns one result per item; a result that is an exception is raised to that item's caller only (one
bad item does not fail the others). An exception `flush` raises goes to every caller of that flush.
"""

from __future__ import annotations

import collections
from typing import Any, Awaitable, Callable, Hashable

import trio


class _Entry:
    __slots__ = ("item", "woken", "finished", "lead", "result", "error")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.woken = trio.Event()      # finished, or asked to flush next
        self.finished = False
        self.lead = False
        self.result: Any = None
        self.error: BaseException | None = None

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.finished = result, error, True
        self.woken.set()


class _Lane:
    __slots__ = ("queue", "flushing")

    def __init__(self) -> None:
        self.queue: collections.deque[_Entry] = collections.deque()
        self.flushing = False


class Grouper:
    def __init__(self, flush: Callable[[Any, list[Any]], Awaitable[list[Any]]], *, max_batch: int = 100):
        self._flush = flush
        self._max = max_batch
        self._lanes: dict[Hashable, _Lane] = {}

    def waiting(self) -> int:
        """Items queued, not yet taken by a flush (all keys)."""
        return sum(len(lane.queue) for lane in self._lanes.values())

    async def submit(self, key: Hashable, item: Any) -> Any:
        """The result `flush` gave for this item (its error is raised here)."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        entry = _Entry(item)
        lane.queue.append(entry)
        if lane.flushing:
            try:
                await entry.woken.wait()
            except trio.Cancelled:
                if not entry.finished and entry in lane.queue:
                    lane.queue.remove(entry)        # not flushed yet: it never happened
                    if entry.lead:                  # we were to flush next: pass that on, or the lane stalls
                        lane.flushing = False
                    self._hand_over(key, lane)
                # else its flush is under way (another caller's, shielded): it happens; only the answer is lost
                raise
        if not entry.finished:                      # first in, or handed the flushing
            await self._lead(key, lane, entry)
        if entry.error is not None:
            raise entry.error
        return entry.result

    async def _lead(self, key: Hashable, lane: _Lane, own: _Entry) -> None:
        lane.flushing = True
        try:
            while not own.finished:
                entries = [lane.queue.popleft() for _ in range(min(self._max, len(lane.queue)))]
                try:
                    with trio.CancelScope(shield=True):   # a flush, once started, reports to everyone
                        results = await self._flush(key, [e.item for e in entries])
                except Exception as exc:
                    for e in entries:
                        e.finish(error=exc)
                    continue
                for e, r in zip(entries, results, strict=True):
                    if isinstance(r, BaseException):
                        e.finish(error=r)
                    else:
                        e.finish(r)
        finally:
            lane.flushing = False
            self._hand_over(key, lane)

    def _hand_over(self, key: Hashable, lane: _Lane) -> None:
        """Wake the oldest waiting entry of the lane as its next flusher; forget a lane left idle and empty."""
        if lane.flushing:
            return
        if lane.queue:
            nxt = lane.queue[0]
            lane.flushing = True    # reserved for it, so newcomers wait instead of flushing alongside
            nxt.lead = True
            nxt.woken.set()
        elif self._lanes.get(key) is lane:
            del self._lanes[key]
