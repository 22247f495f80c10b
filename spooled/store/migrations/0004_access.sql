-- Migration 0004: access and accounts: API-key rules, plan overrides and usage counters, email login codes,
-- Stripe billing state and its processed events, and the registry of live server instances (rate limits).

ALTER TABLE organizations
    ADD COLUMN custom_limits               jsonb,
    ADD COLUMN stripe_subscription_status  text,
    ADD COLUMN stripe_current_period_end   timestamptz,
    ADD COLUMN stripe_cancel_at_period_end boolean,
    ADD COLUMN stripe_event_at             timestamptz,
    ADD COLUMN suspended_at                timestamptz;
CREATE INDEX organizations_billing_email_idx ON organizations (lower(billing_email)) WHERE billing_email IS NOT NULL;
CREATE INDEX organizations_stripe_customer_idx ON organizations (stripe_customer_id)
    WHERE stripe_customer_id IS NOT NULL;

ALTER TABLE api_keys
    ADD COLUMN rate_limit   int,
    ADD COLUMN read_only    boolean NOT NULL DEFAULT false,
    ADD COLUMN expires_at   timestamptz,
    ADD CONSTRAINT api_keys_rate_limit_check CHECK (rate_limit IS NULL OR rate_limit >= 1);

CREATE TABLE org_usage_daily (
    organization_id     uuid        NOT NULL,
    day                 date        NOT NULL,
    jobs_created        bigint      NOT NULL DEFAULT 0,
    CONSTRAINT org_usage_daily_pk PRIMARY KEY (organization_id, day),
    CONSTRAINT org_usage_daily_organization_fk FOREIGN KEY (organization_id) REFERENCES organizations (id)
        ON DELETE CASCADE
);

CREATE TABLE email_login_codes (
    id                  uuid        NOT NULL DEFAULT gen_random_uuid(),
    email               text        NOT NULL,
    code_hash           bytea,
    attempts            int         NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    used_at             timestamptz,
    CONSTRAINT email_login_codes_pk PRIMARY KEY (id)
);
CREATE INDEX email_login_codes_email_idx ON email_login_codes (email, created_at DESC);

CREATE TABLE stripe_events (
    id                  text        NOT NULL,
    type                text        NOT NULL,
    event_at            timestamptz NOT NULL,
    organization_id     uuid,
    applied             boolean     NOT NULL,
    received_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stripe_events_pk PRIMARY KEY (id)
);

CREATE TABLE server_instances (
    id                  uuid        NOT NULL,
    hostname            text        NOT NULL,
    started_at          timestamptz NOT NULL DEFAULT now(),
    heartbeat_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT server_instances_pk PRIMARY KEY (id)
);
