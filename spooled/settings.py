"""Configuration: flags and environment read once into a frozen `Settings`. Nobody else reads `os.environ`."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from pathlib import Path
from urllib.parse import unquote, urlsplit

import attrs
import platformdirs

PLAN_TIERS = ("free", "starter", "pro", "enterprise")


class ConfigError(Exception):
    """A configuration value is unusable; the message is one sentence for the operator."""


def parse_bind(value: str, what: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`) -> (host, port); port 0 means any free port."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{what} must look like HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def default_data_dir() -> Path:
    # As root the embedded PostgreSQL runs as the `postgres` user, which cannot enter /root: use a system path.
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/spooled")
    return Path(platformdirs.user_data_dir("spooled"))


@attrs.frozen
class Settings:
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    database_url: str | None = None
    data_dir: Path = attrs.field(factory=default_data_dir)
    jwt_secret: str = ""
    admin_key: str | None = None
    registration_open: bool = True
    # Limits (api.md "body limit")
    max_request_bytes: int = 10 * 1024 * 1024
    max_payload_bytes: int = 1024 * 1024
    # Background loops
    reaper_interval_secs: float = 1.0
    heartbeat_check_interval_secs: float = 5.0
    scheduler_interval_secs: float = 1.0
    worker_heartbeat_interval_secs: int = 10
    shutdown_grace_secs: float = 5.0
    processes: int = 1                        # server processes sharing the ports (--processes, SPOOLED_PROCESSES)
    listen_fds: tuple[int, int] | None = None  # (REST, gRPC) listening sockets inherited from `--processes`
    lifeline_fd: int | None = None             # a pipe from the `--processes` parent: its close means the parent died
    pool_min_size: int = 2
    pool_max_size: int = 16
    # Database timeouts: no request (nor loop) waits longer on an unreachable or stalled database
    db_connect_timeout_secs: float = 5.0
    db_statement_timeout_secs: float = 30.0
    log_level: str = "INFO"
    # Events: realtime streams and outgoing webhooks
    realtime_buffer: int = 256                # events buffered per subscriber; a subscriber that falls further behind is dropped
    realtime_keepalive_secs: float = 15.0     # SSE keep-alive comment / WebSocket Ping when a stream is idle
    queue_stats_interval_secs: float = 5.0    # QueueStats frames on /events/queues/{name}
    webhook_allow_private: bool = False       # SSRF guard off: webhooks may target private/loopback addresses
    webhook_dispatcher: bool = True           # run the dispatcher loop (tests drive `Dispatcher.run_once` instead)
    webhook_concurrency: int = 16             # deliveries in flight per instance
    webhook_timeout_secs: float = 10.0
    webhook_max_attempts: int = 5
    webhook_interval_secs: float = 1.0        # how often due retries are looked for (new deliveries wake it at once)
    # Plans, quotas, rate limits (domain/plans.py, services/quotas.py, services/ratelimit.py)
    default_plan: str = "free"
    plan_limits: dict | None = None             # {tier: {limit: value}} operator overrides
    quota_sync_secs: float = 2.0
    instance_heartbeat_secs: float = 5.0
    # Email login (services/mailer.py)
    smtp_url: str | None = None
    smtp_from: str = "Spooled <no-reply@localhost>"
    # Billing (services/billing.py)
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str | None = None          # point the stripe library elsewhere (tests, proxies)
    # Connection limits (transports/http/connections.py; docs/api-notes.md "HTTP connections")
    max_connections: int = 10_000               # open HTTP connections per server; beyond: 503 (health answered)
    header_timeout_secs: float = 10.0           # a request head (line + headers) must arrive within this
    body_timeout_secs: float = 60.0             # a request body must arrive (and a response be read) within this
    keep_alive_secs: float = 75.0               # an idle keep-alive connection is closed after this
    http_fast_path: bool = True                 # the hot job routes' own HTTP/1.1 handler (transports/http/fastpath.py)
    # Long-lived requests (services/streams.py): per kind (long polls; SSE/WebSocket/gRPC streams)
    max_streams: int = 5_000                    # per server
    max_streams_per_org: int = 500              # per organization, per server
    # Browsers (transports/http/cors.py): exact origins allowed to call the API; empty = CORS off
    cors_origins: tuple[str, ...] = ()
    # Retention (services/retention.py): finished jobs per plan (`job_retention_days`); dead letters longer
    retention_deadletter_days: int = 30
    retention_interval_secs: float = 60.0
    # Operations (docs/operations.md)
    metrics_token: str | None = None            # /metrics needs `Authorization: Bearer <token>` when set
    metrics_interval_secs: float = 15.0         # the job/worker count snapshot, cluster-wide
    metrics_max_series: int = 1000              # (organization, queue) label sets per metric; the rest: _other
    log_format: str = "text"                    # or "json": one JSON object per line
    access_log: bool = False                    # one line per HTTP request and gRPC call (~20 us each)
    otel_exporter: str | None = None            # otlp | console | file:PATH (needs the `otel` extra)
    otel_service_name: str = "spooled"


_DEFAULT = Settings()      # the defaults (a slotted class has no readable class attributes)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
assert all(isinstance(logging.getLevelName(n), int) for n in LOG_LEVELS)


def mask_password(url: str) -> str:
    """`url` with the password of its userinfo replaced by `***` (for messages)."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def check_database_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError(f"DATABASE_URL must be a PostgreSQL URL such as "
                          f"postgresql://user:password@localhost:5432/spooled, got {mask_password(url)!r}")


def jwt_secret_from(data_dir: Path, given: str | None) -> str:
    """The JWT signing secret: the given one, else one generated once and kept in the data dir."""
    if given:
        if len(given.encode()) < 32:
            raise ConfigError("SPOOLED_JWT_SECRET must be at least 32 bytes long")
        return given
    path = data_dir / "jwt_secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret)
        return secret


def _positive_secs(env: dict[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        secs = float(value)
    except ValueError:
        secs = 0.0
    if not 0 < secs <= 86400:
        raise ConfigError(f"{name} must be a number of seconds above 0 (at most 86400), got {value!r}")
    return secs


def from_env(env: dict[str, str], *, http: str | None = None, grpc: str | None = None,
             processes: int | None = None, need_secret: bool = True) -> Settings:
    """Settings from the environment, with command-line flags (`http`, `grpc`, `processes`) taking precedence."""
    http_host, http_port = parse_bind(http or env.get("SPOOLED_HTTP_BIND", "127.0.0.1:8080"), "--http")
    grpc_host, grpc_port = parse_bind(grpc or env.get("SPOOLED_GRPC_BIND", "127.0.0.1:50051"), "--grpc")
    data_dir = Path(env["SPOOLED_DATA_DIR"]).expanduser() if env.get("SPOOLED_DATA_DIR") else default_data_dir()
    registration = env.get("SPOOLED_REGISTRATION", "open").lower()
    if registration not in ("open", "closed"):
        raise ConfigError("SPOOLED_REGISTRATION must be 'open' or 'closed'")
    admin_key = env.get("SPOOLED_ADMIN_KEY") or None
    if registration == "closed" and not admin_key:
        raise ConfigError("SPOOLED_REGISTRATION=closed needs SPOOLED_ADMIN_KEY to be set")
    log_level = env.get("SPOOLED_LOG_LEVEL", "INFO").strip().upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"SPOOLED_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    database_url = env.get("DATABASE_URL") or None
    if database_url is not None:
        check_database_url(database_url)
    secret = jwt_secret_from(data_dir, env.get("SPOOLED_JWT_SECRET")) if need_secret else ""
    default_plan = env.get("SPOOLED_DEFAULT_PLAN", "free").lower()
    if default_plan not in PLAN_TIERS:
        raise ConfigError(f"SPOOLED_DEFAULT_PLAN must be one of {', '.join(PLAN_TIERS)}")
    smtp_url = env.get("SPOOLED_SMTP_URL") or None
    if smtp_url:
        parse_smtp_url(smtp_url)
    limits = dict(
        max_connections=_whole(env, "SPOOLED_MAX_CONNECTIONS", _DEFAULT.max_connections),
        header_timeout_secs=_positive_secs(env, "SPOOLED_HTTP_HEADER_TIMEOUT_SECS", _DEFAULT.header_timeout_secs),
        body_timeout_secs=_positive_secs(env, "SPOOLED_HTTP_BODY_TIMEOUT_SECS", _DEFAULT.body_timeout_secs),
        keep_alive_secs=_positive_secs(env, "SPOOLED_HTTP_KEEP_ALIVE_SECS", _DEFAULT.keep_alive_secs),
        http_fast_path=_flag(env, "SPOOLED_HTTP_FAST_PATH", _DEFAULT.http_fast_path),
        max_streams=_whole(env, "SPOOLED_MAX_STREAMS", _DEFAULT.max_streams),
        max_streams_per_org=_whole(env, "SPOOLED_MAX_STREAMS_PER_ORG", _DEFAULT.max_streams_per_org),
        retention_deadletter_days=_whole(env, "SPOOLED_RETENTION_DEADLETTER_DAYS", _DEFAULT.retention_deadletter_days),
        cors_origins=cors_origins_from(env.get("SPOOLED_CORS_ORIGINS")),
        processes=int(_number(env, "SPOOLED_PROCESSES", _DEFAULT.processes, 1, 64)) if processes is None
        else _processes(processes),
        listen_fds=_listen_fds(env.get("SPOOLED_LISTEN_FDS")),
        lifeline_fd=_lifeline_fd(env.get("SPOOLED_LIFELINE_FD")),
    )
    log_format = env.get("SPOOLED_LOG_FORMAT", "text").strip().lower()
    if log_format not in ("text", "json"):
        raise ConfigError(f"SPOOLED_LOG_FORMAT must be text or json, got {log_format!r}")
    otel = env.get("SPOOLED_OTEL_EXPORTER", "").strip() or None
    if otel is not None and otel not in ("otlp", "console") and not (otel.startswith("file:") and otel[5:]):
        raise ConfigError(f"SPOOLED_OTEL_EXPORTER must be otlp, console or file:PATH, got {otel!r}")
    return Settings(
        http_host=http_host, http_port=http_port, grpc_host=grpc_host, grpc_port=grpc_port,
        database_url=database_url, data_dir=data_dir, jwt_secret=secret,
        admin_key=admin_key, registration_open=registration == "open", log_level=log_level,
        default_plan=default_plan, plan_limits=plan_limits_from(env.get("SPOOLED_PLAN_LIMITS")),
        smtp_url=smtp_url, smtp_from=env.get("SPOOLED_SMTP_FROM") or _DEFAULT.smtp_from,
        stripe_secret_key=env.get("SPOOLED_STRIPE_SECRET_KEY") or None,
        stripe_webhook_secret=env.get("SPOOLED_STRIPE_WEBHOOK_SECRET") or None,
        stripe_api_base=env.get("SPOOLED_STRIPE_API_BASE") or None,
        metrics_token=env.get("SPOOLED_METRICS_TOKEN") or None,
        metrics_interval_secs=_number(env, "SPOOLED_METRICS_INTERVAL_SECS", _DEFAULT.metrics_interval_secs, 1, 3600),
        metrics_max_series=int(_number(env, "SPOOLED_METRICS_MAX_SERIES", _DEFAULT.metrics_max_series, 1, 100_000)),
        log_format=log_format, access_log=_flag(env, "SPOOLED_ACCESS_LOG", _DEFAULT.access_log),
        otel_exporter=otel, otel_service_name=env.get("SPOOLED_OTEL_SERVICE_NAME") or _DEFAULT.otel_service_name,
        db_connect_timeout_secs=_positive_secs(env, "SPOOLED_DB_CONNECT_TIMEOUT_SECS", 5.0),
        db_statement_timeout_secs=_positive_secs(env, "SPOOLED_DB_STATEMENT_TIMEOUT_SECS", 30.0),
        webhook_allow_private=_flag(env, "SPOOLED_WEBHOOK_ALLOW_PRIVATE", False), **limits,
    )


def _processes(n: int) -> int:
    if not 1 <= n <= 64:
        raise ConfigError(f"--processes must be from 1 to 64, got {n}")
    return n


def _listen_fds(text: str | None) -> tuple[int, int] | None:
    """SPOOLED_LISTEN_FDS="REST,gRPC": set by `--processes` for the processes it starts (not an operator setting)."""
    if not text:
        return None
    try:
        http_fd, grpc_fd = (int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"SPOOLED_LISTEN_FDS must be two descriptors 'REST,gRPC', got {text!r}") from None
    return http_fd, grpc_fd


def _lifeline_fd(text: str | None) -> int | None:
    """SPOOLED_LIFELINE_FD: set by `--processes` too (the read end of a pipe only the parent can write)."""
    if not text:
        return None
    if not text.isdigit():
        raise ConfigError(f"SPOOLED_LIFELINE_FD must be a descriptor number, got {text!r}")
    return int(text)


def _number(env: dict[str, str], name: str, default: float, lo: float, hi: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be a number from {lo:g} to {hi:g}, got {text!r}")
    return value


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    text = env.get(name, "").strip().lower()
    if not text:
        return default
    if text in ("1", "true", "on", "yes"):
        return True
    if text in ("0", "false", "off", "no"):
        return False
    raise ConfigError(f"{name} must be on or off, got {text!r}")


def _whole(env: dict[str, str], name: str, default: int) -> int:
    """A whole number above 0 from the environment (`default` when unset or empty)."""
    text = (env.get(name) or "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ConfigError(f"{name} must be a whole number greater than 0, got {text!r}")
    return int(text)


def cors_origins_from(text: str | None) -> tuple[str, ...]:
    """SPOOLED_CORS_ORIGINS: a comma-separated list of exact origins (`https://app.example.com`, scheme and host,
    and a port when not the default), or `*` for any origin. Unset or empty: CORS is off."""
    origins = tuple(o.strip().rstrip("/") for o in (text or "").split(",") if o.strip())
    for origin in origins:
        if origin == "*":
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
            raise ConfigError(f"SPOOLED_CORS_ORIGINS must list origins such as https://app.example.com "
                              f"(or *), got {origin!r}")
    return origins


def plan_limits_from(text: str | None) -> dict | None:
    """SPOOLED_PLAN_LIMITS: a JSON object {tier: {limit: value}} overriding the plans' limits (the limit names
    and values are checked by the CLI against domain/plans.py before the server starts)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise ConfigError('SPOOLED_PLAN_LIMITS must be JSON, e.g. {"free": {"max_jobs_per_day": 5000}}') from None
    if not isinstance(value, dict) or not set(value) <= set(PLAN_TIERS):
        raise ConfigError(f"SPOOLED_PLAN_LIMITS must be a JSON object whose keys are plans "
                          f"({', '.join(PLAN_TIERS)})")
    return value


@attrs.frozen
class SmtpTarget:
    host: str
    port: int
    tls: bool                   # smtps: TLS from the first byte (else STARTTLS whenever the server offers it)
    user: str | None = None
    password: str | None = None


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp://[user:password@]host[:port]` (default port 25) or `smtps://...` (default port 465)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError("SPOOLED_SMTP_URL must look like smtp://[user:password@]host[:port] or smtps://...")
    tls = parts.scheme == "smtps"
    try:
        port = parts.port or (465 if tls else 25)
    except ValueError:
        raise ConfigError("SPOOLED_SMTP_URL has a bad port") from None
    return SmtpTarget(parts.hostname, port, tls, unquote(parts.username) if parts.username else None,
                      unquote(parts.password) if parts.password else None)
