-- The flows report's counts, kept up to date as runs change, so a report sums hours instead of reading every
-- run (pronto_store's `reports` module says how).
--
-- Each row of the tables the counts read carries the transaction that inserted it (an experiment run: that
-- last changed it, which is also the transaction that wrote its messages, so messages need none). Every
-- transaction below the oldest one still running has ended, so the counts read up to that point and never miss
-- a row that commits late (an id or a timestamp would). Existing rows get the migration's transaction.
ALTER TABLE runs ADD COLUMN seq BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
ALTER TABLE clicks ADD COLUMN seq BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
ALTER TABLE exit_marks ADD COLUMN seq BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
-- Experiment runs and clicks are few: B-trees. Every exit mark gets a seq, so its index is BRIN (a summary per
-- range of pages, next to free to keep up on insert): a step reads the newest rows, in the last pages, which
-- BRIN always scans.
CREATE INDEX runs_by_seq ON runs (seq) WHERE arm IS NOT NULL;
CREATE INDEX clicks_by_seq ON clicks (seq);
CREATE INDEX exit_marks_by_seq ON exit_marks USING brin (seq);
-- A report reads the runs of the partial hours at its period's ends as they are; a new exit mark names the
-- experiment runs of its key (runs_one_active has only those in progress).
CREATE INDEX runs_by_start ON runs (workspace_id, started_at) WHERE arm IS NOT NULL;
CREATE INDEX runs_by_key ON runs (run_key, flow_id, workspace_id) WHERE arm IS NOT NULL;
-- What each experiment run is counted as now (pronto_domain::experiment::results::RunSummary): when the run
-- changes, this is taken back from its hour's counts before the new summary is added.
CREATE TABLE run_summaries (
    run_id  UUID PRIMARY KEY,
    summary JSONB NOT NULL
);
-- Experiment runs to re-read whatever the cursor says: those of two contacts just merged (a run may now convert
-- by the other contact's orders, and no row about it was inserted).
CREATE TABLE report_dirty (
    run_id UUID NOT NULL
);
-- Per workspace, hour of the runs' start, flow and experiment: their counts (results::Counts).
CREATE TABLE report_counts (
    workspace_id UUID NOT NULL,
    hour         TIMESTAMPTZ NOT NULL,
    flow_id      TEXT NOT NULL,
    experiment   TEXT NOT NULL,
    counts       JSONB NOT NULL,
    PRIMARY KEY (workspace_id, hour, flow_id, experiment)
);
-- How far the counts have read each table (the next transaction id to read) and the conversion rules they
-- were counted with. One row, locked by the process counting, so two processes never count a change twice.
CREATE TABLE report_cursor (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    rules    TEXT NOT NULL,
    runs     BIGINT NOT NULL,
    messages BIGINT NOT NULL,
    clicks   BIGINT NOT NULL,
    marks    BIGINT NOT NULL
);
INSERT INTO report_cursor VALUES (1, '', 0, 0, 0, 0);
