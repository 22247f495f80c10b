"""The human dashboard at `/dashboard` (root): static files shipped as package data (`dashboard/`), no build
step and nothing fetched at run time. The page talks only to the public REST API with a bearer token."""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, send_from_directory

from spooled.transports.http.schema import STRING
from spooled.transports.http.spec import Body, op

bp = Blueprint("dashboard", __name__)
ROOT = Path(__file__).with_name("dashboard")

# Only our own origin: the page holds a session token, so no inline script, no third-party code.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                                "frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",     # revalidate (ETag / Last-Modified): an upgraded server serves its own files
}


async def _file(name: str) -> Response:
    response = await send_from_directory(ROOT, name, conditional=True)
    response.headers.update(SECURITY_HEADERS)
    return response


@bp.get("/dashboard")
@op("The web dashboard", security=(), ok=Body(STRING, media="text/html"))
async def index():
    return await _file("index.html")


@bp.get("/dashboard/<path:name>")
@op("The dashboard's static files", security=(), errors=(404,),
    ok=Body(STRING, media="*/*", description="The file (JavaScript, CSS, ...)"))
async def asset(name: str):
    return await _file(name)
