"""CORS: off by default (no Access-Control-* header for any origin); with SPOOLED_CORS_ORIGINS, preflights of
listed origins are answered for existing routes and their methods, responses (errors too) carry the origin and
expose the API's headers, and every other origin gets nothing."""

from __future__ import annotations

import httpx
import pytest

from spooled.settings import ConfigError, cors_origins_from
from tests.access import instance
from tests.conftest import make_settings

APP = "https://app.example.com"
LOCAL = "http://localhost:3000"


def preflight(origin: str, method: str = "POST", headers: str = "authorization, content-type") -> dict:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


def cors_headers(r: httpx.Response) -> dict:
    return {k: v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


async def test_cors_is_off_by_default(api, client):
    for origin in (APP, "null", "http://evil.example"):
        r = await client.options("/api/v1/jobs", headers=preflight(origin))
        assert r.status_code == 204 and cors_headers(r) == {}, r.headers
        r = await api.get("/api/v1/jobs", headers={"Origin": origin})
        assert r.status_code == 200 and cors_headers(r) == {} and "origin" not in r.headers.get("vary", "").lower()


async def test_listed_origins_only(aio_loop, tmp_path, dsn):
    settings = make_settings(tmp_path, dsn, cors_origins=(APP, LOCAL))
    async with instance(settings, dsn) as server, httpx.AsyncClient(base_url=server.http_url) as c:
        r = await c.post("/api/v1/organizations", json={"name": "Browser"}, headers={"Origin": APP})
        assert r.status_code == 201 and r.headers["access-control-allow-origin"] == APP
        auth = {"Authorization": f"Bearer {r.json()['api_key']['key']}"}
        for origin in (APP, LOCAL):
            r = await c.options("/api/v1/jobs", headers=preflight(origin))
            assert r.status_code == 204 and r.content == b""
            h = cors_headers(r)
            assert h["access-control-allow-origin"] == origin
            assert set(h["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
            assert {"Authorization", "Content-Type"} <= set(h["access-control-allow-headers"].split(", "))
            assert int(h["access-control-max-age"]) > 0 and "access-control-allow-credentials" not in h
            assert "Origin" in r.headers["vary"]
        # the actual request: the origin, the exposed headers; errors too (the page can read the body)
        r = await c.get("/api/v1/jobs", headers={**auth, "Origin": APP})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == APP
        assert "X-RateLimit-Remaining" in r.headers["access-control-expose-headers"]
        assert "X-Next-Cursor" in r.headers["access-control-expose-headers"]
        r = await c.get("/api/v1/jobs", headers={"Origin": APP})
        assert r.status_code == 401 and r.headers["access-control-allow-origin"] == APP
        # other origins, other methods, unknown paths: no CORS headers
        for origin in ("https://evil.example", "https://app.example.com.evil.example", "http://app.example.com",
                       "null", APP + ":8443"):
            r = await c.options("/api/v1/jobs", headers=preflight(origin))
            assert r.status_code == 204 and cors_headers(r) == {}, origin
            r = await c.get("/api/v1/jobs", headers={**auth, "Origin": origin})
            assert r.status_code == 200 and cors_headers(r) == {}, origin
            assert "Origin" in r.headers["vary"]
        r = await c.options("/api/v1/jobs/claim", headers=preflight(APP, "PATCH"))
        assert r.status_code == 204 and cors_headers(r) == {} and "POST" in r.headers["allow"]
        r = await c.options("/api/v1/nowhere", headers=preflight(APP))
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
        assert "access-control-allow-methods" not in r.headers


async def test_any_origin_when_asked(aio_loop, tmp_path, dsn):
    async with instance(make_settings(tmp_path, dsn, cors_origins=("*",)), dsn) as server, \
            httpx.AsyncClient(base_url=server.http_url) as c:
        r = await c.options("/health", headers=preflight("https://anyone.example", "GET"))
        assert r.headers["access-control-allow-origin"] == "*"
        r = await c.get("/health/live", headers={"Origin": "https://anyone.example"})
        assert r.headers["access-control-allow-origin"] == "*"
        assert cors_headers(await c.get("/health/live")) == {}       # no Origin, no CORS


def test_the_setting_takes_exact_origins():
    assert cors_origins_from(None) == () and cors_origins_from(" ") == ()
    assert cors_origins_from(f"{APP}/, {LOCAL}") == (APP, LOCAL)
    for bad in ("app.example.com", "https://app.example.com/path", "ftp://x.example", "https://"):
        with pytest.raises(ConfigError):
            cors_origins_from(bad)
