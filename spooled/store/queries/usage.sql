-- Usage counters for plan quotas, and the registry of live server instances (services/quotas.py,
-- services/ratelimit.py).

-- name: usage_add_jobs
-- Add each organization's jobs created (since the last flush) to today's counter; every organization's total.
INSERT INTO org_usage_daily AS u (organization_id, day, jobs_created)
SELECT o, $day, n FROM unnest($orgs::uuid[], $counts::bigint[]) AS t(o, n)
WHERE EXISTS (SELECT 1 FROM organizations WHERE id = o)
ON CONFLICT ON CONSTRAINT org_usage_daily_pk DO UPDATE SET jobs_created = u.jobs_created + EXCLUDED.jobs_created
RETURNING organization_id, jobs_created

-- name: usage_read
-- Today's jobs created and the active jobs of some organizations (the active count only where asked: an
-- organization with a limit on active jobs has at most about that many, so the count stays small).
SELECT o.id AS organization_id,
       coalesce((SELECT jobs_created FROM org_usage_daily u WHERE u.organization_id = o.id AND u.day = $day), 0)
           AS jobs_today,
       CASE WHEN o.id = ANY($count_active::uuid[]) THEN
           (SELECT count(*) FROM jobs j WHERE j.organization_id = o.id AND j.status = 'pending'
              AND j.dependencies_met)
           + (SELECT count(*) FROM jobs j WHERE j.organization_id = o.id AND (j.status IN ('scheduled', 'processing')
              OR (j.status = 'pending' AND NOT j.dependencies_met))) END AS active_jobs
FROM organizations o WHERE o.id = ANY($orgs::uuid[])

-- name: usage_counts
-- Everything an organization has counted against its plan (GET /organizations/usage, /billing/status).
SELECT coalesce((SELECT jobs_created FROM org_usage_daily WHERE organization_id = $org AND day = $day), 0)
           AS jobs_today,
       (SELECT count(*) FROM jobs WHERE organization_id = $org AND status = 'pending' AND dependencies_met)
       + (SELECT count(*) FROM jobs WHERE organization_id = $org AND (status IN ('scheduled', 'processing')
                                           OR (status = 'pending' AND NOT dependencies_met))) AS active_jobs,
       (SELECT count(*) FROM queues WHERE organization_id = $org) AS queues,
       (SELECT count(*) FROM workers WHERE organization_id = $org AND status <> 'offline') AS workers,
       (SELECT count(*) FROM api_keys WHERE organization_id = $org AND is_active) AS api_keys,
       (SELECT count(*) FROM webhooks WHERE organization_id = $org) AS webhooks,
       (SELECT count(*) FROM schedules WHERE organization_id = $org) AS schedules,
       (SELECT count(*) FROM workflows WHERE organization_id = $org AND status IN ('pending', 'running'))
           AS workflows

-- name: usage_count_queues
-- Queues, not counting the one being configured (`excluding`: PUT /queues/{name}/config of an existing queue).
SELECT count(*) FROM queues WHERE organization_id = $org AND ($excluding::text IS NULL OR name <> $excluding)

-- name: usage_queue_exists
SELECT EXISTS (SELECT 1 FROM queues WHERE organization_id = $org AND name = $name)

-- name: usage_count_workers
-- Live workers, not counting the one re-registering (`excluding`).
SELECT count(*) FROM workers WHERE organization_id = $org AND status <> 'offline'
  AND ($excluding::text IS NULL OR id <> $excluding)

-- name: usage_count_webhooks
SELECT count(*) FROM webhooks WHERE organization_id = $org

-- name: usage_count_schedules
SELECT count(*) FROM schedules WHERE organization_id = $org

-- name: usage_count_workflows
-- Workflows that are not over (pending or running): what the plan's max_workflows bounds.
SELECT count(*) FROM workflows WHERE organization_id = $org AND status IN ('pending', 'running')

-- name: usage_count_api_keys
SELECT count(*) FROM api_keys WHERE organization_id = $org AND is_active

-- name: usage_reset
DELETE FROM org_usage_daily WHERE organization_id = $org AND day = $day

-- name: instance_heartbeat
-- Record this instance as alive (with its version and loop health), forget instances silent for
-- `forget_secs`, and count the live ones.
WITH beat AS (
    INSERT INTO server_instances (id, hostname, version, loops) VALUES ($id, $hostname, $version, $loops::json)
    ON CONFLICT ON CONSTRAINT server_instances_pk DO UPDATE
        SET heartbeat_at = now(), version = EXCLUDED.version, loops = EXCLUDED.loops
    RETURNING id
), gone AS (
    DELETE FROM server_instances WHERE heartbeat_at < now() - make_interval(secs => $forget_secs) AND id <> $id
)
SELECT 1 + count(*) FROM server_instances
WHERE id <> $id AND heartbeat_at >= now() - make_interval(secs => $live_secs)

-- name: instance_remove
DELETE FROM server_instances WHERE id = $id

-- name: instance_list
-- The instances heard from within `live_secs` (`spooled status`), oldest first.
SELECT id, hostname, version, started_at, heartbeat_at, coalesce(loops::text, '{}') AS loops
FROM server_instances WHERE heartbeat_at >= now() - make_interval(secs => $live_secs)
ORDER BY started_at, id
