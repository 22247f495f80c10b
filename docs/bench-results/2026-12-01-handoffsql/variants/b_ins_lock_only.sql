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
        PERFORM 1 FROM organizations o WHERE o.id = v_org::uuid FOR KEY SHARE OF o;
        GET DIAGNOSTICS locked = ROW_COUNT; listening := false; subscribed := false;
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