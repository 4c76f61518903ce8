-- The kept counts cover every flow's runs, not only experiments' (the owner's recovery page sums them per
-- hour instead of reading every run of its period): a new exit mark names the runs of its key, whichever
-- flow they belong to. The counts start again from nothing (the cursor's rules key names what is counted).
DROP INDEX runs_by_key;
CREATE INDEX runs_by_key ON runs (run_key, flow_id, workspace_id);
