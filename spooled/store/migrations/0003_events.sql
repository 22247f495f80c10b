-- Migration 0003: the event pipeline. Every job transition already writes job history in the same statement;
-- a statement-level trigger on job_history turns those rows into claim wakeups, realtime NOTIFYs (only for
-- organizations some server instance has live subscribers for) and outbox rows for the webhooks that subscribe
-- (and for jobs with a completion webhook). Queue pause/resume and worker (de)registration go through
-- row triggers on their tables into the same `spooled_emit`. See docs/architecture.md "Events".

-- Server instances with live realtime subscribers, per organization (a row per instance and org, refreshed while
-- subscribers stay; a crashed instance's rows simply expire). The triggers NOTIFY only for orgs listed here.
CREATE TABLE event_listeners (
    organization_id     uuid        NOT NULL,
    instance_id         uuid        NOT NULL,
    expires_at          timestamptz NOT NULL,
    CONSTRAINT event_listeners_pk PRIMARY KEY (organization_id, instance_id)
);

-- Outgoing webhook subscriptions: last_status is the outcome word the SDK reads; format picks the body.
ALTER TABLE webhooks ALTER COLUMN last_status TYPE text USING NULL;
ALTER TABLE webhooks ADD COLUMN format text NOT NULL DEFAULT 'json';
ALTER TABLE webhooks ADD CONSTRAINT webhooks_last_status_check
    CHECK (last_status IN ('success', 'failed', 'auto_disabled'));
ALTER TABLE webhooks ADD CONSTRAINT webhooks_format_check CHECK (format IN ('json', 'slack', 'discord', 'teams'));
ALTER TABLE webhooks ADD CONSTRAINT webhooks_name_check CHECK (length(name) BETWEEN 1 AND 100);
CREATE INDEX webhooks_organization_idx ON webhooks (organization_id, created_at, id);
CREATE INDEX webhooks_enabled_idx ON webhooks (organization_id) WHERE enabled;

-- The outbox. A delivery is for a subscription (webhook_id) or for one job's completion webhook (url, secret
-- copied from the job). `locked_until` is the lease a dispatcher holds while it sends (never a row lock across a
-- network call); the next attempt is due at next_attempt_at.
ALTER TABLE webhook_deliveries ALTER COLUMN webhook_id DROP NOT NULL;
ALTER TABLE webhook_deliveries ADD COLUMN job_id uuid;
ALTER TABLE webhook_deliveries ADD COLUMN url text;
ALTER TABLE webhook_deliveries ADD COLUMN secret text;
ALTER TABLE webhook_deliveries ADD COLUMN locked_until timestamptz;
ALTER TABLE webhook_deliveries ADD COLUMN response_body text;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_target_check
    CHECK (webhook_id IS NOT NULL OR url IS NOT NULL);
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_organization_fk
    FOREIGN KEY (organization_id) REFERENCES organizations (id) ON DELETE CASCADE;
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_organization_idx ON webhook_deliveries (organization_id);

-- Per-job completion webhooks (their secret is jobs.completion_webhook_secret, migration 0002): a partial index
-- so that the trigger's "does any finished job of this statement have a completion webhook" probe is nearly free.
CREATE INDEX jobs_completion_webhook_idx ON jobs (id) WHERE completion_webhook IS NOT NULL;

-- The token POST /webhooks/{org_id}/custom requires in X-Webhook-Token (made on first read).
ALTER TABLE organizations ADD COLUMN webhook_token text;

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
        -- claim wakeups: "<org> <queue> <n>" per queue that got claimable jobs (a workflow job waiting for its
        -- dependencies is pending but not claimable)
        PERFORM pg_notify('spooled_jobs', j.organization_id::text || ' ' || j.queue_name || ' ' || count(*))
        FROM new_rows h JOIN jobs j ON j.id = h.job_id
        WHERE h.new_status = 'pending' AND j.dependencies_met
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
