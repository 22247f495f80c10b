-- Migration 0006: workflows (DAGs of jobs) and job dependencies (issue 9; docs/architecture.md "Job
-- dependencies").
--   workflows, job_dependencies (edges parent -> child), jobs.workflow_id's foreign key, and
--   jobs.cancelled_by_dependency (a job the dependency rules cancelled, revived when that dependency is retried);
--   jobs_ready_idx now holds only jobs whose dependencies are met (rebuilt here: writes to jobs wait for it), and
--   spooled_ready_jobs reads it with the same predicate;
--   the triggers that settle dependents and workflows in the transaction that moves a job.
-- Every trigger, index and constraint on `jobs` costs each UPDATE statement of every queue a little (measured:
-- docs/benchmarks.md), so this adds as few as it can: two triggers, one partial index, one foreign key; edges
-- are removed with their jobs by the staging trigger, not by foreign keys onto `jobs`.

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

ALTER TABLE jobs
    ADD COLUMN cancelled_by_dependency boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT jobs_workflow_fk FOREIGN KEY (workflow_id) REFERENCES workflows (id) ON DELETE CASCADE;
CREATE INDEX jobs_workflow_idx ON jobs (workflow_id) WHERE workflow_id IS NOT NULL;

-- The claim path: a job waiting for its dependencies is not in the ready index at all, so a queue without
-- dependencies reads exactly what it read before, and one full of waiting jobs does not scan past them.
DROP INDEX jobs_ready_idx;
CREATE INDEX jobs_ready_idx ON jobs (organization_id, queue_name, priority DESC, run_at, id)
    WHERE status = 'pending' AND dependencies_met;

CREATE OR REPLACE FUNCTION spooled_ready_jobs(p_org uuid, p_queue text, p_limit int, p_now timestamptz)
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
