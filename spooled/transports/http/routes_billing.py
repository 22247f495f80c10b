"""Billing over REST (api.md "Billing"): status, the Stripe Billing Portal, and Stripe's webhook."""

from __future__ import annotations

import attrs
from quart import Blueprint, request

from spooled.domain import inputs
from spooled.transports.http import views
from spooled.transports.http.handlers import authed, body_as, json_response, principal, services

bp = Blueprint("billing", __name__)


@attrs.frozen
class _Portal:
    return_url: str = attrs.field(validator=inputs.length(1, 2048))


@bp.get("/billing/status")
@authed
async def status():
    org, lim, usage = await services().billing.status(principal().organization_id)
    return json_response(views.billing_status(org, lim, usage))


@bp.post("/billing/portal")
@authed
async def portal():
    spec, _ = await body_as(_Portal)
    return json_response({"url": await services().billing.portal(principal().organization_id, spec.return_url)})


@bp.post("/billing/webhook")
async def webhook():
    """Stripe's own events (no bearer auth: the `Stripe-Signature` is the credential)."""
    payload = await request.get_data()
    outcome = await services().billing.webhook(payload, request.headers.get("Stripe-Signature"))
    return json_response({"received": True, "duplicate": outcome.duplicate, "applied": outcome.applied})
