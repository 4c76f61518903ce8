-- pronto's SQLite schema. Ids are UUID v7 stored as text (readable in the sqlite3 shell); times are RFC 3339
-- text in UTC, which sorts correctly as text; JSON is stored as text exactly as it was accepted.

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    is_default  INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX workspaces_one_default ON workspaces (is_default) WHERE is_default = 1;

-- API keys are stored as SHA-256 hashes; the key itself is shown once and never stored.
CREATE TABLE api_keys (
    key_hash     TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    kind         TEXT NOT NULL CHECK (kind IN ('write', 'admin')),
    created_at   TEXT NOT NULL
);

CREATE TABLE contacts (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    traits       TEXT NOT NULL DEFAULT '{}',
    -- Set when this contact was merged into another; the row stays so the merge is not lossy.
    merged_into  TEXT REFERENCES contacts (id),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- Merging repoints every contact merged into the one being merged.
CREATE INDEX contacts_by_merged_into ON contacts (merged_into) WHERE merged_into IS NOT NULL;

-- One identity belongs to one live contact: the primary key is what makes "one contact per person" hold.
CREATE TABLE identities (
    workspace_id TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('user_id', 'anonymous_id', 'email', 'phone')),
    value        TEXT NOT NULL,
    contact_id   TEXT NOT NULL REFERENCES contacts (id),
    created_at   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, kind, value)
) WITHOUT ROWID;
CREATE INDEX identities_by_contact ON identities (contact_id);

CREATE TABLE contact_merges (
    id           INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    from_contact TEXT NOT NULL REFERENCES contacts (id),
    into_contact TEXT NOT NULL REFERENCES contacts (id),
    event_id     TEXT NOT NULL,
    merged_at    TEXT NOT NULL
);
CREATE INDEX contact_merges_into ON contact_merges (into_contact);

-- seq is the ordering sequence: the order in which pronto committed events.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    contact_id   TEXT NOT NULL REFERENCES contacts (id),
    message_id   TEXT,
    type         TEXT NOT NULL,
    name         TEXT,
    payload      TEXT NOT NULL,
    client_ts    TEXT,
    received_at  TEXT NOT NULL
);
-- NULL message ids never conflict, so events sent without one are all kept.
CREATE UNIQUE INDEX events_by_message_id ON events (workspace_id, message_id);
CREATE INDEX events_by_contact ON events (contact_id, seq);

CREATE TABLE leads (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    contact_id   TEXT NOT NULL REFERENCES contacts (id),
    event_id     TEXT NOT NULL REFERENCES events (id),
    name         TEXT,
    email        TEXT,
    phone        TEXT,
    company      TEXT,
    message      TEXT,
    source       TEXT,
    form         TEXT,
    fields       TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL
);
CREATE INDEX leads_by_contact ON leads (contact_id);
CREATE INDEX leads_by_event ON leads (event_id);
CREATE INDEX leads_by_time ON leads (workspace_id, created_at);
