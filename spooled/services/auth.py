"""API keys: generation, hashing, and request authentication with a short in-process cache."""

from __future__ import annotations

import hashlib
import secrets
import uuid

import attrs
import trio

from spooled.domain import errors
from spooled.store.db import Database
from spooled.store.sql import Q

KEY_PREFIXES = ("sp_live_", "sp_test_", "sk_")
CACHE_TTL_SECS = 5.0       # a revoked key keeps working on *other* instances for at most this long
TOUCH_EVERY_SECS = 60.0    # last_used_at is written at most once a minute per key and instance


def new_api_key(live: bool = True) -> str:
    """A fresh key: prefix + 256 random bits."""
    return ("sp_live_" if live else "sp_test_") + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@attrs.frozen
class Principal:
    """Who is calling: an organization, through one API key."""
    organization_id: str
    api_key_id: str
    queues: tuple[str, ...]
    plan_tier: str


class Authenticator:
    def __init__(self, db: Database):
        self._db = db
        self._cache: dict[bytes, tuple[Principal, float]] = {}
        self._touched: dict[str, float] = {}

    async def authenticate(self, key: str | None) -> Principal:
        """The principal of an API key, or `Unauthorized`. One indexed lookup, cached for a few seconds."""
        if not key or not key.startswith(KEY_PREFIXES) or len(key) > 200:
            raise errors.Unauthorized("Missing or invalid API key")
        h = hash_key(key)
        now = trio.current_time()
        hit = self._cache.get(h)
        if hit is not None and hit[1] > now:
            principal = hit[0]
        else:
            row = await self._db.fetchrow(Q.api_key_lookup, key_hash=h)
            if row is None:
                self._cache.pop(h, None)
                raise errors.Unauthorized("Missing or invalid API key")
            principal = Principal(str(row["organization_id"]), str(row["id"]), tuple(row["queues"]),
                                  row["plan_tier"])
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[h] = (principal, now + CACHE_TTL_SECS)
        if self._touched.get(principal.api_key_id, -1e18) + TOUCH_EVERY_SECS <= now:
            self._touched[principal.api_key_id] = now
            await self._db.execute(Q.api_key_touch, id=uuid.UUID(principal.api_key_id))
        return principal

    def forget(self, key_hash: bytes) -> None:
        """Drop a revoked key from this instance's cache at once."""
        self._cache.pop(key_hash, None)
