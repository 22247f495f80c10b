"""The API reference at /docs: the vendored Swagger UI served from the package under the dashboard's strict
Content-Security-Policy, rendering the served document in real Chromium with nothing fetched from anywhere
else (tests/browser: a request to another origin is aborted and fails the test)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import trio

from tests.browser.rig import browse

DOCS = Path(__file__).resolve().parent.parent / "spooled/transports/http/docs"


async def test_docs_files_are_served_from_the_package_with_a_strict_policy(client):
    with trio.fail_after(30):
        r = await client.get("/docs")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assets = re.findall(r'(?:src|href)="(/docs/[^"]+)"', r.text)
        assert set(assets) == {"/docs/vendor/swagger-ui-5.35.0.css", "/docs/docs.css",
                               "/docs/vendor/swagger-ui-bundle-5.35.0.js", "/docs/init.js"}
        assert not re.search(r"https?://", r.text)
        for path in assets:
            a = await client.get(path)
            assert a.status_code == 200 and a.headers["content-security-policy"] == csp, path
        missing = await client.get("/docs/../pyproject.toml")
        assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
    # the vendored files are the published ones (vendor/README.md lists their hashes)
    readme = (DOCS / "vendor/README.md").read_text()
    for name in ("swagger-ui-bundle-5.35.0.js", "swagger-ui-5.35.0.css"):
        digest = hashlib.sha256((DOCS / "vendor" / name).read_bytes()).hexdigest()
        assert f"`{name}`" in readme and digest in readme, name


async def test_the_reference_renders_offline_in_chromium(server, client, tmp_path):
    with trio.fail_after(120):
        doc = (await client.get("/api/v1/openapi.json")).json()
        wanted = [("post", "/api/v1/jobs"), ("post", "/api/v1/jobs/claim"), ("get", "/api/v1/queues/{name}/stats"),
                  ("post", "/api/v1/webhooks/{org_id}/github"), ("get", "/health")]
        operations = [{"method": m, "path": p, "summary": doc["paths"][p][m]["summary"]} for m, p in wanted]
        seen = await browse("api_reference", server, tmp_path, operations=operations)
    assert seen["offsite"] == []
    total = sum(len(item) for item in doc["paths"].values())
    assert seen["shown"] == total, (seen["shown"], total)
