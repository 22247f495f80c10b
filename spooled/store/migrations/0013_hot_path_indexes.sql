-- Migration 0013: one index fewer written by every claim and every completion. Both are non-HOT updates (the
-- status is in index predicates), so each writes every index of `jobs` whose predicate the new row meets;
-- jobs_org_queue_status_idx (organization_id, queue_name, status) had none and so took an entry per claim and
-- per completion. Its replacement holds only the rows of the states the claim and the completion do not
-- produce: per-queue lookups of pending, scheduled, failed, dead-lettered and cancelled jobs keep their index
-- (the DLQ, a queue's active jobs); processing jobs are jobs_lease_idx's, finished ones jobs_org_finished_idx's,
-- and whole-queue reads (stats, deletion, a queue's listing) go through the organization's rows
-- (jobs_org_created_idx). docs/architecture.md "Indexes the hot path writes".
DROP INDEX jobs_org_queue_status_idx;
CREATE INDEX jobs_org_queue_open_idx ON jobs (organization_id, queue_name, status)
    WHERE status NOT IN ('processing', 'completed');
