"""Webhooks over REST (api.md "Webhooks"): outgoing subscriptions at `/webhooks` (ref) and
`/outgoing-webhooks` (sdk) with their deliveries, test and redelivery; the incoming GitHub, Stripe and custom
receivers (no bearer auth: a signature or the org's webhook token) and their log; the org's webhook token."""

from __future__ import annotations

from quart import Blueprint, request

from spooled.domain import errors, inputs
from spooled.services.webhooks import envelope
from spooled.transports.http import views
from spooled.transports.http.handlers import authed, body_as, json_response, no_content, principal, services
from spooled.transports.http.pagination import page_args, time_arg

bp = Blueprint("webhooks", __name__)
DELIVERY_STATUSES = ("pending", "success", "failed")
INBOUND_STATUSES = ("created", "duplicate")


def org() -> str:
    """The caller's organization; webhooks see every queue's events, so a queue-restricted key may not manage them."""
    p = principal()
    if p.queues:
        raise errors.Forbidden("Webhooks need an API key without a queue restriction")
    return p.organization_id


# -- outgoing subscriptions (both paths, one handler each) ------------------------------------------------------
@bp.post("/webhooks")
@bp.post("/outgoing-webhooks")
@authed
async def create_webhook():
    caller = org()
    spec, _ = await body_as(inputs.CreateWebhook)
    return json_response(views.webhook(await services().webhooks.create(caller, spec)), 201)


@bp.get("/webhooks")
@bp.get("/outgoing-webhooks")
@authed
async def list_webhooks():
    return json_response([views.webhook(w) for w in await services().webhooks.list(org())])


@bp.get("/webhooks/<webhook_id>")
@bp.get("/outgoing-webhooks/<webhook_id>")
@authed
async def get_webhook(webhook_id: str):
    return json_response(views.webhook(await services().webhooks.get(org(), webhook_id)))


@bp.patch("/webhooks/<webhook_id>")
@bp.put("/webhooks/<webhook_id>")
@bp.put("/outgoing-webhooks/<webhook_id>")
@bp.patch("/outgoing-webhooks/<webhook_id>")
@authed
async def update_webhook(webhook_id: str):
    caller = org()
    spec, raw = await body_as(inputs.UpdateWebhook)
    return json_response(views.webhook(await services().webhooks.update(caller, webhook_id, spec, set(raw))))


@bp.delete("/webhooks/<webhook_id>")
@bp.delete("/outgoing-webhooks/<webhook_id>")
@authed
async def delete_webhook(webhook_id: str):
    await services().webhooks.delete(org(), webhook_id)
    return no_content()


@bp.post("/webhooks/<webhook_id>/test")
@bp.post("/outgoing-webhooks/<webhook_id>/test")
@authed
async def test_webhook(webhook_id: str):
    r = await services().webhooks.test(org(), webhook_id)
    return json_response({"success": r.success, "status_code": r.status_code, "response_time_ms": r.response_time_ms,
                          "error": r.error})


@bp.get("/webhooks/<webhook_id>/deliveries")
@bp.get("/outgoing-webhooks/<webhook_id>/deliveries")
@authed
async def list_deliveries(webhook_id: str):
    status = request.args.get("status") or None
    if status is not None and status not in DELIVERY_STATUSES:
        raise errors.invalid("status", f"must be one of {', '.join(DELIVERY_STATUSES)}")
    limit, offset, _ = page_args(default=50)
    rows = await services().webhooks.deliveries(org(), webhook_id, status=status, limit=limit, offset=offset)
    return json_response([views.delivery(d, envelope(d.id, d.event, d.created_at, d.payload)) for d in rows])


@bp.post("/webhooks/<webhook_id>/retry/<delivery_id>")
@bp.post("/outgoing-webhooks/<webhook_id>/retry/<delivery_id>")
@authed
async def redeliver(webhook_id: str, delivery_id: str):
    await request.get_data()
    await services().webhooks.redeliver(org(), webhook_id, delivery_id)
    return json_response({"success": True, "message": "Delivery queued for redelivery"})


# -- incoming -----------------------------------------------------------------------------------------------------
def _received(r) -> dict:
    return {"job_id": r.job_id, "queue_name": r.queue_name, "status": r.status}


@bp.post("/webhooks/<org_id>/github")
async def github(org_id: str):
    body = await request.get_data()
    h = request.headers
    r = await services().inbound.github(
        org_id, event=h.get("X-GitHub-Event"), delivery_id=h.get("X-GitHub-Delivery"),
        signature=h.get("X-Hub-Signature-256"), body=body,
        form=(request.mimetype or "") == "application/x-www-form-urlencoded")
    if r is None:
        return json_response({"message": "pong"})
    return json_response(_received(r), 201 if r.status == "created" else 200)


@bp.post("/webhooks/<org_id>/stripe")
async def stripe_webhook(org_id: str):
    body = await request.get_data()
    r = await services().inbound.stripe(org_id, signature=request.headers.get("Stripe-Signature"), body=body)
    return json_response(_received(r), 201 if r.status == "created" else 200)


@bp.post("/webhooks/<org_id>/custom")
async def custom(org_id: str):
    body = await request.get_data()
    r = await services().inbound.custom(org_id, token=request.headers.get("X-Webhook-Token"), body=body)
    return json_response(_received(r), 201 if r.status == "created" else 200)


@bp.get("/webhooks/deliveries")
@authed
async def inbound_deliveries():
    status = request.args.get("status") or None
    if status is not None and status not in INBOUND_STATUSES:
        raise errors.invalid("status", f"must be one of {', '.join(INBOUND_STATUSES)}")
    limit, offset, _ = page_args(default=50)
    rows = await services().inbound.deliveries(org(), status=status, since=time_arg("since"),
                                               queue=request.args.get("queue_name") or None, limit=limit,
                                               offset=offset)
    return json_response([views.inbound(d) for d in rows])


# -- the org's incoming-webhook token -------------------------------------------------------------------------------
@bp.get("/organizations/webhook-token")
@bp.get("/organizations/<org_id>/webhook-token")
@authed
async def webhook_token(org_id: str | None = None):
    return await _token(org_id, regenerate=False)


@bp.post("/organizations/webhook-token/regenerate")
@bp.post("/organizations/<org_id>/webhook-token/regenerate")
@authed
async def regenerate_webhook_token(org_id: str | None = None):
    await request.get_data()
    return await _token(org_id, regenerate=True)


async def _token(org_id: str | None, *, regenerate: bool):
    token = await services().inbound.token(org(), org_id or org(), regenerate=regenerate)
    url = f"{request.host_url.rstrip('/')}/api/v1/webhooks/{org()}/custom"
    return json_response({"webhook_token": token, "webhook_url": url})
