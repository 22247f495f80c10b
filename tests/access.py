"""Helpers of the access tests (admission, rate limits, quotas, keys, orgs, admin, billing, email login)."""

from __future__ import annotations

import contextlib
import time
from functools import partial
from typing import AsyncIterator, Callable, TypeVar

import grpc
import httpx
import trio

from spooled.supervisor import Running, serve
from tests.conftest import make_settings

T = TypeVar("T")

ADMIN_KEY = "admin-key-of-the-access-tests-0123456789"
ADMIN = {"X-Admin-Key": ADMIN_KEY}


class Clock:
    """An injected clock (Unix seconds) that moves only when told: `svc.set_clock(clock)`."""

    def __init__(self, start: float | None = None):
        self.now = start if start is not None else float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, secs: float) -> None:
        self.now += secs


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def key_of(api: httpx.AsyncClient) -> str:
    return api.headers["Authorization"].split(" ", 1)[1]


async def admin_org(client: httpx.AsyncClient, *, plan: str = "free", custom_limits: dict | None = None,
                    name: str = "Tenant", billing_email: str | None = None) -> tuple[str, str]:
    """(organization id, API key) of a new organization on `plan`, created through the admin API."""
    body = {"name": name, "plan_tier": plan}
    if custom_limits is not None:
        body["custom_limits"] = custom_limits
    if billing_email is not None:
        body["billing_email"] = billing_email
    r = await client.post("/api/v1/admin/organizations", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()["organization"]["id"], r.json()["api_key"]["key"]


def settings_with_admin(tmp_path, dsn, **overrides):
    """Test settings with the admin API on (modules define their `settings` fixture with this)."""
    return make_settings(tmp_path, dsn, admin_key=ADMIN_KEY, **overrides)


@contextlib.asynccontextmanager
async def instance(settings, dsn: str) -> AsyncIterator[Running]:
    """Another server instance on `dsn` (a second replica, or one with other settings), stopped on exit."""
    async with trio.open_nursery() as nursery:
        shutdown = trio.Event()
        with trio.fail_after(30):
            running = await nursery.start(partial(serve, settings, dsn, shutdown=shutdown))
        try:
            yield running
        finally:
            shutdown.set()


def rpc_code(call: Callable[[], object]) -> str:
    """(worker thread) the status name a grpcio call ends with ("OK" when it succeeds; a stream's first message
    is read)."""
    try:
        result = call()
        if hasattr(result, "__next__"):
            next(result)
    except grpc.RpcError as exc:
        return exc.code().name
    return "OK"


async def with_grpcio(address: str, fn: Callable[[grpc.Channel], T]) -> T:
    """Run `fn(channel)` (blocking grpcio calls) in a worker thread, with a fresh channel to `address`."""
    channel = grpc.insecure_channel(address)
    try:
        with trio.fail_after(60):
            return await trio.to_thread.run_sync(fn, channel)
    finally:
        channel.close()
