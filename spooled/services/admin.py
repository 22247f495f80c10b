"""The operator's API (`X-Admin-Key`, api.md "admin"): every organization, plans and limits, suspension,
keys for any organization, usage resets and platform counts."""

from __future__ import annotations

from spooled.domain import errors, inputs
from spooled.domain.ids import parse_id, try_id
from spooled.domain.models import ApiKey, Organization, PlatformStats
from spooled.domain.plans import TIERS, Limits
from spooled.services.auth import Authenticator
from spooled.services.orgs import Created, Orgs, org_values
from spooled.services.quotas import Quotas
from spooled.store.orgs import OrgStore, OrgValues


class Admin:
    def __init__(self, orgs: OrgStore, org_service: Orgs, auth: Authenticator, quotas: Quotas):
        self._orgs = orgs
        self._org_service = org_service
        self._auth = auth
        self._quotas = quotas

    async def list(self, *, plan: str | None, limit: int, offset: int) -> tuple[list[Organization], int]:
        if plan is not None and plan not in TIERS:
            raise errors.invalid("plan_tier", f"must be one of {', '.join(TIERS)}")
        return await self._orgs.list(plan=plan, limit=min(max(limit, 1), 100), offset=max(offset, 0))

    async def get(self, org_id: str) -> Organization:
        found = await self._orgs.get(parse_id(org_id, "Organization"))
        if found is None:
            raise errors.NotFound("Organization not found")
        return found

    async def find(self, ref: str) -> Organization:
        """An organization by its id or its slug (the operator's CLI takes either)."""
        found = await (self._orgs.get(oid) if (oid := try_id(ref)) is not None else self._orgs.by_slug(ref))
        if found is None:
            raise errors.NotFound(f"Organization {ref} not found (`spooled orgs list` shows ids and slugs)")
        return found

    async def create(self, spec: inputs.CreateOrg) -> Created:
        return await self._org_service.create(spec)

    async def update(self, org_id: str, spec: inputs.UpdateOrg, present: set[str]) -> Organization:
        """Anything, plan, custom_limits (merged key by key; `null` drops every override) and suspension
        included; applied on this instance at once, on the others within the key cache period."""
        updated = await self._orgs.update(parse_id(org_id, "Organization"), org_values(spec, present))
        if updated is None:
            raise errors.NotFound("Organization not found")
        self._auth.forget_org(str(updated.id))
        return updated

    async def delete(self, org_id: str, *, hard: bool) -> None:
        """Soft (the default): suspend — every key is refused, nothing is lost, PATCH `suspended: false` undoes
        it. Hard: delete the organization and everything it owns, even while it has work."""
        oid = parse_id(org_id, "Organization")
        if hard:
            if not (await self._orgs.delete(oid, force=True)).found:
                raise errors.NotFound("Organization not found")
        elif await self._orgs.update(oid, OrgValues(suspended=True)) is None:
            raise errors.NotFound("Organization not found")
        self._auth.forget_org(str(oid))

    async def create_key(self, org_id: str, spec: inputs.CreateApiKey) -> tuple[ApiKey, str]:
        org = await self.get(org_id)
        return await self._org_service.issue_key(str(org.id), spec)

    async def reset_usage(self, org_id: str) -> None:
        org = await self.get(org_id)
        await self._quotas.reset(str(org.id))

    async def stats(self) -> PlatformStats:
        return await self._orgs.stats()

    def plans(self) -> list[Limits]:
        return [self._quotas.limits_for_tier(t) for t in TIERS]
