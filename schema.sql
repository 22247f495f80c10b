-- Spooled schema: the one source of truth for every server instance sharing this database.
-- The squashed current state of store/migrations/*.sql (tests/test_migrations.py proves they agree): applied
-- to an empty database by `python -m spooled` (and `migrate`, and `scripts/setup_db.py`); an existing database
-- is upgraded by the migrations it has not recorded. Change the schema with a new migration AND here.
-- Every constraint is named: the store maps a violation to one domain error by its name.
-- User JSON (payload, result, tags, settings, metadata) is `json`, not `jsonb`: it is returned exactly as
-- stored (key order, duplicate keys and big integers untouched).

CREATE TABLE spooled_schema (
    version     int         NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT spooled_schema_pk PRIMARY KEY (version)
);

CREATE TABLE organizations (
    id                          uuid        NOT NULL DEFAULT gen_random_uuid(),
    name                        text        NOT NULL,
    slug                        text        NOT NULL,
    plan_tier                   text        NOT NULL DEFAULT 'free',
    billing_email               text,
    settings                    jsonb       NOT NULL DEFAULT '{}',
    stripe_customer_id          text,
    stripe_subscription_id      text,
    webhook_token               text,       -- X-Webhook-Token of POST /webhooks/{org_id}/custom (made on first read)
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    -- limit overrides for this organization (domain/plans.py; null values mean unlimited)
    custom_limits               jsonb,
    stripe_subscription_status  text,
    stripe_current_period_end   timestamptz,
    stripe_cancel_at_period_end boolean,
    -- the time of the newest Stripe event applied: an older event never overwrites a newer state
    stripe_event_at             timestamptz,
    -- suspended by an operator (admin soft delete): every key of the organization is refused
    suspended_at                timestamptz,
    CONSTRAINT organizations_pk PRIMARY KEY (id),
    CONSTRAINT organizations_slug_key UNIQUE (slug),
    CONSTRAINT organizations_plan_check CHECK (plan_tier IN ('free', 'starter', 'pro', 'enterprise')),
    CONSTRAINT organizations_name_check CHECK (length(name) BETWEEN 1 AND 200)
);
CREATE INDEX organizations_billing_email_idx ON organizations (lower(billing_email)) WHERE billing_email IS NOT NULL;
CREATE INDEX organizations_stripe_customer_idx ON organizations (stripe_customer_id)
    WHERE stripe_customer_id IS NOT NULL;

-- API keys are stored only as SHA-256 of the key (the key has 256 bits of entropy, so a fast hash is safe
-- and lets every request find its key through one unique-index lookup).
CREATE TABLE api_keys (
    id                  uuid        NOT NULL DEFAULT gen_random_uuid(),
    organization_id     uuid        NOT NULL,
    name                text        NOT NULL DEFAULT 'default',
    key_hash            bytea       NOT NULL,
    key_prefix          text        NOT NULL,
    queues              text[]      NOT NULL DEFAULT '{}',
    is_active           boolean     NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_used_at        timestamptz,
    revoked_at          timestamptz,
    rate_limit          int,                                -- the key's own limit, requests per minute
    read_only           boolean     NOT NULL DEFAULT false, -- only GET/HEAD (REST) and reads (gRPC)
    expires_at          timestamptz,                        -- refused from then on
    CONSTRAINT api_keys_pk PRIMARY KEY (id),
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash),
    CONSTRAINT api_keys_rate_limit_check CHECK (rate_limit IS NULL OR rate_limit >= 1),
    CONSTRAINT api_keys_organization_fk FOREIGN KEY (organization_id) REFERENCES organizations (id) ON DELETE CASCADE
);
CREATE INDEX api_keys_organization_idx ON api_keys (organization_id);

-- Refresh tokens (JWT, HS256) by id: reusable until they expire or are revoked (logout, or the API key's
-- revocation through the cascade of is_active checks at refresh).
CREATE TABLE refresh_tokens (
    jti                 uuid        NOT NULL,
    organization_id     uuid        NOT NULL,
    api_key_id          uuid        NOT NULL,
    issued_at           timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    revoked_at          timestamptz,
    CONSTRAINT refresh_tokens_pk PRIMARY KEY (jti),
    CONSTRAINT refresh_tokens_api_key_fk FOREIGN KEY (api_key_id) REFERENCES api_keys (id) ON DELETE CASCADE
);

CREATE TABLE queues (
    id                      uuid             NOT NULL DEFAULT gen_random_uuid(),
    organization_id         uuid             NOT NULL,
    name                    text             NOT NULL,
    max_retries             int              NOT NULL DEFAULT 3,
    default_timeout         int              NOT NULL DEFAULT 300,
    rate_limit              int,
    concurrency_limit       int,
    dead_letter             boolean          NOT NULL DEFAULT true,
    backoff_base_secs       double precision NOT NULL DEFAULT 1,
    backoff_max_secs        double precision NOT NULL DEFAULT 3600,
    paused                  boolean          NOT NULL DEFAULT false,
    paused_at               timestamptz,
    pause_reason            text,
    settings                json             NOT NULL DEFAULT '{}',
    created_at              timestamptz      NOT NULL DEFAULT now(),
    updated_at              timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT queues_pk PRIMARY KEY (id),
    CONSTRAINT queues_name_key UNIQUE (organization_id, name),
    CONSTRAINT queues_organization_fk FOREIGN KEY (organization_id) REFERENCES organizations (id) ON DELETE CASCADE,
    CONSTRAINT queues_max_retries_check CHECK (max_retries BETWEEN 0 AND 100),
    CONSTRAINT queues_default_timeout_check CHECK (default_timeout BETWEEN 1 AND 86400),
    CONSTRAINT queues_backoff_check CHECK (backoff_base_secs > 0 AND backoff_max_secs >= backoff_base_secs),
    CONSTRAINT queues_paused_at_check CHECK (paused = (paused_at IS NOT NULL))
);

CREATE TYPE job_status AS ENUM (
    'pending',      -- ready: claimable now, in priority then run_at order
    'scheduled',    -- waiting for run_at (a future scheduled_at, or a retry backoff); the reaper promotes it
    'processing',   -- leased to one worker: lease_id and lease_expires_at are set
    'completed',    -- terminal: finished with a result
    'failed',       -- terminal: out of retries in a queue configured with dead_letter = false
    'deadletter',   -- terminal until retried: out of retries, or failed with retry=false
    'cancelled'     -- terminal until retried: cancelled by a user, or expired (expires_at passed)
);

CREATE TABLE jobs (
    id                  uuid        NOT NULL,
    organization_id     uuid        NOT NULL,
    queue_name          text        NOT NULL,
    status              job_status  NOT NULL,
    payload             json        NOT NULL,
    result              json,
    priority            int         NOT NULL DEFAULT 0,
    max_retries         int         NOT NULL,
    retry_count         int         NOT NULL DEFAULT 0,
    timeout_seconds     int         NOT NULL,
    last_error          text,
    tags                json,
    idempotency_key     text,
    completion_webhook  text,
    scheduled_at        timestamptz,
    -- when the job is (or becomes) claimable: created_at, scheduled_at or the retry time; claim order tie-break
    run_at              timestamptz NOT NULL,
    started_at          timestamptz,
    completed_at        timestamptz,
    expires_at          timestamptz,
    lease_id            uuid,
    lease_expires_at    timestamptz,
    assigned_worker_id  text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    parent_job_id       uuid,
    completion_webhook_secret text,     -- write-only: signs the completion webhook, never returned
    workflow_id         uuid,
    dependency_mode     text,
    dependencies_met    boolean     NOT NULL DEFAULT true,
    completed_lease_id  uuid,           -- the lease that completed the job (idempotent replays), never returned
    CONSTRAINT jobs_pk PRIMARY KEY (id),
    CONSTRAINT jobs_organization_fk FOREIGN KEY (organization_id) REFERENCES organizations (id) ON DELETE CASCADE,
    CONSTRAINT jobs_priority_check CHECK (priority BETWEEN -100 AND 100),
    CONSTRAINT jobs_max_retries_check CHECK (max_retries BETWEEN 0 AND 100),
    CONSTRAINT jobs_retry_count_check CHECK (retry_count >= 0),
    CONSTRAINT jobs_timeout_check CHECK (timeout_seconds BETWEEN 1 AND 86400),
    -- a processing job is held by exactly one lease; nothing else carries a live lease
    CONSTRAINT jobs_processing_lease_check CHECK (
        (status = 'processing') = (lease_expires_at IS NOT NULL)
        AND (status <> 'processing' OR (lease_id IS NOT NULL AND assigned_worker_id IS NOT NULL))),
    -- a released or finished job carries no lease and no assigned worker (the last one stays in job_history)
    CONSTRAINT jobs_released_lease_check CHECK (
        status = 'processing' OR (lease_id IS NULL AND assigned_worker_id IS NULL)),
    CONSTRAINT jobs_terminal_completed_at_check CHECK (
        status NOT IN ('completed', 'failed', 'deadletter', 'cancelled') OR completed_at IS NOT NULL)
) WITH (fillfactor = 80);

-- Claim path: the ready jobs of one queue in claim order (a partial index holds only pending rows).
CREATE INDEX jobs_ready_idx ON jobs (organization_id, queue_name, priority DESC, run_at, id) WHERE status = 'pending';
-- Reaper: leases to expire, scheduled jobs to promote, pending/scheduled jobs to expire.
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'processing';
CREATE INDEX jobs_scheduled_idx ON jobs (run_at) WHERE status = 'scheduled';
CREATE INDEX jobs_expires_idx ON jobs (expires_at) WHERE expires_at IS NOT NULL AND status IN ('pending', 'scheduled');
-- Listing (keyset on created_at, id) and per-queue stats.
CREATE INDEX jobs_org_created_idx ON jobs (organization_id, created_at DESC, id DESC);
CREATE INDEX jobs_org_queue_status_idx ON jobs (organization_id, queue_name, status);
CREATE INDEX jobs_worker_idx ON jobs (assigned_worker_id) WHERE status = 'processing';
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (organization_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The event trigger's "does a finished job of this statement have a completion webhook" probe (nearly always empty).
CREATE INDEX jobs_completion_webhook_idx ON jobs (id) WHERE completion_webhook IS NOT NULL;

-- The ready jobs of one queue to lease, in claim order, locked (SKIP LOCKED), or none while the queue is paused.
-- A function only to pin its plan: right after a bulk insert into a new queue the statistics say "1 row", and
-- a generic plan then reads every pending row of the queue through another index and sorts them, per claim
-- (measured: claims slowing linearly with the backlog, 2.3 ms at 6,000 jobs). With sorting off, the only plan
-- left is the ordered scan of jobs_ready_idx that stops after `p_limit` rows.
CREATE FUNCTION spooled_ready_jobs(p_org uuid, p_queue text, p_limit int, p_now timestamptz)
RETURNS SETOF uuid LANGUAGE plpgsql ROWS 10 SET enable_sort = off AS $fn$
BEGIN
    IF EXISTS (SELECT 1 FROM queues q WHERE q.organization_id = p_org AND q.name = p_queue AND q.paused) THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT j.id FROM jobs j
        WHERE j.organization_id = p_org AND j.queue_name = p_queue AND j.status = 'pending'
          AND (j.expires_at IS NULL OR j.expires_at > p_now)
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT p_limit
        FOR UPDATE OF j SKIP LOCKED;
END
$fn$;

ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0,
                      autovacuum_analyze_scale_factor = 0.02);

CREATE TABLE job_history (
    id                  bigint      GENERATED ALWAYS AS IDENTITY,
    job_id              uuid        NOT NULL,
    organization_id     uuid        NOT NULL,
    event_type          text        NOT NULL,
    old_status          job_status,
    new_status          job_status,
    worker_id           text,
    details             json,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT job_history_pk PRIMARY KEY (id),
    CONSTRAINT job_history_job_fk FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE
);
CREATE INDEX job_history_job_idx ON job_history (job_id, id);

CREATE TABLE workers (
    id                      text        NOT NULL,
    organization_id         uuid        NOT NULL,
    queue_names             text[]      NOT NULL,
    hostname                text        NOT NULL,
    worker_type             text,
    version                 text,
    max_concurrency         int         NOT NULL DEFAULT 5,
    current_jobs            int         NOT NULL DEFAULT 0,
    status                  text        NOT NULL DEFAULT 'healthy',
    metadata                json        NOT NULL DEFAULT '{}',
    heartbeat_interval_secs int         NOT NULL DEFAULT 10,
    lease_duration_secs     int         NOT NULL DEFAULT 30,
    jobs_processed          bigint      NOT NULL DEFAULT 0,
    jobs_failed             bigint      NOT NULL DEFAULT 0,
    last_heartbeat          timestamptz NOT NULL DEFAULT now(),
    registered_at           timestamptz NOT NULL DEFAULT now(),
    deregistered_at         timestamptz,
    CONSTRAINT workers_pk PRIMARY KEY (organization_id, id),
    CONSTRAINT workers_organization_fk FOREIGN KEY (organization_id) REFERENCES organizations (id) ON DELETE CASCADE,
    CONSTRAINT workers_status_check CHECK (status IN ('healthy', 'degraded', 'offline', 'draining')),
    CONSTRAINT workers_max_concurrency_check CHECK (max_concurrency BETWEEN 1 AND 10000)
);
CREATE INDEX workers_heartbeat_idx ON workers (last_heartbeat) WHERE status <> 'offline';

-- Outgoing webhook subscriptions and their deliveries (the outbox: a delivery row is written in the same
-- transaction as the state change it reports, by the event triggers below).
CREATE TABLE webhooks (
    id                  uuid        NOT NULL DEFAULT gen_random_uuid(),
    organization_id     uuid        NOT NULL,
    name                text        NOT NULL,
    url                 text        NOT NULL,
    events              text[]      NOT NULL,
    enabled             boolean     NOT NULL DEFAULT true,
    secret              text,
    failure_count       int         NOT NULL DEFAULT 0,     -- consecutive failed deliveries (not attempts)
    last_triggered_at   timestamptz,
    last_status         text,                               -- success / failed / auto_disabled
    format              text        NOT NULL DEFAULT 'json',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhooks_pk PRIMARY KEY (id),
    CONSTRAINT webhooks_organization_fk FOREIGN KEY (organization_id) REFERENCES organizations (id) ON DELETE CASCADE,
    CONSTRAINT webhooks_last_status_check CHECK (last_status IN ('success', 'failed', 'auto_disabled')),
    CONSTRAINT webhooks_format_check CHECK (format IN ('json', 'slack', 'discord', 'teams')),
    CONSTRAINT webhooks_name_check CHECK (length(name) BETWEEN 1 AND 100)
);
CREATE INDEX webhooks_organization_idx ON webhooks (organization_id, created_at, id);
CREATE INDEX webhooks_enabled_idx ON webhooks (organization_id) WHERE enabled;

-- A delivery is for a subscription (webhook_id) or for one job's completion webhook (url and secret copied from
-- the job). `locked_until` is the lease a dispatcher holds while it sends (never a row lock across a network
-- call); the next attempt is due at next_attempt_at.
CREATE TABLE webhook_deliveries (
    id                  uuid        NOT NULL DEFAULT gen_random_uuid(),
    webhook_id          uuid,
    organization_id     uuid        NOT NULL,
    event               text        NOT NULL,
    payload             json        NOT NULL,
    status              text        NOT NULL DEFAULT 'pending',
    attempts            int         NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    locked_until        timestamptz,
    status_code         int,
    response_body       text,
    error               text,
    job_id              uuid,
    url                 text,
    secret              text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    delivered_at        timestamptz,
    CONSTRAINT webhook_deliveries_pk PRIMARY KEY (id),
    CONSTRAINT webhook_deliveries_webhook_fk FOREIGN KEY (webhook_id) REFERENCES webhooks (id) ON DELETE CASCADE,
    CONSTRAINT webhook_deliveries_organization_fk FOREIGN KEY (organization_id) REFERENCES organizations (id)
        ON DELETE CASCADE,
    CONSTRAINT webhook_deliveries_status_check CHECK (status IN ('pending', 'success', 'failed')),
    CONSTRAINT webhook_deliveries_target_check CHECK (webhook_id IS NOT NULL OR url IS NOT NULL)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_organization_idx ON webhook_deliveries (organization_id);

-- The inbound webhook log (GET /webhooks/deliveries): accepted deliveries, never their payload or signature.
CREATE TABLE inbound_webhooks (
    id                  uuid        NOT NULL DEFAULT gen_random_uuid(),
    organization_id     uuid        NOT NULL,
    provider            text        NOT NULL,
    event_type          text        NOT NULL,
    matched_queue       text,
    job_id              uuid,
    status              text        NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT inbound_webhooks_pk PRIMARY KEY (id),
    CONSTRAINT inbound_webhooks_organization_fk FOREIGN KEY (organization_id) REFERENCES organizations (id)
        ON DELETE CASCADE,
    CONSTRAINT inbound_webhooks_status_check CHECK (status IN ('created', 'duplicate'))
);
CREATE INDEX inbound_webhooks_organization_idx ON inbound_webhooks (organization_id, created_at DESC, id DESC);

-- Events (docs/architecture.md "Events"). Every job transition writes job history in the same statement; the
-- statement-level trigger on job_history turns those rows into claim wakeups, realtime NOTIFYs (only for
-- organizations some server instance has live subscribers for) and outbox rows for the webhooks that subscribe
-- (and for jobs with a completion webhook). Queue pause/resume and worker (de)registration go through row
-- triggers on their tables into the same `spooled_emit`.

-- Server instances with live realtime subscribers, per organization (a row per instance and org, refreshed while
-- subscribers stay; a crashed instance's rows simply expire). The triggers NOTIFY only for orgs listed here.
CREATE TABLE event_listeners (
    organization_id     uuid        NOT NULL,
    instance_id         uuid        NOT NULL,
    expires_at          timestamptz NOT NULL,
    CONSTRAINT event_listeners_pk PRIMARY KEY (organization_id, instance_id)
);

-- The outgoing event name of a job history row (NULL: no webhook event, e.g. a scheduled job becoming due).
CREATE FUNCTION spooled_job_event_name(p_event text, p_new job_status) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT CASE
        WHEN p_event = 'created' THEN 'job.created'
        WHEN p_event = 'started' THEN 'job.started'
        WHEN p_event = 'completed' THEN 'job.completed'
        WHEN p_event IN ('failed', 'lease_expired') THEN 'job.failed'
        WHEN p_event = 'deadletter' THEN 'job.deadlettered'
        WHEN p_event IN ('cancelled', 'expired') THEN 'job.cancelled'
        WHEN p_event = 'retried' THEN 'job.retried'
        WHEN p_event IN ('ready', 'released') THEN NULL
        -- a transition added later without a name of its own: named by where it led
        WHEN p_new = 'processing' THEN 'job.started'
        WHEN p_new = 'completed' THEN 'job.completed'
        WHEN p_new = 'deadletter' THEN 'job.deadlettered'
        WHEN p_new = 'failed' THEN 'job.failed'
        WHEN p_new = 'cancelled' THEN 'job.cancelled'
    END
$fn$;

-- One non-job event (queue.*, worker.*): outbox rows for the org's subscribed webhooks, a NOTIFY for realtime
-- when some instance listens for the org.
CREATE FUNCTION spooled_emit(p_org uuid, p_event text, p_data json) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    ev text;
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, organization_id, event, payload)
    SELECT w.id, p_org, p_event, p_data FROM webhooks w
    WHERE w.organization_id = p_org AND w.enabled AND p_event = ANY (w.events);
    IF FOUND THEN
        PERFORM pg_notify('spooled_webhooks', '');
    END IF;
    IF EXISTS (SELECT 1 FROM event_listeners l WHERE l.organization_id = p_org AND l.expires_at > now()) THEN
        ev := json_build_array(json_build_object('org', p_org, 'event', p_event, 'data', p_data, 'at', now()))::text;
        IF octet_length(ev) > 7900 THEN     -- (a worker of many queues): its names only, under the NOTIFY limit
            ev := json_build_array(json_build_object('org', p_org, 'event', p_event, 'at', now(), 'data',
                json_build_object('worker_id', p_data ->> 'worker_id', 'queue_name', p_data ->> 'queue_name',
                                  'truncated', true)))::text;
        END IF;
        PERFORM pg_notify('spooled_events', ev);
    END IF;
END
$fn$;

-- The job events of one statement's history rows. The common case (nobody subscribed) is one query over the
-- statement's rows: any claimable jobs, any listener or webhook for their orgs, any completion webhook among the
-- finished jobs (a probe of a nearly empty partial index). Measured in docs/benchmarks.md "Events".
CREATE FUNCTION spooled_job_history_events() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    claimable boolean;
    listening boolean;
    subscribed boolean;
    completion boolean;
    outbox int := 0;
    n int := 0;
BEGIN
    SELECT bool_or(h.new_status = 'pending'),
           EXISTS (SELECT 1 FROM new_rows r JOIN event_listeners l ON l.organization_id = r.organization_id
                   WHERE l.expires_at > now()),
           EXISTS (SELECT 1 FROM new_rows r JOIN webhooks w ON w.organization_id = r.organization_id AND w.enabled),
           EXISTS (SELECT 1 FROM new_rows r JOIN jobs j ON j.id = r.job_id AND j.completion_webhook IS NOT NULL
                   WHERE r.new_status IN ('completed', 'failed', 'deadletter', 'cancelled'))
    INTO claimable, listening, subscribed, completion
    FROM new_rows h;

    IF claimable THEN
        -- claim wakeups: "<org> <queue> <n>" per queue that got claimable jobs
        PERFORM pg_notify('spooled_jobs', j.organization_id::text || ' ' || j.queue_name || ' ' || count(*))
        FROM new_rows h JOIN jobs j ON j.id = h.job_id
        WHERE h.new_status = 'pending'
        GROUP BY j.organization_id, j.queue_name;
    END IF;

    IF listening THEN
        -- realtime: JSON arrays of events, each NOTIFY under PostgreSQL's 8000-byte payload limit (an event is
        -- at most ~2.2 kB: ids, a queue name, a worker id of <= 128 characters, 300 characters of error)
        PERFORM pg_notify('spooled_events', '[' || string_agg(e.ev, ',' ORDER BY e.id) || ']')
        FROM (
            SELECT x.id, x.ev, (sum(octet_length(x.ev)) OVER (ORDER BY x.id) - octet_length(x.ev)) / 5000 AS chunk
            FROM (
                SELECT h.id, json_strip_nulls(json_build_object(
                    'org', h.organization_id, 'event', h.event_type, 'job_id', h.job_id,
                    'queue_name', j.queue_name, 'old_status', h.old_status, 'new_status', h.new_status,
                    'worker_id', h.worker_id, 'retry_count', j.retry_count,
                    'error', left(h.details ->> 'error', 300), 'at', h.created_at))::text AS ev
                FROM new_rows h JOIN jobs j ON j.id = h.job_id
                WHERE h.organization_id IN (SELECT l.organization_id FROM event_listeners l
                                            WHERE l.expires_at > now())
            ) x
        ) e
        GROUP BY e.chunk;
    END IF;

    IF subscribed THEN
        INSERT INTO webhook_deliveries (webhook_id, organization_id, event, payload)
        SELECT w.id, h.organization_id, e.name,
               json_build_object('job_id', h.job_id, 'queue_name', j.queue_name, 'status', h.new_status,
                                 'old_status', h.old_status, 'retry_count', j.retry_count, 'result', j.result,
                                 'last_error', j.last_error)
        FROM new_rows h
        CROSS JOIN LATERAL (SELECT spooled_job_event_name(h.event_type, h.new_status) AS name) e
        JOIN webhooks w ON w.organization_id = h.organization_id AND w.enabled AND e.name = ANY (w.events)
        JOIN jobs j ON j.id = h.job_id
        ORDER BY h.id, w.id;
        GET DIAGNOSTICS outbox = ROW_COUNT;
    END IF;

    IF completion THEN
        -- per-job completion webhooks, once the job is finished
        INSERT INTO webhook_deliveries (organization_id, event, payload, url, secret, job_id)
        SELECT h.organization_id, spooled_job_event_name(h.event_type, h.new_status),
               json_build_object('job_id', h.job_id, 'queue_name', j.queue_name, 'status', h.new_status,
                                 'old_status', h.old_status, 'retry_count', j.retry_count, 'result', j.result,
                                 'last_error', j.last_error),
               j.completion_webhook, j.completion_webhook_secret, j.id
        FROM new_rows h JOIN jobs j ON j.id = h.job_id AND j.completion_webhook IS NOT NULL
        WHERE h.new_status IN ('completed', 'failed', 'deadletter', 'cancelled')
        ORDER BY h.id;
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;

    IF outbox + n > 0 THEN
        PERFORM pg_notify('spooled_webhooks', '');
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER job_history_events AFTER INSERT ON job_history REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION spooled_job_history_events();

-- queue.paused / queue.resumed (a resume also wakes every claimer of the queue).
CREATE FUNCTION spooled_queue_events() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF NEW.paused THEN
        PERFORM spooled_emit(NEW.organization_id, 'queue.paused', json_build_object('queue_name', NEW.name));
    ELSE
        PERFORM pg_notify('spooled_jobs', NEW.organization_id::text || ' ' || NEW.name || ' all');
        PERFORM spooled_emit(NEW.organization_id, 'queue.resumed', json_build_object('queue_name', NEW.name));
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER queues_events AFTER UPDATE OF paused ON queues
    FOR EACH ROW WHEN (OLD.paused IS DISTINCT FROM NEW.paused) EXECUTE FUNCTION spooled_queue_events();

-- worker.registered (a new worker, or one coming back from offline) / worker.deregistered (going offline).
CREATE FUNCTION spooled_worker_events() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM spooled_emit(NEW.organization_id,
                         CASE WHEN NEW.status = 'offline' THEN 'worker.deregistered' ELSE 'worker.registered' END,
                         json_build_object('worker_id', NEW.id, 'queue_name', NEW.queue_names[1],
                                           'queue_names', NEW.queue_names, 'hostname', NEW.hostname));
    RETURN NULL;
END
$fn$;

CREATE TRIGGER workers_registered AFTER INSERT ON workers
    FOR EACH ROW EXECUTE FUNCTION spooled_worker_events();
CREATE TRIGGER workers_status_events AFTER UPDATE OF status ON workers
    FOR EACH ROW WHEN ((OLD.status = 'offline') IS DISTINCT FROM (NEW.status = 'offline'))
    EXECUTE FUNCTION spooled_worker_events();

-- A cron schedule: each fire enqueues one job from the template (services/schedules.py). `next_run_at` is the
-- next fire time to wait for (NULL while paused); the scheduler takes due rows FOR UPDATE SKIP LOCKED and
-- advances it in the same transaction that records the fire's run.
CREATE TABLE schedules (
    id                  uuid        NOT NULL,
    organization_id     uuid        NOT NULL,
    name                text        NOT NULL,
    description         text,
    cron_expression     text        NOT NULL,
    timezone            text        NOT NULL DEFAULT 'UTC',
    queue_name          text        NOT NULL,
    payload_template    json        NOT NULL,
    priority            int         NOT NULL DEFAULT 0,
    max_retries         int         NOT NULL DEFAULT 3,
    timeout_seconds     int         NOT NULL DEFAULT 300,
    tags                json,
    metadata            json,
    catch_up            text        NOT NULL DEFAULT 'latest',
    overlap             text        NOT NULL DEFAULT 'allow',
    is_active           boolean     NOT NULL DEFAULT true,
    last_run_at         timestamptz,
    next_run_at         timestamptz,
    run_count           bigint      NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedules_pk PRIMARY KEY (id),
    CONSTRAINT schedules_organization_fk FOREIGN KEY (organization_id) REFERENCES organizations (id) ON DELETE CASCADE,
    CONSTRAINT schedules_catch_up_check CHECK (catch_up IN ('latest', 'all', 'skip')),
    CONSTRAINT schedules_overlap_check CHECK (overlap IN ('allow', 'skip')),
    CONSTRAINT schedules_priority_check CHECK (priority BETWEEN -100 AND 100),
    CONSTRAINT schedules_max_retries_check CHECK (max_retries BETWEEN 0 AND 100),
    CONSTRAINT schedules_timeout_check CHECK (timeout_seconds BETWEEN 1 AND 86400)
);
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE is_active;
CREATE INDEX schedules_org_idx ON schedules (organization_id, created_at, id);

-- One row per fire (or manual trigger). state 'fired' is a promise to enqueue exactly one job: it is written in
-- the transaction that advances next_run_at, and job_id is filled once the job exists (the enqueue carries the
-- run's id in its idempotency key, so retrying an unfilled run after a crash cannot enqueue twice; another
-- instance retries it once enqueue_after passes). 'skipped' (overlap policy) and 'error' (the enqueue was
-- refused) have no job. A fired run's status as clients see it follows its job.
CREATE TABLE schedule_runs (
    id                  uuid        NOT NULL,
    schedule_id         uuid        NOT NULL,
    organization_id     uuid        NOT NULL,
    fire_time           timestamptz NOT NULL,
    manual              boolean     NOT NULL DEFAULT false,
    state               text        NOT NULL DEFAULT 'fired',
    job_id              uuid,
    error_message       text,
    enqueue_after       timestamptz,
    started_at          timestamptz NOT NULL DEFAULT now(),
    completed_at        timestamptz,
    CONSTRAINT schedule_runs_pk PRIMARY KEY (id),
    CONSTRAINT schedule_runs_schedule_fk FOREIGN KEY (schedule_id) REFERENCES schedules (id) ON DELETE CASCADE,
    CONSTRAINT schedule_runs_state_check CHECK (state IN ('fired', 'skipped', 'error'))
);
-- Each cron fire time of a schedule is recorded at most once.
CREATE UNIQUE INDEX schedule_runs_fire_key ON schedule_runs (schedule_id, fire_time) WHERE NOT manual;
CREATE INDEX schedule_runs_history_idx ON schedule_runs (schedule_id, started_at DESC, fire_time DESC, id DESC);
CREATE INDEX schedule_runs_unfilled_idx ON schedule_runs (enqueue_after) WHERE state = 'fired' AND job_id IS NULL;

-- Dashboard summary: finished jobs of an organization by state and time (counts over the last hour/day and the
-- dead-letter count read a bounded range of it instead of the organization's whole history).
CREATE INDEX jobs_org_finished_idx ON jobs (organization_id, status, completed_at) WHERE completed_at IS NOT NULL;

-- Jobs created per organization and UTC day (plan quota "jobs per day"): each instance adds its counts here
-- every few seconds (services/quotas.py), so the hot path never counts jobs.
CREATE TABLE org_usage_daily (
    organization_id     uuid        NOT NULL,
    day                 date        NOT NULL,
    jobs_created        bigint      NOT NULL DEFAULT 0,
    CONSTRAINT org_usage_daily_pk PRIMARY KEY (organization_id, day),
    CONSTRAINT org_usage_daily_organization_fk FOREIGN KEY (organization_id) REFERENCES organizations (id)
        ON DELETE CASCADE
);

-- Passwordless email login: 6-digit codes, stored as an HMAC only. A start for an address no organization
-- has is recorded too (code_hash NULL, never matches), so its 200 and its hourly limit look the same.
CREATE TABLE email_login_codes (
    id                  uuid        NOT NULL DEFAULT gen_random_uuid(),
    email               text        NOT NULL,
    code_hash           bytea,
    attempts            int         NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    used_at             timestamptz,
    CONSTRAINT email_login_codes_pk PRIMARY KEY (id)
);
CREATE INDEX email_login_codes_email_idx ON email_login_codes (email, created_at DESC);

-- Stripe events received on /billing/webhook: each id is processed once (the insert and the plan change
-- are one transaction); `applied` is false for an event older than the state it would have overwritten.
CREATE TABLE stripe_events (
    id                  text        NOT NULL,
    type                text        NOT NULL,
    event_at            timestamptz NOT NULL,
    organization_id     uuid,
    applied             boolean     NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stripe_events_pk PRIMARY KEY (id)
);

-- Live server instances (heartbeat every few seconds): rate-limit buckets are sized by their count.
CREATE TABLE server_instances (
    id                  uuid        NOT NULL,
    hostname            text        NOT NULL,
    started_at          timestamptz NOT NULL DEFAULT now(),
    heartbeat_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT server_instances_pk PRIMARY KEY (id)
);

-- The migrations this file contains (keep in step with store/migrations/).
INSERT INTO spooled_schema (version) VALUES (1), (2), (3), (4), (5);
