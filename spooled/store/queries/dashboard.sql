-- name: dashboard_jobs
-- The organization's job counts for the dashboard summary. Each count is an index range scan that stops at $cap
-- entries (a count at the cap means "at least"), never a scan of the organization's history; the averages
-- sample the day's last 1,000 completions. `now` stays an expression, not a CTE, so it bounds the index ranges;
-- the ORDER BYs follow the index each count should walk, so no plan can read the table instead. `pending` counts
-- jobs ready to run (the ready index; jobs waiting for their dependencies are not in it).
SELECT
    (SELECT count(*) FROM (SELECT 1 FROM job_list WHERE organization_id = $org
                           ORDER BY created_at DESC, id DESC LIMIT $cap) x) AS total,
    (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE organization_id = $org AND status = 'pending'
                           AND dependencies_met ORDER BY queue_name, priority DESC, run_at, id LIMIT $cap) x) AS pending,
    (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE organization_id = $org AND status = 'processing'
                           LIMIT $cap) x) AS processing,
    (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE organization_id = $org AND status = 'deadletter'
                           AND completed_at IS NOT NULL ORDER BY completed_at DESC LIMIT $cap) x) AS deadletter,
    (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE organization_id = $org AND status = 'completed'
                           AND completed_at > coalesce($now::timestamptz, now()) - interval '24 hours'
                           ORDER BY completed_at DESC LIMIT $cap) x) AS completed_24h,
    (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE organization_id = $org AND status = 'failed'
                           AND completed_at > coalesce($now::timestamptz, now()) - interval '24 hours'
                           ORDER BY completed_at DESC LIMIT $cap) x)
    + (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE organization_id = $org AND status = 'deadletter'
                             AND completed_at > coalesce($now::timestamptz, now()) - interval '24 hours'
                             ORDER BY completed_at DESC LIMIT $cap) x) AS failed_24h,
    (SELECT count(*) FROM (SELECT 1 FROM job_list WHERE organization_id = $org
                           AND created_at > coalesce($now::timestamptz, now()) - interval '1 hour'
                           ORDER BY created_at DESC, id DESC LIMIT $cap) x) AS created_1h,
    (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE organization_id = $org AND status = 'completed'
                           AND completed_at > coalesce($now::timestamptz, now()) - interval '1 hour'
                           ORDER BY completed_at DESC LIMIT $cap) x) AS completed_1h,
    (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE organization_id = $org AND status = 'failed'
                           AND completed_at > coalesce($now::timestamptz, now()) - interval '1 hour'
                           ORDER BY completed_at DESC LIMIT $cap) x)
    + (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE organization_id = $org AND status = 'deadletter'
                             AND completed_at > coalesce($now::timestamptz, now()) - interval '1 hour'
                             ORDER BY completed_at DESC LIMIT $cap) x) AS failed_1h,
    s.avg_wait_ms, s.avg_processing_ms
FROM (SELECT (avg(extract(epoch FROM started_at - run_at)) * 1000)::float8 AS avg_wait_ms,
             (avg(extract(epoch FROM completed_at - started_at)) * 1000)::float8 AS avg_processing_ms
      FROM (SELECT run_at, started_at, completed_at FROM jobs
            WHERE organization_id = $org AND status = 'completed'
              AND completed_at > coalesce($now::timestamptz, now()) - interval '24 hours'
            ORDER BY completed_at DESC LIMIT 1000) last) s

-- name: dashboard_jobs_in_queues
-- dashboard_jobs for a caller restricted to some queues (never empty here). Counts are index range scans of
-- those queues (jobs_ready_idx, jobs_org_active_idx, jobs_org_queue_finished_idx, jobs_deadletter_idx) stopping at
-- $cap; the total is the three that hold every job (ready, other active, finished), each capped. The counts over a
-- window and the averages have no index by queue and time: they look at the organization's latest $cap jobs of the
-- window (the scans dashboard_jobs makes) and count those of the queues, so they are exact while the organization
-- has fewer than $cap in the window and cost what the unrestricted summary costs.
SELECT
    least($cap::bigint,
          (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE organization_id = $org AND queue_name = ANY ($queues::text[])
                                 AND status = 'pending' AND dependencies_met LIMIT $cap) x)
          + (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE organization_id = $org AND queue_name = ANY ($queues::text[])
                                   AND (status IN ('scheduled', 'processing') OR (status = 'pending' AND NOT dependencies_met))
                                   LIMIT $cap) x)
          + (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE organization_id = $org AND queue_name = ANY ($queues::text[])
                                   AND completed_at IS NOT NULL
                                   AND status IN ('completed', 'failed', 'deadletter', 'cancelled') LIMIT $cap) x))
        AS total,
    (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE organization_id = $org AND queue_name = ANY ($queues::text[])
                           AND status = 'pending' AND dependencies_met LIMIT $cap) x) AS pending,
    (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE organization_id = $org AND queue_name = ANY ($queues::text[])
                           AND status = 'processing' LIMIT $cap) x) AS processing,
    (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE organization_id = $org AND queue_name = ANY ($queues::text[])
                           AND status = 'deadletter' LIMIT $cap) x) AS deadletter,
    (SELECT count(*) FROM (SELECT queue_name FROM jobs WHERE organization_id = $org AND status = 'completed'
                           AND completed_at > coalesce($now::timestamptz, now()) - interval '24 hours'
                           ORDER BY completed_at DESC LIMIT $cap) x WHERE queue_name = ANY ($queues::text[]))
        AS completed_24h,
    (SELECT count(*) FROM (SELECT queue_name FROM jobs WHERE organization_id = $org AND status = 'failed'
                           AND completed_at > coalesce($now::timestamptz, now()) - interval '24 hours'
                           ORDER BY completed_at DESC LIMIT $cap) x WHERE queue_name = ANY ($queues::text[]))
    + (SELECT count(*) FROM (SELECT queue_name FROM jobs WHERE organization_id = $org AND status = 'deadletter'
                             AND completed_at > coalesce($now::timestamptz, now()) - interval '24 hours'
                             ORDER BY completed_at DESC LIMIT $cap) x WHERE queue_name = ANY ($queues::text[]))
        AS failed_24h,
    (SELECT count(*) FROM (SELECT queue_name FROM job_list WHERE organization_id = $org
                           AND created_at > coalesce($now::timestamptz, now()) - interval '1 hour'
                           ORDER BY created_at DESC, id DESC LIMIT $cap) x WHERE queue_name = ANY ($queues::text[]))
        AS created_1h,
    (SELECT count(*) FROM (SELECT queue_name FROM jobs WHERE organization_id = $org AND status = 'completed'
                           AND completed_at > coalesce($now::timestamptz, now()) - interval '1 hour'
                           ORDER BY completed_at DESC LIMIT $cap) x WHERE queue_name = ANY ($queues::text[]))
        AS completed_1h,
    (SELECT count(*) FROM (SELECT queue_name FROM jobs WHERE organization_id = $org AND status = 'failed'
                           AND completed_at > coalesce($now::timestamptz, now()) - interval '1 hour'
                           ORDER BY completed_at DESC LIMIT $cap) x WHERE queue_name = ANY ($queues::text[]))
    + (SELECT count(*) FROM (SELECT queue_name FROM jobs WHERE organization_id = $org AND status = 'deadletter'
                             AND completed_at > coalesce($now::timestamptz, now()) - interval '1 hour'
                             ORDER BY completed_at DESC LIMIT $cap) x WHERE queue_name = ANY ($queues::text[]))
        AS failed_1h,
    s.avg_wait_ms, s.avg_processing_ms
FROM (SELECT (avg(extract(epoch FROM started_at - run_at)) * 1000)::float8 AS avg_wait_ms,
             (avg(extract(epoch FROM completed_at - started_at)) * 1000)::float8 AS avg_processing_ms
      FROM (SELECT run_at, started_at, completed_at FROM (
                SELECT queue_name, run_at, started_at, completed_at FROM jobs
                WHERE organization_id = $org AND status = 'completed'
                  AND completed_at > coalesce($now::timestamptz, now()) - interval '24 hours'
                ORDER BY completed_at DESC LIMIT $cap) w
            WHERE queue_name = ANY ($queues::text[]) LIMIT 1000) last) s

-- name: dashboard_queues
-- The organization's first $max_queues queues by name (those of the caller's scope, domain/scope.py) with
-- their ready jobs (capped per queue at $cap) and running jobs (one scan of the organization's processing jobs,
-- bounded by its workers' concurrency; capped too).
SELECT q.name, q.paused, p.n AS pending, coalesce(r.n, 0) AS processing
FROM (SELECT name, paused FROM queues WHERE organization_id = $org
        AND $scope(name = ANY ($queues::text[]))
      ORDER BY name LIMIT $max_queues) q
CROSS JOIN LATERAL (SELECT count(*) AS n FROM (SELECT 1 FROM jobs j WHERE j.organization_id = $org
                    AND j.queue_name = q.name AND j.status = 'pending' AND j.dependencies_met LIMIT $cap) x) p
LEFT JOIN (SELECT queue_name, count(*) AS n
           FROM (SELECT queue_name FROM jobs WHERE organization_id = $org AND status = 'processing'
                 LIMIT $running_cap) x GROUP BY queue_name) r ON r.queue_name = q.name
ORDER BY q.name

-- name: dashboard_workers
-- Registered workers heard from in the last day (long-silent ones drop out of the summary); of the caller's
-- scope: those all of whose queues it may use.
SELECT count(*) AS total, count(*) FILTER (WHERE status = 'healthy') AS healthy
FROM workers
WHERE organization_id = $org AND deregistered_at IS NULL
  AND $scope(queue_names <@ $queues::text[])
  AND last_heartbeat > coalesce($now::timestamptz, now()) - interval '24 hours'
