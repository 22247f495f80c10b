-- name: webhook_create
INSERT INTO webhooks (organization_id, name, url, events, enabled, secret, format)
VALUES ($org, $name, $url, $events::text[], $enabled, $secret, $format)
RETURNING *

-- name: webhook_list
SELECT * FROM webhooks WHERE organization_id = $org ORDER BY created_at, id

-- name: webhook_get
SELECT * FROM webhooks WHERE organization_id = $org AND id = $id

-- name: webhook_update
-- Partial update: NULL keeps a column; the secret is replaced or cleared only when $set_secret. Re-enabling a
-- disabled webhook starts its consecutive-failure count over.
UPDATE webhooks w SET
    name = coalesce($name::text, w.name),
    url = coalesce($url::text, w.url),
    events = coalesce($events::text[], w.events),
    format = coalesce($format::text, w.format),
    secret = CASE WHEN $set_secret::bool THEN $secret::text ELSE w.secret END,
    failure_count = CASE WHEN $enabled::bool AND NOT w.enabled THEN 0 ELSE w.failure_count END,
    enabled = coalesce($enabled::bool, w.enabled),
    updated_at = now()
WHERE w.organization_id = $org AND w.id = $id
RETURNING w.*

-- name: webhook_delete
DELETE FROM webhooks WHERE organization_id = $org AND id = $id RETURNING id

-- name: delivery_list
SELECT id, webhook_id, event, payload::text AS payload, status, attempts, status_code, response_body, error,
       created_at, delivered_at
FROM webhook_deliveries
WHERE organization_id = $org AND webhook_id = $webhook AND ($status::text IS NULL OR status = $status)
ORDER BY created_at DESC, id DESC
LIMIT $limit OFFSET $offset

-- name: delivery_redeliver
-- Send a delivery again (same id, a fresh attempt budget), as soon as a dispatcher is free.
WITH u AS (
    UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), locked_until = NULL,
                                  error = NULL
    WHERE organization_id = $org AND webhook_id = $webhook AND id = $id
    RETURNING id
)
SELECT u.id, pg_notify('spooled_webhooks', '') IS NOT NULL AS woken FROM u

-- name: delivery_lease
-- Lease up to $limit due deliveries for one attempt each: `locked_until` is both the lease (no other dispatcher
-- picks the row until it passes) and the fencing token the outcome must present. No row lock outlives this
-- statement, so no lock is held across the network call.
WITH t AS (SELECT coalesce($now::timestamptz, now()) AS now),
pick AS (
    SELECT d.id FROM webhook_deliveries d, t
    WHERE d.status = 'pending' AND d.next_attempt_at <= t.now AND (d.locked_until IS NULL OR d.locked_until <= t.now)
    ORDER BY d.next_attempt_at
    LIMIT $limit
    FOR UPDATE OF d SKIP LOCKED
), u AS (
    UPDATE webhook_deliveries d SET locked_until = t.now + make_interval(secs => $lease_secs::float8),
                                    attempts = d.attempts + 1
    FROM pick, t
    WHERE d.id = pick.id
    RETURNING d.*
)
SELECT u.id, u.webhook_id, u.organization_id, u.event, u.payload::text AS payload, u.attempts, u.locked_until,
       u.created_at, coalesce(w.url, u.url) AS url, coalesce(w.format, 'json') AS format,
       (u.webhook_id IS NULL OR coalesce(w.enabled, false)) AS enabled,
       CASE WHEN u.webhook_id IS NULL THEN u.secret ELSE w.secret END AS secret
FROM u LEFT JOIN webhooks w ON w.id = u.webhook_id
ORDER BY u.next_attempt_at

-- name: delivery_record
-- The outcome of one attempt, fenced by the lease (an attempt whose lease another dispatcher has since taken
-- over records nothing). Success resets the webhook's consecutive-failure count; a delivery out of attempts
-- ($retry_in NULL) counts one failure, and $max_failures of them in a row disable the webhook.
WITH t AS (SELECT coalesce($now::timestamptz, now()) AS now),
d AS (
    UPDATE webhook_deliveries d SET
        status = CASE WHEN $ok::bool THEN 'success' WHEN $retry_in::float8 IS NULL THEN 'failed' ELSE 'pending' END,
        next_attempt_at = CASE WHEN $ok::bool OR $retry_in::float8 IS NULL THEN d.next_attempt_at
                               ELSE t.now + make_interval(secs => $retry_in::float8) END,
        locked_until = NULL, status_code = $status_code, error = $error, response_body = $response_body,
        delivered_at = CASE WHEN $ok::bool THEN t.now ELSE d.delivered_at END
    FROM t
    WHERE d.id = $id AND d.locked_until = $lease
    RETURNING d.webhook_id, d.status
), w AS (
    UPDATE webhooks w SET
        last_triggered_at = t.now,
        failure_count = CASE WHEN d.status = 'success' THEN 0
                             WHEN d.status = 'failed' THEN w.failure_count + 1 ELSE w.failure_count END,
        enabled = w.enabled AND NOT (d.status = 'failed' AND w.failure_count + 1 >= $max_failures),
        last_status = CASE WHEN d.status = 'success' THEN 'success'
                           WHEN d.status = 'failed' AND w.failure_count + 1 >= $max_failures THEN 'auto_disabled'
                           ELSE 'failed' END
    FROM d, t
    WHERE w.id = d.webhook_id AND (w.enabled OR d.status = 'success')   -- a disabled webhook's count stays put
    RETURNING w.enabled
)
SELECT d.status, (SELECT enabled FROM w) AS webhook_enabled FROM d

-- name: inbound_record
INSERT INTO inbound_webhooks (organization_id, provider, event_type, matched_queue, job_id, status)
VALUES ($org, $provider, $event_type, $queue, $job_id, $status)

-- name: inbound_list
SELECT id, provider, event_type, matched_queue, job_id, status, created_at FROM inbound_webhooks
WHERE organization_id = $org AND ($status::text IS NULL OR status = $status)
  AND ($since::timestamptz IS NULL OR created_at >= $since) AND ($queue::text IS NULL OR matched_queue = $queue)
ORDER BY created_at DESC, id DESC
LIMIT $limit OFFSET $offset

-- name: org_webhook_settings
-- What the incoming receivers need of an organization: its secrets, queue mapping and custom-webhook token.
SELECT settings ->> 'github_webhook_secret' AS github_secret, settings ->> 'github_queue' AS github_queue,
       settings ->> 'stripe_webhook_secret' AS stripe_secret, settings ->> 'stripe_queue' AS stripe_queue,
       webhook_token
FROM organizations WHERE id = $org

-- name: org_webhook_token
-- The organization's custom-webhook token, made on first read (or replaced when $regenerate).
UPDATE organizations SET webhook_token = CASE WHEN $regenerate::bool OR webhook_token IS NULL THEN $fresh::text
                                              ELSE webhook_token END
WHERE id = $org
RETURNING webhook_token
