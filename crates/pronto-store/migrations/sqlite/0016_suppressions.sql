-- The suppression list (pronto_domain::suppression): per workspace, the email addresses and phone numbers
-- nothing more is sent to, why, since when and, for soft bounces, until when. The outbox checks it when it
-- claims messages, so a message queued before its address was listed is skipped too.
CREATE TABLE suppressions (
    workspace_id TEXT NOT NULL,
    medium       TEXT NOT NULL CHECK (medium IN ('email', 'sms')),
    address      TEXT NOT NULL,
    reason       TEXT NOT NULL,
    source       TEXT NOT NULL,
    detail       TEXT,
    since        TEXT NOT NULL,
    until        TEXT,
    PRIMARY KEY (workspace_id, medium, address)
);
-- Soft bounces counted towards listing an address for a while ([messages] soft_bounces).
CREATE TABLE soft_bounces (
    workspace_id TEXT NOT NULL,
    medium       TEXT NOT NULL,
    address      TEXT NOT NULL,
    at           TEXT NOT NULL,
    detail       TEXT
);
CREATE INDEX soft_bounces_by_address ON soft_bounces (workspace_id, medium, address, at);

-- A message skipped because its address is listed is `suppressed` (never attempted; last_error says why).
-- SQLite cannot change a CHECK constraint in place, so the table is copied with the new one, keeping each
-- row's rowid (the flows report's cursor reads messages by rowid).
CREATE TABLE messages_new (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    run_id          TEXT,
    flow_id         TEXT,
    step            INTEGER,
    contact_id      TEXT NOT NULL,
    channel         TEXT NOT NULL,
    to_addr         TEXT NOT NULL,
    from_addr       TEXT NOT NULL,
    reply_to        TEXT,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    body_html       TEXT,
    unsubscribe_url TEXT,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed', 'suppressed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- While queued: when the next attempt may start. A claimed message is pushed out by the lease, so a
    -- worker that dies mid-send leaves it to be retried, not lost.
    next_attempt_at TEXT,
    -- Set while a worker holds the message (its lease), cleared when the attempt is recorded.
    claimed_at      TEXT,
    last_error      TEXT,
    transport       TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    lead_id         TEXT
);
INSERT INTO messages_new (rowid, id, workspace_id, idempotency_key, run_id, flow_id, step, contact_id, channel,
    to_addr, from_addr, reply_to, subject, body_text, body_html, unsubscribe_url, state, attempts,
    next_attempt_at, claimed_at, last_error, transport, created_at, sent_at, lead_id)
SELECT rowid, id, workspace_id, idempotency_key, run_id, flow_id, step, contact_id, channel,
    to_addr, from_addr, reply_to, subject, body_text, body_html, unsubscribe_url, state, attempts,
    next_attempt_at, claimed_at, last_error, transport, created_at, sent_at, lead_id
FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE state = 'queued';
CREATE INDEX messages_by_contact ON messages (contact_id, created_at);
CREATE INDEX messages_by_workspace ON messages (workspace_id, created_at);
CREATE INDEX messages_by_lead ON messages (lead_id) WHERE lead_id IS NOT NULL;
CREATE INDEX messages_by_recipient ON messages (to_addr, created_at);
CREATE INDEX messages_by_run ON messages (run_id) WHERE run_id IS NOT NULL;
