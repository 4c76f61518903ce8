-- Flows on durable timers. A run is one flow for one key (a checkout, a cart, a contact); while it waits, its
-- due_at is its timer. One row per run keeps scheduling, refreshing and cancelling a timer to one row write
-- (a run waits at one step at a time), and the timer cannot outlive or miss its run.

CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    flow_id      TEXT NOT NULL,
    run_key      TEXT NOT NULL,
    contact_id   TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('active', 'exited', 'finished')),
    -- The step the run waits at; -1 before the first step.
    step         INTEGER NOT NULL,
    due_at       TEXT,
    -- When the trigger happened by the client's clock: exit-by-contact rules count orders from here.
    started_at   TEXT NOT NULL,
    -- The latest trigger event, exactly as sent: what the messages show.
    snapshot     TEXT NOT NULL,
    -- Why it ended, time-free so runs can be counted by it; the log has the details.
    outcome      TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
-- At most one run in progress per flow and key: a second trigger refreshes it. Indexes lead with the most
-- selective column (the key, the contact): with a (workspace, flow) prefix, a planner working from stale
-- statistics on a young, fast-growing table chose it and filtered every active run of the flow (seen on
-- PostgreSQL: quadratic ingest).
CREATE UNIQUE INDEX runs_one_active ON runs (run_key, flow_id, workspace_id) WHERE state = 'active';
-- The scheduler's index: due timers in due order.
CREATE INDEX runs_due ON runs (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX runs_by_contact ON runs (contact_id, state);

-- What happened to a run, step by step, and why.
CREATE TABLE run_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT NOT NULL,
    at      TEXT NOT NULL,
    step    INTEGER,
    kind    TEXT NOT NULL,
    -- A short, time-free reason to count by (\"frequency cap\", \"Order Completed for the same checkout_id\").
    reason  TEXT,
    detail  TEXT NOT NULL
);
CREATE INDEX run_log_by_run ON run_log (run_id, id);

-- Every event that meets an exit rule, kept so a timer's guard finds it whenever it arrived: before the run
-- started (out of order), while it waited, or concurrently with the timer firing.
CREATE TABLE exit_marks (
    workspace_id TEXT NOT NULL,
    flow_id      TEXT NOT NULL,
    rule         INTEGER NOT NULL,
    name         TEXT NOT NULL,
    -- The event's value at the flow's key path, for `same = "key"` rules.
    run_key      TEXT,
    contact_id   TEXT NOT NULL,
    happened_at  TEXT NOT NULL,
    event_id     TEXT NOT NULL
);
CREATE INDEX exit_marks_by_key ON exit_marks (run_key, flow_id, workspace_id) WHERE run_key IS NOT NULL;
CREATE INDEX exit_marks_by_contact ON exit_marks (contact_id, flow_id, workspace_id, happened_at);

-- The outbox. The idempotency key (run and step) is unique: a timer that fires twice still makes one message,
-- and it is the SMTP Message-ID, so a receiver can recognise a repeat too.
CREATE TABLE messages (
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
    state           TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- While queued: when the next attempt may start. A claimed message is pushed out by the lease, so a
    -- worker that dies mid-send leaves it to be retried, not lost.
    next_attempt_at TEXT,
    -- Set while a worker holds the message (its lease), cleared when the attempt is recorded.
    claimed_at      TEXT,
    last_error      TEXT,
    transport       TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT
);
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE state = 'queued';
CREATE INDEX messages_by_contact ON messages (contact_id, created_at);
CREATE INDEX messages_by_workspace ON messages (workspace_id, created_at);

-- Secrets pronto generates once per database (the key that signs unsubscribe links).
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
