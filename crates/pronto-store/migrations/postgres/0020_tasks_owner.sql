-- A rep's open tasks, read in due order straight from an index: each open task carries its lead's owner, kept
-- as the owner changes. Before, the inbox started from the rep's leads and probed each one's open tasks,
-- which read every one of a rep's leads (1 s for a rep holding a million) before the first task could be
-- returned. A task still belongs to whoever owns its lead now: a reassignment moves the copy with it. A done
-- task keeps the owner it had when it was done (only open tasks are read by owner).
--
-- Kept by triggers, whichever statement writes a task or changes an owner. A new task reads its lead's owner
-- under a share lock on the lead's row, so a concurrent reassignment either commits first (and the task reads
-- the new owner) or waits for the task's transaction (and its trigger then updates the committed task).

ALTER TABLE tasks ADD COLUMN owner TEXT;

UPDATE tasks t SET owner = l.owner FROM leads l WHERE l.id = t.lead_id AND t.done_at IS NULL;

CREATE INDEX tasks_open_by_owner ON tasks (workspace_id, owner, due_at, id) WHERE done_at IS NULL;

CREATE FUNCTION tasks_take_lead_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT owner INTO NEW.owner FROM leads WHERE id = NEW.lead_id FOR SHARE;
    RETURN NEW;
END
$$;

CREATE TRIGGER tasks_owner_on_insert BEFORE INSERT ON tasks
FOR EACH ROW EXECUTE FUNCTION tasks_take_lead_owner();

CREATE FUNCTION leads_owner_to_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasks SET owner = NEW.owner WHERE lead_id = NEW.id AND done_at IS NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER leads_owner_to_tasks AFTER UPDATE OF owner ON leads
FOR EACH ROW WHEN (OLD.owner IS DISTINCT FROM NEW.owner)
EXECUTE FUNCTION leads_owner_to_tasks();
