"""Incoming webhooks (api.md "Webhooks", incoming): GitHub and Stripe deliveries verified by their signatures,
custom ones by the organization's webhook token, each turned into one job.

A provider's delivery id (GitHub `X-GitHub-Delivery`, the Stripe event id) is the job's idempotency key, so a
redelivery finds the job the first delivery made instead of making another. A bad or missing signature, an
unknown organization or one without the secret configured all answer the same `Unauthorized`, and nothing is
enqueued. Accepted deliveries are logged (`inbound_webhooks`) without their payload.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid

import attrs
import stripe

from spooled.convert import structure
from spooled.domain import errors, inputs
from spooled.domain.ids import parse_id, try_id
from spooled.domain.models import InboundDelivery
from spooled.domain.scope import Scope
from spooled.services.jobs import Jobs
from spooled.store.webhooks import InboundSettings, WebhookStore

BAD_SIGNATURE = "Invalid or missing webhook signature"
BAD_TOKEN = "Invalid or missing X-Webhook-Token"
STRIPE_TOLERANCE_SECS = 300


@attrs.frozen
class Received:
    job_id: str
    queue_name: str
    status: str          # created / duplicate


def new_token() -> str:
    return "whk_" + secrets.token_urlsafe(32)


def _queue(setting: str | None, default: str, name: str) -> str:
    queue = setting or default
    if not inputs.QUEUE_NAME.match(queue):
        raise errors.invalid(name, "the organization's setting is not a valid queue name")
    return queue


class Inbound:
    def __init__(self, store: WebhookStore, jobs: Jobs):
        self._store = store
        self._jobs = jobs

    async def _settings(self, org_id: str, unauthorized: str) -> tuple[uuid.UUID, InboundSettings]:
        org = try_id(org_id)
        found = await self._store.inbound_settings(org) if org is not None else None
        if found is None:
            raise errors.Unauthorized(unauthorized)
        return org, found

    async def _enqueue(self, org: uuid.UUID, provider: str, event_type: str, queue: str, payload,
                       key: str | None, priority: int | None = None) -> Received:
        spec = inputs.JobSpec(payload=payload, idempotency_key=key, priority=priority)
        (res,) = await self._jobs.enqueue(Scope(str(org)), queue, [spec])    # a receiver is the organization's
        status = "created" if res.created else "duplicate"
        await self._store.record_inbound(org, provider, event_type, queue, uuid.UUID(res.job_id), status)
        return Received(res.job_id, queue, status)

    async def github(self, org_id: str, *, event: str | None, delivery_id: str | None, signature: str | None,
                     body: bytes, form: bool = False) -> Received | None:
        """A GitHub delivery; None for a (verified) `ping`, which enqueues nothing."""
        org, s = await self._settings(org_id, BAD_SIGNATURE)
        expected = "sha256=" + hmac.new((s.github_secret or "").encode(), body, hashlib.sha256).hexdigest()
        if not s.github_secret or not signature or not hmac.compare_digest(expected.encode(),
                                                                            signature.strip().encode()):
            raise errors.Unauthorized(BAD_SIGNATURE)
        if not event:
            raise errors.BadRequest("X-GitHub-Event header is required")
        if event == "ping":
            return None
        if not delivery_id or len(delivery_id) > 255:
            raise errors.BadRequest("X-GitHub-Delivery header is required")
        payload = {"event": event, "delivery_id": delivery_id, "body": _github_body(body, form)}
        return await self._enqueue(org, "github", event, _queue(s.github_queue, "github", "github_queue"), payload,
                                   delivery_id)

    async def stripe(self, org_id: str, *, signature: str | None, body: bytes) -> Received:
        """A Stripe event, verified by the `stripe` library against the org's endpoint secret."""
        org, s = await self._settings(org_id, BAD_SIGNATURE)
        try:
            stripe.WebhookSignature.verify_header(body, signature, s.stripe_secret, STRIPE_TOLERANCE_SECS)
        except stripe.SignatureVerificationError:
            raise errors.Unauthorized(BAD_SIGNATURE) from None
        try:
            event = json.loads(body)
            event_id, event_type = event["id"], event["type"]
        except (ValueError, KeyError, TypeError):
            raise errors.BadRequest("The body is not a Stripe event") from None
        if not isinstance(event_id, str) or not isinstance(event_type, str) or not 0 < len(event_id) <= 255:
            raise errors.BadRequest("The body is not a Stripe event")
        payload = {"event": event_type, "event_id": event_id, "body": event}
        return await self._enqueue(org, "stripe", event_type, _queue(s.stripe_queue, "stripe", "stripe_queue"),
                                   payload, event_id)

    async def custom(self, org_id: str, *, token: str | None, body: bytes) -> Received:
        """A custom delivery authenticated by the org's webhook token (compared in constant time, before the body
        is looked at)."""
        org, s = await self._settings(org_id, BAD_TOKEN)
        if not s.webhook_token or not token or not hmac.compare_digest(s.webhook_token.encode(), token.encode()):
            raise errors.Unauthorized(BAD_TOKEN)
        try:
            data = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise errors.BadRequest("Malformed JSON body") from None
        spec = structure(data, inputs.CustomWebhook)
        return await self._enqueue(org, "custom", spec.event_type or "custom", spec.queue_name, spec.payload,
                                   spec.idempotency_key, spec.priority)

    async def token(self, org: str, org_id: str, *, regenerate: bool = False) -> str:
        """The caller's own org's custom-webhook token (made on first read); another org's id is not found."""
        if str(parse_id(org_id, "Organization")) != org:
            raise errors.NotFound("Organization not found")
        token = await self._store.webhook_token(parse_id(org), new_token(), regenerate=regenerate)
        if token is None:
            raise errors.NotFound("Organization not found")
        return token

    async def deliveries(self, org: str, *, status: str | None = None, since: dt.datetime | None = None,
                         queue: str | None = None, limit: int = 50, offset: int = 0) -> list[InboundDelivery]:
        """The org's accepted incoming deliveries, newest first."""
        return await self._store.inbound(parse_id(org), status=status, since=since, queue=queue, limit=limit,
                                         offset=offset)


def _github_body(body: bytes, form: bool):
    """GitHub sends JSON, or (content type "form") `payload=<url-encoded JSON>`."""
    try:
        if form:
            from urllib.parse import parse_qs
            return json.loads(parse_qs(body.decode())["payload"][0])
        return json.loads(body)
    except (ValueError, KeyError, UnicodeDecodeError):
        raise errors.BadRequest("The body is not a GitHub webhook payload") from None
