"""Script-side helper for the SDK tier (runs in the SDK's venv: `import spooled` is the official SDK here).

    checks = Checks()
    with checks("jobs.create"):
        job = client.jobs.create({...})
        checks.expect(job.status == "pending", "status", job.status)
    checks.finish(extra={...})      # prints RESULT {...}; exits 1 if any check failed

Each block records one named check; an exception inside it fails that check (with its traceback) and the
script goes on, so one run reports every incompatibility at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback

BASE_URL = os.environ["SPOOLED_BASE_URL"]
API_KEY = os.environ.get("SPOOLED_API_KEY", "")
GRPC_ADDRESS = os.environ.get("SPOOLED_GRPC_ADDRESS", "")


class CheckFailed(AssertionError):
    pass


class Checks:
    def __init__(self) -> None:
        self.passed: list[str] = []
        self.failed: dict[str, str] = {}
        self.values: dict[str, object] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.monotonic()
        try:
            yield
        except Exception:
            self.failed[name] = traceback.format_exc(limit=6)
        else:
            self.passed.append(name)
        finally:
            elapsed = time.monotonic() - start
            if elapsed > 20:
                self.failed.setdefault(name, f"took {elapsed:.1f}s (a hang?)")

    @staticmethod
    def expect(ok: bool, what: str, got: object = None) -> None:
        if not ok:
            raise CheckFailed(f"{what}: got {got!r}")

    @staticmethod
    def raises(kind: type[BaseException], fn, *args, **kwargs) -> BaseException:
        """`fn(*args, **kwargs)` must raise `kind`; the exception."""
        try:
            fn(*args, **kwargs)
        except kind as exc:
            return exc
        raise CheckFailed(f"{getattr(fn, '__qualname__', fn)}{args} did not raise {kind.__name__}")

    def finish(self, **extra) -> None:
        report = {"passed": self.passed, "failed": self.failed, **extra}
        print("RESULT " + json.dumps(report, default=str), flush=True)
        for name, tb in self.failed.items():
            print(f"FAILED {name}:\n{tb}", file=sys.stderr)
        sys.exit(1 if self.failed else 0)
