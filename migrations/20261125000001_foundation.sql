-- Partner Portal: the system of record.
-- Every tenant-owned table carries client_id, and every index a tenant query uses starts with it, so a
-- query filtered on the caller's client never scans another partner's rows.
-- Timestamps are timestamptz (UTC on the wire); "days" are computed in the client's timezone at read time.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Partners ("clients" of the white-label app).
CREATE TABLE clients (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$'),
    -- IANA name, validated by the application (chrono-tz) before insert.
    timezone    text NOT NULL DEFAULT 'UTC',
    branding    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(branding) = 'object'),
    features    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(features) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- App-facing keys. Only a SHA-256 of the key is kept (keys carry >= 128 random bits, so a fast hash is
-- the right tool); `prefix` is the first characters, shown to operators to tell keys apart.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    client_id    uuid NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '',
    prefix       text NOT NULL,
    key_hash     bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_client_idx ON api_keys (client_id, created_at DESC);

-- Partner staff. Emails are unique platform-wide because staff log in with email + password alone.
CREATE TABLE staff (
    id             uuid PRIMARY KEY,
    client_id      uuid NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    email          text NOT NULL CHECK (email = lower(email) AND position('@' IN email) > 1),
    name           text NOT NULL DEFAULT '',
    password_hash  text NOT NULL,               -- argon2id PHC string
    role           text NOT NULL CHECK (role IN ('admin', 'viewer')),
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz
);
CREATE UNIQUE INDEX staff_email_key ON staff (email);
CREATE INDEX staff_client_idx ON staff (client_id);

-- Voucher codes handed out by partners. `code` is stored upper-case and unique across the platform.
-- `expired` is not a stored status: it follows from expires_at at read time.
CREATE TABLE vouchers (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id    uuid NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    code         text NOT NULL CHECK (code = upper(code) AND length(code) BETWEEN 9 AND 40),
    batch_id     uuid NOT NULL,
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'redeemed', 'revoked')),
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   uuid REFERENCES staff(id) ON DELETE SET NULL,
    redeemed_by  uuid,                          -- members(id); FK added below (members refer back here)
    redeemed_at  timestamptz,
    revoked_at   timestamptz,
    revoked_by   uuid REFERENCES staff(id) ON DELETE SET NULL,
    CONSTRAINT vouchers_redeemed_consistent CHECK ((status = 'redeemed') = (redeemed_at IS NOT NULL)),
    CONSTRAINT vouchers_revoked_consistent CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);
CREATE UNIQUE INDEX vouchers_code_key ON vouchers (code);
CREATE INDEX vouchers_client_created_idx ON vouchers (client_id, created_at DESC, id DESC);
CREATE INDEX vouchers_client_status_idx ON vouchers (client_id, status, expires_at);
CREATE INDEX vouchers_client_batch_idx ON vouchers (client_id, batch_id);
CREATE INDEX vouchers_code_trgm_idx ON vouchers USING gin (code gin_trgm_ops);

-- Members of a partner's programme (app users). Email is unique within a client.
-- The activity columns are the member activity summary kept by the event pipeline (worker):
-- deduplicated class views, watch seconds, first/last watch time.
CREATE TABLE members (
    id                 uuid PRIMARY KEY,
    client_id          uuid NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    email              text NOT NULL CHECK (email = lower(email) AND position('@' IN email) > 1),
    name               text NOT NULL,
    password_hash      text NOT NULL,
    voucher_id         bigint REFERENCES vouchers(id) ON DELETE SET NULL,
    registered_at      timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    first_active_at    timestamptz,
    last_active_at     timestamptz,
    watch_seconds      bigint NOT NULL DEFAULT 0 CHECK (watch_seconds >= 0),
    class_views        bigint NOT NULL DEFAULT 0 CHECK (class_views >= 0)
);
CREATE UNIQUE INDEX members_client_email_key ON members (client_id, email);
CREATE UNIQUE INDEX members_voucher_key ON members (voucher_id) WHERE voucher_id IS NOT NULL;
CREATE INDEX members_client_registered_idx ON members (client_id, registered_at DESC, id);
CREATE INDEX members_client_last_active_idx ON members (client_id, last_active_at DESC NULLS LAST, id);
CREATE INDEX members_client_watch_idx ON members (client_id, watch_seconds DESC, id);
CREATE INDEX members_client_name_idx ON members (client_id, lower(name), id);
CREATE INDEX members_name_trgm_idx ON members USING gin (lower(name) gin_trgm_ops);
CREATE INDEX members_email_trgm_idx ON members USING gin (email gin_trgm_ops);

ALTER TABLE vouchers
    ADD CONSTRAINT vouchers_redeemed_by_fkey FOREIGN KEY (redeemed_by) REFERENCES members(id) ON DELETE SET NULL;

-- Refresh tokens for staff and members. Only a SHA-256 of the token is stored. Tokens of one login
-- form a family; each refresh marks the presented token used and issues the next one in the family.
-- Presenting a used token again revokes the whole family (stolen-token detection).
CREATE TABLE refresh_tokens (
    id           uuid PRIMARY KEY,
    family_id    uuid NOT NULL,
    client_id    uuid NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    staff_id     uuid REFERENCES staff(id) ON DELETE CASCADE,
    member_id    uuid REFERENCES members(id) ON DELETE CASCADE,
    token_hash   bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    issued_at    timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    revoked_at   timestamptz,
    CONSTRAINT refresh_tokens_one_subject CHECK ((staff_id IS NULL) <> (member_id IS NULL))
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

-- Affiliate products shown in the app's store section.
CREATE TABLE products (
    id            uuid PRIMARY KEY,
    client_id     uuid NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description   text NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
    image         text CHECK (image IS NULL OR image ~ '^https?://'),
    price         numeric(12, 2) CHECK (price IS NULL OR price >= 0),
    currency      char(3) NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    external_url  text CHECK (external_url IS NULL OR external_url ~ '^https?://'),
    product_type  text CHECK (product_type IS NULL OR length(product_type) <= 100),
    featured      boolean NOT NULL DEFAULT false,
    status        text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'archived')),
    sort_order    integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_client_status_idx ON products (client_id, status, sort_order, created_at DESC);
CREATE INDEX products_client_created_idx ON products (client_id, created_at DESC, id);
CREATE INDEX products_client_type_idx ON products (client_id, product_type);
CREATE INDEX products_name_trgm_idx ON products USING gin (name gin_trgm_ops);
CREATE INDEX products_description_trgm_idx ON products USING gin (description gin_trgm_ops);

-- About/Privacy and other HTML strings rendered by the app. Values are sanitized before they get here.
CREATE TABLE content_strings (
    client_id   uuid NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    key         text NOT NULL CHECK (key ~ '^st_[a-z0-9_]{1,64}$'),
    value       text NOT NULL CHECK (octet_length(value) <= 65536),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  uuid REFERENCES staff(id) ON DELETE SET NULL,
    PRIMARY KEY (client_id, key)
);

-- The class catalogue, shared by all partners; ids are the catalogue's own (e.g. 'yoga-flow-1').
CREATE TABLE classes (
    id                text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    title             text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 300),
    category          text NOT NULL CHECK (length(btrim(category)) BETWEEN 1 AND 100),
    instructor        text NOT NULL DEFAULT '',
    duration_minutes  integer NOT NULL CHECK (duration_minutes > 0 AND duration_minutes <= 1440),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX classes_category_idx ON classes (category, id);

-- Asynchronous CSV exports. The row is the job's state; the queue only carries its id.
CREATE TABLE export_jobs (
    id            uuid PRIMARY KEY,
    client_id     uuid NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('vouchers', 'members', 'billing')),
    params        jsonb NOT NULL DEFAULT '{}'::jsonb,
    status        text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    rows_written  bigint NOT NULL DEFAULT 0,
    rows_total    bigint,
    file_name     text NOT NULL,
    storage_key   text,
    error         text,
    attempts      integer NOT NULL DEFAULT 0,
    created_by    uuid REFERENCES staff(id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    completed_at  timestamptz,
    expires_at    timestamptz
);
CREATE INDEX export_jobs_client_created_idx ON export_jobs (client_id, created_at DESC);
CREATE INDEX export_jobs_expires_idx ON export_jobs (expires_at) WHERE expires_at IS NOT NULL;

-- Idempotency-Key replay store (POST /partner/vouchers and other retried writes).
CREATE TABLE idempotency_keys (
    client_id     uuid NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scope         text NOT NULL,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  bytea NOT NULL,
    status_code   smallint NOT NULL,
    response      jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, scope, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Who did what, when. Append-only.
CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id    uuid NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    actor_type   text NOT NULL CHECK (actor_type IN ('staff', 'member', 'system')),
    actor_id     uuid,
    actor_email  text,
    action       text NOT NULL,
    target_type  text,
    target_id    text,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb,
    ip           inet,
    request_id   text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_client_created_idx ON audit_log (client_id, created_at DESC, id DESC);
CREATE INDEX audit_log_client_action_idx ON audit_log (client_id, action, created_at DESC);
