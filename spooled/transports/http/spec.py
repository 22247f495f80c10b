"""What the OpenAPI document says of each route, declared next to the route (`@op(...)` under `@bp.get(...)`):
its summary, request body (an input model), query parameters, success responses and the error statuses it adds
to those derived from the route itself. `openapi.py` reads these with the app's url_map; the path parameters come
from the url rules, the security from the admission decorators (`authed`: bearer, `admin`: X-Admin-Key).
`tests/test_openapi.py` checks every query parameter a handler reads and every body model it structures is
declared here, and every route of the url_map is in the document (a route with no `@op` is listed all the same,
marked `x-undeclared`, and that test names it).
"""

from __future__ import annotations

import typing

import attrs

from spooled.transports.http.pagination import DEFAULT_LIMIT, INT64, MAX_LIMIT
from spooled.transports.http.schema import INTEGER, STRING, TIME, Schema, array, const, enum, obj

JSON = "application/json"
EMPTY: Schema = {"description": "Ignored (send none, or `{}`); it must still be JSON"}
SUCCESS = obj({"success": const(True)})


@attrs.frozen
class Param:
    """A query parameter. `list_` values are comma-separated (`style: form, explode: false`)."""
    name: str
    schema: Schema
    description: str = ""
    list_: bool = False
    required: bool = False


@attrs.frozen
class Body:
    """A success response: its media type and schema (`schema` None: no body, e.g. 204)."""
    schema: Schema | None
    media: str = JSON
    description: str = ""
    headers: tuple[str, ...] = ()       # names from openapi.HEADERS this response carries


@attrs.frozen
class Operation:
    summary: str
    responses: dict[int, Body]
    body: type | Schema | None = None           # an attrs input model, or a schema (`body_required` then says)
    body_required: bool | None = None
    query: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()                # statuses beyond the derived ones (409, 400 ...)
    security: tuple[str, ...] | None = None     # None: from the admission decorator; () for none at all
    description: str | None = None
    paged: bool = False                         # X-Has-More / X-Next-Cursor / Link on the 200
    streaming: bool = False                     # a body that does not end (SSE) or an upgrade (WebSocket)
    alias: dict[str, str] = attrs.field(factory=dict)   # accepted alternative body keys -> canonical
    declared: bool = True                       # False: made up by openapi.undeclared for a route with no @op


def op(summary: str, *, ok: Schema | Body | dict[int, Schema | Body | None] | None = None,
       body: type | Schema | None = None, **rest) -> typing.Callable:
    """Declare a route's operation. `ok`: the 200 body's schema, or `{status: schema | Body | None}`."""
    if not isinstance(ok, dict) or set(ok) - set(range(100, 600)):
        ok = {200: ok}
    responses = {status: b if isinstance(b, Body) else Body(b) for status, b in ok.items()}
    operation = Operation(summary=summary, responses=responses, body=body, **rest)

    def mark(fn):
        fn.openapi = operation
        return fn
    return mark


def empty(description: str = "Done") -> dict[int, Body]:
    return {204: Body(None, description=description)}


# -- shared query parameters ---------------------------------------------------------------------------------------
_SPACES = "".join(f"\\u{c:04x}" for c in range(0x3001) if chr(c).isspace())     # what str.strip() strips
NOT_BLANK: Schema = {**STRING, "pattern": f"^[^\\x00]*[^\\x00{_SPACES}][^\\x00]*$",
                     "description": "Not empty once surrounding spaces are stripped"}
INT_ARG = {**INTEGER, "format": "int64", "minimum": -INT64 - 1, "maximum": INT64}


def limit(default: int = DEFAULT_LIMIT, hi: int = MAX_LIMIT) -> Param:
    return Param("limit", {**INT_ARG, "default": default},
                 f"Page size, {default} by default; clamped to 1..{hi}")


OFFSET = Param("offset", {**INTEGER, "format": "int64", "minimum": 0, "maximum": INT64, "default": 0},
               "Rows to skip")
CURSOR = Param("cursor", STRING, "The X-Next-Cursor of the previous page (opaque)")
PAGE = (limit(), OFFSET, CURSOR)


def words(*options: str, description: str = "") -> Param | Schema:
    """A case-insensitive choice among `options` (or empty: the default), as a pattern."""
    alts = "|".join("".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in o) for o in options)
    return {**STRING, "pattern": f"^(?:{alts})?$", "description": description or " or ".join(options)
            + " (any case)"}


def order_dir(default: str) -> Param:
    return Param("order_dir", {**words("asc", "desc"), "default": default}, f"asc or desc (any case), {default} "
                 "by default")


def flag(name: str, description: str) -> Param:
    """A boolean query flag: 1/true/yes is true; anything else (or absent) false."""
    return Param(name, STRING, f"{description}: `true`, `1` or `yes` (any case); anything else is false")


def time_param(name: str, description: str) -> Param:
    return Param(name, TIME, description)


def one_of(name: str, options: typing.Iterable[str], description: str = "", list_: bool = False) -> Param:
    """One of `options` (or, for `list_`, a comma-separated list of them). A single value may also be empty,
    which is the same as leaving the parameter out."""
    if list_:
        return Param(name, array(enum(*options)), description, list_)
    return Param(name, enum(*options, ""), description)
