"""Passwordless email login (api.md "Authentication"): `start` mails a 6-digit code to an address that is some
organization's billing email; `verify` trades the code for tokens of that organization.

- A code is valid 10 minutes and for at most 5 tries (every try counts, so the 6th fails even with the right
  code); it is stored as an HMAC (keyed by the server's JWT secret) and compared in constant time.
- At most 5 codes per address per hour: the 6th start within the hour is a 429 with Retry-After.
- An address no organization uses gets the same answer (and counts against the same hourly limit): a start is
  recorded for it with no code, so neither the reply nor the timing (mail goes out from a background task)
  tells whether the address is known.
- The tokens are issued for the organization's "email login" API key (created on first use, listed with its
  other keys): revoking that key ends every email session of the organization.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
import time
from typing import Callable

from spooled.domain import errors, inputs
from spooled.domain.ids import try_id
from spooled.services.auth import Authenticator
from spooled.services.mailer import Mail, Mailer
from spooled.services.orgs import Orgs
from spooled.store.keys import KeyStore
from spooled.store.logins import LoginStore
from spooled.store.orgs import OrgStore

CODE_TTL_SECS = 600
MAX_TRIES = 5
MAX_CODES_PER_HOUR = 5
LOGIN_KEY_NAME = "email login"
BAD_CODE = "Invalid or expired code"


def mask(email: str) -> str:
    """j***@example.com"""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


class EmailLogin:
    def __init__(self, orgs: OrgStore, keys: KeyStore, logins: LoginStore, org_service: Orgs, auth: Authenticator,
                 mailer: Mailer, *, secret: str, clock: Callable[[], float] = time.time):
        self._orgs = orgs
        self._keys = keys
        self._logins = logins
        self._org_service = org_service
        self._auth = auth
        self._mailer = mailer
        self._secret = secret.encode()
        self.clock = clock

    def _hash(self, email: str, code: str) -> bytes:
        return hmac.new(self._secret, f"{email}\n{code}".encode(), hashlib.sha256).digest()

    async def start(self, email: str) -> dict:
        address = email.strip().lower()
        now = dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)
        sent, oldest = await self._logins.recent(address, now - dt.timedelta(hours=1))
        if sent >= MAX_CODES_PER_HOUR:
            wait = (oldest + dt.timedelta(hours=1) - now).total_seconds() if oldest else 3600
            raise errors.RateLimited(math.ceil(wait), "Too many login codes for this address: try again later")
        known = bool(await self._orgs.by_billing_email(address))
        code = f"{secrets.randbelow(1_000_000):06d}"
        await self._logins.create(address, self._hash(address, code) if known else None, CODE_TTL_SECS)
        if known:
            self._mailer.send(Mail(to=email.strip(), subject="Your Spooled login code", secret=code,
                                   body=f"Your Spooled login code is {code}\n\nIt is valid for 10 minutes. "
                                        "If you did not ask for it, ignore this message.\n"))
        return {"message": "If an organization uses this address, a login code was sent to it",
                "email_sent_to": mask(address), "expires_in": CODE_TTL_SECS}

    async def verify(self, email: str, code: str, organization_id: str | None = None) -> dict:
        """Tokens (as /auth/login, plus `type: "login"`) for the address's organization (the oldest one, or
        `organization_id` among them); `Unauthorized` for a wrong, expired, used or over-tried code."""
        address = email.strip().lower()
        attempt = await self._logins.attempt(address)
        if attempt is None or attempt.code_hash is None:
            raise errors.Unauthorized(BAD_CODE)
        right = hmac.compare_digest(attempt.code_hash, self._hash(address, code.strip()))
        if not right or attempt.attempts > MAX_TRIES or not await self._logins.use(attempt.id):
            raise errors.Unauthorized(BAD_CODE)
        orgs = await self._orgs.by_billing_email(address)
        if organization_id is not None:
            wanted = try_id(organization_id)
            orgs = [o for o in orgs if o.id == wanted]
        if not orgs:
            raise errors.Unauthorized(BAD_CODE)
        org = str(orgs[0].id)
        key = await self._keys.named(orgs[0].id, LOGIN_KEY_NAME)
        if key is None:
            key, _ = await self._org_service.issue_key(org, inputs.CreateApiKey(name=LOGIN_KEY_NAME))
        tokens = await self._auth.login_as_key(str(key.id))
        return {**tokens, "type": "login", "organization_id": org}

    async def check(self, email: str) -> dict:
        """GET /auth/check-email: whether some organization uses this billing email (authenticated callers
        only: the transport admits the request first)."""
        exists = bool(await self._orgs.by_billing_email(email.strip().lower()))
        return {"exists": exists, "has_organizations": exists}
