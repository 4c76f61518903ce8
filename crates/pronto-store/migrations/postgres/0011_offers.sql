-- Offer pools' unique codes (pronto_domain::offer). A code is unused while message_key is NULL; a timer batch
-- claims unused codes and marks the ones it gives to messages with the message's outbox key, in the
-- transaction that writes the message, so a code is never given twice.
CREATE TABLE offer_codes (
    workspace_id UUID NOT NULL,
    offer_id     TEXT NOT NULL,
    code         TEXT NOT NULL,
    added_at     TIMESTAMPTZ NOT NULL,
    message_key  TEXT,
    used_at      TIMESTAMPTZ,
    PRIMARY KEY (workspace_id, offer_id, code)
);
CREATE INDEX offer_codes_unused ON offer_codes (workspace_id, offer_id) WHERE message_key IS NULL;
-- One code per message, whatever fires twice.
CREATE UNIQUE INDEX offer_codes_by_message ON offer_codes (message_key) WHERE message_key IS NOT NULL;
