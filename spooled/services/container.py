"""All services of one server instance, built once by the supervisor (or a test) around one pool."""

from __future__ import annotations

from typing import Callable

import attrs
import trio

from spooled.services.admin import Admin
from spooled.services.admission import Admission
from spooled.services.auth import Authenticator
from spooled.services.billing import Billing
from spooled.services.dashboard import Dashboard
from spooled.services.dispatcher import DispatchPolicy, Dispatcher
from spooled.services.email_login import EmailLogin
from spooled.services.events import Broadcaster
from spooled.services.inbound import Inbound
from spooled.services.jobs import Jobs
from spooled.services.mailer import Mailer
from spooled.services.maintenance import Maintenance
from spooled.services.metrics import Metrics
from spooled.services.orgs import Orgs
from spooled.services.queues import Queues
from spooled.services.quotas import Quotas
from spooled.services.ratelimit import RateLimiter
from spooled.services.retention import Retention
from spooled.services.schedules import Schedules
from spooled.services.streams import Streams
from spooled.services.sender import Sender
from spooled.services.tracing import Tracing, tracing_for
from spooled.services.wakeups import Wakeups
from spooled.services.webhooks import Webhooks
from spooled.services.workers import Workers
from spooled.services.workflows import Workflows
from spooled.settings import Settings
from spooled.store.dashboard import DashboardStore
from spooled.store.db import Database
from spooled.store.events import ListenerStore
from spooled.store.jobs import JobStore
from spooled.store.keys import KeyStore
from spooled.store.logins import LoginStore
from spooled.store.maintenance import MaintenanceStore
from spooled.store.metrics import MetricsStore
from spooled.store.orgs import OrgStore
from spooled.store.queues import QueueStore
from spooled.store.retention import RetentionStore
from spooled.store.schedules import ScheduleStore
from spooled.store.usage import UsageStore
from spooled.store.webhooks import WebhookStore
from spooled.store.workers import WorkerStore
from spooled.store.workflows import WorkflowStore


@attrs.define
class Services:
    settings: Settings
    db: Database
    wakeups: Wakeups
    auth: Authenticator
    admission: Admission
    quotas: Quotas
    orgs: Orgs
    admin: Admin
    billing: Billing
    email_login: EmailLogin
    mailer: Mailer
    jobs: Jobs
    queues: Queues
    maintenance: Maintenance
    workers: Workers
    schedules: Schedules
    dashboard: Dashboard
    streams: Streams
    retention: Retention
    workflows: Workflows
    metrics: Metrics
    tracing: Tracing
    broadcaster: Broadcaster
    sender: Sender
    webhooks: Webhooks
    dispatcher: Dispatcher
    inbound: Inbound
    shutting_down: trio.Event = attrs.field(factory=trio.Event)
    started_at: float = attrs.field(factory=trio.current_time)

    @classmethod
    def build(cls, settings: Settings, db: Database) -> "Services":
        from spooled import __version__
        wakeups = Wakeups()
        metrics = Metrics(MetricsStore(db), max_series=settings.metrics_max_series,
                          snapshot_secs=settings.metrics_interval_secs)
        streams = Streams(settings.max_streams, settings.max_streams_per_org)
        broadcaster = Broadcaster(ListenerStore(db), buffer=settings.realtime_buffer, streams=streams)
        broadcaster.on_drop = metrics.realtime_dropped.inc
        metrics.pool = db.stats
        tracing = tracing_for(settings.otel_exporter, settings.otel_service_name, __version__)
        org_store, key_store, usage_store = OrgStore(db), KeyStore(db), UsageStore(db)
        quotas = Quotas(org_store, usage_store, operator=settings.plan_limits)
        auth = Authenticator(key_store, quotas, settings.jwt_secret or None)
        orgs = Orgs(org_store, key_store, auth, quotas, default_plan=settings.default_plan)
        mailer = Mailer(settings.smtp_url, settings.smtp_from)
        jobs = Jobs(JobStore(db), wakeups, quotas=quotas, streams=streams,
                    max_payload_bytes=settings.max_payload_bytes, metrics=metrics, tracing=tracing)
        sender = Sender(allow_private=settings.webhook_allow_private, timeout_secs=settings.webhook_timeout_secs)
        hooks = WebhookStore(db)
        return cls(
            settings=settings, db=db, wakeups=wakeups, auth=auth,
            admission=Admission(auth, RateLimiter(), usage_store, report=metrics.loops_report, version=__version__),
            quotas=quotas, orgs=orgs,
            admin=Admin(org_store, orgs, auth, quotas),
            billing=Billing(org_store, auth, quotas, secret_key=settings.stripe_secret_key,
                            webhook_secret=settings.stripe_webhook_secret, api_base=settings.stripe_api_base),
            email_login=EmailLogin(org_store, key_store, LoginStore(db), orgs, auth, mailer,
                                   secret=settings.jwt_secret or "unset"),
            mailer=mailer, jobs=jobs, queues=Queues(QueueStore(db), quotas),
            maintenance=Maintenance(MaintenanceStore(db)),
            workers=Workers(WorkerStore(db), quotas=quotas,
                            heartbeat_interval_secs=settings.worker_heartbeat_interval_secs),
            schedules=Schedules(ScheduleStore(db), jobs, quotas=quotas, max_payload_bytes=settings.max_payload_bytes),
            dashboard=Dashboard(DashboardStore(db)), streams=streams,
            retention=Retention(RetentionStore(db), operator=settings.plan_limits,
                                deadletter_days=settings.retention_deadletter_days),
            workflows=Workflows(WorkflowStore(db), quotas=quotas, max_payload_bytes=settings.max_payload_bytes,
                                metrics=metrics),
            metrics=metrics, tracing=tracing,
            broadcaster=broadcaster,
            sender=sender, webhooks=Webhooks(hooks, sender, quotas),
            dispatcher=Dispatcher(hooks, sender, DispatchPolicy(max_attempts=settings.webhook_max_attempts),
                                  on_attempt=lambda ok: metrics.webhook_deliveries.labels(
                                      "delivered" if ok else "failed").inc()),
            inbound=Inbound(hooks, jobs))

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Use `clock` (Unix seconds) for key expiry and caching, rate limits, quotas and email codes (tests)."""
        for part in (self.auth, self.admission.limiter, self.quotas, self.email_login):
            part.clock = clock
