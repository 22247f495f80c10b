-- Migration 0016: listing and per-queue reads from an insert-only table (docs/architecture.md "The listing
-- table"). A claim and a completion are non-HOT updates (the status is in index predicates), so each wrote an
-- entry into every full index of `jobs`; the two that served listing and stats (jobs_org_created_idx,
-- jobs_org_queue_status_idx) were about a fifth of a job's database cost. `job_list` holds what never changes
-- (organization, queue, creation time, id), one row per job, written with the job and deleted with it; the
-- states that reads count by organization come from partial indexes (ready, active, finished, dead letters).
CREATE TABLE job_list (
    organization_id     uuid        NOT NULL,
    queue_name          text        NOT NULL,
    created_at          timestamptz NOT NULL,
    id                  uuid        NOT NULL
);
INSERT INTO job_list (organization_id, queue_name, created_at, id)
    SELECT organization_id, queue_name, created_at, id FROM jobs;
-- The listing's keyset (and the dashboard's totals); a queue's jobs are found through the partial indexes of
-- jobs (ready, active, finished by queue), so this is the only index an enqueue writes here.
CREATE INDEX job_list_org_created_idx ON job_list (organization_id, created_at DESC, id DESC);
-- The jobs not finished and not ready (ready ones: jobs_ready_idx), by organization, state and queue: with
-- jobs_ready_idx every active job by organization (quotas, the dashboard's running counts, a queue's active
-- jobs, a deletion's check). An enqueue of a ready job and a completion write no entry into it.
CREATE INDEX jobs_org_active_idx ON jobs (organization_id, status, queue_name)
    WHERE status IN ('scheduled', 'processing') OR (status = 'pending' AND NOT dependencies_met);
-- The finished jobs by queue and state, with their times (a queue's stats and throughput, a restricted key's
-- counts: index-only); only a job's finishing writes it (migration 0016).
CREATE INDEX jobs_org_queue_finished_idx ON jobs (organization_id, queue_name, status) INCLUDE (completed_at, started_at)
    WHERE completed_at IS NOT NULL;
DROP INDEX jobs_org_created_idx;
DROP INDEX jobs_org_queue_status_idx;

-- The foreign keys onto organizations and workflows become statement triggers (a foreign key's check was a query
-- per inserted row, ~2 µs each, a fifth of an enqueue's database cost): the check in spooled_jobs_inserted, the
-- cascades below.
ALTER TABLE jobs DROP CONSTRAINT jobs_organization_fk;
ALTER TABLE jobs DROP CONSTRAINT jobs_workflow_fk;

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

-- Written with the job, deleted with it (the listing table must hold exactly the jobs).
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

CREATE OR REPLACE FUNCTION spooled_jobs_deleted() RETURNS trigger LANGUAGE plpgsql SET enable_seqscan = off AS $fn$
BEGIN
    DELETE FROM job_history h USING old_rows o WHERE h.job_id = o.id;
    DELETE FROM job_list l USING old_rows o
    WHERE l.organization_id = o.organization_id AND l.created_at = o.created_at AND l.id = o.id;
    RETURN NULL;
END
$fn$;
