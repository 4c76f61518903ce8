-- Indexes for the two lead reads routing does on every new lead (measured with `pronto bench leads`).
--
-- A contact's latest lead (keep the owner; a cadence's lead): with only `(contact_id)`, SQLite's planner
-- walked `leads_by_time` for the ORDER BY, i.e. every lead of the workspace, per new lead.
DROP INDEX leads_by_contact;
CREATE INDEX leads_by_contact ON leads (contact_id, created_at);
-- Open leads per rep (capacity, least_loaded): counted from the index alone, without reading the rows.
CREATE INDEX leads_open_by_owner ON leads (workspace_id, owner, status)
    WHERE status IN ('open', 'claimed', 'contacted');
