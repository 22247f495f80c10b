"""Group concurrent single calls into one statement (zero delay): completions and claims (services/jobs.py).

Many workers completing one job each (REST `POST /jobs/{id}/complete`, gRPC `Complete`), or claiming (REST
`POST /jobs/claim`, gRPC `Dequeue`, long polls woken by one NOTIFY, stream refills) would each pay a crossing into
asyncio and a commit. Here the first caller becomes the flusher: it lets the callers that are runnable at that
moment join (one pass of the scheduler, no timer: the waiters one NOTIFY woke), takes what is queued (its own item
and others'), runs one `flush` per scope for up to `max_batch` items, hands each waiter its result, and repeats
until its own item is done; then, if items remain, it hands the flushing over to the oldest waiter. Nothing waits
for a timer: an idle server flushes a lone call at once.

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
    __slots__ = ("scope", "item", "woken", "popped", "finished", "lead", "result", "error")

    def __init__(self, scope: Hashable, item: Any) -> None:
        self.scope, self.item = scope, item
        self.woken = trio.Event()      # finished, or asked to flush next
        self.popped = False            # taken into a flush
        self.finished = False
        self.lead = False
        self.result: Any = None
        self.error: BaseException | None = None

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.finished = result, error, True
        self.woken.set()


class Grouper:
    def __init__(self, flush: Callable[[Any, list[Any]], Awaitable[list[Any]]], *, max_batch: int = 100,
                 abandoned: Callable[[Any, Any], Awaitable[None]] | None = None):
        self._flush = flush
        self._max = max_batch
        self._abandoned = abandoned
        self._queue: collections.deque[_Entry] = collections.deque()
        self._flushing = False

    async def submit(self, scope: Hashable, item: Any) -> Any:
        """The result `flush` gave for this item (its error is raised here)."""
        entry = _Entry(scope, item)
        self._queue.append(entry)
        try:
            if self._flushing:
                await entry.woken.wait()
            else:
                self._flushing = entry.lead = True
                await trio.sleep(0)                 # the callers runnable now join this flush
            if not entry.finished:                  # first in, or handed the flushing
                await self._lead(entry)
            if self._abandoned is not None:
                await trio.lowlevel.checkpoint_if_cancelled()   # cancelled while flushing: undo, below
        except trio.Cancelled:
            if not entry.popped:                    # not flushed yet: it never happened
                self._queue.remove(entry)
                if entry.lead:                      # we were to flush next: pass that on, or the queue stalls
                    self._flushing = False
                    self._hand_over()
            elif self._abandoned is not None:       # its flush ran or runs (shielded): undo what it did
                with trio.CancelScope(shield=True):
                    if not entry.finished:
                        await entry.woken.wait()
                    if entry.error is None:
                        await self._abandoned(scope, entry.result)
            raise
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
                    e.popped = True
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
