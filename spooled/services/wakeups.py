"""Claim wakeups: waiting claimers (long-poll claims, StreamJobs, ProcessJobs) park here per (org, queue).

A NOTIFY `"<org> <queue> <n>"` (sent in the enqueueing transaction, see jobs.sql) wakes at most `n` waiters of
that queue, oldest first, so a single enqueue wakes one claimer instead of the whole herd. A waiter woken while
its own claim was running, or whose claim came back full with ready jobs left (`Claimed.more`), passes the wake on.

Handoff (docs/architecture.md "Handoff: an enqueue claims for an idle waiter"): a waiter whose claim found nothing
offers its claim while it waits (`Waiter.offer`); a single enqueue through this instance reserves such waiters
(`reserve`) and claims for them in its own insert statement (one round trip, one commit), then hands each its
share (`Waiter.deliver`). The insert's NOTIFY is sent as always and counts as any other: a reserved waiter it
wakes passes the wake on once its handoff is over, so a wake is never swallowed.
"""

from __future__ import annotations

import collections
import contextlib
import math
from typing import Any, Iterator

import trio

Key = tuple[str, str]


class Handoff:
    """A reserved waiter's claim, run by an enqueue: `done` once its outcome is known (`claimed`: what the claim
    gave this waiter; None when no claim ran for it: it claims itself)."""
    __slots__ = ("claimer", "done", "claimed")

    def __init__(self, claimer: Any) -> None:
        self.claimer = claimer
        self.done = trio.Event()
        self.claimed: Any = None


class Waiter:
    __slots__ = ("event", "woken", "offer", "handoff")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.woken = False
        self.offer: Any = None                  # (worker_id, limit, lease_secs) while idle and open to a handoff
        self.handoff: Handoff | None = None     # reserved by an enqueue

    def wake(self) -> None:
        self.woken = True
        self.event.set()

    def deliver(self, claimed: Any) -> None:
        """The reserving enqueue's outcome for this waiter (None: no claim ran for it)."""
        h = self.handoff
        if h is not None and not h.done.is_set():
            h.claimed = claimed
            h.done.set()
            self.event.set()


class Wakeups:
    def __init__(self) -> None:
        self._waiting: dict[Key, collections.deque[Waiter]] = {}
        self.closed = False

    def close(self) -> None:
        """Shutting down: wake every waiter now and make later waits end at once."""
        self.closed = True
        self.notify_all()

    @contextlib.contextmanager
    def waiting(self, org: str, queue: str) -> Iterator[Waiter]:
        """Register a waiter for the duration of the block (register before querying: no lost wakeups)."""
        key = (org, queue)
        w = Waiter()
        if self.closed:
            w.wake()
        self._waiting.setdefault(key, collections.deque()).append(w)
        try:
            yield w
        finally:
            dq = self._waiting.get(key)
            if dq is not None:
                with contextlib.suppress(ValueError):
                    dq.remove(w)
                if not dq:
                    del self._waiting[key]

    def notify(self, org: str, queue: str, n: float = 1) -> int:
        """Wake up to `n` (math.inf for all) waiters of one queue; returns how many."""
        dq = self._waiting.get((org, queue))
        woken = 0
        if dq:
            for w in dq:
                if woken >= n:
                    break
                if not w.woken:
                    w.wake()
                    woken += 1
        return woken

    def notify_all(self) -> None:
        """Wake everyone (after a NOTIFY overflow or a reconnect of the listener: resync from the tables)."""
        for dq in self._waiting.values():
            for w in dq:
                w.wake()

    def handle(self, payload: str) -> None:
        """One NOTIFY payload from the `spooled_jobs` channel."""
        parts = payload.split(" ")
        if len(parts) != 3:
            return
        org, queue, count = parts
        self.notify(org, queue, math.inf if count == "all" else int(count) if count.isdigit() else 1)

    def reserve(self, org: str, queue: str, jobs: int) -> list[Waiter]:
        """Idle waiters of the queue open to a handoff, oldest first, until their limits cover `jobs`, now reserved
        (each must then get `deliver`, whatever happens)."""
        out: list[Waiter] = []
        if self.closed or jobs <= 0:
            return out
        for w in self._waiting.get((org, queue), ()):
            if w.offer is not None and w.handoff is None and not w.woken:
                w.handoff = Handoff(w.offer)
                out.append(w)
                jobs -= w.offer[1]
                if jobs <= 0:
                    break
        return out

    def waiter_count(self, org: str, queue: str) -> int:
        return len(self._waiting.get((org, queue), ()))
