"""Outgoing webhooks: subscriptions, their deliveries, a synchronous `test`, and redelivery (api.md "Webhooks").

The deliveries themselves are written by the event triggers (schema.sql) in the transaction of the state change
and sent by the `Dispatcher` (services/dispatcher.py); the body and headers of a delivery are built here, once.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import attrs
import orjson

from spooled.domain import errors, inputs
from spooled.domain.ids import parse_id
from spooled.domain.models import Delivery, Webhook
from spooled.services.quotas import Quotas
from spooled.services.sender import Response, Sender, check_url, sign
from spooled.store.webhooks import WebhookStore, WebhookValues


def _missing() -> errors.NotFound:
    return errors.NotFound("Webhook not found")


@attrs.frozen
class TestResult:
    success: bool
    status_code: int | None
    response_time_ms: int
    error: str | None


def envelope(delivery_id: uuid.UUID, event: str, created_at: dt.datetime, data_json: str) -> dict:
    """The signed JSON body: `{id, event, created_at, data}`; the same bytes on every retry of a delivery."""
    return {"id": str(delivery_id), "event": event,
            "created_at": created_at.astimezone(dt.timezone.utc).isoformat(),
            "data": orjson.Fragment(data_json)}


def render(fmt: str, body: dict) -> bytes:
    """The request body for a webhook format: the JSON envelope, or the message a chat service accepts."""
    if fmt == "json":
        return orjson.dumps(body)
    if fmt not in ("slack", "discord", "teams"):
        raise ValueError(f"unknown webhook format {fmt!r}")
    data = orjson.loads(orjson.dumps(body["data"]))
    subject = f"job {data['job_id']} ({data.get('queue_name')}) is {data.get('status')}" if body["event"].startswith("job.") \
        else ", ".join(f"{k}: {v}" for k, v in data.items() if not isinstance(v, (dict, list)))
    text = f"[Spooled] {body['event']}: {subject}"
    if data.get("last_error"):
        text += f" ({data['last_error']})"
    return orjson.dumps({"content": text} if fmt == "discord" else {"text": text})


def headers(delivery_id: uuid.UUID, event: str, body: bytes, secret: str | None) -> dict[str, str]:
    timestamp = str(int(time.time()))
    out = {"X-Spooled-Event": event, "X-Spooled-Delivery": str(delivery_id), "X-Spooled-Timestamp": timestamp}
    if secret:
        out["X-Spooled-Signature"] = sign(secret, timestamp, body)
    return out


class Webhooks:
    def __init__(self, store: WebhookStore, sender: Sender, quotas: Quotas):
        self._store = store
        self._sender = sender
        self._quotas = quotas

    async def create(self, org: str, spec: inputs.CreateWebhook) -> Webhook:
        """A new subscription (the plan's webhook count is a quota)."""
        check_url(spec.url, allow_private=self._sender.allow_private)
        await self._quotas.check(org, "webhooks")
        return await self._store.create(parse_id(org), WebhookValues(
            name=spec.name, url=spec.url, events=list(dict.fromkeys(spec.events)), enabled=spec.enabled,
            format=spec.format, secret=spec.secret))

    async def list(self, org: str) -> list[Webhook]:
        return await self._store.list(parse_id(org))

    async def get(self, org: str, webhook_id: str) -> Webhook:
        hook = await self._store.get(parse_id(org), parse_id(webhook_id, "Webhook"))
        if hook is None:
            raise _missing()
        return hook

    async def update(self, org: str, webhook_id: str, spec: inputs.UpdateWebhook, present: set[str]) -> Webhook:
        """Partial update; `present` are the keys sent (`secret: null` clears the secret, absent keeps it)."""
        if spec.url is not None:
            check_url(spec.url, allow_private=self._sender.allow_private)
        for key in inputs.UpdateWebhook.__not_null__:
            if key in present and getattr(spec, key) is None:
                raise errors.invalid(key, "must not be null")
        hook = await self._store.update(parse_id(org), parse_id(webhook_id, "Webhook"), WebhookValues(
            name=spec.name, url=spec.url, events=list(dict.fromkeys(spec.events)) if spec.events else None,
            enabled=spec.enabled, format=spec.format, secret=spec.secret, set_secret="secret" in present))
        if hook is None:
            raise _missing()
        return hook

    async def delete(self, org: str, webhook_id: str) -> None:
        if not await self._store.delete(parse_id(org), parse_id(webhook_id, "Webhook")):
            raise _missing()

    async def deliveries(self, org: str, webhook_id: str, *, status: str | None = None, limit: int = 50,
                         offset: int = 0) -> list[Delivery]:
        """The webhook's deliveries, newest first (404 for another org's webhook)."""
        hook = await self.get(org, webhook_id)
        return await self._store.deliveries(parse_id(org), hook.id, status=status, limit=limit, offset=offset)

    async def redeliver(self, org: str, webhook_id: str, delivery_id: str) -> None:
        """Send a delivery again, same delivery id, with a fresh attempt budget."""
        hook = await self.get(org, webhook_id)
        if not await self._store.redeliver(parse_id(org), hook.id, parse_id(delivery_id, "Delivery")):
            raise errors.NotFound("Delivery not found")

    async def test(self, org: str, webhook_id: str) -> TestResult:
        """Send a `webhook.test` event to the webhook now (not through the outbox) and report what happened."""
        hook = await self.get(org, webhook_id)
        delivery_id = uuid.uuid4()
        data = orjson.dumps({"webhook_id": str(hook.id), "message": "This is a test event from Spooled"}).decode()
        body = render(hook.format, envelope(delivery_id, "webhook.test", dt.datetime.now(dt.timezone.utc), data))
        resp: Response = await self._sender.post(hook.url, body, headers(delivery_id, "webhook.test", body,
                                                                         hook.secret))
        return TestResult(resp.ok, resp.status_code, resp.elapsed_ms, resp.error)
