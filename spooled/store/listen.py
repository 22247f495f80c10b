"""The one LISTEN connection of a server instance, on several channels (claim wakeups, realtime events, the
webhook outbox), each feeding its consumer's callbacks.

A channel's `on_resync` runs when its notifications may have been lost: after a NOTIFY overflow of that channel,
and for every channel after the connection was lost and re-established (the consumer re-reads the tables).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Callable, Mapping

import attrs
import trio
import triopg

log = logging.getLogger(__name__)

JOBS = "spooled_jobs"          # "<org> <queue> <n|all>": jobs became claimable (services/wakeups.py)
EVENTS = "spooled_events"      # a JSON array of events for realtime subscribers (services/events.py)
WEBHOOKS = "spooled_webhooks"  # the outbox got rows: wake the dispatcher (services/dispatcher.py)


@attrs.frozen
class Channel:
    on_payload: Callable[[str], None]
    on_resync: Callable[[], None]


@attrs.define
class ListenState:
    """The LISTEN connection as /metrics shows it."""
    connected: bool = False
    reconnects: int = 0
    notifications: int = 0


async def pump(dsn: str, channels: Mapping[str, Channel], *, keepalive_secs: float = 5.0, timeout: float = 5.0,
               state: ListenState | None = None, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """LISTEN forever, reconnecting with backoff; `task_status.started()` once the first LISTENs are active.
    Once started, no failure ends it (the database may be restarting, in recovery, or gone for a while): a lost
    connection is logged as such, anything else with its traceback, and both reconnect with backoff (and resync
    every channel). Failing to connect at start ends it loudly. `timeout` bounds connecting and every statement,
    including the UNLISTENs that triopg sends (shielded) when the listeners end: without it a stalled network
    would hold that forever, and with it the process."""
    state = state if state is not None else ListenState()
    started = False
    delay = 0.1
    while True:
        try:
            async with triopg.connect(dsn, timeout=timeout, command_timeout=timeout) as conn, \
                    contextlib.AsyncExitStack() as stack:
                feeds = {name: await stack.enter_async_context(conn.listen(name, max_buffer_size=10_000))
                         for name in channels}
                state.connected = True
                if not started:
                    task_status.started()
                    started = True
                else:
                    state.reconnects += 1
                    for ch in channels.values():
                        ch.on_resync()
                delay = 0.1
                async with trio.open_nursery() as nursery:
                    # asyncpg does not end a listener when its connection dies: ping to find out
                    nursery.start_soon(_keepalive, conn, keepalive_secs)
                    for name, feed in feeds.items():
                        nursery.start_soon(_forward, feed, channels[name], state)
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


async def _forward(feed, channel: Channel, state: ListenState) -> None:
    async for payload in feed:
        if payload is triopg.NOTIFY_OVERFLOW:
            channel.on_resync()
        else:
            state.notifications += 1
            channel.on_payload(payload)


_LOST = (OSError, ConnectionError, trio.TooSlowError, triopg.exceptions.InterfaceError,
         triopg.exceptions.InternalClientError, triopg.exceptions.PostgresConnectionError,
         triopg.exceptions.OperatorInterventionError,   # 57P*: shutting down, starting up, in recovery
         triopg.exceptions.TooManyConnectionsError)


def _connection_lost(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_connection_lost(e) for e in exc.exceptions)
    return isinstance(exc, _LOST)


def _first(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


async def _keepalive(conn, interval: float) -> None:
    while True:
        await trio.sleep(interval)
        with trio.fail_after(interval):
            await conn.fetchval("SELECT 1")
