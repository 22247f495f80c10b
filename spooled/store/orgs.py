"""Organizations in the database (queries/orgs.sql): the tenant row, its plan and billing state, and the
Stripe events applied to it. Returns domain models; the rules ("404", "409 while busy") stay in the services."""

from __future__ import annotations

import datetime as dt
import uuid

import attrs

from spooled.convert import from_row, from_rows
from spooled.domain.models import Organization, PlatformStats
from spooled.store.db import Database
from spooled.store.sql import Q


@attrs.frozen
class NewOrg:
    name: str
    slug: str
    plan: str
    billing_email: str | None = None
    settings: str | None = None            # JSON text
    custom_limits: str | None = None       # JSON text


@attrs.frozen
class FirstKey:
    id: uuid.UUID
    name: str
    created_at: dt.datetime


@attrs.frozen
class OrgValues:
    """A partial update; None keeps the current value."""
    name: str | None = None
    billing_email: str | None = None
    set_email: bool = False                # billing_email given (None clears it)
    settings: str | None = None            # JSON text, merged key by key
    plan: str | None = None
    custom_limits: str | None = None       # JSON text, merged key by key
    clear_limits: bool = False             # drop every override
    suspended: bool | None = None


@attrs.frozen
class DeleteOutcome:
    found: bool
    active_jobs: int = 0
    workers: int = 0
    schedules: int = 0
    deleted: bool = False


@attrs.frozen
class BillingChange:
    """What a Stripe event sets on an organization (None keeps a column)."""
    customer: str | None = None
    subscription: str | None = None
    clear_subscription: bool = False
    status: str | None = None
    period_end: dt.datetime | None = None
    set_period: bool = False
    cancel_at_period_end: bool | None = None
    set_cancel: bool = False
    plan: str | None = None


@attrs.frozen
class EventOutcome:
    duplicate: bool                        # this event id was processed before: nothing changed
    applied: bool = False                  # False also when a newer event's state was kept
    org: Organization | None = None


class OrgStore:
    def __init__(self, db: Database):
        self._db = db

    async def create(self, new: NewOrg, *, key_name: str, key_hash: bytes, key_prefix: str
                     ) -> tuple[Organization, FirstKey]:
        """A new organization with its first API key (one statement)."""
        row = await self._db.fetchrow(Q.org_create_with_key, name=new.name, slug=new.slug, plan=new.plan,
                                      billing_email=new.billing_email, settings=new.settings,
                                      custom_limits=new.custom_limits, key_name=key_name, key_hash=key_hash,
                                      key_prefix=key_prefix)
        return from_row(Organization, row), FirstKey(row["key_id"], row["key_name"], row["key_created_at"])

    async def get(self, org: uuid.UUID) -> Organization | None:
        row = await self._db.fetchrow(Q.org_get, org=org)
        return from_row(Organization, row) if row is not None else None

    async def by_slug(self, slug: str) -> Organization | None:
        row = await self._db.fetchrow(Q.org_by_slug, slug=slug)
        return from_row(Organization, row) if row is not None else None

    async def list(self, *, plan: str | None, limit: int, offset: int) -> tuple[list[Organization], int]:
        """One page (newest first) and the number of all matches."""
        rows = await self._db.fetch(Q.org_list, plan=plan, limit=limit, offset=offset)
        total = rows[0]["total"] if rows else await self._db.fetchval(Q.org_count, plan=plan)
        return from_rows(Organization, rows), total

    async def update(self, org: uuid.UUID, v: OrgValues) -> Organization | None:
        row = await self._db.fetchrow(Q.org_update, org=org, name=v.name, set_email=v.set_email,
                                      billing_email=v.billing_email, settings=v.settings, plan=v.plan,
                                      custom_limits=v.custom_limits, clear_limits=v.clear_limits,
                                      suspended=v.suspended)
        return from_row(Organization, row) if row is not None else None

    async def delete(self, org: uuid.UUID, *, force: bool = False) -> DeleteOutcome:
        """Delete the organization and everything it owns (one transaction); refused while it has active jobs,
        live workers or active schedules unless `force`."""
        async def unit(con):
            if await con.fetchval(Q.org_lock.sql, *Q.org_lock.args(org=org)) is None:
                return DeleteOutcome(found=False)
            busy = await con.fetchrow(Q.org_busy.sql, *Q.org_busy.args(org=org))
            counts = (busy["active_jobs"], busy["workers"], busy["schedules"])
            if any(counts) and not force:
                return DeleteOutcome(True, *counts)
            await con.execute(Q.org_delete.sql, *Q.org_delete.args(org=org))
            return DeleteOutcome(True, *counts, deleted=True)
        return await self._db.transaction(unit)

    async def slug_taken(self, slug: str) -> bool:
        return await self._db.fetchval(Q.org_slug_taken, slug=slug)

    async def by_billing_email(self, email: str) -> list[Organization]:
        return from_rows(Organization, await self._db.fetch(Q.org_by_billing_email, email=email))

    async def stats(self) -> PlatformStats:
        return from_row(PlatformStats, await self._db.fetchrow(Q.org_stats))

    async def for_stripe(self, org: uuid.UUID | None, customer: str | None) -> Organization | None:
        row = await self._db.fetchrow(Q.org_for_stripe, org=org, customer=customer)
        return from_row(Organization, row) if row is not None else None

    async def apply_stripe_event(self, event_id: str, event_type: str, event_at: dt.datetime,
                                 org: uuid.UUID | None, change: BillingChange | None) -> EventOutcome:
        """Record the event id and apply `change` to `org` in one transaction: a replayed id changes nothing;
        an event older than the newest one applied to the organization is recorded but not applied."""
        async def unit(con):
            claimed = await con.fetchval(Q.stripe_event_record.sql, *Q.stripe_event_record.args(
                id=event_id, type=event_type, event_at=event_at, org=org, applied=False))
            if claimed is None:
                return EventOutcome(duplicate=True)
            if org is None or change is None:
                return EventOutcome(duplicate=False)
            stmt = Q.org_apply_billing
            row = await con.fetchrow(stmt.sql, *stmt.args(
                org=org, event_at=event_at, customer=change.customer, subscription=change.subscription,
                clear_subscription=change.clear_subscription, status=change.status, period_end=change.period_end,
                set_period=change.set_period, cancel_at_period_end=change.cancel_at_period_end,
                set_cancel=change.set_cancel, plan=change.plan))
            if row is None:
                return EventOutcome(duplicate=False)
            await con.execute(Q.stripe_event_mark_applied.sql, *Q.stripe_event_mark_applied.args(id=event_id))
            return EventOutcome(duplicate=False, applied=True, org=from_row(Organization, row))
        return await self._db.transaction(unit)
