"""API keys and refresh tokens in the database (queries/keys.sql). Keys are stored only as a SHA-256 hash;
nothing here returns the hash."""

from __future__ import annotations

import datetime as dt
import uuid

import attrs

from spooled.convert import from_row, from_rows
from spooled.domain.models import ApiKey, KeyGrant
from spooled.store.db import Database
from spooled.store.sql import Q


@attrs.frozen
class NewKey:
    name: str
    key_hash: bytes
    key_prefix: str
    queues: list[str] = attrs.Factory(list)
    rate_limit: int | None = None
    read_only: bool = False
    expires_at: dt.datetime | None = None


@attrs.frozen
class KeyValues:
    """A partial update; None keeps the current value."""
    name: str | None = None
    queues: list[str] | None = None
    rate_limit: int | None = None
    set_rate_limit: bool = False           # rate_limit given (None clears it)
    is_active: bool | None = None


class KeyStore:
    def __init__(self, db: Database):
        self._db = db

    async def grant_by_hash(self, key_hash: bytes) -> KeyGrant | None:
        """The grant of an active key (one unique-index probe), None for an unknown or inactive key."""
        row = await self._db.fetchrow(Q.api_key_lookup, key_hash=key_hash)
        return from_row(KeyGrant, row) if row is not None else None

    async def grant_by_id(self, key_id: uuid.UUID) -> KeyGrant | None:
        row = await self._db.fetchrow(Q.api_key_by_id, id=key_id)
        return from_row(KeyGrant, row) if row is not None else None

    async def touch(self, key_id: uuid.UUID) -> None:
        """Record a use (at most once a minute: the statement skips fresher stamps)."""
        await self._db.execute(Q.api_key_touch, id=key_id)

    async def create(self, org: uuid.UUID, k: NewKey) -> ApiKey:
        row = await self._db.fetchrow(Q.api_key_create, org=org, name=k.name, key_hash=k.key_hash,
                                      key_prefix=k.key_prefix, queues=k.queues, rate_limit=k.rate_limit,
                                      read_only=k.read_only, expires_at=k.expires_at)
        return from_row(ApiKey, row)

    async def list(self, org: uuid.UUID) -> list[ApiKey]:
        return from_rows(ApiKey, await self._db.fetch(Q.api_key_list, org=org))

    async def get(self, org: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
        row = await self._db.fetchrow(Q.api_key_get, org=org, id=key_id)
        return from_row(ApiKey, row) if row is not None else None

    async def update(self, org: uuid.UUID, key_id: uuid.UUID, v: KeyValues) -> ApiKey | None:
        """Partial update; a revoked key stays inactive whatever `is_active` says."""
        row = await self._db.fetchrow(Q.api_key_update, org=org, id=key_id, name=v.name, queues=v.queues,
                                      rate_limit=v.rate_limit, set_rate_limit=v.set_rate_limit,
                                      is_active=v.is_active)
        return from_row(ApiKey, row) if row is not None else None

    async def revoke(self, org: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
        row = await self._db.fetchrow(Q.api_key_revoke, org=org, id=key_id)
        return from_row(ApiKey, row) if row is not None else None

    async def named(self, org: uuid.UUID, name: str) -> ApiKey | None:
        row = await self._db.fetchrow(Q.api_key_named, org=org, name=name)
        return from_row(ApiKey, row) if row is not None else None

    # -- refresh tokens ------------------------------------------------------------------------------------
    async def add_refresh(self, jti: uuid.UUID, org: uuid.UUID, key_id: uuid.UUID, issued_at: dt.datetime,
                          expires_at: dt.datetime) -> None:
        await self._db.execute(Q.refresh_token_create, jti=jti, org=org, api_key_id=key_id, issued_at=issued_at,
                               expires_at=expires_at)

    async def refresh_usable(self, jti: uuid.UUID, org: uuid.UUID) -> bool:
        """Unexpired, unrevoked, and its key active and unexpired."""
        return await self._db.fetchval(Q.refresh_token_check, jti=jti, org=org) is not None

    async def revoke_refresh(self, jti: uuid.UUID, org: uuid.UUID) -> bool:
        return await self._db.fetchval(Q.refresh_token_revoke, jti=jti, org=org) is not None
