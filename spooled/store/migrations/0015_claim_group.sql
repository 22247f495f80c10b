-- Migration 0015: one claim statement serves every concurrent claimer of a queue (docs/architecture.md
-- "Claims: one statement for concurrent claimers").

-- Lease ready jobs to several claimers at once, in claim order (spooled_ready_jobs: paused queue, expires_at,
-- dependencies), claimer after claimer in the order given: the first claimer gets the first `p_limits[1]` jobs,
-- the next the following ones, and so on, so jobs go to claimers in arrival order. Each job gets its own lease,
-- its claimer's worker and lease duration; `claimer` is the claimer's ordinal (1-based) in the arrays, `more`
-- whether ready jobs are left (the claimers' wakeups pass on only then). One
-- statement: the `jobs_updated` trigger reports every job of the batch, as for a single claim. Pinned like
-- spooled_claim_jobs (migration 0008): sequential scans and JIT off; and generic plans only: a custom plan sees the
-- arrays' length, so for one claimer it looked cheaper than the generic plan and the query was planned again on
-- every call (measured: 560 against 230 µs of backend CPU per single claim).
CREATE FUNCTION spooled_claim_jobs_for(p_org uuid, p_queue text, p_now timestamptz, p_workers text[],
                                       p_limits int[], p_lease_secs float8[])
RETURNS TABLE (claimer int, job jobs, more boolean) LANGUAGE plpgsql ROWS 10
SET enable_seqscan = off SET jit = off SET plan_cache_mode = force_generic_plan AS $fn$
BEGIN
    RETURN QUERY
        WITH w AS (
            SELECT x.ord::int AS ord, x.worker, x.lease_secs, sum(x.n) OVER (ORDER BY x.ord) - x.n AS past
            FROM unnest(p_workers, p_limits, p_lease_secs) WITH ORDINALITY AS x(worker, n, lease_secs, ord)
        ), c AS (
            SELECT r.id, r.rank FROM spooled_ready_jobs(p_org, p_queue,
                                                        (SELECT sum(n)::int FROM unnest(p_limits) AS n), p_now)
                                     WITH ORDINALITY AS r(id, rank)
        ), a AS (
            SELECT c.id, w.ord, w.worker, w.lease_secs
            FROM c JOIN w ON c.rank > w.past AND c.rank <= w.past + p_limits[w.ord]
        ), u AS (
            UPDATE jobs j SET status = 'processing', lease_id = gen_random_uuid(),
                              lease_expires_at = p_now + make_interval(secs => a.lease_secs),
                              assigned_worker_id = a.worker, last_worker_id = a.worker, started_at = p_now,
                              updated_at = p_now
            FROM a WHERE j.id = a.id
            RETURNING a.ord, j
        )
        SELECT u.ord, u.j, EXISTS (      -- ready jobs left beyond these (or held by other claimers right now)
            SELECT 1 FROM jobs r
            WHERE r.organization_id = p_org AND r.queue_name = p_queue AND r.status = 'pending' AND r.dependencies_met
              AND (r.expires_at IS NULL OR r.expires_at > p_now) AND r.id NOT IN (SELECT c.id FROM c))
        FROM u;
END
$fn$;

-- The single claim is a group of one (the same rules, one text of them).
CREATE OR REPLACE FUNCTION spooled_claim_jobs(p_org uuid, p_queue text, p_limit int, p_now timestamptz,
                                              p_worker text, p_lease_secs float8)
RETURNS SETOF jobs LANGUAGE plpgsql ROWS 10 AS $fn$
BEGIN
    RETURN QUERY
        SELECT (c.job).* FROM spooled_claim_jobs_for(p_org, p_queue, p_now, ARRAY[p_worker], ARRAY[p_limit],
                                                     ARRAY[p_lease_secs]) AS c;
END
$fn$;
