-- Migration 0018: the one-job statements' triggers run fewer statements (docs/benchmarks.md "fifth session,
-- handoffsql"; docs/architecture.md "Events"). Each statement a plpgsql trigger runs costs ~10 µs of backend CPU
-- whatever its rows: the insert trigger ran five for a one-job enqueue (the organization counted, locked, the
-- listing row, the wakeup, the listeners/webhooks probe) and now runs two for a statement of one organization and
-- one queue (every enqueue), the wakeup an expression; the update trigger's probe is one query that joins nothing.
-- A job created scheduled gets its `created` history row from the insert trigger, only when there is one, instead
-- of from a data-modifying CTE of job_insert and spooled_insert_claim that ran (and fired the history trigger) on
-- every enqueue. Events, wakeups, history and the foreign-key checks are unchanged.

CREATE OR REPLACE FUNCTION spooled_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
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

CREATE OR REPLACE FUNCTION spooled_jobs_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
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

-- As in migration 0017, without the `created` history CTE (the jobs_inserted trigger writes that row now), and the
-- queue's defaults read by a statement of its own, the queue inserted only when it is missing (a data-modifying
-- CTE runs, and costs its ModifyTable, on every call).
CREATE OR REPLACE FUNCTION spooled_insert_claim(p_org uuid, p_queue text, p_now timestamptz, p_ids uuid[], p_payloads text[],
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
