-- Email deliverability kept per hour, workspace and flow (empty for mail no flow sent, and for a bounce that
-- could not be matched to its message): kind 'sent' (accepted by the SMTP server), 'hard' and 'soft'
-- (bounces, at send time or reported later), 'complaint'. The flows report sums the hours of its period, so
-- its complaint and bounce rates cost a few rows, whatever the number of messages.
CREATE TABLE delivery_counts (
    workspace_id UUID NOT NULL,
    hour         TIMESTAMPTZ NOT NULL,
    flow_id      TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('sent', 'hard', 'soft', 'complaint')),
    n            BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, hour, flow_id, kind)
);
