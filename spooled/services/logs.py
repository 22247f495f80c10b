"""Log lines (docs/operations.md "Logs"): one line per event, the request's id and organization on every line
logged while serving it, `text` or `json` (one JSON object per line, for log shippers), and no secrets.

- The transports set `request_id` / `org` (context variables) when a request starts and once it is admitted;
  `ContextFilter` copies them onto every record logged in that request's task (access lines pass theirs).
- Secrets are never logged on purpose (keys, tokens, passwords, webhook secrets, email codes — except the
  documented development-only line with the email code when no SMTP server is configured); as a second line of
  defence the formatters mask anything shaped like an API key, a JWT, a Stripe secret or a URL's password.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import re
import sys

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("spooled_request_id", default=None)
org: contextvars.ContextVar[str | None] = contextvars.ContextVar("spooled_org", default=None)

_SECRETS = re.compile(
    r"(?P<key>\b(?:sk|sp)_(?:live|test)_)[A-Za-z0-9_-]{8,}"            # API keys
    r"|(?P<jwt>\beyJ)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # JWTs (access/refresh tokens)
    r"|(?P<stripe>\b(?:whsec|rk_live|rk_test)_)[A-Za-z0-9]{8,}"         # Stripe secrets
    r"|(?P<url>://[^:/@\s]+:)[^@/\s]+@")                                # user:password@ in a URL


def _mask(m: re.Match) -> str:
    return (m.group("key") or m.group("jwt") or m.group("stripe") or m.group("url")) + "***" + (
        "@" if m.group("url") else "")


_MARKS = ("sk_", "sp_", "eyJ", "whsec_", "rk_", "://")     # cheap substring checks before the regex


def redact(text: str) -> str:
    """`text` with anything shaped like a secret masked."""
    for mark in _MARKS:
        if mark in text:
            return _SECRETS.sub(_mask, text)
    return text


class ContextFilter(logging.Filter):
    """Adds `request_id` and `org` (from the request being served, unless the record carries its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        if not hasattr(record, "org"):
            record.org = org.get()
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [request_id=… org=…]`; newlines in the message are escaped, so a line is an
    event (an error's traceback follows its line, indented)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        rid, o = getattr(record, "request_id", None), getattr(record, "org", None)
        if rid:
            line += f" request_id={rid}"
        if o:
            line += f" org={o}"
        return redact(line.replace("\r", "\\r").replace("\n", "\\n"))

    def formatException(self, ei) -> str:
        return "    " + redact(super().formatException(ei)).replace("\n", "\n    ")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, message, request_id, org, the extra
    fields an access line carries, and the traceback as a string."""

    FIELDS = ("request_id", "org", "method", "route", "path", "status", "duration_ms", "bytes", "transport")

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "message": redact(record.getMessage())}
        for name in self.FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(out, default=str).decode()


def configure(level: str, fmt: str, stream=None) -> None:
    """The process's logging: one handler on the root logger, `fmt` = text | json."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
