"""Organizations and their API keys (api.md "Organizations, API keys, admin"), as their owners see them.
Every method takes the caller's organization id: another organization's ids are not found."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import uuid

import attrs

from spooled.domain import errors, inputs
from spooled.domain.ids import parse_id
from spooled.domain.models import ApiKey, Organization
from spooled.services.auth import Authenticator, hash_key, key_prefix, new_api_key
from spooled.services.quotas import Quotas
from spooled.store.keys import KeyStore, KeyValues, NewKey
from spooled.store.orgs import FirstKey, NewOrg, OrgStore, OrgValues

SECRET_SETTINGS = ("github_webhook_secret", "stripe_webhook_secret")
FIRST_KEY_NAME = "default"


def slug_base(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "org"


def slugify(name: str) -> str:
    return f"{slug_base(name)}-{secrets.token_hex(3)}"


def public_settings(settings_text: str | None) -> dict:
    """Org settings as shown to clients: secrets are write-only (only `<name>_set: true`)."""
    settings = json.loads(settings_text or "{}")
    for name in SECRET_SETTINGS:
        if settings.pop(name, None):
            settings[f"{name}_set"] = True
    return settings


@attrs.frozen
class Created:
    """A new organization, its first key's row, and that key (shown this once, stored only as a hash)."""
    org: Organization
    key: FirstKey
    secret: str


def _json(value) -> str | None:
    return json.dumps(value) if value is not None else None


def org_values(spec: inputs.UpdateOrg, present: set[str]) -> OrgValues:
    return OrgValues(name=spec.name, billing_email=spec.billing_email, set_email="billing_email" in present,
                     settings=_json(spec.settings), plan=spec.plan, custom_limits=_json(spec.custom_limits),
                     clear_limits="custom_limits" in present and spec.custom_limits is None,
                     suspended=spec.suspended)


class Orgs:
    def __init__(self, orgs: OrgStore, keys: KeyStore, auth: Authenticator, quotas: Quotas, *,
                 default_plan: str = "free"):
        self._orgs = orgs
        self._keys = keys
        self._auth = auth
        self._quotas = quotas
        self._default_plan = default_plan

    # -- organizations -----------------------------------------------------------------------------------
    async def create(self, spec: inputs.CreateOrg) -> Created:
        """A new organization (on `spec.plan`, else the server's default plan) and its first API key."""
        key = new_api_key()
        org, first = await self._orgs.create(
            NewOrg(name=spec.name, slug=spec.slug or slugify(spec.name), plan=spec.plan or self._default_plan,
                   billing_email=spec.billing_email, settings=_json(spec.settings),
                   custom_limits=_json(spec.custom_limits)),
            key_name=FIRST_KEY_NAME, key_hash=hash_key(key), key_prefix=key_prefix(key))
        return Created(org, first, key)

    def _own(self, org: str, org_id: str) -> uuid.UUID:
        if str(parse_id(org_id, "Organization")) != org:
            raise errors.NotFound("Organization not found")
        return uuid.UUID(org)

    async def get(self, org: str, org_id: str | None = None) -> Organization:
        """The caller's organization (`org_id`, when given, must be it)."""
        found = await self._orgs.get(self._own(org, org_id or org))
        if found is None:
            raise errors.NotFound("Organization not found")
        return found

    async def update(self, org: str, org_id: str, spec: inputs.UpdateOrg, present: set[str]) -> Organization:
        """Name, billing email and settings (plan, limits and suspension are the operator's: admin API)."""
        if present & {"plan", "plan_tier", "custom_limits", "suspended"}:
            raise errors.Forbidden("plan_tier, custom_limits and suspended are set through the admin API")
        updated = await self._orgs.update(self._own(org, org_id), org_values(spec, present))
        if updated is None:
            raise errors.NotFound("Organization not found")
        return updated

    async def delete(self, org: str, org_id: str) -> None:
        """Delete the organization and all it owns; Conflict while it has active jobs, live workers or active
        schedules."""
        outcome = await self._orgs.delete(self._own(org, org_id))
        if not outcome.found:
            raise errors.NotFound("Organization not found")
        if not outcome.deleted:
            raise errors.Conflict(f"The organization has {outcome.active_jobs} active jobs, {outcome.workers} live "
                                  f"workers and {outcome.schedules} active schedules: stop them first")
        self._auth.forget_org(org)

    async def check_slug(self, slug: str) -> dict:
        if not inputs.SLUG.match(slug):
            return {"available": False, "valid": False, "suggestion": slugify(slug),
                    "error": "must be 1 to 63 lowercase letters, digits and dashes"}
        if await self._orgs.slug_taken(slug):
            return {"available": False, "valid": True, "suggestion": await self.generate_slug(slug)}
        return {"available": True, "valid": True}

    async def generate_slug(self, name: str) -> str:
        """A slug for `name` that is free now: the plain form if it is, else with a random suffix."""
        base = slug_base(name)
        if inputs.SLUG.match(base) and not await self._orgs.slug_taken(base):
            return base
        for _ in range(5):
            candidate = slugify(name)
            if not await self._orgs.slug_taken(candidate):
                return candidate
        return f"{base}-{secrets.token_hex(8)}"

    # -- API keys ----------------------------------------------------------------------------------------
    async def create_key(self, org: str, spec: inputs.CreateApiKey) -> tuple[ApiKey, str]:
        """A new key (shown once); counts against the plan's API keys."""
        if spec.expires_at is not None and spec.expires_at <= dt.datetime.now(dt.timezone.utc):
            raise errors.invalid("expires_at", "must be in the future")
        await self._quotas.check(org, "api_keys", 1)
        return await self.issue_key(org, spec)

    async def issue_key(self, org: str, spec: inputs.CreateApiKey) -> tuple[ApiKey, str]:
        """A new key without the plan check (operators, and the server's own email-login key)."""
        key = new_api_key()
        row = await self._keys.create(parse_id(org, "Organization"), NewKey(
            name=spec.name, key_hash=hash_key(key), key_prefix=key_prefix(key), queues=spec.queues or [],
            rate_limit=spec.rate_limit, read_only=spec.read_only, expires_at=spec.expires_at))
        return row, key

    async def list_keys(self, org: str) -> list[ApiKey]:
        return await self._keys.list(uuid.UUID(org))

    async def get_key(self, org: str, key_id: str) -> ApiKey:
        row = await self._keys.get(uuid.UUID(org), parse_id(key_id, "API key"))
        if row is None:
            raise errors.NotFound("API key not found")
        return row

    async def update_key(self, org: str, key_id: str, spec: inputs.UpdateApiKey, present: set[str]) -> ApiKey:
        """Name, queues, rate_limit (null clears it), is_active. Deactivating refuses the key (and its tokens)
        at once on this instance and within the key cache period on the others; a revoked key stays revoked."""
        kid = parse_id(key_id, "API key")
        row = await self._keys.update(uuid.UUID(org), kid, KeyValues(
            name=spec.name, queues=spec.queues, rate_limit=spec.rate_limit,
            set_rate_limit="rate_limit" in present, is_active=spec.is_active))
        if row is None:
            raise errors.NotFound("API key not found")
        self._auth.forget(str(kid))
        if spec.is_active and not row.is_active:
            raise errors.Conflict("A revoked API key cannot be reactivated: create a new one")
        return row

    async def revoke_key(self, org: str, key_id: str) -> None:
        kid = parse_id(key_id, "API key")
        if await self._keys.revoke(uuid.UUID(org), kid) is None:
            raise errors.NotFound("API key not found")
        self._auth.forget(str(kid))
