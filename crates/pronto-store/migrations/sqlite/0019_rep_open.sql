-- Open leads per rep (not won or lost: open, claimed, contacted), kept as leads are written, so the board,
-- `GET /v1/reps` and routing by capacity read a row per rep instead of counting the rep's leads (200 ms for a
-- rep holding a million open leads). Kept by triggers, so every write of a lead's owner or status counts,
-- whichever statement makes it.

CREATE TABLE rep_open (
    workspace_id TEXT NOT NULL,
    rep          TEXT NOT NULL,
    open         INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, rep)
);

INSERT INTO rep_open (workspace_id, rep, open)
SELECT workspace_id, owner, count(*) FROM leads
WHERE owner IS NOT NULL AND status IN ('open', 'claimed', 'contacted')
GROUP BY workspace_id, owner;

CREATE TRIGGER leads_open_on_insert AFTER INSERT ON leads
WHEN NEW.owner IS NOT NULL AND NEW.status IN ('open', 'claimed', 'contacted')
BEGIN
    INSERT INTO rep_open (workspace_id, rep, open) VALUES (NEW.workspace_id, NEW.owner, 1)
    ON CONFLICT (workspace_id, rep) DO UPDATE SET open = open + 1;
END;

CREATE TRIGGER leads_open_on_update AFTER UPDATE OF owner, status ON leads
WHEN OLD.owner IS NOT NEW.owner OR OLD.status IS NOT NEW.status
BEGIN
    UPDATE rep_open SET open = open - 1
    WHERE OLD.owner IS NOT NULL AND OLD.status IN ('open', 'claimed', 'contacted')
      AND workspace_id = OLD.workspace_id AND rep = OLD.owner;
    INSERT INTO rep_open (workspace_id, rep, open)
    SELECT NEW.workspace_id, NEW.owner, 1
    WHERE NEW.owner IS NOT NULL AND NEW.status IN ('open', 'claimed', 'contacted')
    ON CONFLICT (workspace_id, rep) DO UPDATE SET open = open + 1;
END;
