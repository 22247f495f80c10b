-- Organizations: the tenant row, its settings, plan and billing state (models.Organization: `*` columns).

-- name: org_create_with_key
-- A new organization and its first API key, in one statement.
WITH o AS (
    INSERT INTO organizations (name, slug, plan_tier, billing_email, settings, custom_limits)
    VALUES ($name, $slug, $plan, $billing_email, coalesce($settings::jsonb, '{}'), $custom_limits::jsonb)
    RETURNING *
), k AS (
    INSERT INTO api_keys (organization_id, name, key_hash, key_prefix)
    SELECT o.id, $key_name, $key_hash, $key_prefix FROM o
    RETURNING *
)
SELECT o.*, k.id AS key_id, k.name AS key_name, k.created_at AS key_created_at FROM o, k

-- name: org_get
SELECT * FROM organizations WHERE id = $org

-- name: org_by_slug
SELECT * FROM organizations WHERE slug = $slug

-- name: org_list
-- Admin listing, newest first, optionally one plan; `total` counts every match.
SELECT o.*, count(*) OVER () AS total FROM organizations o
WHERE $plan::text IS NULL OR o.plan_tier = $plan
ORDER BY o.created_at DESC, o.id
LIMIT $limit OFFSET $offset

-- name: org_count
SELECT count(*) FROM organizations WHERE $plan::text IS NULL OR plan_tier = $plan

-- name: org_update
-- Partial update; a NULL parameter keeps the column (billing_email can be cleared with set_email).
-- settings and custom_limits merge key by key (a null value removes the key).
UPDATE organizations SET
    name = coalesce($name::text, name),
    billing_email = CASE WHEN $set_email::bool THEN $billing_email::text ELSE billing_email END,
    settings = jsonb_strip_nulls(settings || coalesce($settings::jsonb, '{}')),
    plan_tier = coalesce($plan::text, plan_tier),
    custom_limits = CASE WHEN $clear_limits::bool THEN NULL
                         WHEN $custom_limits::jsonb IS NULL THEN custom_limits
                         ELSE nullif(coalesce(custom_limits, '{}') || $custom_limits::jsonb, '{}') END,
    suspended_at = CASE WHEN $suspended::bool IS NULL THEN suspended_at
                        WHEN $suspended::bool THEN coalesce(suspended_at, now()) END,
    updated_at = now()
WHERE id = $org
RETURNING *

-- name: org_lock
SELECT id FROM organizations WHERE id = $org FOR UPDATE

-- name: org_busy
-- What blocks deleting an organization: its active jobs, live workers and active schedules.
SELECT (SELECT count(*) FROM jobs WHERE organization_id = $org AND status = 'pending' AND dependencies_met)
       + (SELECT count(*) FROM jobs WHERE organization_id = $org AND (status IN ('scheduled', 'processing')
                                           OR (status = 'pending' AND NOT dependencies_met))) AS active_jobs,
       (SELECT count(*) FROM workers WHERE organization_id = $org AND status <> 'offline') AS workers,
       (SELECT count(*) FROM schedules WHERE organization_id = $org AND is_active) AS schedules

-- name: org_delete
DELETE FROM organizations WHERE id = $org RETURNING id

-- name: org_slug_taken
SELECT EXISTS (SELECT 1 FROM organizations WHERE slug = $slug)

-- name: org_by_billing_email
-- The organizations whose billing email is this address (case-insensitive), oldest first.
SELECT * FROM organizations WHERE lower(billing_email) = lower($email) AND suspended_at IS NULL
ORDER BY created_at, id

-- name: org_stats
-- Platform-wide counts for GET /admin/stats (an operator's page, not a hot path).
SELECT (SELECT count(*) FROM organizations) AS orgs_total,
       (SELECT coalesce(json_agg(json_build_object('plan', plan_tier, 'count', n) ORDER BY plan_tier), '[]')::text
        FROM (SELECT plan_tier, count(*) AS n FROM organizations GROUP BY plan_tier) p) AS orgs_by_plan,
       (SELECT count(*) FROM organizations WHERE created_at >= date_trunc('day', now())) AS orgs_today,
       (SELECT count(*) FROM organizations WHERE created_at >= now() - interval '7 days') AS orgs_week,
       (SELECT count(*) FROM jobs WHERE status = 'pending') AS jobs_pending,
       (SELECT count(*) FROM jobs WHERE status = 'scheduled') AS jobs_scheduled,
       (SELECT count(*) FROM jobs WHERE status = 'processing') AS jobs_processing,
       (SELECT count(*) FROM jobs WHERE status = 'completed' AND completed_at >= now() - interval '1 day')
           AS jobs_completed_24h,
       (SELECT count(*) FROM jobs WHERE status IN ('failed', 'deadletter')
          AND completed_at >= now() - interval '1 day') AS jobs_failed_24h,
       (SELECT count(*) FROM workers WHERE status <> 'offline') AS workers_total,
       (SELECT count(*) FROM workers WHERE status = 'healthy') AS workers_healthy,
       (SELECT count(*) FROM workers WHERE status = 'degraded') AS workers_degraded

-- name: stripe_event_record
-- Claim an event id (once: a replay finds it taken and changes nothing).
INSERT INTO stripe_events (id, type, event_at, organization_id, applied)
VALUES ($id, $type, $event_at, $org, $applied)
ON CONFLICT ON CONSTRAINT stripe_events_pk DO NOTHING
RETURNING id

-- name: org_for_stripe
-- The organization a Stripe object belongs to: by our id (metadata / client_reference_id), else by customer.
SELECT * FROM organizations
WHERE id = $org::uuid OR stripe_customer_id = $customer::text
ORDER BY (id = $org::uuid) DESC NULLS LAST
LIMIT 1

-- name: org_apply_billing
-- Apply a Stripe event's state unless a newer event was applied already (never older over newer). A NULL
-- parameter keeps the column; `set_period` / `set_cancel` tell a cleared value from an absent one.
UPDATE organizations SET
    stripe_customer_id = coalesce($customer::text, stripe_customer_id),
    stripe_subscription_id = CASE WHEN $clear_subscription::bool THEN NULL
                                  ELSE coalesce($subscription::text, stripe_subscription_id) END,
    stripe_subscription_status = coalesce($status::text, stripe_subscription_status),
    stripe_current_period_end = CASE WHEN $set_period::bool THEN $period_end::timestamptz
                                     ELSE stripe_current_period_end END,
    stripe_cancel_at_period_end = CASE WHEN $set_cancel::bool THEN $cancel_at_period_end::bool
                                       ELSE stripe_cancel_at_period_end END,
    plan_tier = coalesce($plan::text, plan_tier),
    stripe_event_at = $event_at,
    updated_at = now()
WHERE id = $org AND (stripe_event_at IS NULL OR stripe_event_at <= $event_at)
RETURNING *

-- name: stripe_event_mark_applied
UPDATE stripe_events SET applied = true WHERE id = $id
