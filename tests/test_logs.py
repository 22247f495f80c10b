"""Logs (docs/operations.md "Logs"): a real `python -m spooled` at DEBUG, driven through organization and key
creation, token login and refresh, email login, gRPC, a billing webhook and errors, never logs a secret it was
given or gave out; in JSON format every line is one JSON object; access lines carry the request id and org."""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
from urllib.parse import urlsplit, urlunsplit

import httpx
import trio
from trio_asyncio import aio_as_trio

from spooled.services import logs
from spooled.transports.grpc.gen.spooled_grpc import QueueServiceStub
from tests.grpcio_gen import spooled_pb2 as pb
from tests.procs import clean_env, spooled_server
from tests.test_email_login import next_code, sink  # noqa: F401 (the SMTP sink fixture)
from tests.test_grpc import open_aio_channel, struct

EMAIL = "logs-owner@example.com"


def with_password(dsn: str, password: str) -> str:
    """The test database's DSN with a password in it (the test cluster trusts local users, so it is never asked
    for, but the server holds it like any DATABASE_URL)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"postgres:{password}@{parts.hostname or ''}"))


async def test_no_secret_reaches_the_log(aio_loop, dsn, tmp_path, sink):  # noqa: F811
    used = {name: f"{name}-{secrets.token_urlsafe(24)}" for name in ("dbpw", "admin", "metrics", "whsec")}
    used["jwt"] = secrets.token_urlsafe(40)
    env = clean_env(DATABASE_URL=with_password(dsn, used["dbpw"]), SPOOLED_DATA_DIR=str(tmp_path),
                    SPOOLED_LOG_LEVEL="DEBUG", SPOOLED_LOG_FORMAT="json", SPOOLED_ACCESS_LOG="on",
                    SPOOLED_ADMIN_KEY=used["admin"], SPOOLED_JWT_SECRET=used["jwt"],
                    SPOOLED_METRICS_TOKEN=used["metrics"], SPOOLED_STRIPE_WEBHOOK_SECRET="whsec_" + used["whsec"],
                    SPOOLED_SMTP_URL=f"smtp://127.0.0.1:{sink.port}")
    with trio.fail_after(120):
        async with spooled_server(env) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
                r = await c.post("/api/v1/organizations", headers={"X-Admin-Key": used["admin"]},
                                 json={"name": "Logs", "billing_email": EMAIL, "plan": "enterprise"})
                assert r.status_code == 201, r.text
                org, used["key"] = r.json()["organization"]["id"], r.json()["api_key"]["key"]
                auth = {"Authorization": f"Bearer {used['key']}", "X-Request-Id": "req-logs-1"}
                r = await c.post("/api/v1/api-keys", headers=auth, json={"name": "second"})
                used["key2"] = r.json()["key"]
                r = await c.post("/api/v1/auth/login", json={"api_key": used["key2"]})
                used["access"], used["refresh"] = r.json()["access_token"], r.json()["refresh_token"]
                r = await c.post("/api/v1/auth/refresh", json={"refresh_token": used["refresh"]})
                used["access2"] = r.json()["access_token"]
                assert (await c.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {used['access']}"})
                        ).status_code == 200
                r = await c.post("/api/v1/auth/email/start", json={"email": EMAIL})
                assert r.status_code == 200
                used["code"] = await next_code(sink, 1)
                r = await c.post("/api/v1/auth/email/verify", json={"email": EMAIL, "code": used["code"]})
                assert r.status_code == 200, r.text
                used["email_access"] = r.json()["access_token"]
                used["hook"] = "hook-secret-" + secrets.token_urlsafe(16)
                r = await c.post("/api/v1/jobs", headers=auth, json={
                    "queue_name": "logs", "payload": {"n": 1}, "completion_webhook": "https://example.com/h",
                    "completion_webhook_secret": used["hook"]})
                assert r.status_code == 201
                # errors: a wrong key, a forged token, malformed JSON carrying a key, a bad webhook signature
                used["wrong"] = "sk_live_" + secrets.token_urlsafe(32)
                assert (await c.get("/api/v1/jobs", headers={"Authorization": f"Bearer {used['wrong']}"})
                        ).status_code == 401
                forged = used["access"][:-6] + "AAAAAA"
                assert (await c.get("/api/v1/jobs", headers={"Authorization": f"Bearer {forged}"})
                        ).status_code == 401
                r = await c.post("/api/v1/auth/login", content=f'{{"api_key": "{used["key"]}"'.encode())
                assert r.status_code == 400
                r = await c.post("/api/v1/billing/webhook", content=b'{"id": "evt_1"}',
                                 headers={"Stripe-Signature": "t=1,v1=deadbeef"})
                assert r.status_code == 400
                assert (await c.get("/metrics", headers={"Authorization": f"Bearer {used['metrics']}"})
                        ).status_code == 200
                assert (await c.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code == 401
                grpc_host = re.search(rb"gRPC on ([0-9.:]+)", server.stdout).group(1).decode()
            channel = await open_aio_channel(grpc_host)
            try:
                stub = QueueServiceStub(channel)
                await aio_as_trio(stub.Enqueue)(pb.EnqueueRequest(queue_name="logs", payload=struct({"g": 1})),
                                                metadata={"x-api-key": used["key"]})
                try:
                    await aio_as_trio(stub.Enqueue)(pb.EnqueueRequest(queue_name="logs"),
                                                    metadata={"x-api-key": used["wrong"]})
                except Exception:
                    pass
            finally:
                channel.close()
            await server.wait_for_log(r'"transport":"grpc"[^\n]*UNAUTHENTICATED|UNAUTHENTICATED[^\n]*"grpc"')
        text = server.log()

    lines = [line for line in text.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]            # every line is one JSON object
    assert any(r["level"] == "DEBUG" for r in records)        # DEBUG really was on
    for name, secret in used.items():
        assert secret not in text, f"the log holds the {name} secret"
    # access lines: one per request, with its request id and organization
    mine = [r for r in records if r.get("request_id") == "req-logs-1" and r["logger"] == "spooled.access"]
    assert len(mine) == 2 and all(r["org"] == org for r in mine), mine
    assert any(r.get("route") == "/api/v1/jobs" and r.get("status") == 201 for r in records)
    grpc = [r for r in records if r.get("transport") == "grpc" and r.get("status") == "OK"]
    assert grpc and grpc[0]["org"] == org and grpc[0]["method"] == "/spooled.v1.QueueService/Enqueue"


def test_lines_carry_the_request_context_and_mask_secret_shapes():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)         # what logs.configure puts on the root logger
    handler.setFormatter(logs.TextFormatter())
    handler.addFilter(logs.ContextFilter())
    log = logging.getLogger("spooled.test.context")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    rid, org = logs.request_id.set("rid-7"), logs.org.set("org-9")
    log.info("handled\nsecond line with sk_live_%s", "A" * 43)
    logs.request_id.reset(rid), logs.org.reset(org)
    log.info("outside postgresql://u:hunter2@db/x and a token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl")
    first, second = stream.getvalue().splitlines()
    assert first.endswith("request_id=rid-7 org=org-9") and "handled\\nsecond line" in first
    assert "sk_live_***" in first and "A" * 43 not in first
    assert "request_id" not in second and "hunter2" not in second and "u:***@db" in second
    assert "eyJ***" in second and "c2lnbmF0dXJl" not in second
