"""Passwordless email login over real SMTP (a local aiosmtpd sink reads the code from the mail): codes, their
tries and hourly limit, no enumeration, and the development fallback that logs the code."""

from __future__ import annotations

import asyncio
import logging
import re
import threading

import httpx
import pytest
import trio
from aiosmtpd.smtp import SMTP

from tests.access import Clock, admin_org, bearer, instance, settings_with_admin

EMAIL = "owner@example.com"


class Sink:
    """An SMTP server on a free port, in its own thread and asyncio loop; keeps every message."""

    def __init__(self) -> None:
        self.messages: list = []
        self.port = 0

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def sink():
    handler = Sink()
    loop = asyncio.SelectorEventLoop()       # a plain loop: trio_asyncio's policy would give its own
    ready = threading.Event()

    def run():
        srv = loop.run_until_complete(loop.create_server(lambda: SMTP(handler, loop=loop), "127.0.0.1", 0))
        handler.port = srv.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()
        srv.close()
        loop.run_until_complete(srv.wait_closed())
        loop.close()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield handler
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def settings(tmp_path, dsn, sink):
    return settings_with_admin(tmp_path, dsn, smtp_url=f"smtp://127.0.0.1:{sink.port}",
                               smtp_from="Spooled <login@spooled.test>")


async def next_code(sink: Sink, count: int) -> str:
    """The code in the `count`-th message (waits for it to arrive)."""
    with trio.fail_after(20):
        while len(sink.messages) < count:
            await trio.sleep(0.01)
    return re.search(rb"\b(\d{6})\b", sink.messages[count - 1].content).group(1).decode()


async def test_login_by_emailed_code(server, client, sink, caplog):
    caplog.set_level(logging.DEBUG)
    org_id, key = await admin_org(client, plan="pro", billing_email=EMAIL)
    unknown = await client.post("/api/v1/auth/email/start", json={"email": "nobody@example.com"})
    r = await client.post("/api/v1/auth/email/start", json={"email": "Owner@Example.com"})
    assert r.status_code == unknown.status_code == 200
    assert r.json() == {"message": unknown.json()["message"], "email_sent_to": "o***@example.com",
                        "expires_in": 600}
    code = await next_code(sink, 1)
    assert len(sink.messages) == 1                      # nothing went to the unknown address
    mail = sink.messages[0]
    assert mail.rcpt_tos == ["Owner@Example.com"] and mail.mail_from == "login@spooled.test"
    ours = [r.getMessage() for r in caplog.records if r.name.startswith(("spooled", "hypercorn", "quart"))]
    assert not any(code in m for m in ours)             # with SMTP configured the server never logs the code
    r = await client.post("/api/v1/auth/email/verify", json={"email": EMAIL, "code": code})
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["type"] == "login" and tokens["token_type"] == "Bearer" and tokens["organization_id"] == org_id
    me = (await client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))).json()
    assert me["organization_id"] == org_id
    names = [k["name"] for k in (await client.get("/api/v1/api-keys", headers=bearer(key))).json()]
    assert names == ["default", "email login"]
    # a code is used once
    assert (await client.post("/api/v1/auth/email/verify", json={"email": EMAIL, "code": code})).status_code == 401
    # authenticated callers can ask whether an address is in use
    r = await client.get("/api/v1/auth/check-email", params={"email": EMAIL}, headers=bearer(key))
    assert r.json()["exists"] is True and r.json()["available"] is False
    r = await client.get("/api/v1/auth/check-email", params={"email": "x@y.z"}, headers=bearer(key))
    assert r.json()["exists"] is False
    assert (await client.get("/api/v1/auth/check-email", params={"email": EMAIL})).status_code == 401


async def test_wrong_codes_are_counted_and_the_sixth_try_fails(server, client, sink):
    await admin_org(client, plan="pro", billing_email=EMAIL)
    assert (await client.post("/api/v1/auth/email/start", json={"email": EMAIL})).status_code == 200
    code = await next_code(sink, 1)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        r = await client.post("/api/v1/auth/email/verify", json={"email": EMAIL, "code": wrong})
        assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"
    r = await client.post("/api/v1/auth/email/verify", json={"email": EMAIL, "code": code})
    assert r.status_code == 401                         # the right code, but the 6th try
    rows = await server.services.db.run(lambda con: con.fetch("SELECT attempts, used_at FROM email_login_codes"))
    assert [(r["attempts"], r["used_at"]) for r in rows] == [(6, None)]
    assert all(len(r["code_hash"] or b"") in (0, 32) for r in await server.services.db.run(
        lambda con: con.fetch("SELECT code_hash FROM email_login_codes")))     # only the HMAC is stored
    # a new code works (after 4 wrong tries, the 5th try may be right)
    assert (await client.post("/api/v1/auth/email/start", json={"email": EMAIL})).status_code == 200
    code = await next_code(sink, 2)
    for _ in range(4):
        await client.post("/api/v1/auth/email/verify", json={"email": EMAIL, "code": wrong})
    r = await client.post("/api/v1/auth/email/verify", json={"email": EMAIL, "code": code})
    assert r.status_code == 200 and r.json()["access_token"]


async def test_at_most_five_codes_per_address_per_hour(server, client, sink):
    clock = Clock()
    server.services.set_clock(clock)
    for address in ("limit@example.com", "unknown@example.com"):     # the same for an unknown address
        for _ in range(5):
            assert (await client.post("/api/v1/auth/email/start", json={"email": address})).status_code == 200
        r = await client.post("/api/v1/auth/email/start", json={"email": address})
        assert r.status_code == 429 and r.json()["code"] == "RATE_LIMIT_EXCEEDED"
        assert 3500 < int(r.headers["Retry-After"]) <= 3602   # the injected clock may trail the database's
    clock.advance(3601)
    assert (await client.post("/api/v1/auth/email/start", json={"email": "limit@example.com"})).status_code == 200
    assert (await client.post("/api/v1/auth/email/start", json={"email": "bad"})).status_code == 422


async def test_without_smtp_the_code_is_logged_for_development(aio_loop, tmp_path, dsn, caplog):
    caplog.set_level(logging.WARNING, logger="spooled.services.mailer")
    async with instance(settings_with_admin(tmp_path, dsn), dsn) as running:
        async with httpx.AsyncClient(base_url=running.http_url, timeout=30) as client:
            await admin_org(client, plan="pro", billing_email=EMAIL)
            assert (await client.post("/api/v1/auth/email/start", json={"email": EMAIL})).status_code == 200
            code = re.search(r"is (\d{6})", caplog.text).group(1)
            r = await client.post("/api/v1/auth/email/verify", json={"email": EMAIL, "code": code})
            assert r.status_code == 200
