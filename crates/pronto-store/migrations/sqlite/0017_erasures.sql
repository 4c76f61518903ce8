-- The audit log of erasures (DELETE /v1/contacts/{id}): who erased which contact when, and how many rows of
-- each table were cleaned. It holds no personal data: the contact id names a row that no longer has any.
CREATE TABLE erasures (
    id           INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    contact_id   TEXT NOT NULL,
    erased_at    TEXT NOT NULL,
    by_whom      TEXT NOT NULL,
    summary      TEXT NOT NULL
);
CREATE INDEX erasures_by_time ON erasures (workspace_id, erased_at);
