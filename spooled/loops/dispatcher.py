"""The webhook dispatcher loop: when, not what (the what is `services/dispatcher.py`).

Keeps up to `concurrency` deliveries in flight in its own nursery: it leases as many due deliveries as it has free
slots, starts one task per delivery, and waits until a NOTIFY says new deliveries were written, a slot frees up,
or `interval` passes (retries come due without a NOTIFY). A slow receiver holds one slot, never the loop.
"""

from __future__ import annotations

import logging

import trio

from spooled.domain import errors
from spooled.domain.models import LeasedDelivery
from spooled.services.dispatcher import Dispatcher

log = logging.getLogger(__name__)


async def run(dispatcher: Dispatcher, *, concurrency: int, interval: float, health=None,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    """`health` (services.metrics.LoopHealth) records each leasing pass, as for the periodic loops."""
    slots = trio.Semaphore(concurrency)
    async with trio.open_nursery() as nursery:
        task_status.started()
        while True:
            dispatcher.arm()
            free = slots.value
            leased: list[LeasedDelivery] = []
            if free:
                try:
                    leased = await dispatcher.lease(limit=free)
                except errors.Unavailable:
                    log.warning("webhook dispatcher: database unavailable; retrying in %.1fs", interval)
                    if health is not None:
                        health.failed()
                    await trio.sleep(interval)
                    continue
                except Exception:
                    log.exception("webhook dispatcher: leasing deliveries failed; retrying in %.1fs", interval * 5)
                    if health is not None:
                        health.failed()
                    await trio.sleep(interval * 5)
                    continue
            if health is not None:
                health.ran(items=len(leased))
            for d in leased:
                slots.acquire_nowait()   # we leased at most as many as were free
                nursery.start_soon(_attempt, dispatcher, d, slots)
            if not free or len(leased) < free:
                await dispatcher.wait_for_work(interval)


async def _attempt(dispatcher: Dispatcher, d: LeasedDelivery, slots: trio.Semaphore) -> None:
    try:
        await dispatcher.deliver(d)
    finally:
        slots.release()
        dispatcher.wake()
