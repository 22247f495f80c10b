-- name: org_create_with_key
WITH o AS (
    INSERT INTO organizations (name, slug, plan_tier) VALUES ($name, $slug, $plan)
    RETURNING id, name, slug, plan_tier, billing_email, created_at
), k AS (
    INSERT INTO api_keys (organization_id, name, key_hash, key_prefix)
    SELECT o.id, 'default', $key_hash, $key_prefix FROM o
    RETURNING id
)
SELECT o.*, (SELECT id FROM k) AS api_key_id FROM o

-- name: org_get
SELECT id, name, slug, plan_tier, billing_email, settings::text AS settings, created_at, updated_at
FROM organizations WHERE id = $org

-- name: org_update
UPDATE organizations SET
    name = coalesce($name::text, name),
    billing_email = CASE WHEN $set_email::bool THEN $billing_email::text ELSE billing_email END,
    settings = jsonb_strip_nulls(settings || coalesce($settings::jsonb, '{}')),
    updated_at = now()
WHERE id = $org
RETURNING id, name, slug, plan_tier, billing_email, settings::text AS settings, created_at, updated_at

-- name: api_key_lookup
SELECT k.id, k.organization_id, k.queues, k.last_used_at, o.plan_tier
FROM api_keys k JOIN organizations o ON o.id = k.organization_id
WHERE k.key_hash = $key_hash AND k.is_active

-- name: api_key_touch
UPDATE api_keys SET last_used_at = now()
WHERE id = $id AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')

-- name: api_key_create
INSERT INTO api_keys (organization_id, name, key_hash, key_prefix, queues)
VALUES ($org, $name, $key_hash, $key_prefix, $queues)
RETURNING id, name, queues, is_active, created_at, last_used_at

-- name: api_key_list
SELECT id, name, queues, is_active, created_at, last_used_at FROM api_keys
WHERE organization_id = $org ORDER BY created_at, id

-- name: api_key_get
SELECT id, name, queues, is_active, created_at, last_used_at FROM api_keys
WHERE organization_id = $org AND id = $id

-- name: api_key_rename
UPDATE api_keys SET name = coalesce($name::text, name), queues = coalesce($queues::text[], queues)
WHERE organization_id = $org AND id = $id
RETURNING id, name, queues, is_active, created_at, last_used_at

-- name: api_key_revoke
UPDATE api_keys SET is_active = false, revoked_at = coalesce(revoked_at, now())
WHERE organization_id = $org AND id = $id
RETURNING key_hash

-- name: api_key_by_id
SELECT k.id, k.organization_id, k.queues, k.last_used_at, o.plan_tier
FROM api_keys k JOIN organizations o ON o.id = k.organization_id
WHERE k.id = $id AND k.is_active

-- name: refresh_token_create
INSERT INTO refresh_tokens (jti, organization_id, api_key_id, issued_at, expires_at)
VALUES ($jti, $org, $api_key_id, $issued_at, $expires_at)

-- name: refresh_token_check
-- A refresh token is good while it is unexpired, not revoked, and its API key is active.
SELECT t.jti FROM refresh_tokens t JOIN api_keys k ON k.id = t.api_key_id AND k.is_active
WHERE t.jti = $jti AND t.organization_id = $org AND t.revoked_at IS NULL AND t.expires_at > now()

-- name: refresh_token_revoke
UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE jti = $jti AND organization_id = $org
RETURNING jti
