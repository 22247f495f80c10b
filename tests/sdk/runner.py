"""The SDK tier: the official `spooled` SDK (PyPI, pinned in requirements.txt) in its own cached venv, driving
the real server from a subprocess.

`await run_sdk("script.py", server, key)` runs `tests/sdk/scripts/script.py` with the SDK venv's python and
returns the JSON the script printed on its last `RESULT ` line. Scripts read `SPOOLED_BASE_URL`,
`SPOOLED_API_KEY`, `SPOOLED_GRPC_ADDRESS` (and any extra env given) and use `_sdkcheck.Checks` to report every
failed call at once; a failed check or an exception exits non-zero and the test fails with the script's output.

The venv lives at `<repo>/.venv-sdk` (override with SPOOLED_SDK_VENV), is created once under a file lock (pytest
-n 2 workers share it) and rebuilt when requirements.txt changes.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import trio

from tests.helpers import run_for_result

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REQUIREMENTS = HERE / "requirements.txt"


def venv_dir() -> Path:
    return Path(os.environ.get("SPOOLED_SDK_VENV") or ROOT / ".venv-sdk")


def sdk_python() -> Path:
    """The SDK venv's python, installing the SDK first if needed (blocking; call once per session)."""
    venv = venv_dir()
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(str(venv) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = REQUIREMENTS.read_text()
        if python.exists() and stamp.exists() and stamp.read_text() == wanted:
            return python
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
                        str(REQUIREMENTS)], check=True)
        stamp.write_text(wanted)
    return python


class SdkScriptFailed(AssertionError):
    pass


async def run_sdk(script: str, *, base_url: str, api_key: str | None = None, grpc_address: str | None = None,
                  env: dict[str, str] | None = None, timeout: float = 120) -> dict:
    """Run an SDK script against the server (the server keeps serving: this waits in Trio)."""
    python = await trio.to_thread.run_sync(sdk_python)
    full_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    full_env.update({"SPOOLED_BASE_URL": base_url, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    if api_key:
        full_env["SPOOLED_API_KEY"] = api_key
    if grpc_address:
        full_env["SPOOLED_GRPC_ADDRESS"] = grpc_address
    full_env.update(env or {})
    return await run_for_result([str(python), str(HERE / "scripts" / script)], what=script, env=full_env,
                                cwd=str(HERE / "scripts"), timeout=timeout, failure=SdkScriptFailed)
