"""The README's "First steps with curl" block, run word for word (the address aside) against a real server."""

from __future__ import annotations

import json
import re

import trio

from tests.procs import ROOT, clean_env


def first_steps() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## First steps with curl"):]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


async def test_first_steps_work_as_written(server, dsn):
    script = first_steps()
    assert "JOB_ID=$(" in script and "LEASE_ID=$(" in script and "lease_duration_secs" in script
    address = server.http_url.removeprefix("http://")
    with trio.fail_after(120):
        done = await trio.run_process(["bash", "-euo", "pipefail", "-c", script.replace("localhost:8080", address)],
                                      cwd=ROOT, env=clean_env(DATABASE_URL=dsn), capture_stdout=True,
                                      capture_stderr=True, check=False)
    out = done.stdout.decode()
    assert done.returncode == 0, (out, done.stderr.decode())
    values, at, decoder = [], 0, json.JSONDecoder()
    while at < len(out):       # curl -s prints one JSON value after another, without newlines
        if out[at].isspace():
            at += 1
            continue
        value, at = decoder.raw_decode(out, at)
        values.append(value)
    assert values[-2] == {"success": True}, values
    final = values[-1]
    assert final["status"] == "completed" and final["result"] == {"sent": True}, final
