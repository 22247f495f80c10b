-- Migration 0002: job fields of the contract and lease fencing without leftovers (issue 10).
--   parent_job_id, completion_webhook_secret (write-only: never returned), and workflow_id, dependency_mode,
--   dependencies_met (returned now; the workflows feature adds their tables, foreign key and rules);
--   completed_lease_id: the lease that completed a job, so a replayed complete stays idempotent once the job's
--   lease_id is cleared (never returned).
-- A released or finished job carries no lease_id / assigned_worker_id any more (api.md "Lease fencing"):
-- rows written by 0.1.0 are cleaned up, and a constraint keeps it so.
ALTER TABLE jobs
    ADD COLUMN parent_job_id uuid,
    ADD COLUMN completion_webhook_secret text,
    ADD COLUMN workflow_id uuid,
    ADD COLUMN dependency_mode text,
    ADD COLUMN dependencies_met boolean NOT NULL DEFAULT true,
    ADD COLUMN completed_lease_id uuid;

UPDATE jobs SET completed_lease_id = lease_id WHERE status = 'completed' AND lease_id IS NOT NULL;
UPDATE jobs SET lease_id = NULL, assigned_worker_id = NULL
WHERE status <> 'processing' AND (lease_id IS NOT NULL OR assigned_worker_id IS NOT NULL);

ALTER TABLE jobs ADD CONSTRAINT jobs_released_lease_check CHECK (
    status = 'processing' OR (lease_id IS NULL AND assigned_worker_id IS NULL));
