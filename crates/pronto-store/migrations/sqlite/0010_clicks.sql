-- A click on a tracked link in a flow message (`/r/…`), recorded before the redirect. It names the message by
-- its outbox key (run and step), which the signed link carries, so making a link needs no lookup. No address,
-- browser or IP is kept: the flows report needs only which message was followed, and when.
CREATE TABLE clicks (
    workspace_id TEXT NOT NULL,
    message_key  TEXT NOT NULL,
    url          TEXT NOT NULL,
    clicked_at   TEXT NOT NULL
);
CREATE INDEX clicks_by_message ON clicks (message_key, clicked_at);
-- The flows report reads each experiment run's messages.
CREATE INDEX messages_by_run ON messages (run_id) WHERE run_id IS NOT NULL;
