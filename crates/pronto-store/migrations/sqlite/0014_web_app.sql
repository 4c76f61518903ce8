-- The web app's sign-in: links mailed to users (single use, short-lived) and browser sessions. Only the
-- SHA-256 of a link's or a cookie's token is kept, so a copy of the database signs nobody in.
CREATE TABLE sign_ins (
    token_hash   TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    used_at      TEXT
);
CREATE INDEX sign_ins_by_expiry ON sign_ins (expires_at);

CREATE TABLE sessions (
    -- Public: the first 16 characters of the token's hash, what an admin revokes by.
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    -- How the session began: link, password or admin-key.
    method       TEXT NOT NULL,
    agent        TEXT,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    revoked_at   TEXT
);
CREATE INDEX sessions_by_workspace ON sessions (workspace_id, expires_at);

-- The inbox lists a team's leads of one status, newest first, and a rep's own; a board every lead of one
-- status. The rep's index replaces the partial one routing counted open leads with (a partial index cannot
-- serve `status = ?` with the status bound at run time), so a lead's write keeps the same number of indexes
-- plus the two lists'. Measured with `pronto bench app` (1,000,000 leads): without it a rep's own open leads
-- took 1-10 s to list.
CREATE INDEX leads_by_team ON leads (workspace_id, team, status, id);
CREATE INDEX leads_by_status ON leads (workspace_id, status, id);
DROP INDEX leads_open_by_owner;
CREATE INDEX leads_by_owner_status ON leads (workspace_id, owner, status, id);
