"""The browser tier: Debian's Chromium (/usr/bin/chromium) driven by Playwright for Python against the real server.

Playwright's sync API runs its own asyncio loop, which cannot share a process with trio-asyncio (it patches
asyncio process-wide), so each scenario runs in a subprocess: `await browse("name", server, tmp_path, **args)`
runs `scenarios.name(page, url=..., **args)` via `python -m tests.browser.runner` and returns the JSON it
returned. A failed expectation, an uncaught page error or a missing Chromium exits non-zero and fails the test
with the scenario's output (never a skip). `playwright install` is never needed: the browser is Debian's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent.parent


class BrowserScenarioFailed(AssertionError):
    pass


async def browse(scenario: str, server, tmp_path: Path, *, timeout: float = 90, **args) -> dict:
    """Run one scenario in real Chromium against `server` (which keeps serving: this waits in Trio)."""
    spec = {"url": server.http_url, "profile": str(tmp_path / f"chromium-{scenario}"), **args}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    with trio.fail_after(timeout):
        done = await trio.run_process([sys.executable, "-m", "tests.browser.runner", scenario, json.dumps(spec)],
                                      cwd=str(ROOT), env=env, capture_stdout=True, capture_stderr=True,
                                      check=False)
    out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise BrowserScenarioFailed(f"browser scenario {scenario} exited {done.returncode}\n--- stdout\n"
                                    f"{out[-6000:]}\n--- stderr\n{err[-8000:]}")
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise BrowserScenarioFailed(f"browser scenario {scenario} printed no RESULT line\n{out[-3000:]}\n{err[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])
