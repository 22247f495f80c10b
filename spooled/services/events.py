"""Realtime fan-out: the events the database NOTIFYs (channel `spooled_events`, written by the event triggers in
schema.sql) reach this instance's subscribers (SSE and WebSocket streams) through one in-process `Broadcaster`.

- Each subscriber has a bounded buffer. `publish` never waits: a subscriber whose buffer is full is dropped (its
  stream ends), so a slow client can neither stall the others nor grow memory.
- When notifications may have been lost (a NOTIFY overflow, a lost LISTEN connection), every subscriber gets
  `RESYNC`: its stream tells the client (and a job stream re-reads the job).
- The triggers only NOTIFY for organizations that some instance has registered in `event_listeners`; the
  broadcaster registers an organization when its first subscriber arrives and keeps the row fresh (`refresh`, a
  loop) while subscribers stay, so an instance nobody watches costs nothing at commit.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing
import uuid

import attrs
import orjson
import trio

from spooled.domain import errors
from spooled.services.streams import STREAM, Slot, Streams
from spooled.store.events import ListenerStore

log = logging.getLogger(__name__)

RESYNC = "resync"          # a sentinel item: events may have been lost


@attrs.frozen(slots=True)
class Event:
    """One event as the triggers NOTIFY it: a job transition (`job_id` set; `event` is the job history's
    event_type) or a named event (`worker.registered`, `queue.paused`, ... with `data`)."""
    org: str
    event: str
    at: str
    job_id: str | None = None
    queue_name: str | None = None
    old_status: str | None = None
    new_status: str | None = None
    worker_id: str | None = None
    retry_count: int | None = None
    error: str | None = None
    data: dict | None = None

    @classmethod
    def parse(cls, obj: dict) -> "Event":
        return cls(org=obj["org"], event=obj["event"], at=_utc(obj.get("at")), job_id=obj.get("job_id"),
                   queue_name=obj.get("queue_name"), old_status=obj.get("old_status"),
                   new_status=obj.get("new_status"), worker_id=obj.get("worker_id"),
                   retry_count=obj.get("retry_count"), error=obj.get("error"), data=obj.get("data"))

    def queues(self) -> tuple[str, ...]:
        if self.queue_name is not None:
            return (self.queue_name,)
        if self.data:
            names = self.data.get("queue_names") or [self.data.get("queue_name")]
            return tuple(n for n in names if n)
        return ()


def _utc(text: str | None) -> str:
    """PostgreSQL renders times in the writer's session time zone: normalise to UTC RFC 3339."""
    if not text:
        return dt.datetime.now(dt.timezone.utc).isoformat()
    try:
        return dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc).isoformat()
    except ValueError:
        return text


@attrs.frozen(slots=True)
class Filter:
    """What a subscription wants: events of one queue and/or one job (both None: every event of the org)."""
    queue: str | None = None
    job_id: str | None = None

    def matches(self, ev: Event) -> bool:
        if self.job_id is not None and ev.job_id != self.job_id:
            return False
        return self.queue is None or self.queue in ev.queues()


ALL = Filter()


class Subscription:
    """One stream's view of the broadcaster. `receive()` returns an `Event` or `RESYNC`, and raises
    `trio.EndOfChannel` once the subscription ended (`dropped` tells a slow subscriber from a shutdown)."""

    def __init__(self, owner: "Broadcaster", org: str, filters: typing.Iterable[Filter], buffer: int,
                 slot: Slot | None = None):
        self.org = org
        self.filters: set[Filter] = set(filters)
        self.dropped = False
        self._owner = owner
        self._slot = slot            # the stream's place under the STREAM caps (services/streams.py)
        self._send, self._recv = trio.open_memory_channel[typing.Any](buffer)

    def wants(self, ev: Event) -> bool:
        return any(f.matches(ev) for f in self.filters)

    async def receive(self):
        return await self._recv.receive()

    def _offer(self, item) -> None:
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            self.dropped = True
            self._owner._dropped(self)
            self._send.close()
        except trio.ClosedResourceError:
            pass

    def end(self) -> None:
        """Stop delivering (the stream's buffered items can still be received, then EndOfChannel)."""
        self._send.close()

    def close(self) -> None:
        """The stream is gone: unregister and give its place back (idempotent)."""
        self._send.close()
        self._owner._remove(self)
        if self._slot is not None:
            self._slot.release()


@attrs.frozen
class RefreshResult:
    registered: int
    unregistered: int

    @property
    def total(self) -> int:
        return self.unregistered

    def full(self, limit: int) -> bool:
        return False


class Broadcaster:
    def __init__(self, store: ListenerStore, *, buffer: int = 256, ttl_secs: float = 60.0,
                 streams: Streams | None = None):
        self.instance_id = uuid.uuid4()
        self._streams = streams
        self.buffer = buffer
        self.ttl_secs = ttl_secs
        self.closed = False
        self.dropped_total = 0
        self._store = store
        self._subs: dict[str, set[Subscription]] = {}
        self._registered: dict[str, float] = {}     # org -> Trio time by which its row must be refreshed
        self.on_drop: typing.Callable[[], None] = lambda: None      # metrics: one call per dropped subscriber

    # -- subscribers ---------------------------------------------------------------------------------------
    async def subscribe(self, org: str, filters: typing.Iterable[Filter] = (ALL,)) -> Subscription:
        """A new subscription for the org's events matching any of `filters`; events committed after this
        returns reach it. `Unavailable` while shutting down or when the database cannot register it; at the
        STREAM caps (services/streams.py) `RateLimited` (the organization's) or `Unavailable` (this server's)."""
        if self.closed:
            raise errors.Unavailable("The server is shutting down")
        slot = self._streams.open(org, STREAM) if self._streams is not None else None
        sub = Subscription(self, org, filters, self.buffer, slot)
        self._subs.setdefault(org, set()).add(sub)
        try:
            await self.register(org)
        except BaseException:
            sub.close()
            raise
        return sub

    async def register(self, org: str) -> None:
        """Make sure the triggers NOTIFY this org's events (this instance's `event_listeners` row is fresh)."""
        if self._registered.get(org, -1.0) < trio.current_time():
            await self._store.sync(self.instance_id, [uuid.UUID(org)], [], self.ttl_secs)
            self._registered[org] = trio.current_time() + self.ttl_secs / 2

    def subscriber_count(self, org: str | None = None) -> int:
        if org is not None:
            return len(self._subs.get(org, ()))
        return sum(len(s) for s in self._subs.values())

    def _remove(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.org)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.org]

    def _dropped(self, sub: Subscription) -> None:
        self.dropped_total += 1
        self.on_drop()
        log.warning("dropped a realtime subscriber of org %s: its buffer of %d events is full", sub.org,
                    self.buffer)
        self._remove(sub)

    # -- from the LISTEN connection ------------------------------------------------------------------------
    def handle(self, payload: str) -> None:
        """One `spooled_events` NOTIFY payload (a JSON array of events)."""
        try:
            events = [Event.parse(obj) for obj in orjson.loads(payload)]
        except (ValueError, KeyError, TypeError):
            log.error("ignoring a malformed spooled_events payload: %.200s", payload)
            return
        self.publish(events)

    def publish(self, events: typing.Iterable[Event]) -> None:
        for ev in events:
            for sub in list(self._subs.get(ev.org, ())):
                if sub.wants(ev):
                    sub._offer(ev)

    def resync(self) -> None:
        """Notifications may have been lost: tell every subscriber, and register every org again (its row
        may have expired while the database was away)."""
        self._registered.clear()
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub._offer(RESYNC)

    def close(self) -> None:
        """Shutting down: end every stream now; later subscriptions are refused."""
        self.closed = True
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.end()

    # -- the registration loop -----------------------------------------------------------------------------
    async def refresh(self, limit: int = 0) -> RefreshResult:
        """Keep this instance's `event_listeners` rows fresh for the orgs it has subscribers for, and remove the
        rows of orgs it no longer has any for. No database work while nothing changes and nobody subscribes."""
        now = trio.current_time()
        listening = [org for org in self._subs]
        due = [org for org in listening if self._registered.get(org, -1.0) < now + self.ttl_secs / 4]
        gone = [org for org in self._registered if org not in self._subs]
        if due or gone:
            await self._store.sync(self.instance_id, [uuid.UUID(o) for o in due], [uuid.UUID(o) for o in gone],
                                   self.ttl_secs)
            for org in due:
                self._registered[org] = now + self.ttl_secs / 2
            for org in gone:
                self._registered.pop(org, None)
        return RefreshResult(len(due), len(gone))

    async def unregister_all(self) -> None:
        """At shutdown: remove this instance's rows (best effort; they expire anyway)."""
        if self._registered:
            orgs = [uuid.UUID(o) for o in self._registered]
            self._registered.clear()
            await self._store.sync(self.instance_id, [], orgs, self.ttl_secs)
