"""Billing over REST (api.md "Billing"): status, the Stripe Billing Portal, and Stripe's webhook."""

from __future__ import annotations

import attrs
from quart import Blueprint, request

from spooled.domain import inputs
from spooled.transports.http import views
from spooled.transports.http.handlers import authed, body_as, json_response, principal, services
from spooled.transports.http.schema import BOOLEAN, OBJECT, STRING, const, obj
from spooled.transports.http.spec import op

bp = Blueprint("billing", __name__)
RAW_EVENT = {**OBJECT, "description": "A Stripe event, exactly as Stripe sent it (the signature covers the raw bytes)"}


@attrs.frozen
class _Portal:
    return_url: str = attrs.field(validator=inputs.length(1, 2048))


@bp.get("/billing/status")
@op("The plan, Stripe subscription and usage", ok=views.BILLING_STATUS)
@authed
async def status():
    org, lim, usage = await services().billing.status(principal().organization_id)
    return json_response(views.billing_status(org, lim, usage))


@bp.post("/billing/portal")
@op("A Stripe Billing Portal session", body=_Portal, ok=obj({"url": STRING}),
    description="400 when the organization has no Stripe customer; 503 when Stripe is not configured.")
@authed
async def portal():
    spec, _ = await body_as(_Portal)
    return json_response({"url": await services().billing.portal(principal().organization_id, spec.return_url)})


@bp.post("/billing/webhook")
@op("Stripe's events for the platform's own billing", security=("stripeSignature",), errors=(400, 413),
    body=RAW_EVENT, ok=obj({"received": const(True), "duplicate": BOOLEAN, "applied": BOOLEAN}),
    description="The raw body is verified against `Stripe-Signature` (400 when it does not verify); each event "
                "id is applied once.")
async def webhook():
    """Stripe's own events (no bearer auth: the `Stripe-Signature` is the credential)."""
    payload = await request.get_data()
    outcome = await services().billing.webhook(payload, request.headers.get("Stripe-Signature"))
    return json_response({"received": True, "duplicate": outcome.duplicate, "applied": outcome.applied})
