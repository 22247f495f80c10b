"""All services of one server instance, built once by the supervisor (or a test) around one pool."""

from __future__ import annotations

import attrs
import trio

from spooled.services.auth import Authenticator
from spooled.services.dashboard import Dashboard
from spooled.services.dispatcher import DispatchPolicy, Dispatcher
from spooled.services.events import Broadcaster
from spooled.services.inbound import Inbound
from spooled.services.jobs import Jobs
from spooled.services.maintenance import Maintenance
from spooled.services.orgs import Orgs
from spooled.services.queues import Queues
from spooled.services.schedules import Schedules
from spooled.services.sender import Sender
from spooled.services.wakeups import Wakeups
from spooled.services.webhooks import Webhooks
from spooled.services.workers import Workers
from spooled.settings import Settings
from spooled.store.dashboard import DashboardStore
from spooled.store.db import Database
from spooled.store.events import ListenerStore
from spooled.store.jobs import JobStore
from spooled.store.maintenance import MaintenanceStore
from spooled.store.queues import QueueStore
from spooled.store.schedules import ScheduleStore
from spooled.store.webhooks import WebhookStore
from spooled.store.workers import WorkerStore


@attrs.define
class Services:
    settings: Settings
    db: Database
    wakeups: Wakeups
    auth: Authenticator
    orgs: Orgs
    jobs: Jobs
    queues: Queues
    maintenance: Maintenance
    workers: Workers
    schedules: Schedules
    dashboard: Dashboard
    broadcaster: Broadcaster
    sender: Sender
    webhooks: Webhooks
    dispatcher: Dispatcher
    inbound: Inbound
    shutting_down: trio.Event = attrs.field(factory=trio.Event)
    started_at: float = attrs.field(factory=trio.current_time)

    @classmethod
    def build(cls, settings: Settings, db: Database) -> "Services":
        wakeups = Wakeups()
        auth = Authenticator(db, settings.jwt_secret or None)
        jobs = Jobs(JobStore(db), wakeups, max_payload_bytes=settings.max_payload_bytes)
        sender = Sender(allow_private=settings.webhook_allow_private, timeout_secs=settings.webhook_timeout_secs)
        hooks = WebhookStore(db)
        return cls(settings=settings, db=db, wakeups=wakeups, auth=auth, orgs=Orgs(db, auth),
                   jobs=jobs, queues=Queues(QueueStore(db)), maintenance=Maintenance(MaintenanceStore(db)),
                   workers=Workers(WorkerStore(db), heartbeat_interval_secs=settings.worker_heartbeat_interval_secs),
                   schedules=Schedules(ScheduleStore(db), jobs, max_payload_bytes=settings.max_payload_bytes),
                   dashboard=Dashboard(DashboardStore(db)),
                   broadcaster=Broadcaster(ListenerStore(db), buffer=settings.realtime_buffer),
                   sender=sender, webhooks=Webhooks(hooks, sender),
                   dispatcher=Dispatcher(hooks, sender, DispatchPolicy(max_attempts=settings.webhook_max_attempts)),
                   inbound=Inbound(hooks, jobs))
