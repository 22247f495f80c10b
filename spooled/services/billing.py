"""Billing with Stripe (api.md "Billing"), through the official `stripe` library.

- `status`: the organization's plan, Stripe state, usage and limits.
- `portal`: a Billing Portal session for the organization's Stripe customer (the library, in a worker thread:
  it is synchronous). 400 without a customer; 503 while Stripe is not configured or does not answer.
- `webhook`: the platform's own Stripe events, verified with the library (`Stripe-Signature`, 300 s
  tolerance). Each event id is processed once (the id is recorded in the same transaction as the change), and
  an event older than the newest one applied to the organization is recorded but not applied, so Stripe's
  out-of-order and repeated deliveries converge on the newest state.

Which organization: the object's `metadata.organization_id` (or a Checkout session's `client_reference_id`),
else the organization whose `stripe_customer_id` is the object's customer. Which plan: `metadata.plan_tier` of
the subscription (or of the Checkout session), else of the subscription's price, else the price's
`lookup_key` when it is a plan name. A deleted (or canceled/unpaid) subscription returns the organization to
the free plan.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid

import trio

from spooled.domain import errors
from spooled.domain.ids import try_id
from spooled.domain.models import Organization, Usage
from spooled.domain.plans import TIERS, Limits
from spooled.services.auth import Authenticator
from spooled.services.quotas import Quotas
from spooled.store.orgs import BillingChange, EventOutcome, OrgStore

log = logging.getLogger(__name__)

ENDED = ("canceled", "unpaid", "incomplete_expired")


def _stripe():
    """The stripe library, imported on first use (it costs ~65 ms of CPU at start-up to servers that do not
    bill)."""
    import stripe
    return stripe
TOLERANCE_SECS = 300


def _s(value) -> str | None:
    """A Stripe id field (an expanded object is not an id)."""
    return value if isinstance(value, str) else None


def _plan(*candidates) -> str | None:
    for c in candidates:
        if isinstance(c, str) and c in TIERS:
            return c
    return None


def _meta(obj: dict) -> dict:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def _subscription_change(sub: dict, deleted: bool) -> BillingChange:
    items = ((sub.get("items") or {}).get("data") or [{}])
    price = (items[0] or {}).get("price") or {}
    period_end = sub.get("current_period_end") or (items[0] or {}).get("current_period_end")
    status = "canceled" if deleted else sub.get("status")
    plan = "free" if deleted or status in ENDED else _plan(
        _meta(sub).get("plan_tier"), _meta(price).get("plan_tier"), price.get("lookup_key"))
    return BillingChange(
        customer=_s(sub.get("customer")), subscription=None if deleted else _s(sub.get("id")), clear_subscription=deleted, status=status,
        period_end=dt.datetime.fromtimestamp(period_end, dt.timezone.utc) if isinstance(period_end, int) else None,
        set_period=isinstance(period_end, int),
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")), set_cancel="cancel_at_period_end" in sub,
        plan=plan)


def change_for(event_type: str, obj: dict) -> BillingChange | None:
    """What an event sets on its organization (None: an event type that changes nothing)."""
    if event_type == "checkout.session.completed":
        return BillingChange(customer=_s(obj.get("customer")), subscription=_s(obj.get("subscription")),
                             plan=_plan(_meta(obj).get("plan_tier")))
    if event_type in ("customer.subscription.created", "customer.subscription.updated",
                      "customer.subscription.deleted", "customer.subscription.paused",
                      "customer.subscription.resumed"):
        return _subscription_change(obj, deleted=event_type == "customer.subscription.deleted")
    if event_type == "invoice.paid":
        return BillingChange(customer=_s(obj.get("customer")), status="active")
    if event_type == "invoice.payment_failed":
        return BillingChange(customer=_s(obj.get("customer")), status="past_due")
    return None


class Billing:
    def __init__(self, orgs: OrgStore, auth: Authenticator, quotas: Quotas, *, secret_key: str | None,
                 webhook_secret: str | None, api_base: str | None):
        self._orgs = orgs
        self._auth = auth
        self._quotas = quotas
        self._webhook_secret = webhook_secret
        self._client = None
        if secret_key:
            self._client = _stripe().StripeClient(
                secret_key, base_addresses={"api": api_base.rstrip("/")} if api_base else None,
                max_network_retries=1)

    async def status(self, org: str) -> tuple[Organization, Limits, Usage]:
        found = await self._orgs.get(uuid.UUID(org))
        if found is None:
            raise errors.NotFound("Organization not found")
        limits, usage = await self._quotas.usage(org)
        return found, limits, usage

    async def portal(self, org: str, return_url: str) -> str:
        """The URL of a Billing Portal session for the organization's customer."""
        if self._client is None:
            raise errors.Unavailable("Billing is not configured on this server (SPOOLED_STRIPE_SECRET_KEY)")
        found = await self._orgs.get(uuid.UUID(org))
        if found is None:
            raise errors.NotFound("Organization not found")
        if not found.stripe_customer_id:
            raise errors.BadRequest("This organization has no Stripe customer yet: subscribe first")
        client, customer = self._client, found.stripe_customer_id

        def create():
            return client.v1.billing_portal.sessions.create(params={"customer": customer, "return_url": return_url})
        stripe = _stripe()
        try:
            session = await trio.to_thread.run_sync(create, abandon_on_cancel=True)
        except stripe.StripeError as exc:
            log.error("Stripe refused a billing portal session: %s", exc)
            raise errors.Unavailable("Stripe could not create a billing portal session") from None
        return session["url"]

    async def webhook(self, payload: bytes, signature: str | None) -> EventOutcome:
        """Verify and apply one Stripe event; `BadRequest` (nothing applied) for a bad signature or body."""
        if not self._webhook_secret:
            raise errors.Unavailable("Billing webhooks are not configured (SPOOLED_STRIPE_WEBHOOK_SECRET)")
        stripe = _stripe()
        try:
            stripe.Webhook.construct_event(payload, signature, self._webhook_secret, tolerance=TOLERANCE_SECS)
            event = json.loads(payload)
        except (stripe.SignatureVerificationError, ValueError):
            raise errors.BadRequest("Invalid Stripe signature or payload") from None
        obj = ((event.get("data") or {}).get("object") or {}) if isinstance(event, dict) else {}
        event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
        if not (isinstance(event_id, str) and isinstance(event_type, str) and isinstance(created, int)
                and isinstance(obj, dict)):
            raise errors.BadRequest("Not a Stripe event")
        change = change_for(event_type, obj)
        org = None
        if change is not None:
            org_hint = try_id(_meta(obj).get("organization_id") or obj.get("client_reference_id") or "")
            found = await self._orgs.for_stripe(org_hint, _s(obj.get("customer")))
            org = found.id if found is not None else None
        outcome = await self._orgs.apply_stripe_event(event_id, event_type,
                                                      dt.datetime.fromtimestamp(created, dt.timezone.utc), org,
                                                      change)
        if outcome.applied and org is not None:
            self._auth.forget_org(str(org))
        return outcome
