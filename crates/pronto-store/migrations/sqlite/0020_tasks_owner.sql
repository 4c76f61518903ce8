-- A rep's open tasks, read in due order straight from an index: each open task carries its lead's owner, kept
-- as the owner changes. Before, the inbox started from the rep's leads and probed each one's open tasks,
-- which read every one of a rep's leads (1 s for a rep holding a million) before the first task could be
-- returned. A task still belongs to whoever owns its lead now: a reassignment moves the copy with it. A done
-- task keeps the owner it had when it was done (only open tasks are read by owner).
--
-- Set when a task is written (`insert_tasks` reads the lead's owner in the same statement: SQLite has one
-- writer, so no reassignment can come between) and kept by a trigger on `leads`, whichever statement changes
-- an owner.

ALTER TABLE tasks ADD COLUMN owner TEXT;

UPDATE tasks SET owner = (SELECT owner FROM leads WHERE leads.id = tasks.lead_id) WHERE done_at IS NULL;

CREATE INDEX tasks_open_by_owner ON tasks (workspace_id, owner, due_at, id) WHERE done_at IS NULL;

CREATE TRIGGER leads_owner_to_tasks AFTER UPDATE OF owner ON leads
WHEN OLD.owner IS NOT NEW.owner
BEGIN
    UPDATE tasks SET owner = NEW.owner WHERE lead_id = NEW.id AND done_at IS NULL;
END;
