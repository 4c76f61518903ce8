-- Speed to lead. A lead carries its routing and SLA state; its `due_at` is the escalation timer, fired by the
-- same scheduler as flow runs (one row per lead: claiming or contacting it clears the timer in the same write).

ALTER TABLE leads ADD COLUMN owner TEXT;
ALTER TABLE leads ADD COLUMN team TEXT;
ALTER TABLE leads ADD COLUMN route TEXT;
-- open → claimed / contacted → won / lost (closed ones take no more escalations).
ALTER TABLE leads ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
ALTER TABLE leads ADD COLUMN sla_deadline TIMESTAMPTZ;
-- The next escalation step to run.
ALTER TABLE leads ADD COLUMN sla_step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE leads ADD COLUMN due_at TIMESTAMPTZ;
-- Reps that have owned the lead, as a JSON array: a reassignment never goes back to one.
ALTER TABLE leads ADD COLUMN tried JSONB NOT NULL DEFAULT '[]';
ALTER TABLE leads ADD COLUMN promised_at TIMESTAMPTZ;
ALTER TABLE leads ADD COLUMN claimed_at TIMESTAMPTZ;
ALTER TABLE leads ADD COLUMN claimed_by TEXT;
-- The first logged human contact attempt: what the speed-to-lead report measures.
ALTER TABLE leads ADD COLUMN first_contact_at TIMESTAMPTZ;
ALTER TABLE leads ADD COLUMN replied_at TIMESTAMPTZ;
ALTER TABLE leads ADD COLUMN outcome TEXT;
ALTER TABLE leads ADD COLUMN closed_at TIMESTAMPTZ;

CREATE INDEX leads_due ON leads (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX leads_by_owner ON leads (owner, status);

-- Every step taken on a lead, and why: routed, alerted, acknowledged, escalated, claimed, attempts, replies.
CREATE TABLE lead_log (
    id      BIGSERIAL PRIMARY KEY,
    lead_id UUID NOT NULL,
    at      TIMESTAMPTZ NOT NULL,
    kind    TEXT NOT NULL,
    rep     TEXT,
    detail  TEXT NOT NULL
);
CREATE INDEX lead_log_by_lead ON lead_log (lead_id, id);

-- Logged contact attempts and their outcomes.
CREATE TABLE attempts (
    id           UUID PRIMARY KEY,
    workspace_id UUID NOT NULL,
    lead_id      UUID NOT NULL,
    rep          TEXT,
    channel      TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    note         TEXT,
    at           TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX attempts_by_lead ON attempts (lead_id, at);

-- Run-time rep state the API sets (the away flag); config gives the default.
CREATE TABLE rep_state (
    workspace_id UUID NOT NULL,
    rep          TEXT NOT NULL,
    away         BOOLEAN NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, rep)
);

-- Routing state per team member: how many leads the team gave it and the team's counter when it last got
-- one. A lead's routing locks its team's rows, so concurrent leads take turns one after the other.
CREATE TABLE route_state (
    workspace_id UUID NOT NULL,
    team         TEXT NOT NULL,
    rep          TEXT NOT NULL,
    assigned     BIGINT NOT NULL DEFAULT 0,
    last_seq     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, team, rep)
);

ALTER TABLE messages ADD COLUMN lead_id UUID;
CREATE INDEX messages_by_lead ON messages (lead_id) WHERE lead_id IS NOT NULL;
