"""The one LISTEN connection of a server instance: feeds `spooled_jobs` notifications to the wakeups."""

from __future__ import annotations

import logging
from typing import Callable

import attrs
import trio
import triopg

log = logging.getLogger(__name__)

CHANNEL = "spooled_jobs"


@attrs.define
class ListenState:
    """The LISTEN connection as /metrics shows it."""
    connected: bool = False
    reconnects: int = 0
    notifications: int = 0


async def pump(dsn: str, on_payload: Callable[[str], None], on_resync: Callable[[], None], *,
               timeout: float = 5.0, state: ListenState | None = None,
               task_status=trio.TASK_STATUS_IGNORED) -> None:
    """LISTEN forever, reconnecting with backoff; `task_status.started()` once the first LISTEN is active.
    After an overflow or a reconnect, `on_resync` wakes every waiter so it re-reads the tables.
    Once started, no failure ends it (the database may be restarting, in recovery, or gone for a while): a lost
    connection is logged as such, anything else with its traceback, and both reconnect with backoff.
    `timeout` bounds connecting and every statement, including the UNLISTEN that triopg sends (shielded) when
    the listener ends: without it a stalled network would hold that forever, and with it the process."""
    started = False
    delay = 0.1
    state = state if state is not None else ListenState()
    while True:
        try:
            async with triopg.connect(dsn, timeout=timeout, command_timeout=timeout) as conn:
                async with conn.listen(CHANNEL, max_buffer_size=10_000) as notes:
                    state.connected = True
                    if not started:
                        task_status.started()
                        started = True
                    else:
                        state.reconnects += 1
                        on_resync()
                    delay = 0.1
                    async with trio.open_nursery() as nursery:
                        # asyncpg does not end a listener when its connection dies: ping to find out
                        nursery.start_soon(_keepalive, conn)
                        async for payload in notes:
                            state.notifications += 1
                            if payload is triopg.NOTIFY_OVERFLOW:
                                on_resync()
                            else:
                                on_payload(payload)
        except Exception as exc:
            state.connected = False
            if not started:
                raise
            if _connection_lost(exc):
                log.warning("LISTEN connection lost (%s); reconnecting in %.1fs", _first(exc), delay)
            else:
                log.exception("LISTEN connection failed; reconnecting in %.1fs", delay)
            await trio.sleep(delay)
            delay = min(delay * 2, 5.0)


_LOST = (OSError, ConnectionError, trio.TooSlowError, triopg.exceptions.InterfaceError,
         triopg.exceptions.InternalClientError, triopg.exceptions.PostgresConnectionError,
         triopg.exceptions.OperatorInterventionError)   # 57P*: shutting down, starting up, in recovery


def _connection_lost(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_connection_lost(e) for e in exc.exceptions)
    return isinstance(exc, _LOST)


def _first(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def _keepalive(conn, interval: float = 5.0) -> None:
    while True:
        await trio.sleep(interval)
        with trio.fail_after(interval):
            await conn.fetchval("SELECT 1")
