-- Shop webhook deliveries that were signed but could not be mapped to events: kept as received, with the
-- reason, so nothing a shop sent is lost and the problem is visible (GET /v1/webhooks/unmapped, /metrics).
-- A redelivery (same delivery id) is kept once.
CREATE TABLE unmapped_deliveries (
    workspace_id TEXT NOT NULL,
    platform     TEXT NOT NULL,
    shop         TEXT NOT NULL,
    delivery_id  TEXT NOT NULL,
    topic        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    body         TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    PRIMARY KEY (workspace_id, platform, shop, delivery_id)
);
CREATE INDEX unmapped_deliveries_by_time ON unmapped_deliveries (workspace_id, received_at);
