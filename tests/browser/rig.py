"""The test-process side of the browser tier (see the package docstring)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.helpers import run_for_result

ROOT = Path(__file__).resolve().parent.parent.parent


class BrowserScenarioFailed(AssertionError):
    pass


async def browse(scenario: str, server, tmp_path: Path, *, timeout: float = 90, **args) -> dict:
    """Run one scenario in real Chromium against `server` (which keeps serving: this waits in Trio)."""
    spec = {"url": server.http_url, "profile": str(tmp_path / f"chromium-{scenario}"), **args}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    return await run_for_result([sys.executable, "-m", "tests.browser.runner", scenario, json.dumps(spec)],
                                what=f"browser scenario {scenario}", cwd=str(ROOT), env=env, timeout=timeout,
                                failure=BrowserScenarioFailed)
