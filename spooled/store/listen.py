"""The one LISTEN connection of a server instance, on several channels (claim wakeups, realtime events, the
webhook outbox), each feeding its consumer's callbacks.

A channel's `on_resync` runs when its notifications may have been lost: after a NOTIFY overflow of that channel,
and for every channel after the connection was lost and re-established (the consumer re-reads the tables).

A channel with `echoes` drops the notifications this instance's own connections sent for a wake it already did
itself (`Echoes`, docs/architecture.md "Local wakeups").
"""

from __future__ import annotations

import contextlib
import logging
from typing import AsyncIterator, Callable, Mapping

import attrs
import trio
import triopg

log = logging.getLogger(__name__)

JOBS = "spooled_jobs"          # "<org> <queue> <n|all>": jobs became claimable (services/wakeups.py)
EVENTS = "spooled_events"      # a JSON array of events for realtime subscribers (services/events.py)
WEBHOOKS = "spooled_webhooks"  # the outbox got rows: wake the dispatcher (services/dispatcher.py)


class Ticket:
    """An insert under way on one pool connection (`pid`) into one queue, whose NOTIFY may come back any time."""
    __slots__ = ("org", "queue", "prefix", "pid", "epoch", "arrived", "settled")

    def __init__(self, org: str, queue: str) -> None:
        self.org, self.queue = org, queue
        self.prefix = f"{org} {queue} "     # of its NOTIFY's payload
        self.settled = False
        self.pid: int | None = None         # set before the statement is sent
        self.epoch = 0                      # Echoes.epoch then
        self.arrived: set[str] = set()      # payloads from `pid` for this queue seen while it ran (handled)


class Echoes:
    """The `spooled_jobs` NOTIFYs of this instance's own inserts, for jobs whose waiters it woke itself.

    An insert registers a `Ticket` with its connection's backend pid before its statement is sent; once the
    insert returns, `settle` learns how many claimable jobs it made (its NOTIFY's payload, "<org> <queue> <n>").
    If a notification from that pid with that payload already came (handled as usual: it woke the waiters),
    nothing more is needed; otherwise it wakes n waiters of the queue at once (`wake`, given by the services:
    services/wakeups.py `notify`), in the same step, and arms (pid, payload): the listener drops the first
    notification from that pid with that payload.

    Why nothing is lost: a pool connection runs one transaction at a time and PostgreSQL delivers notifications
    in commit order, so the first (pid, payload) notification that arrives after arming was committed no later
    than the insert: either its own echo or an earlier transaction of that connection with the same payload (a
    retry, another path); either way the local wake (same queue, same count, after that commit) stands in for
    it, and the insert's own echo, left unmatched, is then handled as usual. Another instance's notification has
    another pid; one merged with others in a transaction has another payload. When notifications may have been
    lost (overflow, reconnect) every waiter is woken and everything armed is forgotten (`clear`), and an insert
    that was under way meanwhile wakes locally without arming (its echo may be among the lost ones: armed, the
    entry could match a later transaction's notification); forgetting only ever costs a spurious wake."""

    MAX_ARMED = 10_000

    def __init__(self, wake: Callable[[str, str, int], object]) -> None:
        self._wake = wake
        self._running: dict[int, list[Ticket]] = {}
        self._armed: dict[tuple[int, str], int] = {}
        self.epoch = 0          # resyncs so far
        self.woken = 0          # inserts that woke their waiters locally
        self.dropped = 0        # echoes dropped

    def expect(self, org: str, queue: str) -> Ticket:
        return Ticket(org, queue)

    def sending(self, ticket: Ticket, pid: int) -> None:
        """The ticket's statement is about to be sent on the connection of backend `pid`."""
        ticket.pid, ticket.epoch = pid, self.epoch
        self._running.setdefault(pid, []).append(ticket)

    def settle(self, ticket: Ticket, ready: int) -> int:
        """The insert ended (committed) having made `ready` jobs claimable (0 when it failed or its answer was
        lost); wakes that many local waiters unless its NOTIFY already did; how many it woke. Once per ticket."""
        if ticket.settled:
            return 0
        ticket.settled = True
        self._forget(ticket)
        payload = ticket.prefix + str(ready)
        if ready <= 0 or ticket.pid is None or payload in ticket.arrived:
            return 0
        if ticket.epoch == self.epoch:      # else notifications may have been lost while it ran: do not arm
            if len(self._armed) >= self.MAX_ARMED:
                self._armed.clear()
            key = (ticket.pid, payload)
            self._armed[key] = self._armed.get(key, 0) + 1
        self.woken += 1
        self._wake(ticket.org, ticket.queue, ready)
        return ready

    def _forget(self, ticket: Ticket) -> None:
        if ticket.pid is None:
            return
        running = self._running.get(ticket.pid)
        if running is not None:
            with contextlib.suppress(ValueError):
                running.remove(ticket)
            if not running:
                del self._running[ticket.pid]

    def drop(self, pid: int, payload: str) -> bool:
        """Whether the listener drops this notification (an echo of a wake done locally)."""
        key = (pid, payload)
        armed = self._armed.get(key)
        if armed:
            if armed == 1:
                del self._armed[key]
            else:
                self._armed[key] = armed - 1
            self.dropped += 1
            return True
        for t in self._running.get(pid, ()):
            if payload.startswith(t.prefix):
                t.arrived.add(payload)
        return False

    def clear(self) -> None:
        """Notifications may have been lost (every waiter is being woken): forget what was armed."""
        self.epoch += 1
        self._armed.clear()


@attrs.frozen
class Channel:
    on_payload: Callable[[str], None]
    on_resync: Callable[[], None]
    echoes: Echoes | None = None


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
                feeds = {name: await stack.enter_async_context(_listen(conn, name, max_buffer_size=10_000))
                         for name in channels}
                state.connected = True
                if not started:
                    task_status.started()
                    started = True
                else:
                    state.reconnects += 1
                    for ch in channels.values():
                        _resync(ch)
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


@contextlib.asynccontextmanager
async def _listen(conn, channel: str, max_buffer_size: int) -> AsyncIterator[trio.MemoryReceiveChannel]:
    """triopg's `conn.listen`, keeping each notification's sending backend pid: (pid, payload) items, and
    `triopg.NOTIFY_OVERFLOW` when the buffer filled up (what came after was dropped)."""
    send, receive = trio.open_memory_channel(max_buffer_size + 1)

    def callback(_con, pid, _channel, payload):
        stats = send.statistics()
        if stats.current_buffer_used == stats.max_buffer_size - 1:
            send.send_nowait(triopg.NOTIFY_OVERFLOW)
        try:
            send.send_nowait((pid, payload))
        except trio.WouldBlock:
            pass

    async with receive, send:
        await conn.add_listener(channel, callback)
        try:
            yield receive
        finally:
            with trio.CancelScope(shield=True):
                await conn.remove_listener(channel, callback)


def _resync(channel: Channel) -> None:
    if channel.echoes is not None:
        channel.echoes.clear()
    channel.on_resync()


async def _forward(feed, channel: Channel, state: ListenState) -> None:
    echoes = channel.echoes
    async for item in feed:
        if item is triopg.NOTIFY_OVERFLOW:
            _resync(channel)
            continue
        pid, payload = item
        state.notifications += 1
        if echoes is None or not echoes.drop(pid, payload):
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
