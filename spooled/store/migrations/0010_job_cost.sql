-- Migration 0010: the database cost per job (docs/benchmarks.md "Database cost per job").

-- The worker of a job's latest lease, kept after the lease ends (replays of worker-fenced completions).
ALTER TABLE jobs ADD COLUMN last_worker_id text;

-- Every processing job is in jobs_lease_idx already: the lost-worker release and the dashboard's running counts
-- read it; a second partial index over the same rows cost every claim an index insert.
DROP INDEX jobs_worker_idx;

-- A job's history goes with it. Not a foreign key: its check ran once per history row (a query per row, about a
-- third of a history row's cost); rows are written only by the statements that move their job, which hold it.
ALTER TABLE job_history DROP CONSTRAINT job_history_job_fk;

-- Sequential scans off: the trigger's plan is cached per connection, and one made while job_history was small
-- would read the whole grown table on every later delete (a retention batch, a queue deleted with its jobs).
CREATE FUNCTION spooled_jobs_deleted() RETURNS trigger LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
BEGIN
    DELETE FROM job_history h USING old_rows o WHERE h.job_id = o.id;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER jobs_deleted AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION spooled_jobs_deleted();

-- The job row records a job's creation, claim and completion; those three transitions write no history row.
-- Processing jobs claimed before this migration: their worker, as claims record it from now on.
UPDATE jobs SET last_worker_id = assigned_worker_id WHERE status = 'processing';

-- The claim (pinned to its primary-key join by migration 0008) records its worker on the row, not in history.
CREATE OR REPLACE FUNCTION spooled_claim_jobs(p_org uuid, p_queue text, p_limit int, p_now timestamptz, p_worker text,
                                   p_lease_secs float8)
RETURNS SETOF jobs LANGUAGE plpgsql ROWS 10 SET enable_seqscan = off SET jit = off AS $fn$
BEGIN
    RETURN QUERY
        WITH c AS (
            SELECT id FROM spooled_ready_jobs(p_org, p_queue, p_limit, p_now) AS id
        ), u AS (
            UPDATE jobs j SET status = 'processing', lease_id = gen_random_uuid(),
                              lease_expires_at = p_now + make_interval(secs => p_lease_secs),
                              assigned_worker_id = p_worker, last_worker_id = p_worker, started_at = p_now,
                              updated_at = p_now
            FROM c WHERE j.id = c.id
            RETURNING j.*
        )
        SELECT * FROM u;
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
CREATE OR REPLACE FUNCTION spooled_job_history_events() RETURNS trigger LANGUAGE plpgsql AS $fn$
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
BEGIN
    PERFORM pg_notify('spooled_jobs', n.organization_id::text || ' ' || n.queue_name || ' ' || count(*))
    FROM new_rows n
    WHERE n.status = 'pending' AND n.dependencies_met
    GROUP BY n.organization_id, n.queue_name;

    SELECT EXISTS (SELECT 1 FROM event_listeners l
                   WHERE l.organization_id IN (SELECT n.organization_id FROM new_rows n) AND l.expires_at > now()),
           EXISTS (SELECT 1 FROM webhooks w
                   WHERE w.organization_id IN (SELECT n.organization_id FROM new_rows n) AND w.enabled)
    INTO listening, subscribed;
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
    SELECT EXISTS (SELECT 1 FROM event_listeners l
                   WHERE l.organization_id IN (SELECT n.organization_id FROM new_rows n) AND l.expires_at > now()),
           EXISTS (SELECT 1 FROM webhooks w
                   WHERE w.organization_id IN (SELECT n.organization_id FROM new_rows n) AND w.enabled),
           EXISTS (SELECT 1 FROM new_rows n WHERE n.status = 'completed' AND n.completion_webhook IS NOT NULL)
    INTO listening, subscribed, completion;
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
