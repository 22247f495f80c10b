"""Email login codes in the database (queries/logins.sql). Codes are stored only as an HMAC."""

from __future__ import annotations

import datetime as dt
import uuid

import attrs

from spooled.store.db import Database
from spooled.store.sql import Q


@attrs.frozen
class Attempt:
    id: uuid.UUID
    code_hash: bytes | None                # None: a start for an address no organization has
    attempts: int                          # tries counted so far, this one included


class LoginStore:
    def __init__(self, db: Database):
        self._db = db

    async def recent(self, email: str, since: dt.datetime) -> tuple[int, dt.datetime | None]:
        """How many codes this address was sent since `since`, and when the oldest of them was."""
        row = await self._db.fetchrow(Q.email_code_recent, email=email, since=since)
        return row["n"], row["oldest"]

    async def create(self, email: str, code_hash: bytes | None, ttl_secs: float) -> uuid.UUID:
        return await self._db.fetchval(Q.email_code_create, email=email, code_hash=code_hash,
                                       ttl_secs=float(ttl_secs))

    async def attempt(self, email: str) -> Attempt | None:
        """Count one try against the address's newest live code (None when it has none)."""
        row = await self._db.fetchrow(Q.email_code_attempt, email=email)
        return Attempt(row["id"], bytes(row["code_hash"]) if row["code_hash"] is not None else None,
                       row["attempts"]) if row is not None else None

    async def use(self, code_id: uuid.UUID) -> bool:
        """Mark the code used; False when another request used it first."""
        return await self._db.fetchval(Q.email_code_use, id=code_id) is not None
