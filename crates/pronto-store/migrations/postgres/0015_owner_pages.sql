-- The owner's recovery page reads every flow's runs started in a period, not only experiments' runs: the
-- index by start covers all runs (the experiment reads filter on `arm` after it).
DROP INDEX runs_by_start;
CREATE INDEX runs_by_start ON runs (workspace_id, started_at);

-- The team board counts checkouts and orders per week beside the leads. Only those two events are indexed
-- (partial), so no other event pays for it; the board's statement repeats the predicate word for word.
CREATE INDEX events_commerce ON events (workspace_id, name, (COALESCE(client_ts, received_at)))
    WHERE name IN ('Checkout Started', 'Order Completed');

-- The speed-to-lead report (the board, the API) reads the values logged with wins. That read walked every
-- event of the workspace; wins are rare, so a partial index on them costs ingestion nothing else.
CREATE INDEX events_lead_won ON events (workspace_id, received_at) WHERE name = 'Lead Won';
