"""Retry backoff (api.md): after the n-th failure, d = min(base * 2^(n-1), cap), delay uniform in [d/2, d].

The claim/fail statement computes this in SQL (`jobs.sql: job_fail`) so a failure is one statement; this is the
reference the tests hold the SQL to.
"""

from __future__ import annotations


def backoff_bounds(n: int, base: float = 1.0, cap: float = 3600.0) -> tuple[float, float]:
    """(lowest, highest) delay in seconds after the n-th failure (n >= 1)."""
    d = min(base * 2 ** min(n - 1, 62), cap)
    return d / 2, d
