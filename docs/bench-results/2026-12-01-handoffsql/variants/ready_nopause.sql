CREATE OR REPLACE FUNCTION spooled_ready_jobs(p_org uuid, p_queue text, p_limit int, p_now timestamptz)
RETURNS SETOF uuid LANGUAGE plpgsql ROWS 10 SET enable_sort = off AS $fn$
BEGIN
        RETURN QUERY
        SELECT j.id FROM jobs j
        WHERE j.organization_id = p_org AND j.queue_name = p_queue AND j.status = 'pending' AND j.dependencies_met
          AND (j.expires_at IS NULL OR j.expires_at > p_now)
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT p_limit
        FOR UPDATE OF j SKIP LOCKED;
END
$fn$;
