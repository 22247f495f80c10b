"""The CPU cost of admission per request, in process (no HTTP, no database): `.venv/bin/python
scripts/bench/admission_cost.py`.

Times, per call, with a cached key (the steady state: the grant is cached, so no statement runs):
- `Authenticator.authenticate` alone (what a request paid before admission existed),
- `Admission.admit` (authenticate + key rules + the rate-limit bucket),
- stamping the response headers with and without the four X-RateLimit-* headers (werkzeug Headers, as quart).
"""

from __future__ import annotations

import time
import uuid

import trio
from werkzeug.datastructures import Headers

from spooled.domain.models import KeyGrant
from spooled.services.admission import Admission
from spooled.services.auth import Authenticator
from spooled.services.quotas import Quotas
from spooled.services.ratelimit import RateLimiter

N = 100_000
UNLIMITED = '{"rate_limit_requests_per_second": 1000000000}'   # so the loop is never throttled


class _Keys:
    """A key store that knows one key (only its first lookup happens: the grant is cached afterwards)."""

    async def grant_by_hash(self, key_hash):
        return KeyGrant(uuid.uuid4(), uuid.uuid4(), [], None, False, None, "enterprise", UNLIMITED, False)

    async def touch(self, key_id):
        pass


def per_call(fn, n: int = N) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


async def main() -> None:
    auth = Authenticator(_Keys(), Quotas(None, None), "s" * 48)    # type: ignore[arg-type]
    admission = Admission(auth, RateLimiter(), None)                # type: ignore[arg-type]
    key = "sk_live_" + "x" * 43
    _, rate = await admission.admit(key, safe=False)

    async def timed(fn) -> float:
        start = time.perf_counter()
        for _ in range(N):
            await fn()
        return (time.perf_counter() - start) / N * 1e6
    authenticate = await timed(lambda: auth.authenticate(key))
    admit = await timed(lambda: admission.admit(key, safe=False))

    def stamp(with_rate: bool) -> None:
        h = Headers([("Content-Type", "application/json"), ("Content-Length", "12")])
        h["X-Request-Id"] = "abc"
        if with_rate:                     # as transports/http/app.py `_stamp` does
            add = h.add
            add("X-RateLimit-Limit", str(rate.limit))
            add("X-RateLimit-Remaining", str(rate.remaining))
            add("X-RateLimit-Reset", str(rate.reset))
            add("X-RateLimit-Scope", rate.scope)
    plain, stamped = per_call(lambda: stamp(False)), per_call(lambda: stamp(True))
    print(f"authenticate {authenticate:.2f} us, admit {admit:.2f} us (+{admit - authenticate:.2f}); "
          f"headers {plain:.2f} us, with X-RateLimit-* {stamped:.2f} us (+{stamped - plain:.2f}); "
          f"admission adds {admit - authenticate + stamped - plain:.2f} us per request")


if __name__ == "__main__":
    trio.run(main)
