"""The API reference: the OpenAPI document at `/api/v1/openapi.json` (generated from the app: `openapi.py`) and
that document rendered by the vendored Swagger UI at `/docs` (`docs/`, package data; nothing fetched at run
time). Both are open, like the health probes: they describe the API, not anyone's data."""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, current_app, send_from_directory

from spooled.transports.http import openapi
from spooled.transports.http.routes_dashboard import SECURITY_HEADERS
from spooled.transports.http.schema import OBJECT, STRING
from spooled.transports.http.spec import Body, op

bp = Blueprint("docs", __name__)
ROOT = Path(__file__).with_name("docs")


@bp.get(openapi.OPENAPI_PATH)
@op("This document (OpenAPI 3.1)", security=(), ok=Body({**OBJECT, "description": "An OpenAPI 3.1 document"}))
async def document():
    return Response(openapi.cached(current_app), content_type="application/json",
                    headers={"Cache-Control": "no-cache"})


async def _file(name: str) -> Response:
    response = await send_from_directory(ROOT, name, conditional=True)
    response.headers.update(SECURITY_HEADERS)
    return response


@bp.get("/docs")
@op("The API reference (this document in Swagger UI)", security=(), ok=Body(STRING, media="text/html"))
async def index():
    return await _file("index.html")


@bp.get("/docs/<path:name>")
@op("The API reference's static files", security=(), errors=(404,),
    ok=Body(STRING, media="*/*", description="The file (JavaScript, CSS)"))
async def asset(name: str):
    return await _file(name)
