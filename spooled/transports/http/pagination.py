"""Query-string parsing for listings: limit (default 20, clamped to 1..100), offset, cursor; page headers."""

from __future__ import annotations

from urllib.parse import urlencode

from quart import request

from spooled.convert import parse_time
from spooled.domain import errors

DEFAULT_LIMIT, MAX_LIMIT = 20, 100


INT64 = 2**63 - 1


def int_arg(name: str, default: int | None) -> int | None:
    """A query integer: ASCII digits with an optional sign, within 64 bits (PostgreSQL's bigint); else 422
    (an empty value too: it is no integer)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    digits = raw[1:] if raw[:1] in "+-" else raw
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19 or not -INT64 - 1 <= int(raw) <= INT64:
        raise errors.invalid(name, "must be an integer within 64 bits")
    return int(raw)


def time_arg(name: str):
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return parse_time(raw)
    except ValueError as exc:
        raise errors.invalid(name, str(exc)) from None


def page_args(default: int = DEFAULT_LIMIT) -> tuple[int, int, str | None]:
    """(limit, offset, cursor): limit over the max is clamped, below 1 is 1; a negative offset is 422."""
    limit = min(max(int_arg("limit", default), 1), MAX_LIMIT)
    offset = int_arg("offset", 0)
    if offset < 0:
        raise errors.invalid("offset", "must be 0 or more")
    return limit, offset, request.args.get("cursor") or None


def page_headers(next_cursor: str | None) -> dict[str, str]:
    headers = {"X-Has-More": "true" if next_cursor else "false"}
    if next_cursor:
        args = [(k, v) for k, v in request.args.items(multi=True) if k not in ("cursor", "offset")]
        args.append(("cursor", next_cursor))
        headers["X-Next-Cursor"] = next_cursor
        headers["Link"] = f'<{request.base_url}?{urlencode(args)}>; rel="next"'
    return headers
