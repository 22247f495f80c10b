CREATE OR REPLACE FUNCTION spooled_claim_jobs_for(p_org uuid, p_queue text, p_now timestamptz, p_workers text[],
                                       p_limits int[], p_lease_secs float8[])
RETURNS TABLE (claimer int, job jobs, more boolean) LANGUAGE plpgsql ROWS 10
SET enable_seqscan = off SET jit = off SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
    v_ids uuid[];
BEGIN
    v_ids := ARRAY(SELECT r.id FROM spooled_ready_jobs(p_org, p_queue, (SELECT sum(n)::int FROM unnest(p_limits) AS n),
                                                        p_now) WITH ORDINALITY AS r(id, rank) ORDER BY r.rank);
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
        WITH w AS (
            SELECT x.ord::int AS ord, x.worker, x.lease_secs, sum(x.n) OVER (ORDER BY x.ord) - x.n AS past
            FROM unnest(p_workers, p_limits, p_lease_secs) WITH ORDINALITY AS x(worker, n, lease_secs, ord)
        ), c AS (
            SELECT r.id, r.rank FROM unnest(v_ids) WITH ORDINALITY AS r(id, rank)
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