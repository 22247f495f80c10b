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
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);     -- retention: expired tokens

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

-- A workflow: a DAG of jobs created in one transaction (services/workflows.py); its counts and status are
-- kept true by the dependency triggers below, in the transaction that moves each of its jobs.
CREATE TABLE workflows (
    id                  uuid        NOT NULL,
    organization_id     uuid        NOT NULL,
    name                text        NOT NULL,
    description         text,
    metadata            json,
    status              text        NOT NULL DEFAULT 'pending',
    total_jobs          int         NOT NULL,
    completed_jobs      int         NOT NULL DEFAULT 0,
    failed_jobs         int         NOT NULL DEFAULT 0,
    cancelled_jobs      int         NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    started_at          timestamptz,
    completed_at        timestamptz,
    CONSTRAINT workflows_pk PRIMARY KEY (id),
    CONSTRAINT workflows_organization_fk FOREIGN KEY (organization_id) REFERENCES organizations (id) ON DELETE CASCADE,
    CONSTRAINT workflows_status_check CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    CONSTRAINT workflows_name_check CHECK (length(name) BETWEEN 1 AND 255)
);
CREATE INDEX workflows_org_created_idx ON workflows (organization_id, created_at DESC, id DESC);
CREATE INDEX workflows_org_status_idx ON workflows (organization_id, status, created_at DESC, id DESC);
-- Retention: finished workflows of an organization by state and time.
CREATE INDEX workflows_finished_idx ON workflows (organization_id, status, completed_at) WHERE completed_at IS NOT NULL;

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
    -- 'all' or 'any' on every job that takes part in dependencies (workflow jobs, jobs that gained dependencies
    -- or dependents); NULL on the rest, whose changes the dependency triggers never see
    dependency_mode     text,
    dependencies_met    boolean     NOT NULL DEFAULT true,
    completed_lease_id  uuid,           -- the lease that completed the job (idempotent replays), never returned
    -- cancelled by the dependency rules (a dependency ended without completing): revived if that one is retried
    cancelled_by_dependency boolean NOT NULL DEFAULT false,
    traceparent         text,           -- W3C trace context given at enqueue, handed to the claiming worker
    tracestate          text,
    -- the worker of the job's latest lease, kept after it ends (assigned_worker_id is cleared): replays of a
    -- worker-fenced completion, and the worker of the events the job row stands for (docs/architecture.md)
    last_worker_id      text,
    CONSTRAINT jobs_pk PRIMARY KEY (id),
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
-- The organization and the workflow of a job are checked and cascaded by statement triggers, not foreign keys:
-- a foreign key's check was a query per inserted row (~2 µs each, a fifth of an enqueue's database cost;
-- migration 0016): spooled_jobs_inserted, spooled_organizations_deleted, spooled_workflows_deleted.

-- Claim path: the ready jobs of one queue in claim order (a partial index holds only pending rows whose
-- dependencies are met: a job waiting for others is not in it, so it costs the claim nothing).
CREATE INDEX jobs_ready_idx ON jobs (organization_id, queue_name, priority DESC, run_at, id)
    WHERE status = 'pending' AND dependencies_met;
CREATE INDEX jobs_workflow_idx ON jobs (workflow_id) WHERE workflow_id IS NOT NULL;
-- Reaper: leases to expire (and every processing job: the jobs of a lost worker, the dashboard's running counts),
-- scheduled jobs to promote, pending/scheduled jobs to expire.
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'processing';
CREATE INDEX jobs_scheduled_idx ON jobs (run_at) WHERE status = 'scheduled';
CREATE INDEX jobs_expires_idx ON jobs (expires_at) WHERE expires_at IS NOT NULL AND status IN ('pending', 'scheduled');
-- The jobs not finished and not ready (ready ones: jobs_ready_idx), by organization, state and queue: with
-- jobs_ready_idx every active job by organization (quotas, the dashboard's running counts, a queue's active
-- jobs, a deletion's check). An enqueue of a ready job and a completion write no entry into it. Listing and
-- the reads of all of a queue's jobs go through job_list (below).
CREATE INDEX jobs_org_active_idx ON jobs (organization_id, status, queue_name)
    WHERE status IN ('scheduled', 'processing') OR (status = 'pending' AND NOT dependencies_met);
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (organization_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- The event trigger's "does a finished job of this statement have a completion webhook" probe (nearly always empty).
CREATE INDEX jobs_completion_webhook_idx ON jobs (id) WHERE completion_webhook IS NOT NULL;

-- The ready jobs of one queue to lease (pending, dependencies met), in claim order, locked (SKIP LOCKED), or
-- none while the queue is paused.
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
        WHERE j.organization_id = p_org AND j.queue_name = p_queue AND j.status = 'pending' AND j.dependencies_met
          AND (j.expires_at IS NULL OR j.expires_at > p_now)
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT p_limit
        FOR UPDATE OF j SKIP LOCKED;
END
$fn$;

-- The claim itself: lease the ready jobs spooled_ready_jobs picks to one or several claimers, as one statement
-- (the row records the claim: started_at and last_worker_id, no history row; migration 0010). Concurrent claimers
-- of a queue share it (services/grouping.py): jobs go claimer after claimer in the order given, in claim order, so
-- the first claimer gets the first `p_limits[1]` jobs, the next the following ones; each job gets its own lease,
-- its claimer's worker and lease duration; `claimer` is the claimer's ordinal (1-based) in the arrays, `more`
-- whether ready jobs are left (the claimers' wakeups pass on only then; migration 0015). A function only to pin its plan: a prepared statement keeps the generic plan made when it was first run,
-- and made on a small (or never analyzed) jobs table that plan joined the picked ids to jobs with a sequential scan,
-- read on every claim once the table had grown (measured: 1,500 buffers and ~2 ms per claim at 20,000 rows, until
-- an autovacuum replanned it). With sequential scans off the join is by primary key whatever the statistics said
-- (and with JIT off: a plan costed by disabled scans must never pay for compiling itself). Generic plans only: a
-- custom plan sees the arrays' length, so for one claimer it looked cheaper than the generic plan and the query was
-- planned again on every call (measured: 560 against 230 µs of backend CPU per single claim).
CREATE FUNCTION spooled_claim_jobs_for(p_org uuid, p_queue text, p_now timestamptz, p_workers text[],
                                       p_limits int[], p_lease_secs float8[])
RETURNS TABLE (claimer int, job jobs, more boolean) LANGUAGE plpgsql ROWS 10
SET enable_seqscan = off SET jit = off SET plan_cache_mode = force_generic_plan AS $fn$
BEGIN
    RETURN QUERY
        WITH w AS (
            SELECT x.ord::int AS ord, x.worker, x.lease_secs, sum(x.n) OVER (ORDER BY x.ord) - x.n AS past
            FROM unnest(p_workers, p_limits, p_lease_secs) WITH ORDINALITY AS x(worker, n, lease_secs, ord)
        ), c AS (
            SELECT r.id, r.rank FROM spooled_ready_jobs(p_org, p_queue,
                                                        (SELECT sum(n)::int FROM unnest(p_limits) AS n), p_now)
                                     WITH ORDINALITY AS r(id, rank)
        ), a AS (
            SELECT c.id, w.ord, w.worker, w.lease_secs
            FROM c JOIN w ON c.rank > w.past AND c.rank <= w.past + p_limits[w.ord]
        ), u AS (
            UPDATE jobs j SET status = 'processing', lease_id = gen_random_uuid(),
                              lease_expires_at = p_now + make_interval(secs => a.lease_secs),
                              assigned_worker_id = a.worker, last_worker_id = a.worker, started_at = p_now,
                              updated_at = p_now
            FROM a WHERE j.id = a.id
            RETURNING a.ord, j
        )
        SELECT u.ord, u.j, EXISTS (      -- ready jobs left beyond these (or held by other claimers right now)
            SELECT 1 FROM jobs r
            WHERE r.organization_id = p_org AND r.queue_name = p_queue AND r.status = 'pending' AND r.dependencies_met
              AND (r.expires_at IS NULL OR r.expires_at > p_now) AND r.id NOT IN (SELECT c.id FROM c))
        FROM u;
END
$fn$;

-- The single claim is a group of one (the same rules, one text of them).
CREATE FUNCTION spooled_claim_jobs(p_org uuid, p_queue text, p_limit int, p_now timestamptz, p_worker text,
                                   p_lease_secs float8)
RETURNS SETOF jobs LANGUAGE plpgsql ROWS 10 AS $fn$
BEGIN
    RETURN QUERY
        SELECT (c.job).* FROM spooled_claim_jobs_for(p_org, p_queue, p_now, ARRAY[p_worker], ARRAY[p_limit],
                                                     ARRAY[p_lease_secs]) AS c;
END
$fn$;

ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_cost_delay = 0,
                      autovacuum_analyze_scale_factor = 0.02);

-- What never changes of a job (organization, queue, creation time, id), one row per job, written with it (the
-- jobs_inserted trigger) and deleted with it (jobs_deleted): listing and the reads of a queue's jobs, joined to
-- `jobs` by id. On `jobs` a claim and a completion (non-HOT updates: the status is in index predicates) write an
-- entry into every full index; these two indexes cost them nothing (migration 0016, docs/architecture.md).
CREATE TABLE job_list (
    organization_id     uuid        NOT NULL,
    queue_name          text        NOT NULL,
    created_at          timestamptz NOT NULL,
    id                  uuid        NOT NULL
);
-- The listing's keyset (and the dashboard's totals); a queue's jobs are found through the partial indexes of
-- jobs (ready, active, finished by queue), so this is the only index an enqueue writes here.
CREATE INDEX job_list_org_created_idx ON job_list (organization_id, created_at DESC, id DESC);

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
    CONSTRAINT job_history_pk PRIMARY KEY (id)
);
CREATE INDEX job_history_job_idx ON job_history (job_id, id);

-- A job's history goes with it. Not a foreign key: its check ran once per history row (a query per row, about a
-- third of a history row's cost); rows are written only by the statements that move their job, which hold it.
-- Sequential scans off: the trigger's plan is cached per connection, and one made while job_history was small
-- would read the whole grown table on every later delete (a retention batch, a queue deleted with its jobs).
CREATE FUNCTION spooled_jobs_deleted() RETURNS trigger LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
BEGIN
    DELETE FROM job_history h USING old_rows o WHERE h.job_id = o.id;
    DELETE FROM job_list l USING old_rows o
    WHERE l.organization_id = o.organization_id AND l.created_at = o.created_at AND l.id = o.id;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER jobs_deleted AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION spooled_jobs_deleted();

-- The cascades of the foreign keys onto organizations and workflows (spooled_jobs_inserted checks the insert):
-- deleting an organization or a workflow deletes its jobs (their history and job_list rows go with them).
-- Row triggers, as the foreign keys' cascades were (a deleted organization or workflow is rare; a statement
-- trigger would run for every delete statement, whether it deleted a row or not).
CREATE FUNCTION spooled_organizations_deleted() RETURNS trigger LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
BEGIN
    DELETE FROM jobs WHERE id = ANY (ARRAY(SELECT l.id FROM job_list l WHERE l.organization_id = OLD.id));
    RETURN NULL;
END
$fn$;

CREATE TRIGGER organizations_deleted AFTER DELETE ON organizations
    FOR EACH ROW EXECUTE FUNCTION spooled_organizations_deleted();

CREATE FUNCTION spooled_workflows_deleted() RETURNS trigger LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
BEGIN
    DELETE FROM jobs WHERE workflow_id = OLD.id;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER workflows_deleted AFTER DELETE ON workflows
    FOR EACH ROW EXECUTE FUNCTION spooled_workflows_deleted();

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
CREATE INDEX workers_offline_idx ON workers (last_heartbeat) WHERE status = 'offline';   -- retention

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
-- Retention: done webhook deliveries of an organization by time (pending ones are the dispatcher's).
CREATE INDEX webhook_deliveries_done_idx ON webhook_deliveries (organization_id, created_at) WHERE status <> 'pending';

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

-- One job event as the event triggers hand it on (seq: its order within the statement).
CREATE TYPE spooled_job_event AS (
    seq                 bigint,
    job_id              uuid,
    organization_id     uuid,
    queue_name          text,
    event_type          text,
    old_status          job_status,
    new_status          job_status,
    worker_id           text,
    retry_count         int,
    error               text,
    result              json,
    last_error          text,
    completion_webhook  text,
    completion_webhook_secret text,
    at                  timestamptz
);

-- A statement's job events, once its trigger knows someone may want them: realtime NOTIFYs (JSON arrays, each
-- under PostgreSQL's 8000-byte payload limit: an event is at most ~2.2 kB, ids, a queue name, a worker id of
-- <= 128 characters, 300 characters of error) for the orgs some instance listens for, an outbox row per
-- (event, subscribed webhook), an outbox row for each job finished with a completion webhook, and one wake-up
-- NOTIFY for the dispatchers when any outbox row was written.
CREATE FUNCTION spooled_publish_job_events(p_events spooled_job_event[], p_listening boolean, p_subscribed boolean)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    outbox int := 0;
    n int := 0;
BEGIN
    IF p_listening THEN
        PERFORM pg_notify('spooled_events', '[' || string_agg(e.ev, ',' ORDER BY e.seq) || ']')
        FROM (
            SELECT x.seq, x.ev, (sum(octet_length(x.ev)) OVER (ORDER BY x.seq) - octet_length(x.ev)) / 5000 AS chunk
            FROM (
                SELECT h.seq, json_strip_nulls(json_build_object(
                    'org', h.organization_id, 'event', h.event_type, 'job_id', h.job_id,
                    'queue_name', h.queue_name, 'old_status', h.old_status, 'new_status', h.new_status,
                    'worker_id', h.worker_id, 'retry_count', h.retry_count,
                    'error', left(h.error, 300), 'at', h.at))::text AS ev
                FROM unnest(p_events) h
                WHERE h.organization_id IN (SELECT l.organization_id FROM event_listeners l
                                            WHERE l.expires_at > now())
            ) x
        ) e
        GROUP BY e.chunk;
    END IF;

    IF p_subscribed THEN
        INSERT INTO webhook_deliveries (webhook_id, organization_id, event, payload)
        SELECT w.id, h.organization_id, e.name,
               json_build_object('job_id', h.job_id, 'queue_name', h.queue_name, 'status', h.new_status,
                                 'old_status', h.old_status, 'retry_count', h.retry_count, 'result', h.result,
                                 'last_error', h.last_error)
        FROM unnest(p_events) h
        CROSS JOIN LATERAL (SELECT spooled_job_event_name(h.event_type, h.new_status) AS name) e
        JOIN webhooks w ON w.organization_id = h.organization_id AND w.enabled AND e.name = ANY (w.events)
        ORDER BY h.seq, w.id;
        GET DIAGNOSTICS outbox = ROW_COUNT;
    END IF;

    -- per-job completion webhooks, once the job is finished
    INSERT INTO webhook_deliveries (organization_id, event, payload, url, secret, job_id)
    SELECT h.organization_id, spooled_job_event_name(h.event_type, h.new_status),
           json_build_object('job_id', h.job_id, 'queue_name', h.queue_name, 'status', h.new_status,
                             'old_status', h.old_status, 'retry_count', h.retry_count, 'result', h.result,
                             'last_error', h.last_error),
           h.completion_webhook, h.completion_webhook_secret, h.job_id
    FROM unnest(p_events) h
    WHERE h.completion_webhook IS NOT NULL AND h.new_status IN ('completed', 'failed', 'deadletter', 'cancelled')
    ORDER BY h.seq;
    GET DIAGNOSTICS n = ROW_COUNT;

    IF outbox + n > 0 THEN
        PERFORM pg_notify('spooled_webhooks', '');
    END IF;
END
$fn$;

-- The events of one statement's history rows: every transition but the three a job row records itself
-- (created, started, completed: the jobs triggers below). A `created` row (a job created scheduled: its first
-- status) and a `started` row (written when a lease ends other than by completing: spooled_lease_ended) record
-- events those triggers emitted when they happened, so they emit nothing here. The common case (nobody
-- subscribed) is one query over the statement's rows: any claimable jobs, any listener or webhook for their
-- orgs, any completion webhook among the finished jobs (a probe of a nearly empty partial index). Measured in
-- docs/benchmarks.md "Events".
CREATE FUNCTION spooled_job_history_events() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    claimable boolean;
    listening boolean;
    subscribed boolean;
    completion boolean;
    ev spooled_job_event[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows) THEN     -- an enqueue of jobs none of which was created scheduled
        RETURN NULL;
    END IF;
    SELECT bool_or(h.new_status = 'pending'),
           EXISTS (SELECT 1 FROM new_rows r JOIN event_listeners l ON l.organization_id = r.organization_id
                   WHERE l.expires_at > now() AND r.event_type NOT IN ('created', 'started')),
           EXISTS (SELECT 1 FROM new_rows r JOIN webhooks w ON w.organization_id = r.organization_id AND w.enabled
                   WHERE r.event_type NOT IN ('created', 'started')),
           EXISTS (SELECT 1 FROM new_rows r JOIN jobs j ON j.id = r.job_id AND j.completion_webhook IS NOT NULL
                   WHERE r.new_status IN ('completed', 'failed', 'deadletter', 'cancelled'))
    INTO claimable, listening, subscribed, completion
    FROM new_rows h;

    IF claimable THEN
        -- claim wakeups: "<org> <queue> <n>" per queue that got claimable jobs (a workflow job waiting for its
        -- dependencies is pending but not claimable)
        PERFORM pg_notify('spooled_jobs', j.organization_id::text || ' ' || j.queue_name || ' ' || count(*))
        FROM new_rows h JOIN jobs j ON j.id = h.job_id
        WHERE h.new_status = 'pending' AND j.dependencies_met
        GROUP BY j.organization_id, j.queue_name;
    END IF;

    IF listening OR subscribed OR completion THEN
        SELECT array_agg(ROW(h.id, h.job_id, h.organization_id, j.queue_name, h.event_type, h.old_status,
                             h.new_status, h.worker_id, j.retry_count, h.details ->> 'error', j.result,
                             j.last_error, j.completion_webhook, j.completion_webhook_secret,
                             h.created_at)::spooled_job_event ORDER BY h.id)
        INTO ev
        FROM new_rows h JOIN jobs j ON j.id = h.job_id
        WHERE h.event_type NOT IN ('created', 'started');
        PERFORM spooled_publish_job_events(ev, listening, subscribed) WHERE ev IS NOT NULL;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER job_history_events AFTER INSERT ON job_history REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION spooled_job_history_events();

-- Job events from the job rows (docs/architecture.md "Events"). A job's creation, its claim and its completion
-- write no history row: the row itself records them (created_at; started_at and last_worker_id of its latest
-- lease; completed_at), the `job_events` view shows them, and these statement-level triggers emit their events
-- as the history trigger does for every other transition: claim wakeups for new claimable jobs, and, only when
-- some instance listens for the org, a webhook subscribes or a finished job has a completion webhook, the events
-- themselves (spooled_publish_job_events).
CREATE FUNCTION spooled_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    listening boolean;
    subscribed boolean;
    ev spooled_job_event[];
    v_org text;           -- the statement's organization (and queue) when it has one: min = max
    v_org_last text;
    v_queue text;
    v_queue_last text;
    ready bigint;
    scheduled bigint;
    orgs int;
    flows int;
    locked int;
BEGIN
    -- The listing rows, and in the same statement what the rest needs to know of the new jobs. An enqueue's jobs
    -- are one organization's and one queue's (job_insert), the short paths below: each statement of a trigger
    -- costs ~10 µs, a one-job enqueue ran five (migration 0018).
    WITH l AS (
        INSERT INTO job_list (organization_id, queue_name, created_at, id)
        SELECT n.organization_id, n.queue_name, n.created_at, n.id FROM new_rows n
    )
    SELECT min(n.organization_id::text), max(n.organization_id::text), min(n.queue_name), max(n.queue_name),
           count(*) FILTER (WHERE n.status = 'pending' AND n.dependencies_met),
           count(*) FILTER (WHERE n.status = 'scheduled'), count(n.workflow_id)
    INTO v_org, v_org_last, v_queue, v_queue_last, ready, scheduled, flows
    FROM new_rows n;
    IF v_org IS NULL THEN       -- no row inserted (every idempotency key taken): nothing to check, wake or emit
        RETURN NULL;
    END IF;
    -- What the foreign keys onto organizations and workflows checked, once per statement: each new job's
    -- organization (and workflow) exists, key-share locked as a foreign key locks it, so it cannot be deleted
    -- before this transaction ends (a delete that commits first leaves nothing to lock: the insert fails).
    IF flows > 0 THEN
        SELECT count(DISTINCT n.workflow_id) INTO flows FROM new_rows n;
        PERFORM 1 FROM workflows w WHERE w.id IN (SELECT n.workflow_id FROM new_rows n) FOR KEY SHARE OF w;
        GET DIAGNOSTICS locked = ROW_COUNT;
        IF locked < flows THEN
            RAISE foreign_key_violation USING MESSAGE = 'a job''s workflow does not exist',
                CONSTRAINT = 'jobs_workflow_fk', TABLE = 'jobs';
        END IF;
    END IF;
    IF v_org = v_org_last THEN      -- one organization: locked, and its listeners and webhooks probed, at once
        orgs := 1;
        SELECT EXISTS (SELECT 1 FROM event_listeners l
                       WHERE l.organization_id = v_org::uuid AND l.expires_at > now()),
               EXISTS (SELECT 1 FROM webhooks w WHERE w.organization_id = v_org::uuid AND w.enabled)
        INTO listening, subscribed
        FROM organizations o WHERE o.id = v_org::uuid FOR KEY SHARE OF o;
        GET DIAGNOSTICS locked = ROW_COUNT;
    ELSE
        SELECT count(DISTINCT n.organization_id) INTO orgs FROM new_rows n;
        PERFORM 1 FROM organizations o WHERE o.id IN (SELECT n.organization_id FROM new_rows n) FOR KEY SHARE OF o;
        GET DIAGNOSTICS locked = ROW_COUNT;
        SELECT EXISTS (SELECT 1 FROM event_listeners l
                       WHERE l.organization_id IN (SELECT n.organization_id FROM new_rows n) AND l.expires_at > now()),
               EXISTS (SELECT 1 FROM webhooks w
                       WHERE w.organization_id IN (SELECT n.organization_id FROM new_rows n) AND w.enabled)
        INTO listening, subscribed;
    END IF;
    IF locked < orgs THEN
        RAISE foreign_key_violation USING MESSAGE = 'a job''s organization does not exist',
            CONSTRAINT = 'jobs_organization_fk', TABLE = 'jobs';
    END IF;
    -- The job row records its creation; a job created scheduled also gets a `created` history row (its first
    -- status; its events are this trigger's, so the history trigger emits none for it).
    IF scheduled > 0 THEN
        INSERT INTO job_history (job_id, organization_id, event_type, new_status, created_at)
        SELECT n.id, n.organization_id, 'created', n.status, n.created_at FROM new_rows n WHERE n.status = 'scheduled';
    END IF;
    -- claim wakeups: "<org> <queue> <n>" per queue that got claimable jobs
    IF v_org = v_org_last AND v_queue = v_queue_last THEN
        IF ready > 0 THEN
            PERFORM pg_notify('spooled_jobs', v_org || ' ' || v_queue || ' ' || ready);
        END IF;
    ELSE
        PERFORM pg_notify('spooled_jobs', n.organization_id::text || ' ' || n.queue_name || ' ' || count(*))
        FROM new_rows n
        WHERE n.status = 'pending' AND n.dependencies_met
        GROUP BY n.organization_id, n.queue_name;
    END IF;

    IF listening OR subscribed THEN
        SELECT array_agg(ROW(x.seq, x.id, x.organization_id, x.queue_name, 'created', NULL, x.status, NULL,
                             x.retry_count, NULL, NULL, NULL, NULL, NULL, x.created_at)::spooled_job_event
                         ORDER BY x.seq)
        INTO ev
        FROM (SELECT n.*, row_number() OVER () AS seq FROM new_rows n) x;
        PERFORM spooled_publish_job_events(ev, listening, subscribed);
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER jobs_inserted AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION spooled_jobs_inserted();

-- `started` (pending -> processing) and `completed` (processing -> completed) events of an UPDATE statement.
CREATE FUNCTION spooled_jobs_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    listening boolean;
    subscribed boolean;
    completion boolean;
    ev spooled_job_event[];
BEGIN
    -- One query over the statement's rows (the organizations as an array: no join to the transition table;
    -- none for an update of no row, a claim that found nothing; migration 0018).
    SELECT EXISTS (SELECT 1 FROM event_listeners l
                   WHERE l.organization_id = ANY (array_agg(n.organization_id)) AND l.expires_at > now()),
           EXISTS (SELECT 1 FROM webhooks w
                   WHERE w.organization_id = ANY (array_agg(n.organization_id)) AND w.enabled),
           coalesce(bool_or(n.status = 'completed' AND n.completion_webhook IS NOT NULL), false)
    INTO listening, subscribed, completion
    FROM new_rows n;
    IF listening OR subscribed OR completion THEN
        SELECT array_agg(ROW(x.seq, x.id, x.organization_id, x.queue_name,
                             CASE WHEN x.status = 'processing' THEN 'started' ELSE 'completed' END,
                             x.old_status, x.status, x.last_worker_id, x.retry_count, NULL, x.result, x.last_error,
                             x.completion_webhook, x.completion_webhook_secret,
                             CASE WHEN x.status = 'processing' THEN x.started_at ELSE x.completed_at END
                             )::spooled_job_event ORDER BY x.seq)
        INTO ev
        FROM (SELECT n.*, o.status AS old_status, row_number() OVER () AS seq
              FROM new_rows n JOIN old_rows o ON o.id = n.id
              WHERE (o.status = 'pending' AND n.status = 'processing')
                 OR (o.status = 'processing' AND n.status = 'completed')) x;
        PERFORM spooled_publish_job_events(ev, listening, subscribed) WHERE ev IS NOT NULL;
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER jobs_updated AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION spooled_jobs_updated();

-- Whether the job's current (or completing) lease already has its `started` history row: one written before
-- migration 0010, when every claim wrote one. A later `started` row is always followed by the row of the
-- transition that ended its lease.
CREATE FUNCTION spooled_lease_recorded(p_job uuid) RETURNS boolean LANGUAGE sql STABLE AS $fn$
    SELECT EXISTS (SELECT 1 FROM job_history s
                   WHERE s.job_id = p_job AND s.event_type = 'started'
                     AND NOT EXISTS (SELECT 1 FROM job_history e
                                     WHERE e.job_id = p_job AND e.id > s.id AND e.old_status = 'processing'
                                       AND e.event_type <> 'completed'))
$fn$;

-- A lease that ends other than by completing (a failure, the reaper, a lost worker, a release, a cancel) records
-- the `started` event it ends as a history row, before the statement's own row for the transition (a BEFORE
-- trigger: the row's id comes first). The current lease, and the one that completed the job, are the job row's.
CREATE FUNCTION spooled_lease_ended() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF NOT spooled_lease_recorded(OLD.id) THEN
        INSERT INTO job_history (job_id, organization_id, event_type, old_status, new_status, worker_id, created_at)
        VALUES (OLD.id, OLD.organization_id, 'started', 'pending', 'processing', OLD.assigned_worker_id,
                OLD.started_at);
    END IF;
    RETURN NEW;
END
$fn$;

CREATE TRIGGER jobs_lease_ended BEFORE UPDATE OF status ON jobs FOR EACH ROW
    WHEN (OLD.status = 'processing' AND NEW.status NOT IN ('processing', 'completed'))
    EXECUTE FUNCTION spooled_lease_ended();

-- Every event of every job in order (`part`, then `seq`): the history rows, and the events the job row records
-- (GET /jobs/{id}/history, the chaos checks). From the job row: `created` (unless a `created` row records a job
-- created scheduled), and the `started` and `completed` of its current or completing lease (unless rows written
-- before migration 0010 record them).
CREATE VIEW job_events AS
    SELECT h.job_id, h.organization_id, 1 AS part, h.id AS seq, h.id::text AS id, h.event_type, h.old_status,
           h.new_status, h.worker_id, h.details, h.created_at
    FROM job_history h
    UNION ALL
    SELECT j.id, j.organization_id, 0, 0, j.id || ':created', 'created', NULL, 'pending', NULL, NULL, j.created_at
    FROM jobs j
    WHERE NOT EXISTS (SELECT 1 FROM job_history h WHERE h.job_id = j.id AND h.event_type = 'created')
    UNION ALL
    SELECT j.id, j.organization_id, 2, 0, j.id || ':started', 'started', 'pending', 'processing', j.last_worker_id,
           NULL, j.started_at
    FROM jobs j WHERE j.status IN ('processing', 'completed') AND NOT spooled_lease_recorded(j.id)
    UNION ALL
    SELECT j.id, j.organization_id, 3, 0, j.id || ':completed', 'completed', 'processing', 'completed',
           j.last_worker_id, NULL, j.completed_at
    FROM jobs j
    WHERE j.status = 'completed'
      AND NOT EXISTS (SELECT 1 FROM job_history h WHERE h.job_id = j.id AND h.event_type = 'completed');

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

-- worker.heartbeat (migration 0012): a live worker's heartbeat, for the realtime WorkerHeartbeat frame.
CREATE FUNCTION spooled_worker_heartbeat_events() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM spooled_emit(NEW.organization_id, 'worker.heartbeat',
                         json_build_object('worker_id', NEW.id, 'queue_name', NEW.queue_names[1],
                                           'queue_names', NEW.queue_names, 'status', NEW.status,
                                           'current_jobs', NEW.current_jobs, 'last_heartbeat', NEW.last_heartbeat));
    RETURN NULL;
END
$fn$;

CREATE TRIGGER workers_heartbeat_events AFTER UPDATE OF last_heartbeat ON workers
    FOR EACH ROW WHEN (OLD.status <> 'offline' AND NEW.status <> 'offline')
    EXECUTE FUNCTION spooled_worker_heartbeat_events();

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
-- A schedule run gets its job (schedule_run_enqueued: cron fires and manual triggers alike): schedule.triggered.
CREATE FUNCTION spooled_schedule_run_events() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM spooled_emit(NEW.organization_id, 'schedule.triggered',
        (SELECT json_build_object('schedule_id', NEW.schedule_id, 'name', s.name, 'run_id', NEW.id,
                                  'job_id', NEW.job_id, 'queue_name', s.queue_name, 'fire_time', NEW.fire_time,
                                  'manual', NEW.manual)
         FROM schedules s WHERE s.id = NEW.schedule_id));
    RETURN NULL;
END
$fn$;

CREATE TRIGGER schedule_runs_events AFTER UPDATE OF job_id ON schedule_runs
    FOR EACH ROW WHEN (OLD.job_id IS NULL AND NEW.job_id IS NOT NULL)
    EXECUTE FUNCTION spooled_schedule_run_events();
CREATE INDEX schedule_runs_unfilled_idx ON schedule_runs (enqueue_after) WHERE state = 'fired' AND job_id IS NULL;
-- Retention: a job a schedule run points at is kept while the run is (retention deletes the run first).
CREATE INDEX schedule_runs_job_idx ON schedule_runs (job_id) WHERE job_id IS NOT NULL;

-- Dashboard summary: finished jobs of an organization by state and time (counts over the last hour/day and the
-- dead-letter count read a bounded range of it instead of the organization's whole history).
CREATE INDEX jobs_org_finished_idx ON jobs (organization_id, status, completed_at) WHERE completed_at IS NOT NULL;
-- The finished jobs by queue and state, with their times (a queue's stats and throughput, a restricted key's
-- counts: index-only); only a job's finishing writes it (migration 0016).
CREATE INDEX jobs_org_queue_finished_idx ON jobs (organization_id, queue_name, status) INCLUDE (completed_at, started_at)
    WHERE completed_at IS NOT NULL;

-- Job dependencies (docs/architecture.md "Job dependencies").
-- child depends on parent. Both are jobs of one organization, written only while both rows are locked (or
-- were inserted) in the same transaction; both have dependency_mode set, so deleting either fires
-- jobs_dependency_stage, which deletes the edge (no foreign key onto `jobs`: its triggers would cost every
-- UPDATE of `jobs`).
CREATE TABLE job_dependencies (
    child_job_id        uuid        NOT NULL,
    parent_job_id       uuid        NOT NULL,
    CONSTRAINT job_dependencies_pk PRIMARY KEY (child_job_id, parent_job_id),
    CONSTRAINT job_dependencies_self_check CHECK (child_job_id <> parent_job_id)
);
CREATE INDEX job_dependencies_parent_idx ON job_dependencies (parent_job_id);

-- Where a job stands with its dependencies: 'met' (none, or `all`: every one completed, `any`: one completed),
-- 'failed' (it can never be met: `all`: one ended failed/deadletter/cancelled, `any`: every one did) or
-- 'waiting'; n: how many it has; culprit: a dependency that ended without completing (for the reason).
CREATE FUNCTION spooled_dependency_state(p_job uuid, p_mode text,
                                         OUT state text, OUT n int, OUT culprit uuid, OUT culprit_status job_status)
LANGUAGE sql STABLE AS $fn$
    SELECT CASE WHEN count(*) = 0 THEN 'met'
                WHEN p_mode = 'any' AND bool_or(p.status = 'completed') THEN 'met'
                WHEN p_mode = 'any' AND bool_and(p.status IN ('failed', 'deadletter', 'cancelled')) THEN 'failed'
                WHEN p_mode = 'any' THEN 'waiting'
                WHEN bool_or(p.status IN ('failed', 'deadletter', 'cancelled')) THEN 'failed'
                WHEN bool_and(p.status = 'completed') THEN 'met'
                ELSE 'waiting' END,
           count(*)::int,
           (array_agg(p.id ORDER BY p.id) FILTER (WHERE p.status IN ('failed', 'deadletter', 'cancelled')))[1],
           (array_agg(p.status ORDER BY p.id) FILTER (WHERE p.status IN ('failed', 'deadletter', 'cancelled')))[1]
    FROM job_dependencies d JOIN jobs p ON p.id = d.parent_job_id
    WHERE d.child_job_id = p_job
$fn$;

-- The seam for workflow events (the event pipeline replaces this body): called once per workflow status change,
-- in the transaction that made it, after the workflow row holds its new status and counts.
CREATE FUNCTION spooled_workflow_changed(p_workflow uuid, p_org uuid, p_old text, p_new text)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    IF p_new IN ('completed', 'failed') THEN
        PERFORM spooled_emit(p_org, 'workflow.' || p_new,
            json_build_object('workflow_id', p_workflow, 'name', (SELECT w.name FROM workflows w WHERE w.id = p_workflow),
                              'status', p_new, 'old_status', p_old));
    END IF;
END
$fn$;

-- Staging. Only jobs that take part in dependencies (dependency_mode set: every workflow job, and any job that
-- gained dependencies or dependents) fire this trigger; for every other job the WHEN clause is false and nothing
-- is queued. A status change notes the job; a delete notes its dependents (with the status it had) and its
-- workflow, and deletes its edges. The notes live in a transaction-local setting.
CREATE FUNCTION spooled_dependency_note(p_entry text) RETURNS void LANGUAGE sql AS $fn$
    SELECT set_config('spooled.dependency_work',
                      coalesce(current_setting('spooled.dependency_work', true), '') || p_entry || ',', true)
    WHERE p_entry IS NOT NULL
$fn$;

CREATE FUNCTION spooled_dependency_stage() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status IS DISTINCT FROM NEW.status THEN
            PERFORM spooled_dependency_note(concat_ws(':', 't', NEW.id, OLD.status, NEW.status, NEW.workflow_id));
        END IF;
        RETURN NULL;
    END IF;
    PERFORM spooled_dependency_note(string_agg(concat_ws(':', 'd', d.child_job_id, OLD.status), ','))
    FROM job_dependencies d WHERE d.parent_job_id = OLD.id;
    PERFORM spooled_dependency_note(concat_ws(':', 'w', OLD.workflow_id)) WHERE OLD.workflow_id IS NOT NULL;
    DELETE FROM job_dependencies WHERE parent_job_id = OLD.id OR child_job_id = OLD.id;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER jobs_dependency_stage AFTER UPDATE OF status OR DELETE ON jobs FOR EACH ROW
    WHEN (OLD.dependency_mode IS NOT NULL)
    EXECUTE FUNCTION spooled_dependency_stage();

-- Settling, at commit of the transaction that moved the jobs (a deferred constraint trigger: the first
-- invocation does the whole transaction's work and the rest find nothing noted). Rounds, until nothing moves:
-- lock, in id order, the dependents of the jobs that ended or left an end (and such a job itself) that may
-- change, then
--   waiting, and now met        -> dependencies_met (claimable; the queue's claimers are woken);
--   waiting, and now never met  -> cancelled, cancelled_by_dependency, the reason in last_error and history;
--   cancelled by a dependency, one of whose dependencies was just retried, and none of the others failed
--                               -> pending again, waiting for it;
-- each of those moves is noted in turn (the dependents of a cancelled job are cancelled in the next round).
-- Then lock the workflows touched, in id order, and recount them from their jobs (every lock on a job is taken
-- before any lock on a workflow, always in id order: transactions settling side by side queue, not deadlock).
CREATE FUNCTION spooled_dependency_settle() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    v_work text;
    v_moved uuid[];       -- jobs that ended, or left an end
    v_back uuid[];        -- ... that left failed/deadletter/cancelled (a retry): their dependents may revive
    v_lost uuid[];          -- dependents of deleted jobs
    v_lost_dead uuid[];     -- ... of deleted jobs that had not completed
    v_kids uuid[];
    v_recount uuid[] := '{}';
    v_started uuid[] := '{}';
    v_wfs uuid[];
    v_rounds int := 0;
    v_changed bigint;
BEGIN
    LOOP
        v_work := current_setting('spooled.dependency_work', true);
        EXIT WHEN v_work IS NULL OR v_work = '';
        PERFORM set_config('spooled.dependency_work', '', true);
        v_rounds := v_rounds + 1;
        IF v_rounds > 10000 THEN
            RAISE EXCEPTION 'job dependencies did not settle';
        END IF;
        -- v_moved: jobs that ended, or left an end (a retry); only those change what their dependents can do
        WITH e AS (SELECT string_to_array(x, ':') AS f FROM unnest(string_to_array(rtrim(v_work, ','), ',')) x),
        t AS (SELECT f[2]::uuid AS job, f[5]::uuid AS wf, f[4] AS new_status,
                     (f[3] IN ('completed', 'failed', 'deadletter', 'cancelled')
                      OR f[4] IN ('completed', 'failed', 'deadletter', 'cancelled')) AS ended,
                     (f[3] IN ('failed', 'deadletter', 'cancelled')
                      AND f[4] NOT IN ('completed', 'failed', 'deadletter', 'cancelled')) AS back
              FROM e WHERE f[1] = 't')
        SELECT coalesce((SELECT array_agg(DISTINCT job) FROM t WHERE ended), '{}'),
               coalesce((SELECT array_agg(DISTINCT job) FROM t WHERE back), '{}'),
               coalesce((SELECT array_agg(DISTINCT f[2]::uuid) FROM e WHERE f[1] = 'd'), '{}'),
               coalesce((SELECT array_agg(DISTINCT f[2]::uuid) FROM e WHERE f[1] = 'd' AND f[3] <> 'completed'), '{}'),
               v_recount || coalesce((SELECT array_agg(DISTINCT f[2]::uuid) FROM e WHERE f[1] = 'w'), '{}')
                       || coalesce((SELECT array_agg(DISTINCT wf) FROM t WHERE ended AND wf IS NOT NULL), '{}'),
               v_started || coalesce((SELECT array_agg(DISTINCT wf) FROM t
                                    WHERE new_status = 'processing' AND wf IS NOT NULL), '{}')
        INTO v_moved, v_back, v_lost, v_lost_dead, v_recount, v_started;

        SELECT coalesce(array_agg(k.id ORDER BY k.id), '{}') INTO v_kids FROM (
            SELECT j.id FROM jobs j
            WHERE j.id IN (SELECT d.child_job_id FROM job_dependencies d WHERE d.parent_job_id = ANY (v_moved)
                           UNION ALL SELECT unnest(v_moved) UNION ALL SELECT unnest(v_lost))
              AND ((j.status IN ('pending', 'scheduled') AND NOT j.dependencies_met)
                   OR (j.status = 'cancelled' AND j.cancelled_by_dependency))
            ORDER BY j.id
            FOR UPDATE OF j) k;
        CONTINUE WHEN v_kids = '{}';

        WITH ev AS (
            SELECT j.id, j.organization_id, j.queue_name, j.status AS old_status, j.dependency_mode AS mode,
                   s.state, s.n, s.culprit, s.culprit_status, j.id = ANY (v_lost_dead) AS is_lost_dead,
                   EXISTS (SELECT 1 FROM job_dependencies d
                           WHERE d.child_job_id = j.id AND d.parent_job_id = ANY (v_back)) AS may_revive
            FROM jobs j, LATERAL spooled_dependency_state(j.id, j.dependency_mode) s
            WHERE j.id = ANY (v_kids)
        ), act AS (
            SELECT ev.*, CASE
                WHEN old_status IN ('pending', 'scheduled') THEN CASE
                    WHEN state = 'failed' OR (is_lost_dead AND (mode = 'all' OR n = 0)) THEN 'cancel'
                    WHEN state = 'met' THEN 'met' END
                WHEN may_revive AND state <> 'failed' THEN 'revive' END AS action
            FROM ev
        ), u AS (
            UPDATE jobs j SET
                status = CASE a.action WHEN 'cancel' THEN 'cancelled' WHEN 'revive' THEN 'pending'
                              ELSE j.status::text END::job_status,
                dependencies_met = CASE a.action WHEN 'cancel' THEN j.dependencies_met
                                                 ELSE a.state = 'met' END,
                cancelled_by_dependency = a.action = 'cancel',
                last_error = CASE a.action
                    WHEN 'cancel' THEN CASE WHEN a.culprit IS NOT NULL
                        THEN 'dependency ' || a.culprit || ' ended ' || a.culprit_status
                        ELSE 'a dependency was deleted before it completed' END
                    WHEN 'revive' THEN NULL ELSE j.last_error END,
                completed_at = CASE a.action WHEN 'cancel' THEN now() WHEN 'revive' THEN NULL
                                             ELSE j.completed_at END,
                run_at = CASE a.action WHEN 'revive' THEN now() ELSE j.run_at END,
                scheduled_at = CASE a.action WHEN 'revive' THEN NULL ELSE j.scheduled_at END,
                updated_at = now()
            FROM act a
            WHERE j.id = a.id AND a.action IS NOT NULL
            RETURNING j.id, j.organization_id, j.queue_name, j.status, j.dependencies_met, j.last_error,
                      a.old_status, a.action, a.culprit
        ), h AS (
            INSERT INTO job_history (job_id, organization_id, event_type, old_status, new_status, details)
            SELECT id, organization_id,
                   CASE action WHEN 'cancel' THEN 'cancelled' WHEN 'revive' THEN 'retried'
                               ELSE 'dependencies_met' END,
                   old_status, status,
                   CASE action WHEN 'cancel' THEN json_build_object('error', last_error, 'dependency_job_id', culprit)
                               WHEN 'revive' THEN json_build_object('reason', 'its dependency was retried') END
            FROM u
        )
        -- (the claim wakeup for jobs made claimable here comes from the job_history trigger, migration 0003)
        SELECT count(*) FROM u INTO v_changed;
    END LOOP;

    IF v_recount <> '{}' OR v_started <> '{}' THEN
        SELECT coalesce(array_agg(x.id ORDER BY x.id), '{}') INTO v_wfs FROM (
            SELECT w.id FROM workflows w
            WHERE w.id = ANY (v_recount) OR (w.id = ANY (v_started) AND w.status = 'pending')
            ORDER BY w.id
            FOR UPDATE OF w) x;
        PERFORM spooled_workflow_refresh(v_wfs);
    END IF;
    RETURN NULL;
END
$fn$;

-- Recount workflows from their jobs (locked by the caller) and derive their status: cancelled stays cancelled
-- (until a retry); completed when every job completed; failed once none is active and one did not complete;
-- running once one was claimed or ended; else pending. completed_at: when it reached completed/failed/cancelled.
CREATE FUNCTION spooled_workflow_refresh(p_ids uuid[]) RETURNS void LANGUAGE sql AS $fn$
    WITH c AS (
        SELECT j.workflow_id, count(*)::int AS total,
               count(*) FILTER (WHERE j.status = 'completed')::int AS completed,
               count(*) FILTER (WHERE j.status IN ('failed', 'deadletter'))::int AS failed,
               count(*) FILTER (WHERE j.status = 'cancelled')::int AS cancelled,
               count(*) FILTER (WHERE j.status IN ('pending', 'scheduled', 'processing'))::int AS active,
               count(*) FILTER (WHERE j.status = 'processing')::int AS running,
               min(j.started_at) AS first_started
        FROM jobs j WHERE j.workflow_id = ANY (p_ids) GROUP BY j.workflow_id
    ), s AS (
        SELECT w.id, w.status AS old_status, c.*, CASE
            WHEN w.status = 'cancelled' THEN 'cancelled'
            WHEN c.completed = c.total THEN 'completed'
            WHEN c.active = 0 THEN 'failed'
            WHEN w.started_at IS NOT NULL OR c.first_started IS NOT NULL OR c.running > 0 OR c.active < c.total
                THEN 'running'
            ELSE 'pending' END AS status
        FROM workflows w JOIN c ON c.workflow_id = w.id
    ), u AS (
        UPDATE workflows w SET
            total_jobs = s.total, completed_jobs = s.completed, failed_jobs = s.failed,
            cancelled_jobs = s.cancelled, status = s.status,
            started_at = coalesce(w.started_at, s.first_started, CASE WHEN s.running > 0 THEN now() END),
            completed_at = CASE WHEN s.status IN ('completed', 'failed', 'cancelled')
                                THEN coalesce(w.completed_at, now()) END,
            updated_at = now()
        FROM s WHERE w.id = s.id
        RETURNING w.id, w.organization_id, s.old_status, w.status
    )
    SELECT spooled_workflow_changed(id, organization_id, old_status, status) FROM u WHERE old_status <> status
$fn$;

CREATE CONSTRAINT TRIGGER jobs_dependency_settle AFTER UPDATE OF status OR DELETE ON jobs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (OLD.dependency_mode IS NOT NULL)
    EXECUTE FUNCTION spooled_dependency_settle();


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
CREATE INDEX org_usage_daily_day_idx ON org_usage_daily (day);              -- retention

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
CREATE INDEX email_login_codes_created_idx ON email_login_codes (created_at);   -- retention

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
CREATE INDEX stripe_events_received_idx ON stripe_events (received_at);     -- retention

-- Live server instances (heartbeat every few seconds): rate-limit buckets are sized by their count.
CREATE TABLE server_instances (
    id                  uuid        NOT NULL,
    hostname            text        NOT NULL,
    started_at          timestamptz NOT NULL DEFAULT now(),
    heartbeat_at        timestamptz NOT NULL DEFAULT now(),
    version             text,
    loops               json,           -- the instance's loop health at its last heartbeat (`spooled status`)
    CONSTRAINT server_instances_pk PRIMARY KEY (id)
);

-- One row: the job counts by organization, queue and live state, recomputed by at most one instance per
-- interval (services/metrics.py); every instance's /metrics serves the stored counts in between.
CREATE TABLE metrics_snapshot (
    id                  int         NOT NULL DEFAULT 1,
    taken_at            timestamptz NOT NULL DEFAULT '-infinity',
    counts              json        NOT NULL DEFAULT '[]',
    workers             json        NOT NULL DEFAULT '[]',
    CONSTRAINT metrics_snapshot_pk PRIMARY KEY (id),
    CONSTRAINT metrics_snapshot_one_row CHECK (id = 1)
);
INSERT INTO metrics_snapshot (id) VALUES (1);

-- The metrics snapshot counts dead letters per queue without reading the organizations' finished history.
CREATE INDEX jobs_deadletter_idx ON jobs (organization_id, queue_name) WHERE status = 'deadletter';

-- Retention (services/retention.py): each organization's retention in days under one plan limit (`p_limit`:
-- job_retention_days or history_retention_days), from its plan's (tier p_tiers[i] keeps p_days[i] days, the
-- operator's overrides applied by the caller) or its own custom_limits. Inlined into the retention statements.
CREATE FUNCTION spooled_retention_days(p_tiers text[], p_days int[], p_limit text)
RETURNS TABLE (organization_id uuid, days int) LANGUAGE sql STABLE AS $fn$
    SELECT o.id, coalesce((o.custom_limits->>p_limit)::int, d.days)
    FROM organizations o JOIN unnest(p_tiers, p_days) AS d(tier, days) ON d.tier = o.plan_tier
$fn$;

-- Insert jobs into one queue as job_insert does (queries/jobs.sql; no parent_job_id: an enqueue naming a parent
-- takes the plain path, which checks the parents first; the queue's defaults read by a statement of their own and
-- the queue created only when missing, where job_insert's CTEs run on every call: migration 0018), then claim for the claimers (worker_id, limit,
-- lease_secs) with spooled_claim_jobs_for, its rules unchanged (paused queue, dependencies, run_at, priority:
-- a claimer gets whatever that claim picks, possibly an older job). Two statements, in this order, so each
-- one's triggers run at its end as they do for an insert and a claim of their own (events `created` before
-- `started`, the insert's NOTIFY and history). Rows: claimer 0, the inserted jobs as inserted (`more` false);
-- claimer k >= 1, the jobs claimer k got, as job_claim_group's.
CREATE FUNCTION spooled_insert_claim(p_org uuid, p_queue text, p_now timestamptz, p_ids uuid[], p_payloads text[],
                                     p_priorities int[], p_max_retries int[], p_timeouts int[], p_tags text[],
                                     p_idempotency_keys text[], p_webhooks text[], p_webhook_secrets text[],
                                     p_scheduled_ats timestamptz[], p_expires_ats timestamptz[],
                                     p_traceparents text[], p_tracestates text[], p_workers text[], p_limits int[],
                                     p_lease_secs float8[])
RETURNS TABLE (claimer int, job jobs, more boolean) LANGUAGE plpgsql ROWS 10
SET jit = off SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
    v_now timestamptz := coalesce(p_now, now());
    v_max_retries int;
    v_timeout int;
BEGIN
    -- the queue's defaults; the queue created on first use (a statement of its own only then)
    SELECT q.max_retries, q.default_timeout INTO v_max_retries, v_timeout
    FROM queues q WHERE q.organization_id = p_org AND q.name = p_queue;
    IF NOT FOUND THEN
        INSERT INTO queues (organization_id, name) VALUES (p_org, p_queue)
        ON CONFLICT ON CONSTRAINT queues_name_key DO NOTHING
        RETURNING max_retries, default_timeout INTO v_max_retries, v_timeout;
    END IF;
    RETURN QUERY
        WITH ins AS (
            INSERT INTO jobs AS j (id, organization_id, queue_name, status, payload, priority, max_retries,
                              timeout_seconds, tags, idempotency_key, completion_webhook, completion_webhook_secret,
                              scheduled_at, run_at, expires_at, created_at, updated_at, traceparent, tracestate)
            SELECT i.id, p_org, p_queue,
                   CASE WHEN i.scheduled_at > v_now THEN 'scheduled' ELSE 'pending' END::job_status,
                   i.payload::json, i.priority, coalesce(i.max_retries, v_max_retries, 3),
                   coalesce(i.timeout_seconds, v_timeout, 300), i.tags::json, i.idempotency_key,
                   i.completion_webhook, i.webhook_secret, i.scheduled_at, coalesce(i.scheduled_at, v_now),
                   i.expires_at, v_now, v_now, i.traceparent, i.tracestate
            FROM unnest(p_ids, p_payloads, p_priorities, p_max_retries, p_timeouts, p_tags, p_idempotency_keys,
                        p_webhooks, p_webhook_secrets, p_scheduled_ats, p_expires_ats, p_traceparents,
                        p_tracestates)
                 AS i(id, payload, priority, max_retries, timeout_seconds, tags, idempotency_key,
                      completion_webhook, webhook_secret, scheduled_at, expires_at, traceparent, tracestate)
            ON CONFLICT (organization_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING j
        )
        SELECT 0, ins.j, false FROM ins;
    RETURN QUERY
        SELECT c.claimer, c.job, c.more
        FROM spooled_claim_jobs_for(p_org, p_queue, v_now, p_workers, p_limits, p_lease_secs) AS c;
END
$fn$;

-- The migrations this file contains (keep in step with store/migrations/).
INSERT INTO spooled_schema (version) VALUES (1), (2), (3), (4), (5), (6), (7), (8), (10), (11), (12), (15), (16), (17), (18);
