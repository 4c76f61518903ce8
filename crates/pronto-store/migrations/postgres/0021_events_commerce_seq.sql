-- The board's checkouts and orders per hour are kept in each server's memory beside the report's leads
-- (`pronto_server::lead_report`), brought up to date on each view by reading only the checkouts and orders
-- stored since the last one, in the order they were stored. Partial, like `events_commerce`: no other
-- event pays for it; the statements repeat the predicate word for word.
CREATE INDEX events_commerce_seq ON events (workspace_id, seq)
    WHERE name IN ('Checkout Started', 'Order Completed');
