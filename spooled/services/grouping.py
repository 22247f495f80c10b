"""Group concurrent single requests into one statement (zero delay): completions and enqueues.

Many workers completing one job each (REST `POST /jobs/{id}/complete`, gRPC `Complete`), or many producers
enqueueing one job each (REST `POST /jobs`, gRPC `Enqueue`), would each pay a crossing into asyncio and a
commit. Here the first caller becomes the flusher: it takes what is queued (its own item and others'), calls
`flush(key, items)` once per key (for completions the scope: organization and queue restriction; for enqueues
also the queue) for up to `max_batch` items, hands each waiter its result, and repeats until its own item is
done; then, if items remain, it hands the flushing over to the oldest waiter. Nothing waits for a timer: an idle
server flushes a lone request at once.

`flush` returns one result per item; a result that is an exception is raised to that item's caller only (one
bad item does not fail the others). An exception `flush` raises goes to every caller of that flush.
"""

from __future__ import annotations

import collections
from typing import Any, Awaitable, Callable, Hashable

import trio

class _Entry:
    __slots__ = ("scope", "item", "woken", "finished", "lead", "result", "error")

    def __init__(self, scope: Hashable, item: Any) -> None:
        self.scope, self.item = scope, item
        self.woken = trio.Event()      # finished, or asked to flush next
        self.finished = False
        self.lead = False
        self.result: Any = None
        self.error: BaseException | None = None

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.finished = result, error, True
        self.woken.set()


class Grouper:
    def __init__(self, flush: Callable[[Any, list[Any]], Awaitable[list[Any]]], *, max_batch: int = 100):
        self._flush = flush
        self._max = max_batch
        self._queue: collections.deque[_Entry] = collections.deque()
        self._flushing = False

    async def submit(self, scope: Hashable, item: Any) -> Any:
        """The result `flush` gave for this item (its error is raised here)."""
        entry = _Entry(scope, item)
        self._queue.append(entry)
        if self._flushing:
            try:
                await entry.woken.wait()
            except trio.Cancelled:
                if not entry.finished and entry in self._queue:
                    self._queue.remove(entry)       # not flushed yet: it never happened
                    if entry.lead:                  # we were to flush next: pass that on, or the queue stalls
                        self._flushing = False
                        self._hand_over()
                # else its flush is under way (another caller's, shielded): it happens; only the answer is lost
                raise
        if not entry.finished:                      # first in, or handed the flushing
            await self._lead(entry)
        if entry.error is not None:
            raise entry.error
        return entry.result

    async def _lead(self, own: _Entry) -> None:
        self._flushing = True
        try:
            while not own.finished:
                batch = [self._queue.popleft() for _ in range(min(self._max, len(self._queue)))]
                by_scope: dict[Hashable, list[_Entry]] = {}
                for e in batch:
                    by_scope.setdefault(e.scope, []).append(e)
                for scope, entries in by_scope.items():
                    try:
                        with trio.CancelScope(shield=True):   # a flush, once started, reports to everyone
                            results = await self._flush(scope, [e.item for e in entries])
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
            self._flushing = False
            self._hand_over()

    def _hand_over(self) -> None:
        """Wake the oldest waiting entry as the next flusher."""
        if self._queue and not self._flushing:
            nxt = self._queue[0]
            self._flushing = True   # reserved for it, so newcomers wait instead of flushing alongside
            nxt.lead = True
            nxt.woken.set()
