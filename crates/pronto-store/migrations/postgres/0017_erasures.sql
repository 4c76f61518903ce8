-- The audit log of erasures (DELETE /v1/contacts/{id}): who erased which contact when, and how many rows of
-- each table were cleaned. It holds no personal data: the contact id names a row that no longer has any.
CREATE TABLE erasures (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id UUID NOT NULL,
    contact_id   UUID NOT NULL,
    erased_at    TIMESTAMPTZ NOT NULL,
    by_whom      TEXT NOT NULL,
    summary      JSONB NOT NULL
);
CREATE INDEX erasures_by_time ON erasures (workspace_id, erased_at);
