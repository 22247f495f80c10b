-- Migration 0010: the database cost per job (docs/benchmarks.md "Database cost per job").

-- The worker of a job's latest lease, kept after the lease ends (replays of worker-fenced completions).
ALTER TABLE jobs ADD COLUMN last_worker_id text;

-- Every processing job is in jobs_lease_idx already: the lost-worker release and the dashboard's running counts
-- read it; a second partial index over the same rows cost every claim an index insert.
DROP INDEX jobs_worker_idx;

-- A job's history goes with it. Not a foreign key: its check ran once per history row (a query per row, about a
-- third of a history row's cost); rows are written only by the statements that move their job, which hold it.
ALTER TABLE job_history DROP CONSTRAINT job_history_job_fk;

CREATE FUNCTION spooled_jobs_deleted() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    DELETE FROM job_history h USING old_rows o WHERE h.job_id = o.id;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER jobs_deleted AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION spooled_jobs_deleted();
