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
from spooled.transports.http.schema import BOOLEAN, INTEGER, STRING, array, component, const, enum, nullable, obj
from spooled.transports.http.spec import OFFSET, Body, Param, empty, limit, one_of, op, time_param

bp = Blueprint("webhooks", __name__)
DELIVERY_STATUSES = ("pending", "success", "failed")
INBOUND_STATUSES = ("created", "duplicate")
RECEIVED = component("ReceivedWebhook", obj({"job_id": STRING, "queue_name": STRING,
                                             "status": enum(*INBOUND_STATUSES)}))
TOKEN = component("WebhookToken", obj({"webhook_token": STRING, "webhook_url": STRING}))
RAW_BODY = {"description": "The provider's payload, exactly as sent (the signature covers the raw bytes)"}


def org() -> str:
    """The caller's organization; webhooks see every queue's events, so a queue-restricted key may not manage them."""
    p = principal()
    if p.queues:
        raise errors.Forbidden("Webhooks need an API key without a queue restriction")
    return p.organization_id


# -- outgoing subscriptions (both paths, one handler each) ------------------------------------------------------
@bp.post("/webhooks")
@bp.post("/outgoing-webhooks")
@op("Subscribe a URL to events", body=inputs.CreateWebhook, ok={201: Body(views.WEBHOOK)})
@authed
async def create_webhook():
    caller = org()
    spec, _ = await body_as(inputs.CreateWebhook)
    return json_response(views.webhook(await services().webhooks.create(caller, spec)), 201)


@bp.get("/webhooks")
@bp.get("/outgoing-webhooks")
@op("List outgoing webhooks", ok=array(views.WEBHOOK))
@authed
async def list_webhooks():
    return json_response([views.webhook(w) for w in await services().webhooks.list(org())])


@bp.get("/webhooks/<webhook_id>")
@bp.get("/outgoing-webhooks/<webhook_id>")
@op("Get an outgoing webhook", ok=views.WEBHOOK)
@authed
async def get_webhook(webhook_id: str):
    return json_response(views.webhook(await services().webhooks.get(org(), webhook_id)))


@bp.patch("/webhooks/<webhook_id>")
@bp.put("/webhooks/<webhook_id>")
@bp.put("/outgoing-webhooks/<webhook_id>")
@bp.patch("/outgoing-webhooks/<webhook_id>")
@op("Update an outgoing webhook (partial; `secret: null` clears it)", body=inputs.UpdateWebhook,
    ok=views.WEBHOOK)
@authed
async def update_webhook(webhook_id: str):
    caller = org()
    spec, raw = await body_as(inputs.UpdateWebhook)
    return json_response(views.webhook(await services().webhooks.update(caller, webhook_id, spec, set(raw))))


@bp.delete("/webhooks/<webhook_id>")
@bp.delete("/outgoing-webhooks/<webhook_id>")
@op("Delete an outgoing webhook", ok=empty("Deleted"))
@authed
async def delete_webhook(webhook_id: str):
    await services().webhooks.delete(org(), webhook_id)
    return no_content()


@bp.post("/webhooks/<webhook_id>/test")
@bp.post("/outgoing-webhooks/<webhook_id>/test")
@op("Send a webhook.test event now", ok=obj({
    "success": BOOLEAN, "status_code": nullable(INTEGER), "response_time_ms": nullable(INTEGER),
    "error": nullable(STRING)}))
@authed
async def test_webhook(webhook_id: str):
    r = await services().webhooks.test(org(), webhook_id)
    return json_response({"success": r.success, "status_code": r.status_code, "response_time_ms": r.response_time_ms,
                          "error": r.error})


@bp.get("/webhooks/<webhook_id>/deliveries")
@bp.get("/outgoing-webhooks/<webhook_id>/deliveries")
@op("An outgoing webhook's deliveries, newest first", ok=array(views.DELIVERY), query=(
    limit(50), OFFSET, one_of("status", DELIVERY_STATUSES)))
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
@op("Send a delivery again", ok=obj({"success": const(True), "message": STRING}))
@authed
async def redeliver(webhook_id: str, delivery_id: str):
    await request.get_data()
    await services().webhooks.redeliver(org(), webhook_id, delivery_id)
    return json_response({"success": True, "message": "Delivery queued for redelivery"})


# -- incoming -----------------------------------------------------------------------------------------------------
def _received(r) -> dict:
    return {"job_id": r.job_id, "queue_name": r.queue_name, "status": r.status}


@bp.post("/webhooks/<org_id>/github")
@op("Receive a GitHub webhook", security=("githubSignature",), body=RAW_BODY, errors=(400, 401, 413),
    ok={201: Body(RECEIVED, description="Enqueued"), 200: Body({"oneOf": [RECEIVED, obj({"message": const("pong")})]},
        description="A duplicate delivery, or a `ping`")},
    description="`X-GitHub-Event` and `X-GitHub-Delivery` are required; the delivery id is the job's "
                "idempotency key. JSON or `application/x-www-form-urlencoded` (`payload=`) bodies.")
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
@op("Receive a Stripe webhook", security=("stripeSignature",), body=RAW_BODY, errors=(400, 401, 413),
    ok={201: Body(RECEIVED, description="Enqueued"), 200: Body(RECEIVED, description="A duplicate event")})
async def stripe_webhook(org_id: str):
    body = await request.get_data()
    r = await services().inbound.stripe(org_id, signature=request.headers.get("Stripe-Signature"), body=body)
    return json_response(_received(r), 201 if r.status == "created" else 200)


@bp.post("/webhooks/<org_id>/custom")
@op("Receive a custom webhook", security=("webhookToken",), body=inputs.CustomWebhook,
    errors=(400, 401, 413), ok={201: Body(RECEIVED, description="Enqueued"),
                                200: Body(RECEIVED, description="A duplicate (same idempotency_key)")})
async def custom(org_id: str):
    body = await request.get_data()
    r = await services().inbound.custom(org_id, token=request.headers.get("X-Webhook-Token"), body=body)
    return json_response(_received(r), 201 if r.status == "created" else 200)


@bp.get("/webhooks/deliveries")
@op("Accepted incoming webhooks, newest first", ok=array(views.INBOUND), query=(
    limit(50), OFFSET, one_of("status", INBOUND_STATUSES), time_param("since", "Received at or after"),
    Param("queue_name", STRING, "Only those enqueued into this queue")))
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
@op("The organization's incoming-webhook token", ok=TOKEN)
@authed
async def webhook_token(org_id: str | None = None):
    return await _token(org_id, regenerate=False)


@bp.post("/organizations/webhook-token/regenerate")
@bp.post("/organizations/<org_id>/webhook-token/regenerate")
@op("Replace the incoming-webhook token", ok=TOKEN)
@authed
async def regenerate_webhook_token(org_id: str | None = None):
    await request.get_data()
    return await _token(org_id, regenerate=True)


async def _token(org_id: str | None, *, regenerate: bool):
    token = await services().inbound.token(org(), org_id or org(), regenerate=regenerate)
    url = f"{request.host_url.rstrip('/')}/api/v1/webhooks/{org()}/custom"
    return json_response({"webhook_token": token, "webhook_url": url})
