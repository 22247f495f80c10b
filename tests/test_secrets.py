"""Secrets are shown once: a scripted session creates every kind (API keys — an organization's first, an extra
one, the admin API's —, access and refresh tokens from login, refresh and email login, an emailed login code, a
job's completion-webhook secret, an organization's webhook secret setting) and reads everything back over REST
and gRPC, errors included. Each secret may appear only in the one response that created it, never in any other
response (body or headers), and never in the server's log; the server's own secrets (JWT signing secret, admin
key, Stripe keys) never appear anywhere."""

from __future__ import annotations

import logging

import httpx
import pytest
import trio
from trio_asyncio import aio_as_trio

from spooled.transports.grpc.gen import spooled_pb2 as pb
from spooled.transports.grpc.gen.spooled_grpc import QueueServiceStub
from tests.access import ADMIN, ADMIN_KEY, bearer, settings_with_admin
from tests.test_billing import SECRET_KEY, WEBHOOK_SECRET, fake_stripe  # noqa: F401 (the fake Stripe API)
from tests.test_email_login import next_code, sink  # noqa: F401 (the SMTP sink fixture)
from tests.test_grpc import open_aio_channel

EMAIL = "keeper@example.com"
CLIENT_SIDE = ("mail.log", "httpx", "httpcore")       # the sink (aiosmtpd) and the test's HTTP clients


@pytest.fixture
def settings(tmp_path, dsn, sink, fake_stripe):  # noqa: F811 (the fixtures imported above)
    return settings_with_admin(tmp_path, dsn, smtp_url=f"smtp://127.0.0.1:{sink.port}",
                               stripe_secret_key=SECRET_KEY, stripe_webhook_secret=WEBHOOK_SECRET,
                               stripe_api_base=fake_stripe.base)


class Recorder:
    """Every response of the session: (what, text of status line, headers and body)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.created: dict[str, int] = {}      # secret -> index of the response that created it

    async def hook(self, response: httpx.Response) -> None:
        await response.aread()
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.seen.append((f"{response.request.method} {response.request.url.path}",
                          f"{response.status_code}\n{headers}\n\n{response.text}"))

    def client(self, base: str, headers: dict | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base, headers=headers or {}, timeout=30,
                                 event_hooks={"response": [self.hook]})

    def made(self, *secrets: str) -> None:
        """The last response created these secrets."""
        for s in secrets:
            assert s and s in self.seen[-1][1], s
            self.created[s] = len(self.seen) - 1


async def test_secrets_are_shown_once_and_never_logged(server, sink, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    rec = Recorder()
    base = server.http_url
    async with rec.client(base) as anon:
        r = await anon.post("/api/v1/organizations", json={"name": "Keeper", "billing_email": EMAIL})
        org, k1 = r.json()["organization"]["id"], r.json()["api_key"]["key"]
        rec.made(k1)
        async with rec.client(base, bearer(k1)) as a:
            r = await a.post("/api/v1/api-keys", json={"name": "second", "queues": ["q"]})
            k2, k2_id = r.json()["key"], r.json()["id"]
            rec.made(k2)
            r = await anon.post("/api/v1/admin/organizations", json={"name": "Operated"}, headers=ADMIN)
            k3, org3 = r.json()["api_key"]["key"], r.json()["organization"]["id"]
            rec.made(k3)
            r = await anon.post(f"/api/v1/admin/organizations/{org3}/api-keys", json={"name": "x"}, headers=ADMIN)
            k4 = r.json()["key"]
            rec.made(k4)
            r = await anon.post("/api/v1/auth/login", json={"api_key": k1})
            a1, r1 = r.json()["access_token"], r.json()["refresh_token"]
            rec.made(a1, r1)
            r = await anon.post("/api/v1/auth/refresh", json={"refresh_token": r1})
            a2 = r.json()["access_token"]
            rec.made(a2)
            await anon.post("/api/v1/auth/email/start", json={"email": EMAIL})
            code = await next_code(sink, 1)
            r = await anon.post("/api/v1/auth/email/verify", json={"email": EMAIL, "code": code})
            a3, r3 = r.json()["access_token"], r.json()["refresh_token"]
            rec.made(a3, r3)
            hook_secret, gh_secret, signing = "whs-" + "h" * 40, "ghs-" + "g" * 40, "sig-" + "s" * 40
            r = await a.post("/api/v1/jobs", json={"queue_name": "q", "payload": {"n": 1},
                                                   "completion_webhook": "https://hooks.example.com/done",
                                                   "completion_webhook_secret": hook_secret})
            job_id = r.json()["id"]
            await a.patch(f"/api/v1/organizations/{org}", json={"settings": {"github_webhook_secret": gh_secret}})
            hook = await a.post("/api/v1/webhooks", json={"name": "h", "url": "https://hooks.example.com/x",
                                                          "events": ["worker.deregistered"], "secret": signing})
            assert hook.status_code == 201, hook.text
            await a.post("/api/v1/workers/register", json={"queue_name": "q", "hostname": "h", "worker_id": "w"})
            await a.post("/api/v1/schedules", json={"name": "s", "cron_expression": "0 0 * * *", "queue_name": "q",
                                                    "payload_template": {}})
            claimed = (await a.post("/api/v1/jobs/claim", json={"queue_name": "q", "worker_id": "w"})).json()
            await a.post(f"/api/v1/jobs/{job_id}/heartbeat", json={"lease_id": claimed["jobs"][0]["lease_id"]})
            # read everything back, with each kind of credential
            for credential in (k1, a1, a2, a3):
                async with rec.client(base, bearer(credential)) as c:
                    for path in ("/api/v1/jobs", f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/history",
                                 "/api/v1/jobs/stats", f"/api/v1/jobs/status?ids={job_id}", "/api/v1/jobs/dlq",
                                 "/api/v1/queues", "/api/v1/queues/q", "/api/v1/workers", "/api/v1/workers/w",
                                 "/api/v1/api-keys", f"/api/v1/api-keys/{k2_id}", "/api/v1/organizations",
                                 f"/api/v1/organizations/{org}", f"/api/v1/organizations/{org}/members",
                                 "/api/v1/organizations/usage", "/api/v1/auth/me", "/api/v1/dashboard",
                                 "/api/v1/billing/status", "/api/v1/schedules", f"/api/v1/auth/check-email?email={EMAIL}",
                                 "/api/v1/webhooks", f"/api/v1/webhooks/{hook.json()['id']}",
                                 f"/api/v1/webhooks/{hook.json()['id']}/deliveries", "/api/v1/webhooks/deliveries"):
                        r = await c.get(path)
                        assert r.status_code == 200, (path, r.text)
            for token in (a1, r1, a3, r3, k1):
                await anon.post("/api/v1/auth/validate", json={"token": token})
            assert (await anon.get("/metrics")).status_code == 200
            for path in ("/api/v1/admin/organizations", f"/api/v1/admin/organizations/{org}",
                         f"/api/v1/admin/organizations/{org3}", "/api/v1/admin/stats", "/api/v1/admin/plans"):
                assert (await anon.get(path, headers=ADMIN)).status_code == 200
            # errors: refused credentials and codes are not echoed back
            await a.delete(f"/api/v1/api-keys/{k2_id}")
            async with rec.client(base, bearer(k2)) as revoked:
                assert (await revoked.get("/api/v1/jobs")).status_code == 401
            assert (await anon.post("/api/v1/auth/login", json={"api_key": k2})).status_code == 401
            assert (await anon.post("/api/v1/auth/email/verify", json={"email": EMAIL, "code": code})).status_code == 401
            assert (await anon.post("/api/v1/auth/refresh", json={"refresh_token": a1})).status_code == 401
            assert (await anon.get("/api/v1/jobs", headers=bearer(k1[:-1] + "x"))).status_code == 401
            assert (await anon.get("/api/v1/admin/stats", headers={"X-Admin-Key": ADMIN_KEY + "x"})).status_code == 401
            await anon.post("/api/v1/auth/logout", json={"refresh_token": r1}, headers=bearer(a1))
            assert (await anon.post("/api/v1/auth/refresh", json={"refresh_token": r1})).status_code == 401
    # and over gRPC
    channel = await open_aio_channel(server.grpc_address)
    try:
        got = await aio_as_trio(QueueServiceStub(channel).GetJob)(pb.GetJobRequest(job_id=job_id),
                                                                  metadata={"x-api-key": k1})
        rec.seen.append(("gRPC GetJob", str(got)))
        assert got.job.id == job_id
    finally:
        channel.close()
    await trio.sleep(0.2)     # let the mailer and access paths log what they log

    once = {k1, k2, k3, k4, a1, r1, a2, a3, r3}
    never = {hook_secret, gh_secret, signing, server.services.settings.jwt_secret, ADMIN_KEY, SECRET_KEY,
             WEBHOOK_SECRET}
    leaks = []
    for i, (what, text) in enumerate(rec.seen):
        for s in once:
            if s in text and rec.created[s] != i:
                leaks.append(f"{what} (response {i}) shows a secret created by response {rec.created[s]}")
        for s in never:
            if s in text:
                leaks.append(f"{what} (response {i}) shows a write-only secret {s[:6]}…")
        if f'"{code}"' in text:
            leaks.append(f"{what} (response {i}) shows the login code")
    assert not leaks, "\n".join(leaks)
    assert len(rec.seen) > 100
    # the test's own clients log too (the SMTP sink prints the mail it receives): the server's records only
    logged = [r.getMessage() + (r.exc_text or "") for r in caplog.records if not r.name.startswith(CLIENT_SIDE)]
    assert any(r.levelno == logging.DEBUG for r in caplog.records), "DEBUG records are not being captured"
    for s in once | never | {code}:
        hits = [m for m in logged if s in m]
        assert not hits, f"a secret ({s[:6]}…) was logged: {hits[0][:200]}"
