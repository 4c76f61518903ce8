-- Hardening: keys that can be listed, rotated and revoked; a row the readiness probe writes.

-- A key's public id is the start of its hash (it reveals nothing about the key). `origin` says where it came
-- from: `generated` on a first start, `env` from PRONTO_WRITE_KEY / PRONTO_ADMIN_KEY, `api` from `pronto keys
-- create` or the admin API, `legacy` for keys stored before origins were kept.
ALTER TABLE api_keys ADD COLUMN id TEXT;
ALTER TABLE api_keys ADD COLUMN origin TEXT NOT NULL DEFAULT 'legacy';
ALTER TABLE api_keys ADD COLUMN label TEXT;
ALTER TABLE api_keys ADD COLUMN revoked_at TIMESTAMPTZ;
UPDATE api_keys SET id = substr(key_hash, 1, 16);
CREATE UNIQUE INDEX api_keys_by_id ON api_keys (id);
-- Two first starts racing on an empty database: only one generated key per kind can be live, so exactly one
-- process's insert wins (the other writes nothing and prints nothing).
CREATE UNIQUE INDEX api_keys_one_generated ON api_keys (workspace_id, kind)
    WHERE origin = 'generated' AND revoked_at IS NULL;

-- `/readyz` writes this row while writes are failing (a full disk): reads alone would say ready.
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TIMESTAMPTZ NOT NULL
);

-- Rows a worker met and could not read (corrupt or written by a newer version): each is set aside once, with
-- the reason, instead of failing its batch again and again. Its timer is cleared; the row itself stays.
CREATE TABLE quarantine (
    kind    TEXT NOT NULL CHECK (kind IN ('run', 'lead', 'message')),
    row_id  TEXT NOT NULL,
    -- The row's workspace, when it could be read.
    workspace_id TEXT,
    reason  TEXT NOT NULL,
    at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, row_id)
);

-- Idempotency keys are scoped per endpoint and credential: `dedupe_scope` is '' for the Segment `messageId`
-- (unique per workspace, as Segment dedupes) and e.g. 'leads:<key id>' for an `Idempotency-Key`, so a key can
-- never match a Segment message or another endpoint's key. `request_hash` lets a reused key with a different
-- request be refused.
ALTER TABLE events ADD COLUMN dedupe_scope TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN request_hash TEXT;
DROP INDEX events_by_message_id;
CREATE UNIQUE INDEX events_by_message_id ON events (workspace_id, dedupe_scope, message_id);

-- Acknowledgements per recipient in a day are capped (leads.ack.max_per_recipient_per_day): counted by address.
CREATE INDEX messages_by_recipient ON messages (to_addr, created_at);

-- Rate-limit counters shared by every process: hits per bucket (a client IP, a lead's address) in a fixed
-- window starting at `window_start` (Unix seconds).
CREATE TABLE rate_limits (
    bucket       TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    hits         BIGINT NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
