"""The webhook dispatcher: sends the outbox (`webhook_deliveries`, written by the event triggers in the
transaction of each state change) at least once, signed, with retries.

- A delivery is leased for one attempt (`delivery_lease`: `locked_until`, counted as an attempt right away) in a
  statement that holds no lock afterwards; the HTTP call runs outside any transaction; the outcome is recorded
  under the same lease (`delivery_record`). Several instances never send one delivery at once, and a crash
  (or a kill) between lease and record only delays it: the lease runs out and another attempt is made, with the
  same delivery id (`X-Spooled-Delivery`), so receivers deduplicate.
- Failures retry with exponential backoff, `max_attempts` attempts in all (default 5); a delivery out of attempts
  counts one failure of its webhook, and `max_failures` (20) in a row disable it (`auto_disabled`).
- An exception while handling one delivery is logged and recorded as that attempt's failure: it never reaches
  the loop, let alone the process.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing

import attrs
import trio

from spooled.domain import errors
from spooled.domain.models import LeasedDelivery
from spooled.services.sender import Sender
from spooled.services.webhooks import envelope, headers, render
from spooled.store.webhooks import Outcome, WebhookStore

log = logging.getLogger(__name__)


@attrs.frozen
class DispatchResult:
    sent: int        # attempts that got a 2xx
    failed: int      # attempts that did not

    @property
    def total(self) -> int:
        return self.sent + self.failed

    def full(self, limit: int) -> bool:
        return self.total >= limit


@attrs.frozen
class DispatchPolicy:
    max_attempts: int = 5
    max_failures: int = 20              # consecutive failed deliveries that disable a webhook
    backoff_base_secs: float = 10.0     # delay after the n-th failed attempt: min(base * 2^(n-1), cap)
    backoff_max_secs: float = 3600.0
    lease_secs: float = 60.0            # longer than a whole attempt (the sender's deadline is 2 x its timeout)

    def retry_in(self, attempts: int) -> float | None:
        if attempts >= self.max_attempts:
            return None
        return min(self.backoff_base_secs * 2 ** (attempts - 1), self.backoff_max_secs)


class Dispatcher:
    def __init__(self, store: WebhookStore, sender: Sender, policy: DispatchPolicy = DispatchPolicy(), *,
                 on_attempt: typing.Callable[[bool], None] = lambda ok: None):
        self._store = store
        self._sender = sender
        self.policy = policy
        self._on_attempt = on_attempt       # metrics: one call per attempt, with whether it got a 2xx
        self._wake = trio.Event()

    # -- waking ---------------------------------------------------------------------------------------------
    def wake(self, _payload: str = "") -> None:
        """New deliveries were written (NOTIFY spooled_webhooks), they may have been (resync), or a slot freed."""
        self._wake.set()

    def arm(self) -> None:
        """Forget earlier wakes: call before looking for work, then `wait_for_work` if there was none."""
        self._wake = trio.Event()

    async def wait_for_work(self, timeout: float) -> None:
        with trio.move_on_after(timeout):
            await self._wake.wait()

    # -- one round --------------------------------------------------------------------------------------------
    async def lease(self, *, limit: int, now: dt.datetime | None = None) -> list[LeasedDelivery]:
        """Lease up to `limit` due deliveries (see the module docstring)."""
        return await self._store.lease(limit=limit, lease_secs=self.policy.lease_secs, now=now)

    async def deliver(self, d: LeasedDelivery, *, now: dt.datetime | None = None) -> bool:
        """Make one attempt of a leased delivery and record its outcome; whether it got a 2xx. Never raises but
        for cancellation (the lease then simply runs out)."""
        try:
            if not d.enabled:
                outcome = Outcome(ok=False, error="webhook disabled")
            else:
                body = render(d.format, envelope(d.id, d.event, d.created_at, d.payload))
                resp = await self._sender.post(d.url, body, headers(d.id, d.event, body, d.secret))
                outcome = Outcome(ok=resp.ok, status_code=resp.status_code, error=resp.error,
                                  response_body=resp.body, retry_in=None if resp.ok else self.policy.retry_in(d.attempts))
        except Exception as exc:
            log.exception("webhook delivery %s failed unexpectedly", d.id)
            outcome = Outcome(ok=False, error=f"internal error: {type(exc).__name__}",
                              retry_in=self.policy.retry_in(d.attempts))
        self._on_attempt(outcome.ok)
        try:
            status = await self._store.record(d, outcome, max_failures=self.policy.max_failures, now=now)
        except errors.Unavailable:
            log.warning("webhook delivery %s: could not record its outcome (database unavailable); it will be "
                        "attempted again when its lease runs out", d.id)
            return outcome.ok
        except Exception:
            log.exception("webhook delivery %s: recording its outcome failed", d.id)
            return outcome.ok
        if status is None:
            log.info("webhook delivery %s: lease lost before its outcome was recorded", d.id)
        return outcome.ok

    async def run_once(self, now: dt.datetime | None = None, limit: int = 16) -> DispatchResult:
        """Lease up to `limit` due deliveries and attempt them all concurrently; returns when all are done."""
        leased = await self.lease(limit=limit, now=now)
        results: list[bool] = []

        async def one(d: LeasedDelivery) -> None:
            results.append(await self.deliver(d, now=now))
        async with trio.open_nursery() as nursery:
            for d in leased:
                nursery.start_soon(one, d)
        sent = sum(results)
        return DispatchResult(sent, len(results) - sent)
