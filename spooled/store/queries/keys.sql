-- API keys (models.ApiKey: `*` columns; key_hash never leaves the store) and refresh tokens.

-- name: api_key_lookup
-- The grant of an active key, by the hash of the key: one probe of the unique index.
SELECT k.id, k.organization_id, k.queues, k.rate_limit, k.read_only, k.expires_at, o.plan_tier,
       o.custom_limits::text AS custom_limits, o.suspended_at IS NOT NULL AS suspended
FROM api_keys k JOIN organizations o ON o.id = k.organization_id
WHERE k.key_hash = $key_hash AND k.is_active

-- name: api_key_by_id
-- The grant of an active key, by id (the key behind a token).
SELECT k.id, k.organization_id, k.queues, k.rate_limit, k.read_only, k.expires_at, o.plan_tier,
       o.custom_limits::text AS custom_limits, o.suspended_at IS NOT NULL AS suspended
FROM api_keys k JOIN organizations o ON o.id = k.organization_id
WHERE k.id = $id AND k.is_active

-- name: api_key_touch
UPDATE api_keys SET last_used_at = now()
WHERE id = $id AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')

-- name: api_key_create
INSERT INTO api_keys (organization_id, name, key_hash, key_prefix, queues, rate_limit, read_only, expires_at)
VALUES ($org, $name, $key_hash, $key_prefix, $queues, $rate_limit, $read_only, $expires_at)
RETURNING *

-- name: api_key_list
SELECT * FROM api_keys WHERE organization_id = $org ORDER BY created_at, id

-- name: api_key_get
SELECT * FROM api_keys WHERE organization_id = $org AND id = $id

-- name: api_key_update
-- Partial update: a NULL parameter keeps the column; rate_limit can be cleared (set_rate_limit). A revoked key
-- stays inactive (`reactivated` tells the caller it asked for the impossible).
UPDATE api_keys SET
    name = coalesce($name::text, name),
    queues = coalesce($queues::text[], queues),
    rate_limit = CASE WHEN $set_rate_limit::bool THEN $rate_limit::int ELSE rate_limit END,
    is_active = CASE WHEN revoked_at IS NOT NULL THEN false ELSE coalesce($is_active::bool, is_active) END
WHERE organization_id = $org AND id = $id
RETURNING *

-- name: api_key_revoke
UPDATE api_keys SET is_active = false, revoked_at = coalesce(revoked_at, now())
WHERE organization_id = $org AND id = $id
RETURNING *

-- name: api_key_named
-- The organization's active key of this name (the email-login key), if any.
SELECT * FROM api_keys WHERE organization_id = $org AND name = $name AND is_active ORDER BY created_at LIMIT 1

-- name: refresh_token_create
INSERT INTO refresh_tokens (jti, organization_id, api_key_id, issued_at, expires_at)
VALUES ($jti, $org, $api_key_id, $issued_at, $expires_at)

-- name: refresh_token_check
-- A refresh token is good while it is unexpired, not revoked, and its API key is active and unexpired.
SELECT t.jti FROM refresh_tokens t
JOIN api_keys k ON k.id = t.api_key_id AND k.is_active AND (k.expires_at IS NULL OR k.expires_at > now())
WHERE t.jti = $jti AND t.organization_id = $org AND t.revoked_at IS NULL AND t.expires_at > now()

-- name: refresh_token_revoke
UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE jti = $jti AND organization_id = $org
RETURNING jti
