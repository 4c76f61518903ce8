-- Human steps of cadences: a `call` step opens a task on the run's lead. The rep is not stored: a task belongs
-- to whoever owns the lead now, so a reassignment moves the queue with it. A logged call attempt (or the lead
-- being won or lost) closes the lead's open tasks.
CREATE TABLE tasks (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    -- `{run}.{step}`: a fired step opens its task once.
    key          TEXT NOT NULL UNIQUE,
    lead_id      TEXT NOT NULL,
    contact_id   TEXT NOT NULL,
    run_id       TEXT,
    flow_id      TEXT,
    step         INTEGER,
    kind         TEXT NOT NULL CHECK (kind IN ('call')),
    title        TEXT NOT NULL,
    script       TEXT NOT NULL,
    due_at       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    done_at      TEXT,
    done_by      TEXT,
    outcome      TEXT
);
CREATE INDEX tasks_open_by_lead ON tasks (lead_id) WHERE done_at IS NULL;
CREATE INDEX tasks_by_due ON tasks (workspace_id, due_at);
