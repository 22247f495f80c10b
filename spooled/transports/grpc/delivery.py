"""Leasing jobs for a gRPC call that may be cancelled at any moment (client gone, deadline, shutdown).

The rule: a job is never leased and then dropped unsent.
- `Jobs.claim` either returns the jobs or raises Cancelled with nothing leased (jobs a shared claim statement
  took for a claimer cancelled meanwhile go back to pending: services/grouping.py), so a cancellation lands
  before the claim with nothing leased, or after the caller holds the jobs;
- `send_or_release` then delivers them, and on any failure (cancelled mid-send, stream reset) puts the unsent
  ones back to pending without counting a retry (`Jobs.release_unsent`);
- a unary answer (Dequeue) is sent from asyncio, not from Trio (no crossing per send): the jobs wait in an
  `Undelivered` until the answer is written, and any failure before that gives them back the same way.

StreamJobs also bounds how many delivered jobs one stream holds at a time (`LeaseWindow`), so a stream never
hoards the queue into its socket buffers: its window is the registered worker's `max_concurrency`.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Sequence

import trio

from spooled.domain.models import Job
from spooled.domain.scope import Scope
from spooled.services.jobs import Jobs

log = logging.getLogger(__name__)

RECHECK_SECS = 1.0          # a full window re-reads its leases this often (jobs finished over REST/elsewhere)
RELEASE_TIMEOUT_SECS = 5.0  # bound on the shielded release of unsent jobs
COALESCE_SECS = 0.005       # a busy stream gathers freed window slots this long before claiming them at once


async def send_or_release(jobs: Jobs, scope: Scope, leased: Sequence[Job],
                          send: Callable[[Sequence[Job]], Awaitable[None]], sent: list[int]) -> None:
    """`await send(leased)`, which counts delivered jobs in `sent[0]`; if it fails, the jobs not delivered go
    back to pending (shielded, bounded) before the error propagates."""
    try:
        await send(leased)
    except BaseException:
        await _release(jobs, scope, leased[sent[0]:])
        raise


async def _release(jobs: Jobs, scope: Scope, unsent: Sequence[Job]) -> None:
    """(Trio) jobs leased and not delivered back to pending (shielded, bounded; if that fails, their leases
    expire)."""
    if not unsent:
        return
    with trio.CancelScope(shield=True), trio.move_on_after(RELEASE_TIMEOUT_SECS):
        try:
            await jobs.release_unsent(scope, [(str(j.id), str(j.lease_id)) for j in unsent])
        except Exception:
            log.exception("could not release %d undelivered job(s); their leases will expire", len(unsent))


class Undelivered:
    """The jobs leased for one unary answer until it is written: `hold` them (Trio, right after the claim),
    `delivered()` once the answer is sent, else `release` (Trio) gives them back."""
    __slots__ = ("_jobs", "_scope", "leased")

    def __init__(self, jobs: Jobs) -> None:
        self._jobs = jobs
        self._scope: Scope | None = None
        self.leased: Sequence[Job] = ()

    def hold(self, scope: Scope, leased: Sequence[Job]) -> None:
        self._scope, self.leased = scope, leased

    def delivered(self) -> None:
        self.leased = ()

    async def release(self) -> None:
        leased, self.leased = self.leased, ()
        if leased and self._scope is not None:
            await _release(self._jobs, self._scope, leased)


class LeaseTracker:
    """Which StreamJobs window holds which delivered job, so a Complete/Fail handled by this instance frees the
    stream's slot at once (anything else is noticed by the window's periodic re-read)."""

    def __init__(self) -> None:
        self._owner: dict[str, LeaseWindow] = {}

    def finished(self, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            window = self._owner.pop(job_id, None)
            if window is not None:
                window.discard(job_id)

    def _claim(self, job_id: str, window: "LeaseWindow") -> None:
        self._owner[job_id] = window

    def _forget(self, job_id: str, window: "LeaseWindow") -> None:
        if self._owner.get(job_id) is window:
            del self._owner[job_id]


class LeaseWindow:
    """At most `size` delivered, unfinished jobs per stream."""

    def __init__(self, tracker: LeaseTracker, jobs: Jobs, scope: Scope, size: int):
        self._tracker = tracker
        self._jobs = jobs
        self._scope = scope
        self.size = max(1, size)
        self.held: dict[str, str] = {}     # job id -> lease id
        self._changed = trio.Event()

    def add(self, job_id: str, lease_id: str) -> None:
        self.held[job_id] = lease_id
        self._tracker._claim(job_id, self)

    def discard(self, job_id: str) -> None:
        if self.held.pop(job_id, None) is not None:
            self._changed.set()

    async def wait_for_room(self) -> int:
        """Wait until the stream may lease more jobs; how many (the free slots). While the client still holds
        jobs (so it is busy, not idle), slots freed within COALESCE_SECS are gathered, up to half the window,
        so one claim statement serves several jobs instead of one claim per completed job."""
        while len(self.held) >= self.size:
            self._changed = trio.Event()
            with trio.move_on_after(RECHECK_SECS) as timeout:
                await self._changed.wait()
            if timeout.cancelled_caught:
                still = await self._jobs.leases_held(self._scope, list(self.held.items()))
                for job_id in [j for j in self.held if j not in still]:
                    self._tracker._forget(job_id, self)
                    self.discard(job_id)
        if self.held:
            with trio.move_on_after(COALESCE_SECS):
                while self.size - len(self.held) < (self.size + 1) // 2:
                    self._changed = trio.Event()
                    await self._changed.wait()
        return self.size - len(self.held)

    def close(self) -> None:
        for job_id in self.held:
            self._tracker._forget(job_id, self)
        self.held.clear()
