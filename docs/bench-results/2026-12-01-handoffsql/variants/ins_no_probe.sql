CREATE OR REPLACE FUNCTION spooled_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    listening boolean;
    subscribed boolean;
    ev spooled_job_event[];
    orgs int;
    flows int;
    locked int;
BEGIN
    -- What the foreign keys onto organizations and workflows checked, once per statement: each new job's
    -- organization (and workflow) exists, key-share locked as a foreign key locks it, so it cannot be deleted
    -- before this transaction ends (a delete that commits first leaves nothing to lock: the insert fails).
    SELECT count(DISTINCT n.organization_id), count(DISTINCT n.workflow_id) INTO orgs, flows FROM new_rows n;
    IF flows > 0 THEN
        PERFORM 1 FROM workflows w WHERE w.id IN (SELECT n.workflow_id FROM new_rows n) FOR KEY SHARE OF w;
        GET DIAGNOSTICS locked = ROW_COUNT;
        IF locked < flows THEN
            RAISE foreign_key_violation USING MESSAGE = 'a job''s workflow does not exist',
                CONSTRAINT = 'jobs_workflow_fk', TABLE = 'jobs';
        END IF;
    END IF;
    PERFORM 1 FROM organizations o WHERE o.id IN (SELECT n.organization_id FROM new_rows n) FOR KEY SHARE OF o;
    GET DIAGNOSTICS locked = ROW_COUNT;
    IF locked < orgs THEN
        RAISE foreign_key_violation USING MESSAGE = 'a job''s organization does not exist',
            CONSTRAINT = 'jobs_organization_fk', TABLE = 'jobs';
    END IF;
    INSERT INTO job_list (organization_id, queue_name, created_at, id)
        SELECT n.organization_id, n.queue_name, n.created_at, n.id FROM new_rows n;
    PERFORM pg_notify('spooled_jobs', n.organization_id::text || ' ' || n.queue_name || ' ' || count(*))
    FROM new_rows n
    WHERE n.status = 'pending' AND n.dependencies_met
    GROUP BY n.organization_id, n.queue_name;

    RETURN NULL;
END
$fn$;
