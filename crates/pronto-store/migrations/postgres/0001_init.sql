-- pronto's PostgreSQL schema. Every row carries its workspace, the partition key if one database is ever not enough.

CREATE TABLE workspaces (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    is_default  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX workspaces_one_default ON workspaces (is_default) WHERE is_default;

-- API keys are stored as SHA-256 hashes; the key itself is shown once and never stored.
CREATE TABLE api_keys (
    key_hash     TEXT PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES workspaces (id),
    kind         TEXT NOT NULL CHECK (kind IN ('write', 'admin')),
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE contacts (
    id           UUID PRIMARY KEY,
    workspace_id UUID NOT NULL REFERENCES workspaces (id),
    traits       JSONB NOT NULL DEFAULT '{}',
    -- Set when this contact was merged into another; the row stays so the merge is not lossy.
    merged_into  UUID REFERENCES contacts (id),
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- Merging repoints every contact merged into the one being merged.
CREATE INDEX contacts_by_merged_into ON contacts (merged_into) WHERE merged_into IS NOT NULL;

-- One identity belongs to one live contact: the primary key is what makes "one contact per person" hold,
-- also with several writers and several pronto processes on this database.
CREATE TABLE identities (
    workspace_id UUID NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('user_id', 'anonymous_id', 'email', 'phone')),
    value        TEXT NOT NULL,
    contact_id   UUID NOT NULL REFERENCES contacts (id),
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, kind, value)
);
CREATE INDEX identities_by_contact ON identities (contact_id);

CREATE TABLE contact_merges (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id UUID NOT NULL,
    from_contact UUID NOT NULL REFERENCES contacts (id),
    into_contact UUID NOT NULL REFERENCES contacts (id),
    event_id     UUID NOT NULL,
    merged_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX contact_merges_into ON contact_merges (into_contact);

-- payload is JSON, not JSONB: it keeps the message byte for byte as the client sent it.
CREATE TABLE events (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           UUID NOT NULL UNIQUE,
    workspace_id UUID NOT NULL,
    contact_id   UUID NOT NULL REFERENCES contacts (id),
    message_id   TEXT,
    type         TEXT NOT NULL,
    name         TEXT,
    payload      JSON NOT NULL,
    client_ts    TIMESTAMPTZ,
    received_at  TIMESTAMPTZ NOT NULL
);
-- NULL message ids never conflict, so events sent without one are all kept.
CREATE UNIQUE INDEX events_by_message_id ON events (workspace_id, message_id);
CREATE INDEX events_by_contact ON events (contact_id, seq);

CREATE TABLE leads (
    id           UUID PRIMARY KEY,
    workspace_id UUID NOT NULL,
    contact_id   UUID NOT NULL REFERENCES contacts (id),
    event_id     UUID NOT NULL REFERENCES events (id),
    name         TEXT,
    email        TEXT,
    phone        TEXT,
    company      TEXT,
    message      TEXT,
    source       TEXT,
    form         TEXT,
    fields       JSONB NOT NULL DEFAULT '{}',
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX leads_by_contact ON leads (contact_id);
CREATE INDEX leads_by_event ON leads (event_id);
CREATE INDEX leads_by_time ON leads (workspace_id, created_at);
