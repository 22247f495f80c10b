"""Authentication: API keys (hashed, looked up through one unique index, cached a few seconds) and the JWTs
issued for them (HS256 access and refresh tokens, api.md "Authentication").

A credential becomes a `Principal`: the organization, the key, the key's rules (queue restriction, read-only,
its own rate limit, expiry) and the organization's plan limits. `services/admission.py` turns that into an
admission decision for one request.

Caching: a key's grant is kept `CACHE_TTL_SECS` per instance. Deactivating, revoking or changing a key, or an
organization's plan, drops it from this instance's cache at once; other instances notice within the TTL. An
expiry is checked on every use against the clock, so an expired key is refused at once everywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
import uuid
from typing import Callable

import attrs
import jwt

from spooled.domain import errors
from spooled.domain.ids import try_id
from spooled.domain.models import KeyGrant
from spooled.domain.plans import Limits
from spooled.services.quotas import Quotas
from spooled.store.keys import KeyStore

NEW_KEY_PREFIX = "sk_live_"                                 # the product reference's prefix (test keys: sk_test_)
KEY_PREFIXES = ("sk_live_", "sk_test_", "sp_live_", "sp_test_", "sk_")   # sp_: keys issued before sk_live_
CACHE_TTL_SECS = 5.0       # a deactivated key keeps working on *other* instances for at most this long
TOUCH_EVERY_SECS = 60.0    # last_used_at is written at most once a minute per key and instance
ACCESS_TTL_SECS = 3600
REFRESH_TTL_SECS = 30 * 86400
BAD_KEY = "Missing or invalid API key"
BAD_TOKEN = "Invalid or expired token"
EXPIRED_KEY = "API key expired"
SUSPENDED = "This organization is suspended"


def new_api_key(live: bool = True) -> str:
    """A fresh key: prefix + 256 random bits."""
    return ("sk_live_" if live else "sk_test_") + secrets.token_urlsafe(32)


def key_prefix(key: str) -> str:
    """What is stored and shown of a key: enough to recognise it, far too little to use it."""
    return key[:12]


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and not credential.startswith(KEY_PREFIXES)


@attrs.frozen(slots=True)
class Principal:
    """Who is calling: an organization, through one API key (directly, or through a token issued for it)."""
    organization_id: str
    api_key_id: str
    queues: tuple[str, ...]                 # empty: every queue
    limits: Limits
    read_only: bool = False
    rate_limit: int | None = None           # the key's own limit, requests per minute
    key_expires: float | None = None        # Unix seconds
    suspended: bool = False
    issued_at: dt.datetime | None = None    # set when the caller used an access token
    expires_at: dt.datetime | None = None

    @property
    def plan_tier(self) -> str:
        return self.limits.tier

    def allows(self, queue: str) -> bool:
        """Whether this key may use `queue` (an unrestricted key may use any)."""
        return not self.queues or queue in self.queues


class Authenticator:
    def __init__(self, keys: KeyStore, quotas: Quotas, jwt_secret: str | None = None,
                 clock: Callable[[], float] = time.time):
        self._keys = keys
        self._quotas = quotas
        self._secret = jwt_secret
        self.clock = clock
        self._cache: dict[object, tuple[Principal, float]] = {}    # key hash or key id -> (principal, until)
        self._hash_of: dict[str, bytes] = {}                       # key id -> its hash's cache entry
        self._touched: dict[str, float] = {}

    async def authenticate(self, credential: str | None) -> Principal:
        """The principal of an API key or an access token; `Unauthorized` for a missing, unknown, inactive
        or expired credential, `Forbidden` for a suspended organization."""
        if credential and self._secret and looks_like_jwt(credential):
            claims = self.decode(credential, "access")
            principal = self._usable(await self._key_by_id(claims["api_key_id"]), BAD_TOKEN)
            if principal.organization_id != claims["sub"]:
                raise errors.Unauthorized(BAD_TOKEN)
            await self._touch(principal)
            return attrs.evolve(principal, issued_at=_time(claims["iat"]), expires_at=_time(claims["exp"]))
        principal = self._usable(await self._key(credential), EXPIRED_KEY)
        await self._touch(principal)
        return principal

    def _usable(self, p: Principal, expired_message: str) -> Principal:
        if p.key_expires is not None and p.key_expires <= self.clock():
            raise errors.Unauthorized(expired_message)
        if p.suspended:
            raise errors.Forbidden(SUSPENDED)
        return p

    async def _touch(self, p: Principal) -> None:
        now = self.clock()
        if self._touched.get(p.api_key_id, -1e18) + TOUCH_EVERY_SECS <= now:
            if len(self._touched) > 10_000:
                self._touched.clear()
            self._touched[p.api_key_id] = now
            await self._keys.touch(uuid.UUID(p.api_key_id))

    async def _key(self, key: str | None) -> Principal:
        if not key or not key.startswith(KEY_PREFIXES) or len(key) > 200:
            raise errors.Unauthorized(BAD_KEY)
        h = hash_key(key)
        principal = self._cached(h)
        if principal is None:
            grant = await self._keys.grant_by_hash(h)
            if grant is None:
                raise errors.Unauthorized(BAD_KEY)
            principal = self._remember(h, grant)
        return principal

    async def _key_by_id(self, key_id: object) -> Principal:
        """The (still active) key a token was issued for."""
        kid = try_id(key_id) if isinstance(key_id, str) else None
        if kid is None:
            raise errors.Unauthorized(BAD_TOKEN)
        principal = self._cached(key_id)
        if principal is None:
            grant = await self._keys.grant_by_id(kid)
            if grant is None:
                raise errors.Unauthorized(BAD_TOKEN)
            principal = self._remember(key_id, grant)
        return principal

    def _cached(self, cache_key: object) -> Principal | None:
        hit = self._cache.get(cache_key)
        return hit[0] if hit is not None and hit[1] > self.clock() else None

    def _remember(self, cache_key: object, g: KeyGrant) -> Principal:
        org = str(g.organization_id)
        limits = self._quotas.limits_for_tier(g.plan_tier, g.custom_limits)
        principal = Principal(org, str(g.id), tuple(g.queues), limits, g.read_only, g.rate_limit,
                              g.expires_at.timestamp() if g.expires_at is not None else None, g.suspended)
        if len(self._cache) > 10_000:
            self._cache.clear()
            self._hash_of.clear()
        self._cache[cache_key] = (principal, self.clock() + CACHE_TTL_SECS)
        if isinstance(cache_key, bytes):
            self._hash_of[principal.api_key_id] = cache_key
        self._quotas.prime(org, limits)
        return principal

    def forget(self, key_id: str) -> None:
        """Drop a changed or revoked key (and tokens' lookups of it) from this instance's cache at once."""
        self._cache.pop(key_id, None)
        h = self._hash_of.pop(key_id, None)
        if h is not None:
            self._cache.pop(h, None)

    def forget_org(self, org: str) -> None:
        """Drop every cached key of an organization (its plan, limits or suspension changed)."""
        for cache_key in [k for k, (p, _) in self._cache.items() if p.organization_id == org]:
            del self._cache[cache_key]
        self._quotas.forget(org)

    # -- tokens -----------------------------------------------------------------------------------------
    def _sign(self, p: Principal, kind: str, ttl: int, jti: uuid.UUID) -> tuple[str, dict]:
        now = int(time.time())     # pyjwt checks exp/iat against the real clock
        claims = {"sub": p.organization_id, "org_id": p.organization_id, "api_key_id": p.api_key_id,
                  "queues": list(p.queues), "type": kind, "iat": now, "exp": now + ttl, "jti": str(jti)}
        return jwt.encode(claims, self._secret, algorithm="HS256"), claims

    def decode(self, token: str, kind: str) -> dict:
        """The claims of a valid, unexpired token of this kind; `Unauthorized` otherwise (a bad signature, `alg`
        other than HS256 — `none` included —, missing or mistyped claims, the other kind of token)."""
        if not self._secret:
            raise errors.Unauthorized(BAD_TOKEN)
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"],
                                options={"require": ["exp", "iat", "sub", "type", "api_key_id"]})
        except jwt.PyJWTError:
            raise errors.Unauthorized(BAD_TOKEN) from None
        if not all(isinstance(claims.get(k), str) for k in ("sub", "type", "api_key_id")):
            raise errors.Unauthorized(BAD_TOKEN)
        if claims["type"] != kind:
            raise errors.Unauthorized(BAD_TOKEN)
        return claims

    async def issue(self, principal: Principal) -> dict:
        """Access + refresh tokens for a principal (login, email login)."""
        jti = uuid.uuid4()
        access, _ = self._sign(principal, "access", ACCESS_TTL_SECS, uuid.uuid4())
        refresh, claims = self._sign(principal, "refresh", REFRESH_TTL_SECS, jti)
        await self._keys.add_refresh(jti, uuid.UUID(principal.organization_id), uuid.UUID(principal.api_key_id),
                                     _time(claims["iat"]), _time(claims["exp"]))
        return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                "expires_in": ACCESS_TTL_SECS, "refresh_expires_in": REFRESH_TTL_SECS}

    async def login(self, api_key: str | None) -> dict:
        """Access + refresh tokens for an API key (POST /auth/login)."""
        return await self.issue(self._usable(await self._key(api_key), EXPIRED_KEY))

    async def login_as_key(self, key_id: str) -> dict:
        """Tokens for a key the server chose (email login's key)."""
        return await self.issue(self._usable(await self._key_by_id(key_id), BAD_TOKEN))

    async def refresh(self, refresh_token: str) -> dict:
        """A new access token for a refresh token that is unexpired, unrevoked and whose key is usable."""
        claims = self.decode(refresh_token, "refresh")
        if not await self._refresh_usable(claims):
            raise errors.Unauthorized(BAD_TOKEN)
        principal = self._usable(await self._key_by_id(claims["api_key_id"]), BAD_TOKEN)
        access, _ = self._sign(principal, "access", ACCESS_TTL_SECS, uuid.uuid4())
        return {"access_token": access, "token_type": "Bearer", "expires_in": ACCESS_TTL_SECS}

    async def _refresh_usable(self, claims: dict) -> bool:
        jti, org = try_id(claims.get("jti")), try_id(claims["sub"])
        if jti is None or org is None:
            return False
        return await self._keys.refresh_usable(jti, org)

    async def logout(self, principal: Principal, refresh_token: str | None) -> None:
        """Revoke a refresh token of the caller's organization (no token: nothing to revoke). A read-only key
        may call this, but only for its own tokens: revoking another key's session is not reading."""
        if refresh_token:
            claims = self.decode(refresh_token, "refresh")
            jti = try_id(claims.get("jti"))
            if claims["sub"] != principal.organization_id or jti is None:
                raise errors.Unauthorized(BAD_TOKEN)
            if principal.read_only and claims.get("api_key_id") != principal.api_key_id:
                raise errors.Forbidden("A read-only API key may only end its own sessions")
            await self._keys.revoke_refresh(jti, uuid.UUID(principal.organization_id))

    async def validate(self, token: str) -> dict:
        """An access or refresh token that would be accepted now: `{valid, organization_id, api_key_id, queues,
        expires_at, claims}`; otherwise `{valid: false, error}`."""
        for kind in ("access", "refresh"):
            try:
                claims = self.decode(token, kind)
            except errors.Unauthorized:
                continue
            try:
                principal = self._usable(await self._key_by_id(claims["api_key_id"]), BAD_TOKEN)
            except (errors.Unauthorized, errors.Forbidden) as exc:
                return {"valid": False, "error": exc.message}
            if principal.organization_id != claims["sub"] or (
                    kind == "refresh" and not await self._refresh_usable(claims)):
                return {"valid": False, "error": BAD_TOKEN}
            return {"valid": True, "organization_id": principal.organization_id,
                    "api_key_id": principal.api_key_id, "queues": list(principal.queues),
                    "expires_at": _time(claims["exp"]), "claims": claims}
        return {"valid": False, "error": BAD_TOKEN}


def _time(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
