"""Admission: the one step every authenticated request of either transport goes through.

    credential -> principal (org, key, queue restriction, read-only, plan limits)     services/auth.py
               -> key rules (read-only keys: safe methods only)
               -> rate limit (per organization, and per key with its own limit)        services/ratelimit.py
               -> handler (which checks `require_queue` where the request names a queue, and hands the
                  principal's `scope` to the services, which keep other queues' data out of sight,
                  domain/scope.py; quotas are checked by the services that create things, services/quotas.py)

Errors are domain errors, mapped by each transport's one table: Unauthorized (401 / UNAUTHENTICATED),
Forbidden (403 / PERMISSION_DENIED), Throttled (429 RATE_LIMIT_EXCEEDED + Retry-After / RESOURCE_EXHAUSTED +
`retry-after` trailing metadata).

`run_once` is the instance heartbeat (every `instance_heartbeat_secs`): it records this instance in
`server_instances`, reads how many are alive, and sizes the rate-limit buckets by that count.
"""

from __future__ import annotations

import json
import socket
import uuid
from typing import Callable

import attrs

from spooled.domain import errors
from spooled.domain.models import Instance
from spooled.services.auth import Authenticator, Principal
from spooled.services.ratelimit import RateDecision, RateLimiter
from spooled.store.usage import UsageStore

READ_ONLY = "This API key is read-only"
LIVE_SECS = 15.0           # an instance silent this long no longer counts
FORGET_SECS = 300.0        # ... and is deleted after this long


def require_queue(principal: Principal, queue: str | None) -> None:
    """`Forbidden` unless the caller's key may use `queue` (a key restricted to some queues)."""
    if queue is not None and not principal.allows(queue):
        principal.scope.require(queue)


@attrs.frozen
class HeartbeatResult:
    instances: int
    evicted: int

    @property
    def total(self) -> int:
        return 0

    def full(self, limit: int) -> bool:
        return False


class Admission:
    def __init__(self, auth: Authenticator, limiter: RateLimiter, usage: UsageStore, *,
                 report: Callable[[], dict] = dict, version: str | None = None):
        self.auth = auth
        self.limiter = limiter
        self._usage = usage
        self._report = report           # this instance's loop health, heartbeated with it (`spooled status`)
        self._version = version
        self.instance_id = uuid.uuid4()
        self._hostname = socket.gethostname()[:255]

    async def admit(self, credential: str | None, *, safe: bool) -> tuple[Principal, RateDecision]:
        """The caller and its rate-limit figures; `safe` is whether the request only reads (GET/HEAD)."""
        p = await self.auth.authenticate(credential)
        if p.read_only and not safe:
            raise errors.Forbidden(READ_ONLY)
        return p, self.limiter.take(p.organization_id, p.limits.rate_limit_requests_per_second, p.api_key_id,
                                    p.rate_limit)

    async def run_once(self, now=None, limit: int = 0) -> HeartbeatResult:
        n = await self._usage.heartbeat(self.instance_id, self._hostname, live_secs=LIVE_SECS,
                                        forget_secs=FORGET_SECS, version=self._version,
                                        loops=json.dumps(self._report(), separators=(",", ":")))
        self.limiter.instances = max(1, n)
        return HeartbeatResult(n, self.limiter.evict_full())

    async def leave(self) -> None:
        """Shutdown: stop counting this instance (others' buckets grow back at their next heartbeat)."""
        await self._usage.remove_instance(self.instance_id)

    async def instances(self) -> list[Instance]:
        """The instances heard from in the last FORGET_SECS (live: within LIVE_SECS), each with its loop health
        at its last heartbeat."""
        return await self._usage.instances(FORGET_SECS)
