-- name: workflow_insert
INSERT INTO workflows (id, organization_id, name, description, metadata, total_jobs, created_at, updated_at)
VALUES ($id, $org, $name, $description, $metadata::json, $total, coalesce($now::timestamptz, now()),
        coalesce($now::timestamptz, now()))
RETURNING *

-- name: workflow_insert_jobs
-- A workflow's jobs (any queues; each queue created on first use), pending, with `dependencies_met` as the
-- caller computed it (true for a job without dependencies); the claimers of each queue that got a ready job
-- are woken (the jobs_inserted trigger, which emits their `created` events; the rows record them).
WITH qn AS (
    SELECT DISTINCT unnest($queues::text[]) AS name
), qi AS (
    INSERT INTO queues (organization_id, name)
    SELECT $org, qn.name FROM qn
    WHERE NOT EXISTS (SELECT 1 FROM queues q WHERE q.organization_id = $org AND q.name = qn.name)
    ON CONFLICT ON CONSTRAINT queues_name_key DO NOTHING
    RETURNING name, max_retries, default_timeout
), q AS (
    SELECT qn.name, coalesce(q0.max_retries, qi.max_retries, 3) AS max_retries,
           coalesce(q0.default_timeout, qi.default_timeout, 300) AS default_timeout
    FROM qn LEFT JOIN queues q0 ON q0.organization_id = $org AND q0.name = qn.name
            LEFT JOIN qi ON qi.name = qn.name
), t AS (
    SELECT coalesce($now::timestamptz, now()) AS now
), ins AS (
    INSERT INTO jobs (id, organization_id, queue_name, status, payload, priority, max_retries, timeout_seconds,
                      run_at, created_at, updated_at, workflow_id, dependency_mode, dependencies_met)
    SELECT i.id, $org, i.queue, 'pending', i.payload::json, i.priority, coalesce(i.max_retries, q.max_retries),
           coalesce(i.timeout_seconds, q.default_timeout), t.now, t.now, t.now, $workflow, i.mode, i.met
    FROM unnest($ids::uuid[], $queues::text[], $payloads::text[], $priorities::int[], $max_retries::int[],
                $timeouts::int[], $modes::text[], $met::bool[])
         AS i(id, queue, payload, priority, max_retries, timeout_seconds, mode, met)
    JOIN q ON q.name = i.queue, t
    RETURNING id
)
SELECT count(*) AS inserted FROM ins

-- name: workflow_insert_edges
INSERT INTO job_dependencies (child_job_id, parent_job_id)
SELECT * FROM unnest($children::uuid[], $parents::uuid[])

-- name: workflow_get
SELECT * FROM workflows WHERE id = $id AND organization_id = $org

-- name: workflow_list
-- Newest first; one more than the page to tell whether more exist.
SELECT * FROM workflows
WHERE organization_id = $org AND ($status::text IS NULL OR status = $status)
ORDER BY created_at DESC, id DESC
LIMIT $limit OFFSET $offset

-- name: workflow_jobs
SELECT * FROM jobs WHERE workflow_id = $id AND organization_id = $org ORDER BY created_at, id

-- name: workflow_edges
SELECT d.parent_job_id, d.child_job_id
FROM jobs j JOIN job_dependencies d ON d.child_job_id = j.id
WHERE j.workflow_id = $id AND j.organization_id = $org
ORDER BY d.child_job_id, d.parent_job_id

-- name: workflow_cancel_jobs
-- The workflow's pending and scheduled jobs -> cancelled (locked in id order, as the dependency triggers lock).
-- Its running jobs finish (or fail) as they would.
WITH pick AS (
    SELECT id, status FROM jobs
    WHERE workflow_id = $id AND organization_id = $org AND status IN ('pending', 'scheduled')
    ORDER BY id
    FOR UPDATE
), u AS (
    UPDATE jobs j SET status = 'cancelled', completed_at = t.now, last_error = 'workflow cancelled',
                      updated_at = t.now
    FROM pick, (SELECT coalesce($now::timestamptz, now()) AS now) t
    WHERE j.id = pick.id
    RETURNING j.id, j.organization_id, pick.status AS old_status
), h AS (
    INSERT INTO job_history (job_id, organization_id, event_type, old_status, new_status, details)
    SELECT id, organization_id, 'cancelled', old_status, 'cancelled', '{"error": "workflow cancelled"}' FROM u
)
SELECT count(*) FROM u

-- name: workflow_mark_cancelled
UPDATE workflows SET status = 'cancelled', completed_at = coalesce(completed_at, coalesce($now::timestamptz, now())),
                     updated_at = coalesce($now::timestamptz, now())
WHERE id = $id AND organization_id = $org AND status NOT IN ('completed', 'cancelled')
RETURNING *

-- name: workflow_retry_jobs
-- The workflow's failed, dead-lettered and cancelled jobs -> pending with a fresh retry budget (locked in id
-- order). Each one's dependencies are read before this statement: a job whose dependency is retried with it
-- waits for it again; the rest are claimable at once (their claimers woken).
WITH pick AS (
    SELECT id, status FROM jobs
    WHERE workflow_id = $id AND organization_id = $org AND status IN ('failed', 'deadletter', 'cancelled')
    ORDER BY id
    FOR UPDATE
), u AS (
    UPDATE jobs j SET status = 'pending', retry_count = 0, run_at = t.now, scheduled_at = NULL, completed_at = NULL,
                      result = NULL, started_at = NULL,
                      last_error = CASE WHEN j.cancelled_by_dependency THEN NULL ELSE j.last_error END,
                      cancelled_by_dependency = false,
                      dependencies_met = (spooled_dependency_state(j.id, j.dependency_mode)).state = 'met',
                      updated_at = t.now
    FROM pick, (SELECT coalesce($now::timestamptz, now()) AS now) t
    WHERE j.id = pick.id
    RETURNING j.id, j.organization_id, j.queue_name, j.dependencies_met, pick.status AS old_status
), h AS (
    INSERT INTO job_history (job_id, organization_id, event_type, old_status, new_status, details)
    SELECT id, organization_id, 'retried', old_status, 'pending', '{"reason": "workflow retried"}' FROM u
)
SELECT count(*) FROM u

-- name: workflow_mark_retried
-- Out of completed/failed/cancelled (the dependency triggers recount it when the transaction commits).
UPDATE workflows SET status = CASE WHEN started_at IS NULL THEN 'pending' ELSE 'running' END, completed_at = NULL,
                     updated_at = coalesce($now::timestamptz, now())
WHERE id = $id AND organization_id = $org
RETURNING *

-- name: job_dependency_refs
-- A job's dependencies (side 'dependency') and dependents (side 'dependent'). Edges only join jobs of one
-- organization, and the job itself is looked up with its organization first.
SELECT 'dependency' AS side, p.id AS job_id, p.status, p.queue_name
FROM job_dependencies d JOIN jobs p ON p.id = d.parent_job_id WHERE d.child_job_id = $id
UNION ALL
SELECT 'dependent', c.id, c.status, c.queue_name
FROM job_dependencies d JOIN jobs c ON c.id = d.child_job_id WHERE d.parent_job_id = $id
ORDER BY 1, 2

-- name: dependency_lock_org
-- Edge additions of one organization take turns (two requests adding the two halves of a cycle would each
-- pass the cycle check alone).
SELECT pg_advisory_xact_lock(7431006, hashtext($org::uuid::text))

-- name: dependency_lock_parents
-- The dependencies to add, locked (in id order) before they are read: a dependency completing meanwhile has
-- either committed (and is read as completed) or waits for this transaction (and then sees the new edge).
SELECT id, status, workflow_id FROM jobs
WHERE id = ANY ($ids::uuid[]) AND organization_id = $org
ORDER BY id
FOR UPDATE

-- name: dependency_lock_job
SELECT id, status, workflow_id FROM jobs WHERE id = $id AND organization_id = $org FOR UPDATE

-- name: dependency_reaches
-- Which of $ids depend, directly or not, on the job $id (an edge from $id onto one of them closes a cycle).
WITH RECURSIVE down(id) AS (
    SELECT child_job_id FROM job_dependencies WHERE parent_job_id = $id
    UNION
    SELECT d.child_job_id FROM job_dependencies d JOIN down ON d.parent_job_id = down.id
)
SELECT id FROM down WHERE id = ANY ($ids::uuid[])

-- name: dependency_add
-- Add the edges (ones that exist already are kept), mark the dependencies as taking part in dependencies, and
-- set the job's mode and whether its dependencies are met now (a ready job that gains an unmet dependency
-- leaves the ready index; one that becomes ready wakes its queue's claimers).
WITH e AS (
    INSERT INTO job_dependencies (child_job_id, parent_job_id)
    SELECT $id, p FROM unnest($ids::uuid[]) p
    ON CONFLICT ON CONSTRAINT job_dependencies_pk DO NOTHING
    RETURNING parent_job_id
), p AS (
    UPDATE jobs SET dependency_mode = 'all' WHERE id = ANY ($ids::uuid[]) AND dependency_mode IS NULL
)
SELECT (SELECT count(*) FROM e) AS added

-- name: dependency_settle_job
WITH s AS (
    SELECT dependencies_met AS was_met FROM jobs WHERE id = $id
), u AS (
    UPDATE jobs j SET dependency_mode = $mode,
                      dependencies_met = (spooled_dependency_state(j.id, $mode)).state = 'met',
                      updated_at = now()
    WHERE j.id = $id
    RETURNING j.organization_id, j.queue_name, j.status, j.dependencies_met
), n AS (
    SELECT pg_notify('spooled_jobs', organization_id::text || ' ' || queue_name || ' 1') FROM u, s
    WHERE u.dependencies_met AND NOT s.was_met AND u.status = 'pending'
)
SELECT u.dependencies_met, (SELECT count(*) FROM n) AS notified FROM u
