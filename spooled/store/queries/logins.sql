-- Passwordless email login codes (services/email_login.py).

-- name: email_code_recent
-- Codes sent to this address since `since`, and when the oldest of them was sent.
SELECT count(*) AS n, min(created_at) AS oldest FROM email_login_codes WHERE email = $email AND created_at >= $since

-- name: email_code_create
INSERT INTO email_login_codes (email, code_hash, expires_at)
VALUES ($email, $code_hash, now() + make_interval(secs => $ttl_secs))
RETURNING id

-- name: email_code_attempt
-- Count one try against the address's newest code that is unexpired and unused; its hash and tries so far.
UPDATE email_login_codes SET attempts = attempts + 1
WHERE id = (SELECT id FROM email_login_codes WHERE email = $email AND used_at IS NULL AND expires_at > now()
            ORDER BY created_at DESC LIMIT 1 FOR UPDATE)
RETURNING id, code_hash, attempts

-- name: email_code_use
UPDATE email_login_codes SET used_at = now() WHERE id = $id AND used_at IS NULL RETURNING id
