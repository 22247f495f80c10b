"""Webhooks in the database (queries/webhooks.sql): subscriptions, the outbox of deliveries, the inbound log, and
what the incoming receivers read of an organization. Returns domain models; rules stay in the services."""

from __future__ import annotations

import datetime as dt
import uuid

import attrs

from spooled.convert import from_row, from_rows
from spooled.domain.models import Delivery, InboundDelivery, LeasedDelivery, Webhook
from spooled.store.db import Database
from spooled.store.sql import Q


@attrs.frozen
class WebhookValues:
    """A create, or a partial update where None keeps the column (the secret: only when `set_secret`)."""
    name: str | None = None
    url: str | None = None
    events: list[str] | None = None
    enabled: bool | None = None
    format: str | None = None
    secret: str | None = None
    set_secret: bool = False


@attrs.frozen
class Outcome:
    """One delivery attempt's result, as recorded."""
    ok: bool
    status_code: int | None = None
    error: str | None = None
    response_body: str | None = None
    retry_in: float | None = None          # seconds to the next attempt; None: no more attempts (when not ok)


@attrs.frozen
class InboundSettings:
    github_secret: str | None
    github_queue: str | None
    stripe_secret: str | None
    stripe_queue: str | None
    webhook_token: str | None


class WebhookStore:
    def __init__(self, db: Database):
        self._db = db

    # -- subscriptions ----------------------------------------------------------------------------------
    async def create(self, org: uuid.UUID, v: WebhookValues) -> Webhook:
        row = await self._db.fetchrow(Q.webhook_create, org=org, name=v.name, url=v.url, events=v.events,
                                      enabled=True if v.enabled is None else v.enabled, secret=v.secret,
                                      format=v.format or "json")
        return from_row(Webhook, row)

    async def list(self, org: uuid.UUID) -> list[Webhook]:
        return from_rows(Webhook, await self._db.fetch(Q.webhook_list, org=org))

    async def get(self, org: uuid.UUID, webhook_id: uuid.UUID) -> Webhook | None:
        row = await self._db.fetchrow(Q.webhook_get, org=org, id=webhook_id)
        return from_row(Webhook, row) if row is not None else None

    async def update(self, org: uuid.UUID, webhook_id: uuid.UUID, v: WebhookValues) -> Webhook | None:
        row = await self._db.fetchrow(Q.webhook_update, org=org, id=webhook_id, name=v.name, url=v.url,
                                      events=v.events, enabled=v.enabled, format=v.format,
                                      set_secret=v.set_secret, secret=v.secret)
        return from_row(Webhook, row) if row is not None else None

    async def delete(self, org: uuid.UUID, webhook_id: uuid.UUID) -> bool:
        """Delete the subscription and its deliveries; False when there is no such webhook."""
        return await self._db.fetchval(Q.webhook_delete, org=org, id=webhook_id) is not None

    # -- the outbox --------------------------------------------------------------------------------------
    async def deliveries(self, org: uuid.UUID, webhook_id: uuid.UUID, *, status: str | None, limit: int,
                         offset: int) -> list[Delivery]:
        """The webhook's deliveries, newest first."""
        rows = await self._db.fetch(Q.delivery_list, org=org, webhook=webhook_id, status=status, limit=limit,
                                    offset=offset)
        return from_rows(Delivery, rows)

    async def redeliver(self, org: uuid.UUID, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> bool:
        """Queue a delivery again with a fresh attempt budget (and wake the dispatchers); False when missing."""
        return await self._db.fetchrow(Q.delivery_redeliver, org=org, webhook=webhook_id, id=delivery_id) is not None

    async def lease(self, *, limit: int, lease_secs: float, now: dt.datetime | None = None) -> list[LeasedDelivery]:
        """Lease up to `limit` due deliveries for one attempt each (attempts counted now)."""
        rows = await self._db.fetch(Q.delivery_lease, limit=limit, lease_secs=lease_secs, now=now)
        return from_rows(LeasedDelivery, rows)

    async def record(self, d: LeasedDelivery, outcome: Outcome, *, max_failures: int,
                     now: dt.datetime | None = None) -> str | None:
        """Record an attempt's outcome under its lease; the delivery's new status, or None when the lease was
        lost (another dispatcher took the delivery over: this outcome is not recorded)."""
        row = await self._db.fetchrow(
            Q.delivery_record, id=d.id, lease=d.locked_until, ok=outcome.ok, retry_in=outcome.retry_in,
            status_code=outcome.status_code, error=outcome.error, response_body=outcome.response_body,
            max_failures=max_failures, now=now)
        return row["status"] if row is not None else None

    # -- incoming ------------------------------------------------------------------------------------------
    async def inbound_settings(self, org: uuid.UUID) -> InboundSettings | None:
        row = await self._db.fetchrow(Q.org_webhook_settings, org=org)
        return from_row(InboundSettings, row) if row is not None else None

    async def webhook_token(self, org: uuid.UUID, fresh: str, *, regenerate: bool) -> str | None:
        """The org's custom-webhook token, set to `fresh` when it has none yet or `regenerate`."""
        return await self._db.fetchval(Q.org_webhook_token, org=org, fresh=fresh, regenerate=regenerate)

    async def record_inbound(self, org: uuid.UUID, provider: str, event_type: str, queue: str,
                             job_id: uuid.UUID, status: str) -> None:
        await self._db.execute(Q.inbound_record, org=org, provider=provider, event_type=event_type, queue=queue,
                               job_id=job_id, status=status)

    async def inbound(self, org: uuid.UUID, *, status: str | None, since: dt.datetime | None, queue: str | None,
                      limit: int, offset: int) -> list[InboundDelivery]:
        rows = await self._db.fetch(Q.inbound_list, org=org, status=status, since=since, queue=queue, limit=limit,
                                    offset=offset)
        return from_rows(InboundDelivery, rows)
