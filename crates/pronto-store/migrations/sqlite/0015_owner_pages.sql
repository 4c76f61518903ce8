-- The owner's recovery page reads every flow's runs started in a period, not only experiments' runs: the
-- index by start covers all runs (the experiment reads filter on `arm` after it).
DROP INDEX runs_by_start;
CREATE INDEX runs_by_start ON runs (workspace_id, started_at);

-- The team board counts checkouts and orders per week beside the leads. Only those two events are indexed
-- (partial), so no other event pays for it; the board's statement repeats the predicate word for word.
CREATE INDEX events_commerce ON events (workspace_id, name, (COALESCE(client_ts, received_at)))
    WHERE name IN ('Checkout Started', 'Order Completed');
