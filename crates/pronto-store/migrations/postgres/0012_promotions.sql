-- Variants promoted as their experiment's winner (pronto experiments promote, POST /v1/admin/experiments/promote).
-- Every promotion is kept; the latest of an experiment applies.
CREATE TABLE promotions (
    workspace_id UUID NOT NULL,
    flow_id      TEXT NOT NULL,
    experiment   TEXT NOT NULL,
    variant      TEXT NOT NULL,
    promoted_at  TIMESTAMPTZ NOT NULL,
    source       TEXT NOT NULL
);
CREATE INDEX promotions_by_workspace ON promotions (workspace_id, promoted_at);
