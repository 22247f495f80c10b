"""Caps on long-lived requests: per server instance and per organization, counted per kind.

Kinds:
- `POLL`: a claim waiting for work (REST `POST /jobs/claim` with `wait_secs`, gRPC `Dequeue` with `wait_ms`).
  Over a cap the claim does not wait: it is answered at once with whatever it could lease (`Jobs.claim`).
- `STREAM`: a stream held open for its client (gRPC `StreamJobs`/`ProcessJobs`; SSE and WebSocket streams).
  Over a cap it is refused: the organization's cap with `RateLimited` (429 / RESOURCE_EXHAUSTED, Retry-After),
  the server's with `Unavailable` (503 / UNAVAILABLE: another instance may have room).

A slot is held for the life of the request (`with streams.open(org, STREAM): ...`, or `slot = streams.open(...)`
and `slot.release()` from the code that ends the stream, e.g. an SSE generator's `finally`). Counts are per
instance: with N instances an organization can hold N × its cap in total.
"""

from __future__ import annotations

import collections

from spooled.domain import errors

POLL = "poll"
STREAM = "stream"
RETRY_AFTER_SECS = 5


class Slot:
    """One held place; `release()` is idempotent. A context manager releasing on exit."""
    __slots__ = ("_streams", "_key", "_held")

    def __init__(self, streams: "Streams", key: tuple[str, str]):
        self._streams, self._key, self._held = streams, key, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._streams._release(self._key)

    def __enter__(self) -> "Slot":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Streams:
    def __init__(self, per_server: int, per_org: int):
        self.per_server = per_server
        self.per_org = per_org
        self._by_kind: collections.Counter[str] = collections.Counter()
        self._by_org: collections.Counter[tuple[str, str]] = collections.Counter()

    def try_open(self, org: str, kind: str) -> Slot | None:
        """A slot, or None when this server or this organization is at its cap for `kind`."""
        if self._by_kind[kind] >= self.per_server or self._by_org[(kind, org)] >= self.per_org:
            return None
        self._by_kind[kind] += 1
        self._by_org[(kind, org)] += 1
        return Slot(self, (kind, org))

    def open(self, org: str, kind: str) -> Slot:
        """A slot; `RateLimited` at the organization's cap, `Unavailable` at the server's."""
        slot = self.try_open(org, kind)
        if slot is not None:
            return slot
        if self._by_org[(kind, org)] >= self.per_org:
            raise errors.RateLimited(RETRY_AFTER_SECS, f"Too many open streams for this organization "
                                                       f"(at most {self.per_org} per server)")
        raise errors.Unavailable("This server holds as many streams as it allows: retry shortly")

    def count(self, kind: str, org: str | None = None) -> int:
        return self._by_kind[kind] if org is None else self._by_org[(kind, org)]

    def _release(self, key: tuple[str, str]) -> None:
        kind, _ = key
        self._by_kind[kind] -= 1
        self._by_org[key] -= 1
        if not self._by_org[key]:
            del self._by_org[key]
