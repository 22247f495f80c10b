"""Organizations and their API keys."""

from __future__ import annotations

import json
import re
import secrets

from spooled.domain import errors, inputs
from spooled.domain.ids import parse_id
from spooled.services.auth import Authenticator, hash_key, new_api_key
from spooled.store.db import Database
from spooled.store.sql import Q

SECRET_SETTINGS = ("github_webhook_secret", "stripe_webhook_secret")


def slugify(name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "org"
    return f"{base}-{secrets.token_hex(3)}"


def public_settings(settings_text: str | None) -> dict:
    """Org settings as shown to clients: secrets are write-only (only `<name>_set: true`)."""
    settings = json.loads(settings_text or "{}")
    for name in SECRET_SETTINGS:
        if settings.pop(name, None):
            settings[f"{name}_set"] = True
    return settings


class Orgs:
    def __init__(self, db: Database, auth: Authenticator):
        self._db = db
        self._auth = auth

    async def create(self, spec: inputs.CreateOrg) -> tuple[dict, str]:
        """A new organization and its first API key (returned once, stored only as a hash)."""
        key = new_api_key()
        row = await self._db.fetchrow(Q.org_create_with_key, name=spec.name, slug=spec.slug or slugify(spec.name),
                                      plan=spec.plan or "free", key_hash=hash_key(key), key_prefix=key[:12])
        return dict(row), key

    async def get(self, org: str, org_id: str) -> dict:
        if str(parse_id(org_id, "Organization")) != org:
            raise errors.NotFound("Organization not found")
        return dict(await self._db.fetchrow(Q.org_get, org=parse_id(org)))

    async def update(self, org: str, org_id: str, spec: inputs.UpdateOrg, raw: dict) -> dict:
        if str(parse_id(org_id, "Organization")) != org:
            raise errors.NotFound("Organization not found")
        row = await self._db.fetchrow(
            Q.org_update, org=parse_id(org), name=spec.name, set_email="billing_email" in raw,
            billing_email=spec.billing_email,
            settings=json.dumps(spec.settings) if spec.settings is not None else None)
        return dict(row)

    async def create_key(self, org: str, spec: inputs.CreateApiKey) -> tuple[dict, str]:
        key = new_api_key()
        row = await self._db.fetchrow(Q.api_key_create, org=parse_id(org), name=spec.name, key_hash=hash_key(key),
                                      key_prefix=key[:12], queues=spec.queues or [])
        return dict(row), key

    async def list_keys(self, org: str) -> list[dict]:
        return [dict(r) for r in await self._db.fetch(Q.api_key_list, org=parse_id(org))]

    async def get_key(self, org: str, key_id: str) -> dict:
        row = await self._db.fetchrow(Q.api_key_get, org=parse_id(org), id=parse_id(key_id, "API key"))
        if row is None:
            raise errors.NotFound("API key not found")
        return dict(row)

    async def update_key(self, org: str, key_id: str, spec: inputs.UpdateApiKey) -> dict:
        row = await self._db.fetchrow(Q.api_key_rename, org=parse_id(org), id=parse_id(key_id, "API key"),
                                      name=spec.name, queues=spec.queues)
        if row is None:
            raise errors.NotFound("API key not found")
        return dict(row)

    async def revoke_key(self, org: str, key_id: str) -> None:
        kid = parse_id(key_id, "API key")
        row = await self._db.fetchrow(Q.api_key_revoke, org=parse_id(org), id=kid)
        if row is None:
            raise errors.NotFound("API key not found")
        self._auth.forget(bytes(row["key_hash"]), str(kid))
