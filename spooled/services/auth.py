"""Authentication: API keys (hashed, looked up through one unique index, cached a few seconds) and the JWTs
issued for them (HS256 access and refresh tokens, api.md "Authentication")."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

import attrs
import jwt
import trio

from spooled.domain import errors
from spooled.store.db import Database
from spooled.store.sql import Q

KEY_PREFIXES = ("sp_live_", "sp_test_", "sk_")
CACHE_TTL_SECS = 5.0       # a revoked key keeps working on *other* instances for at most this long
TOUCH_EVERY_SECS = 60.0    # last_used_at is written at most once a minute per key and instance
ACCESS_TTL_SECS = 3600
REFRESH_TTL_SECS = 30 * 86400
BAD_KEY = "Missing or invalid API key"
BAD_TOKEN = "Invalid or expired token"


def new_api_key(live: bool = True) -> str:
    """A fresh key: prefix + 256 random bits."""
    return ("sp_live_" if live else "sp_test_") + secrets.token_urlsafe(32)


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and not credential.startswith(KEY_PREFIXES)


@attrs.frozen
class Principal:
    """Who is calling: an organization, through one API key (directly, or through a token issued for it)."""
    organization_id: str
    api_key_id: str
    queues: tuple[str, ...]
    plan_tier: str
    issued_at: dt.datetime | None = None     # set when the caller used an access token
    expires_at: dt.datetime | None = None


class Authenticator:
    def __init__(self, db: Database, jwt_secret: str | None = None):
        self._db = db
        self._secret = jwt_secret
        self._cache: dict[bytes, tuple[Principal, float]] = {}
        self._touched: dict[str, float] = {}

    async def authenticate(self, credential: str | None) -> Principal:
        """The principal of an API key or an access token, or `Unauthorized`."""
        if credential and self._secret and looks_like_jwt(credential):
            claims = self.decode(credential, "access")
            principal = await self._key_by_id(claims["api_key_id"])
            if principal.organization_id != claims["sub"]:
                raise errors.Unauthorized(BAD_TOKEN)
            return attrs.evolve(principal, issued_at=_time(claims["iat"]), expires_at=_time(claims["exp"]))
        return await self._key(credential)

    async def _key(self, key: str | None) -> Principal:
        if not key or not key.startswith(KEY_PREFIXES) or len(key) > 200:
            raise errors.Unauthorized(BAD_KEY)
        h = hash_key(key)
        principal = self._cached(h)
        if principal is None:
            row = await self._db.fetchrow(Q.api_key_lookup, key_hash=h)
            if row is None:
                raise errors.Unauthorized(BAD_KEY)
            principal = self._remember(h, row)
        now = trio.current_time()
        if self._touched.get(principal.api_key_id, -1e18) + TOUCH_EVERY_SECS <= now:
            self._touched[principal.api_key_id] = now
            await self._db.execute(Q.api_key_touch, id=uuid.UUID(principal.api_key_id))
        return principal

    async def _key_by_id(self, key_id: str) -> Principal:
        """The (still active) key a token was issued for."""
        cache_key = b"id:" + key_id.encode()
        principal = self._cached(cache_key)
        if principal is None:
            try:
                kid = uuid.UUID(key_id)
            except ValueError:
                raise errors.Unauthorized(BAD_TOKEN) from None
            row = await self._db.fetchrow(Q.api_key_by_id, id=kid)
            if row is None:
                raise errors.Unauthorized(BAD_TOKEN)
            principal = self._remember(cache_key, row)
        return principal

    def _cached(self, cache_key: bytes) -> Principal | None:
        hit = self._cache.get(cache_key)
        return hit[0] if hit is not None and hit[1] > trio.current_time() else None

    def _remember(self, cache_key: bytes, row) -> Principal:
        principal = Principal(str(row["organization_id"]), str(row["id"]), tuple(row["queues"]), row["plan_tier"])
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[cache_key] = (principal, trio.current_time() + CACHE_TTL_SECS)
        return principal

    def forget(self, key_hash: bytes, key_id: str) -> None:
        """Drop a revoked key (and tokens' lookups of it) from this instance's cache at once."""
        self._cache.pop(key_hash, None)
        self._cache.pop(b"id:" + key_id.encode(), None)

    # -- tokens -----------------------------------------------------------------------------------------
    def _sign(self, principal: Principal, kind: str, ttl: int, jti: uuid.UUID) -> tuple[str, dict]:
        now = int(dt.datetime.now(dt.timezone.utc).timestamp())
        claims = {"sub": principal.organization_id, "api_key_id": principal.api_key_id, "type": kind,
                  "iat": now, "exp": now + ttl, "jti": str(jti)}
        return jwt.encode(claims, self._secret, algorithm="HS256"), claims

    def decode(self, token: str, kind: str) -> dict:
        """The claims of a valid, unexpired token of this kind; `Unauthorized` otherwise."""
        if not self._secret:
            raise errors.Unauthorized(BAD_TOKEN)
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"],
                                options={"require": ["exp", "iat", "sub", "type", "api_key_id"]})
        except jwt.PyJWTError:
            raise errors.Unauthorized(BAD_TOKEN) from None
        if claims.get("type") != kind or not isinstance(claims["api_key_id"], str):
            raise errors.Unauthorized(BAD_TOKEN)
        return claims

    async def login(self, api_key: str | None) -> dict:
        """Access + refresh tokens for an API key (POST /auth/login)."""
        principal = await self._key(api_key)
        jti = uuid.uuid4()
        access, _ = self._sign(principal, "access", ACCESS_TTL_SECS, uuid.uuid4())
        refresh, claims = self._sign(principal, "refresh", REFRESH_TTL_SECS, jti)
        await self._db.execute(Q.refresh_token_create, jti=jti, org=uuid.UUID(principal.organization_id),
                               api_key_id=uuid.UUID(principal.api_key_id), issued_at=_time(claims["iat"]),
                               expires_at=_time(claims["exp"]))
        return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                "expires_in": ACCESS_TTL_SECS, "refresh_expires_in": REFRESH_TTL_SECS}

    async def refresh(self, refresh_token: str) -> dict:
        """A new access token for a refresh token that is unexpired, unrevoked and whose key is active."""
        claims = self.decode(refresh_token, "refresh")
        if not await self._refresh_usable(claims):
            raise errors.Unauthorized(BAD_TOKEN)
        principal = await self._key_by_id(claims["api_key_id"])
        access, _ = self._sign(principal, "access", ACCESS_TTL_SECS, uuid.uuid4())
        return {"access_token": access, "token_type": "Bearer", "expires_in": ACCESS_TTL_SECS}

    async def _refresh_usable(self, claims: dict) -> bool:
        try:
            jti, org = uuid.UUID(str(claims.get("jti"))), uuid.UUID(claims["sub"])
        except ValueError:
            return False
        return await self._db.fetchval(Q.refresh_token_check, jti=jti, org=org) is not None

    async def logout(self, principal: Principal, refresh_token: str | None) -> None:
        """Revoke a refresh token of the caller's organization (no token: nothing to revoke)."""
        if refresh_token:
            claims = self.decode(refresh_token, "refresh")
            if claims["sub"] != principal.organization_id:
                raise errors.Unauthorized(BAD_TOKEN)
            await self._db.execute(Q.refresh_token_revoke, jti=uuid.UUID(str(claims.get("jti"))),
                                   org=uuid.UUID(principal.organization_id))

    async def validate(self, token: str) -> dict:
        """{valid, claims?}: an access or refresh token that would be accepted now."""
        for kind in ("access", "refresh"):
            try:
                claims = self.decode(token, kind)
            except errors.Unauthorized:
                continue
            try:
                await self._key_by_id(claims["api_key_id"])
            except errors.Unauthorized:
                return {"valid": False}
            if kind == "refresh" and not await self._refresh_usable(claims):
                return {"valid": False}
            return {"valid": True, "claims": claims}
        return {"valid": False}


def _time(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
