-- The flows report's counts, kept up to date as runs change, so a report sums hours instead of reading every
-- run (pronto_store's `reports` module says how).
--
-- A report reads the runs of the partial hours at its period's ends as they are; a new exit mark names the
-- experiment runs of its key (runs_one_active has only those in progress).
CREATE INDEX runs_by_start ON runs (workspace_id, started_at) WHERE arm IS NOT NULL;
CREATE INDEX runs_by_key ON runs (run_key, flow_id, workspace_id) WHERE arm IS NOT NULL;
-- What each experiment run is counted as now (pronto_domain::experiment::results::RunSummary, as JSON): when
-- the run changes, this is taken back from its hour's counts before the new summary is added.
CREATE TABLE run_summaries (
    run_id  TEXT PRIMARY KEY,
    summary TEXT NOT NULL
);
-- Experiment runs to re-read whatever the cursor says: those of two contacts just merged (a run may now convert
-- by the other contact's orders, and no row about it was inserted).
CREATE TABLE report_dirty (
    run_id TEXT NOT NULL
);
-- Per workspace, hour of the runs' start, flow and experiment: their counts (results::Counts, as JSON).
CREATE TABLE report_counts (
    workspace_id TEXT NOT NULL,
    hour         TEXT NOT NULL,
    flow_id      TEXT NOT NULL,
    experiment   TEXT NOT NULL,
    counts       TEXT NOT NULL,
    PRIMARY KEY (workspace_id, hour, flow_id, experiment)
);
-- How far the counts have read runs, messages, clicks and exit marks (the next rowid of each: one writer
-- commits in rowid order), and the conversion rules they were counted with.
CREATE TABLE report_cursor (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    rules    TEXT NOT NULL,
    runs     INTEGER NOT NULL,
    messages INTEGER NOT NULL,
    clicks   INTEGER NOT NULL,
    marks    INTEGER NOT NULL
);
INSERT INTO report_cursor VALUES (1, '', 0, 0, 0, 0);
