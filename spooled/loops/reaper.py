"""The visibility-timeout reaper: when, not what (the work is `Maintenance.run_once`)."""

from __future__ import annotations

import logging

import trio

from spooled.domain.errors import Unavailable
from spooled.services.maintenance import Maintenance

log = logging.getLogger(__name__)


async def run(maintenance: Maintenance, interval: float, *, limit: int = 1000,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run a batch every `interval` seconds, at once again while batches come back full."""
    task_status.started()
    while True:
        try:
            result = await maintenance.run_once(limit=limit)
        except Unavailable:
            log.warning("reaper: database unavailable; retrying in %.1fs", interval)
            await trio.sleep(interval)
            continue
        if result.total:
            log.debug("reaper: %s", result)
        if max(result.expired, result.released, result.promoted) < limit:
            await trio.sleep(interval)
