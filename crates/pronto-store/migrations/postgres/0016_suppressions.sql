-- The suppression list (pronto_domain::suppression): per workspace, the email addresses and phone numbers
-- nothing more is sent to, why, since when and, for soft bounces, until when. The outbox checks it when it
-- claims messages, so a message queued before its address was listed is skipped too.
CREATE TABLE suppressions (
    workspace_id UUID NOT NULL,
    medium       TEXT NOT NULL CHECK (medium IN ('email', 'sms')),
    address      TEXT NOT NULL,
    reason       TEXT NOT NULL,
    source       TEXT NOT NULL,
    detail       TEXT,
    since        TIMESTAMPTZ NOT NULL,
    until        TIMESTAMPTZ,
    PRIMARY KEY (workspace_id, medium, address)
);
-- Soft bounces counted towards listing an address for a while ([messages] soft_bounces).
CREATE TABLE soft_bounces (
    workspace_id UUID NOT NULL,
    medium       TEXT NOT NULL,
    address      TEXT NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    detail       TEXT
);
CREATE INDEX soft_bounces_by_address ON soft_bounces (workspace_id, medium, address, at);

-- A message skipped because its address is listed is `suppressed` (never attempted; last_error says why).
ALTER TABLE messages DROP CONSTRAINT messages_state_check;
ALTER TABLE messages ADD CONSTRAINT messages_state_check
    CHECK (state IN ('queued', 'sent', 'failed', 'suppressed'));
