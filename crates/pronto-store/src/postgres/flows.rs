//! PostgreSQL's flow statements. Sets of rows go in as array parameters expanded by `UNNEST`. Several processes
//! share the timers: a batch is claimed with `FOR UPDATE SKIP LOCKED` in due order through `runs_due`, so two
//! processes never hold the same run, and an ingest that touches a run being fired waits for that commit.
//! `NOTIFY` (sent at commit, at most once per transaction) wakes the other processes' schedulers and
//! delivery workers.

use super::PgTx;
use crate::flows::{Addressee, DueRun, FlowTx, LiveRun, LogRow, Mark, RunRow, RunUpdate};
use crate::rows::{bad_row, due_run, live_run, mark, LIVE_RUN_COLUMNS, MARK_COLUMNS};
use crate::tx::{BadRow, ItemError, MessageRow};
use crate::{FlowStats, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::program::Recipient;
use pronto_domain::{ContactId, EventId, RunId, WorkspaceId};
use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

#[async_trait]
impl FlowTx for PgTx {
    fn bad_rows(&mut self) -> &mut Vec<BadRow> {
        &mut self.1
    }

    async fn quarantine(
        &mut self,
        rows: &[BadRow],
        now: DateTime<Utc>,
    ) -> Result<Vec<BadRow>, ItemError> {
        quarantine(&mut self.0, rows, now).await
    }

    async fn live_runs(
        &mut self,
        ws: WorkspaceId,
        keys: &[(String, String)],
        contacts: &[(String, ContactId)],
    ) -> Result<Vec<LiveRun>, ItemError> {
        let key_flows: Vec<&str> = keys.iter().map(|(f, _)| f.as_str()).collect();
        let key_keys: Vec<&str> = keys.iter().map(|(_, k)| k.as_str()).collect();
        let contact_flows: Vec<&str> = contacts.iter().map(|(f, _)| f.as_str()).collect();
        let contact_ids: Vec<Uuid> = contacts.iter().map(|(_, c)| c.0).collect();
        // Locked in id order; the outer `state` test is re-evaluated on the row a concurrent fire committed.
        // One index probe per wanted key or contact (`LATERAL … OFFSET 0` keeps the planner from turning the
        // probes into a join, which it did with a sequential scan of `runs` while the table was young and
        // never analysed: a cost that grew with every run stored).
        let rows = sqlx::query(&format!(
            "SELECT {LIVE_RUN_COLUMNS} FROM runs r \
             WHERE r.state = 'active' AND r.id IN ( \
             SELECT a.id FROM UNNEST($2::text[], $3::text[]) AS k(flow, run_key) CROSS JOIN LATERAL ( \
             SELECT id FROM runs WHERE run_key = k.run_key AND flow_id = k.flow AND workspace_id = $1 \
             AND state = 'active' OFFSET 0) a \
             UNION SELECT b.id FROM UNNEST($4::text[], $5::uuid[]) AS c(flow, contact) CROSS JOIN LATERAL ( \
             SELECT id FROM runs WHERE contact_id = c.contact AND state = 'active' AND flow_id = c.flow \
             AND workspace_id = $1 OFFSET 0) b) \
             ORDER BY r.id FOR UPDATE OF r",
        ))
        .bind(ws.0)
        .bind(&key_flows)
        .bind(&key_keys)
        .bind(&contact_flows)
        .bind(&contact_ids)
        .fetch_all(&mut *self.0)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(live_run(&r)?);
        }
        Ok(out)
    }

    async fn stopping_marks(
        &mut self,
        ws: WorkspaceId,
        q: &[(String, String, ContactId, DateTime<Utc>)],
    ) -> Result<Vec<Mark>, ItemError> {
        let flows: Vec<&str> = q.iter().map(|r| r.0.as_str()).collect();
        let keys: Vec<&str> = q.iter().map(|r| r.1.as_str()).collect();
        let contacts: Vec<Uuid> = q.iter().map(|r| r.2 .0).collect();
        let since: Vec<DateTime<Utc>> = q.iter().map(|r| r.3).collect();
        // An index probe per wanted mark, as in `live_runs` (a join here scanned all of `exit_marks`).
        let sql = format!(
            "WITH q AS (SELECT * FROM UNNEST($2::text[], $3::text[], $4::uuid[], $5::timestamptz[]) \
             AS q(flow, k, contact, since)) \
             SELECT {MARK_COLUMNS} FROM q CROSS JOIN LATERAL (SELECT * FROM exit_marks \
             WHERE run_key = q.k AND flow_id = q.flow AND workspace_id = $1 OFFSET 0) m \
             UNION ALL SELECT {MARK_COLUMNS} FROM q CROSS JOIN LATERAL (SELECT * FROM exit_marks \
             WHERE contact_id = q.contact AND flow_id = q.flow AND workspace_id = $1 \
             AND happened_at >= q.since AND run_key IS NULL OFFSET 0) m"
        );
        let rows = sqlx::query(&sql)
            .bind(ws.0)
            .bind(&flows)
            .bind(&keys)
            .bind(&contacts)
            .bind(&since)
            .fetch_all(&mut *self.0)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(mark(&r, 0)?);
        }
        Ok(out)
    }

    async fn insert_marks(
        &mut self,
        ws: WorkspaceId,
        rows: &[(Mark, EventId)],
    ) -> Result<(), ItemError> {
        let flows: Vec<&str> = rows.iter().map(|(m, _)| m.flow.as_str()).collect();
        let rules: Vec<i32> = rows.iter().map(|(m, _)| m.rule as i32).collect();
        let names: Vec<&str> = rows.iter().map(|(m, _)| m.name.as_str()).collect();
        let keys: Vec<Option<&str>> = rows.iter().map(|(m, _)| m.key.as_deref()).collect();
        let contacts: Vec<Uuid> = rows.iter().map(|(m, _)| m.contact.0).collect();
        let happened: Vec<DateTime<Utc>> = rows.iter().map(|(m, _)| m.happened).collect();
        let events: Vec<Uuid> = rows.iter().map(|(_, e)| e.0).collect();
        sqlx::query(
            "INSERT INTO exit_marks (workspace_id, flow_id, rule, name, run_key, contact_id, happened_at, event_id) \
             SELECT $1, * FROM UNNEST($2::text[], $3::int[], $4::text[], $5::text[], $6::uuid[], \
             $7::timestamptz[], $8::uuid[])",
        )
        .bind(ws.0)
        .bind(&flows)
        .bind(&rules)
        .bind(&names)
        .bind(&keys)
        .bind(&contacts)
        .bind(&happened)
        .bind(&events)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn insert_runs(&mut self, ws: WorkspaceId, rows: &[RunRow]) -> Result<(), ItemError> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id.0).collect();
        let flows: Vec<&str> = rows.iter().map(|r| r.flow.as_str()).collect();
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        let contacts: Vec<Uuid> = rows.iter().map(|r| r.contact.0).collect();
        let states: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
        let steps: Vec<i32> = rows.iter().map(|r| r.step as i32).collect();
        let dues: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.due).collect();
        let started: Vec<DateTime<Utc>> = rows.iter().map(|r| r.started).collect();
        let snapshots: Vec<&str> = rows
            .iter()
            .map(|r| r.snapshot.as_deref().unwrap_or("{}"))
            .collect();
        let outcomes: Vec<Option<&str>> = rows.iter().map(|r| r.outcome.as_deref()).collect();
        let created: Vec<DateTime<Utc>> = rows.iter().map(|r| r.created).collect();
        let updated: Vec<DateTime<Utc>> = rows.iter().map(|r| r.updated).collect();
        let experiments: Vec<Option<&str>> = rows
            .iter()
            .map(|r| r.arm.as_ref().map(|(e, _)| e.as_str()))
            .collect();
        let arms: Vec<Option<&str>> = rows
            .iter()
            .map(|r| r.arm.as_ref().map(|(_, a)| a.as_str()))
            .collect();
        sqlx::query(
            "INSERT INTO runs (id, workspace_id, flow_id, run_key, contact_id, state, step, due_at, started_at, \
             snapshot, outcome, created_at, updated_at, experiment, arm) \
             SELECT q.id, $1, q.flow, q.run_key, q.contact, q.state, q.step, q.due, q.started, q.snapshot, \
             q.outcome, q.created, q.updated, q.experiment, q.arm FROM UNNEST($2::uuid[], $3::text[], $4::text[], \
             $5::uuid[], $6::text[], $7::int[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[], \
             $12::timestamptz[], $13::timestamptz[], $14::text[], $15::text[]) \
             AS q(id, flow, run_key, contact, state, step, due, started, snapshot, outcome, created, updated, \
             experiment, arm)",
        )
        .bind(ws.0)
        .bind(&ids)
        .bind(&flows)
        .bind(&keys)
        .bind(&contacts)
        .bind(&states)
        .bind(&steps)
        .bind(&dues)
        .bind(&started)
        .bind(&snapshots)
        .bind(&outcomes)
        .bind(&created)
        .bind(&updated)
        .bind(&experiments)
        .bind(&arms)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    /// A run's `seq` becomes this transaction's: the kept counts re-read the run, and with it the messages
    /// this transaction wrote for it (`crate::reports`). (The update changes `due_at` and `state`, which are
    /// indexed, so it was never a heap-only one.)
    async fn write_runs(&mut self, rows: &[RunRow]) -> Result<(), ItemError> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id.0).collect();
        let states: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
        let steps: Vec<i32> = rows.iter().map(|r| r.step as i32).collect();
        let dues: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.due).collect();
        let snapshots: Vec<Option<&str>> = rows.iter().map(|r| r.snapshot.as_deref()).collect();
        let outcomes: Vec<Option<&str>> = rows.iter().map(|r| r.outcome.as_deref()).collect();
        let updated: Vec<DateTime<Utc>> = rows.iter().map(|r| r.updated).collect();
        sqlx::query(
            "UPDATE runs SET state = q.state, step = q.step, due_at = q.due, \
             snapshot = COALESCE(q.snapshot, runs.snapshot), outcome = q.outcome, updated_at = q.updated, \
             seq = pg_current_xact_id()::text::bigint \
             FROM UNNEST($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::text[], $6::text[], \
             $7::timestamptz[]) AS q(id, state, step, due, snapshot, outcome, updated) WHERE runs.id = q.id",
        )
        .bind(&ids)
        .bind(&states)
        .bind(&steps)
        .bind(&dues)
        .bind(&snapshots)
        .bind(&outcomes)
        .bind(&updated)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn insert_logs(&mut self, rows: &[LogRow]) -> Result<(), ItemError> {
        let runs: Vec<Uuid> = rows.iter().map(|r| r.run.0).collect();
        let ats: Vec<DateTime<Utc>> = rows.iter().map(|r| r.at).collect();
        let steps: Vec<Option<i32>> = rows.iter().map(|r| r.step.map(|s| s as i32)).collect();
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind).collect();
        let reasons: Vec<Option<&str>> = rows.iter().map(|r| r.reason.as_deref()).collect();
        let details: Vec<&str> = rows.iter().map(|r| r.detail.as_str()).collect();
        sqlx::query(
            "INSERT INTO run_log (run_id, at, step, kind, reason, detail) \
             SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::int[], $4::text[], $5::text[], $6::text[])",
        )
        .bind(&runs)
        .bind(&ats)
        .bind(&steps)
        .bind(&kinds)
        .bind(&reasons)
        .bind(&details)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn claim_due(
        &mut self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<DueRun>, ItemError> {
        let rows = sqlx::query(
            "SELECT id, workspace_id, flow_id, run_key, contact_id, step, started_at, snapshot, arm FROM runs \
             WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *self.0)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            match due_run(&r) {
                Ok(run) => out.push(run),
                Err(e) => self.1.push(bad_row("run", &r, e)),
            }
        }
        Ok(out)
    }

    async fn marks_for(&mut self, runs: &[DueRun]) -> Result<Vec<(RunId, Mark)>, ItemError> {
        let ids: Vec<Uuid> = runs.iter().map(|r| r.id.0).collect();
        let wss: Vec<Uuid> = runs.iter().map(|r| r.ws.0).collect();
        let flows: Vec<&str> = runs.iter().map(|r| r.flow.as_str()).collect();
        let keys: Vec<&str> = runs.iter().map(|r| r.key.as_str()).collect();
        let contacts: Vec<Uuid> = runs.iter().map(|r| r.contact.0).collect();
        let started: Vec<DateTime<Utc>> = runs.iter().map(|r| r.started).collect();
        // An index probe per run, as in `stopping_marks`: a join sorted or hashed the whole of `exit_marks`
        // for every batch (28 ms against 7 ms for 1,000 runs over 10,000 marks, growing with the table).
        let sql = format!(
            "WITH q AS (SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::timestamptz[]) \
             AS q(run, ws, flow, k, contact, started)) \
             SELECT q.run, {MARK_COLUMNS} FROM q CROSS JOIN LATERAL (SELECT * FROM exit_marks \
             WHERE run_key = q.k AND flow_id = q.flow AND workspace_id = q.ws OFFSET 0) m \
             UNION ALL SELECT q.run, {MARK_COLUMNS} FROM q CROSS JOIN LATERAL (SELECT * FROM exit_marks \
             WHERE contact_id = q.contact AND flow_id = q.flow AND workspace_id = q.ws \
             AND happened_at >= q.started AND run_key IS NULL OFFSET 0) m"
        );
        let rows = sqlx::query(&sql)
            .bind(&ids)
            .bind(&wss)
            .bind(&flows)
            .bind(&keys)
            .bind(&contacts)
            .bind(&started)
            .fetch_all(&mut *self.0)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push((RunId(r.try_get(0)?), mark(&r, 1)?));
        }
        Ok(out)
    }

    async fn recipients(&mut self, contacts: &[ContactId]) -> Result<Vec<Addressee>, ItemError> {
        let ids: Vec<Uuid> = contacts.iter().map(|c| c.0).collect();
        // A probe per contact: a join hashed the whole of `contacts` for each timer batch.
        let rows = sqlx::query(
            "SELECT q.id, live.id, live.traits, \
             (SELECT value FROM identities i WHERE i.contact_id = live.id AND i.kind = 'email' ORDER BY created_at DESC LIMIT 1), \
             (SELECT value FROM identities i WHERE i.contact_id = live.id AND i.kind = 'phone' ORDER BY created_at DESC LIMIT 1) \
             FROM UNNEST($1::uuid[]) AS q(id) CROSS JOIN LATERAL (SELECT * FROM contacts c WHERE c.id = q.id OFFSET 0) c \
             JOIN contacts live ON live.id = COALESCE(c.merged_into, c.id)",
        )
        .bind(&ids)
        .fetch_all(&mut *self.0)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let Json(traits): Json<Map<String, Value>> = r.try_get(2)?;
            out.push(Addressee {
                asked: ContactId(r.try_get(0)?),
                live: ContactId(r.try_get(1)?),
                recipient: Recipient {
                    traits,
                    email: r.try_get(3)?,
                    phone: r.try_get(4)?,
                },
            });
        }
        Ok(out)
    }

    async fn sent_counts(
        &mut self,
        contacts: &[ContactId],
        since: DateTime<Utc>,
    ) -> Result<Vec<(ContactId, i64)>, ItemError> {
        let ids: Vec<Uuid> = contacts.iter().map(|c| c.0).collect();
        let rows = sqlx::query(
            "SELECT m.contact_id, count(*) FROM messages m WHERE m.contact_id = ANY($1) AND m.created_at >= $2 \
             AND m.channel = 'email' AND m.run_id IS NOT NULL GROUP BY m.contact_id",
        )
        .bind(&ids)
        .bind(since)
        .fetch_all(&mut *self.0)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push((ContactId(r.try_get(0)?), r.try_get(1)?));
        }
        Ok(out)
    }

    async fn insert_messages(&mut self, rows: &[MessageRow]) -> Result<u64, ItemError> {
        let col = |f: fn(&MessageRow) -> Option<String>| -> Vec<Option<String>> {
            rows.iter().map(f).collect()
        };
        let ids: Vec<Uuid> = rows.iter().map(|m| m.id.0).collect();
        let wss: Vec<Uuid> = rows.iter().map(|m| m.ws.0).collect();
        let runs: Vec<Option<Uuid>> = rows.iter().map(|m| m.run.map(|r| r.0)).collect();
        let steps: Vec<Option<i32>> = rows.iter().map(|m| m.step.map(|s| s as i32)).collect();
        let leads: Vec<Option<Uuid>> = rows.iter().map(|m| m.lead.map(|l| l.0)).collect();
        let contacts: Vec<Uuid> = rows.iter().map(|m| m.contact.0).collect();
        let nows: Vec<DateTime<Utc>> = rows.iter().map(|m| m.now).collect();
        let done = sqlx::query(
            "INSERT INTO messages (id, workspace_id, run_id, step, contact_id, created_at, next_attempt_at, \
             idempotency_key, flow_id, channel, to_addr, from_addr, reply_to, subject, body_text, body_html, \
             unsubscribe_url, state, attempts, lead_id) \
             SELECT id, ws, run, step, contact, at, at, k, flow, channel, to_addr, from_addr, reply_to, subject, \
             body_text, body_html, unsub, 'queued', 0, lead FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], \
             $5::uuid[], $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
             $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::uuid[]) \
             AS q(id, ws, run, step, contact, at, k, flow, channel, to_addr, from_addr, reply_to, subject, \
             body_text, body_html, unsub, lead) ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&ids)
        .bind(&wss)
        .bind(&runs)
        .bind(&steps)
        .bind(&contacts)
        .bind(&nows)
        .bind(col(|m| Some(m.key.clone())))
        .bind(col(|m| m.flow.clone()))
        .bind(col(|m| Some(m.channel.to_string())))
        .bind(col(|m| Some(m.to.clone())))
        .bind(col(|m| Some(m.from.clone())))
        .bind(col(|m| m.reply_to.clone()))
        .bind(col(|m| Some(m.subject.clone())))
        .bind(col(|m| Some(m.text.clone())))
        .bind(col(|m| m.html.clone()))
        .bind(col(|m| m.unsubscribe_url.clone()))
        .bind(&leads)
        .execute(&mut *self.0)
        .await?;
        Ok(done.rows_affected())
    }

    /// As [`Self::write_runs`], a run's `seq` becomes this transaction's (the timer batch that writes its
    /// messages updates it here).
    async fn update_runs(
        &mut self,
        rows: &[RunUpdate],
        now: DateTime<Utc>,
    ) -> Result<(), ItemError> {
        let ids: Vec<Uuid> = rows.iter().map(|u| u.id.0).collect();
        let states: Vec<&str> = rows.iter().map(|u| u.state.as_str()).collect();
        let steps: Vec<i32> = rows.iter().map(|u| u.step as i32).collect();
        let dues: Vec<Option<DateTime<Utc>>> = rows.iter().map(|u| u.due).collect();
        let outcomes: Vec<Option<&str>> = rows.iter().map(|u| u.outcome.as_deref()).collect();
        sqlx::query(
            "UPDATE runs SET state = q.state, step = q.step, due_at = q.due, outcome = q.outcome, updated_at = $6, \
             seq = pg_current_xact_id()::text::bigint \
             FROM UNNEST($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::text[]) AS q(id, state, step, due, outcome) \
             WHERE runs.id = q.id",
        )
        .bind(&ids)
        .bind(&states)
        .bind(&steps)
        .bind(&dues)
        .bind(&outcomes)
        .bind(now)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn next_due(&mut self) -> Result<Option<DateTime<Utc>>, ItemError> {
        Ok(sqlx::query_scalar(crate::flows::NEXT_DUE)
            .fetch_one(&mut *self.0)
            .await?)
    }

    async fn notify(&mut self, channel: &'static str, payload: &str) -> Result<(), ItemError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }
}

pub(super) async fn flow_stats(
    c: &mut PgConnection,
    ws: WorkspaceId,
) -> Result<Vec<FlowStats>, StoreError> {
    let runs = sqlx::query_as(
        "SELECT flow_id, state, COALESCE(outcome, ''), count(*) FROM runs WHERE workspace_id = $1 \
         GROUP BY flow_id, state, outcome",
    )
    .bind(ws.0)
    .fetch_all(&mut *c)
    .await?;
    let skipped = sqlx::query_as(
        "SELECT r.flow_id, COALESCE(l.reason, l.detail), count(*) FROM run_log l JOIN runs r ON r.id = l.run_id \
         WHERE r.workspace_id = $1 AND l.kind IN ('skipped', 'failed') GROUP BY 1, 2",
    )
    .bind(ws.0)
    .fetch_all(&mut *c)
    .await?;
    let messages = sqlx::query_as(
        "SELECT flow_id, state, count(*) FROM messages WHERE workspace_id = $1 AND flow_id IS NOT NULL \
         GROUP BY flow_id, state",
    )
    .bind(ws.0)
    .fetch_all(&mut *c)
    .await?;
    Ok(crate::flows::assemble_stats(runs, skipped, messages))
}

/// Records rows in `quarantine` and clears their timers (a message is failed); answers those not quarantined
/// before.
pub(super) async fn quarantine(
    c: &mut PgConnection,
    rows: &[BadRow],
    now: DateTime<Utc>,
) -> Result<Vec<BadRow>, ItemError> {
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind).collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let reasons: Vec<&str> = rows.iter().map(|r| r.reason.as_str()).collect();
    let wss: Vec<Option<&str>> = rows.iter().map(|r| r.workspace.as_deref()).collect();
    let fresh: Vec<(String, String)> = sqlx::query_as(
            "INSERT INTO quarantine (kind, row_id, reason, workspace_id, at) SELECT k, i, r, w, $4 \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $5::text[]) AS q(k, i, r, w) ON CONFLICT DO NOTHING \
             RETURNING kind, row_id",
        )
        .bind(&kinds)
        .bind(&ids)
        .bind(&reasons)
        .bind(now)
        .bind(&wss)
        .fetch_all(&mut *c)
        .await?;
    for (table, kind) in [("runs", "run"), ("leads", "lead")] {
        let these: Vec<&str> = rows
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.id.as_str())
            .collect();
        if these.is_empty() {
            continue;
        }
        sqlx::query(&format!(
            "UPDATE {table} SET due_at = NULL WHERE id::text = ANY($1)"
        ))
        .bind(&these)
        .execute(&mut *c)
        .await?;
    }
    let messages: Vec<&str> = rows
        .iter()
        .filter(|r| r.kind == "message")
        .map(|r| r.id.as_str())
        .collect();
    if !messages.is_empty() {
        sqlx::query(
                "UPDATE messages SET state = 'failed', claimed_at = NULL, next_attempt_at = NULL, \
                 last_error = 'quarantined: the stored message cannot be read' WHERE id::text = ANY($1)",
            )
            .bind(&messages)
            .execute(&mut *c)
            .await?;
    }
    let fresh: std::collections::HashSet<(String, String)> = fresh.into_iter().collect();
    Ok(rows
        .iter()
        .filter(|r| fresh.contains(&(r.kind.to_string(), r.id.clone())))
        .cloned()
        .collect())
}
