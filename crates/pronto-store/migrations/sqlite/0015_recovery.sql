-- The owner's recovery page reads every flow's runs started in a period, not only experiments' runs: the
-- index by start covers all runs (the experiment reads filter on `arm` after it).
DROP INDEX runs_by_start;
CREATE INDEX runs_by_start ON runs (workspace_id, started_at);
