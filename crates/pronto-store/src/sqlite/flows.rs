//! SQLite's flow statements. Sets of rows go in as one JSON array parameter expanded by `json_each`, as in
//! ingestion, so a timer batch is a fixed number of statements whatever its size. One process owns a SQLite
//! database and it has one writer connection, so claiming needs no row locks: the transaction is the lock.

use super::{json_rows, parse_ts, ts, uuid, SqliteTx};
use crate::flows::{Addressee, DueRun, FlowTx, LiveRun, LogRow, Mark, RunRow, RunUpdate};
use crate::rows::{bad_row, due_run, live_run, mark, LIVE_RUN_COLUMNS, MARK_COLUMNS};
use crate::tx::{BadRow, ItemError, MessageRow};
use crate::{FlowStats, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::program::Recipient;
use pronto_domain::{ContactId, EventId, RunId, WorkspaceId};
use serde_json::Value;
use sqlx::{Row, SqliteConnection};

#[async_trait]
impl FlowTx for SqliteTx {
    fn bad_rows(&mut self) -> &mut Vec<BadRow> {
        &mut self.bad
    }

    async fn quarantine(
        &mut self,
        rows: &[BadRow],
        now: DateTime<Utc>,
    ) -> Result<Vec<BadRow>, ItemError> {
        quarantine(&mut **self, rows, now).await
    }

    async fn live_runs(
        &mut self,
        ws: WorkspaceId,
        keys: &[(String, String)],
        contacts: &[(String, ContactId)],
    ) -> Result<Vec<LiveRun>, ItemError> {
        let contacts: Vec<(&str, String)> = contacts
            .iter()
            .map(|(f, c)| (f.as_str(), c.to_string()))
            .collect();
        // CROSS JOIN keeps the wanted rows as the outer loop, each probing an index.
        let rows = sqlx::query(&format!(
            "WITH k AS (SELECT value ->> 0 AS flow, value ->> 1 AS run_key FROM json_each(?2)), \
             c AS (SELECT value ->> 0 AS flow, value ->> 1 AS contact FROM json_each(?3)) \
             SELECT {LIVE_RUN_COLUMNS} FROM k CROSS JOIN runs r \
             ON r.run_key = k.run_key AND r.flow_id = k.flow AND r.workspace_id = ?1 AND r.state = 'active' \
             UNION SELECT {LIVE_RUN_COLUMNS} FROM c CROSS JOIN runs r \
             ON r.contact_id = c.contact AND r.state = 'active' AND r.flow_id = c.flow AND r.workspace_id = ?1",
        ))
        .bind(ws.to_string())
        .bind(json_rows(&keys)?)
        .bind(json_rows(&contacts)?)
        .fetch_all(&mut **self)
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
        let q: Vec<(&str, &str, String, String)> = q
            .iter()
            .map(|(f, k, c, since)| (f.as_str(), k.as_str(), c.to_string(), ts(*since)))
            .collect();
        let sql = format!(
            "WITH q AS (SELECT value ->> 0 AS flow, value ->> 1 AS k, value ->> 2 AS contact, \
             value ->> 3 AS since FROM json_each(?2)) \
             SELECT {MARK_COLUMNS} FROM q CROSS JOIN exit_marks m \
             ON m.run_key = q.k AND m.flow_id = q.flow AND m.workspace_id = ?1 \
             UNION ALL SELECT {MARK_COLUMNS} FROM q CROSS JOIN exit_marks m \
             ON m.contact_id = q.contact AND m.flow_id = q.flow AND m.workspace_id = ?1 \
             AND m.happened_at >= q.since AND m.run_key IS NULL"
        );
        let rows = sqlx::query(&sql)
            .bind(ws.to_string())
            .bind(json_rows(&q)?)
            .fetch_all(&mut **self)
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
        let rows: Vec<(&str, i64, &str, Option<&str>, String, String, String)> = rows
            .iter()
            .map(|(m, e)| {
                (
                    m.flow.as_str(),
                    m.rule,
                    m.name.as_str(),
                    m.key.as_deref(),
                    m.contact.to_string(),
                    ts(m.happened),
                    e.to_string(),
                )
            })
            .collect();
        sqlx::query(
            "INSERT INTO exit_marks (workspace_id, flow_id, rule, name, run_key, contact_id, happened_at, event_id) \
             SELECT ?1, value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6 \
             FROM json_each(?2)",
        )
        .bind(ws.to_string())
        .bind(json_rows(&rows)?)
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn insert_runs(&mut self, ws: WorkspaceId, rows: &[RunRow]) -> Result<(), ItemError> {
        type Row<'a> = (
            String,
            &'a str,
            &'a str,
            String,
            &'static str,
            i64,
            Option<String>,
            String,
            Option<&'a str>,
            Option<&'a str>,
            String,
            String,
            Option<&'a str>,
            Option<&'a str>,
        );
        let rows: Vec<Row<'_>> = rows
            .iter()
            .map(|r| {
                (
                    r.id.to_string(),
                    r.flow.as_str(),
                    r.key.as_str(),
                    r.contact.to_string(),
                    r.state.as_str(),
                    r.step,
                    r.due.map(ts),
                    ts(r.started),
                    r.snapshot.as_deref(),
                    r.outcome.as_deref(),
                    ts(r.created),
                    ts(r.updated),
                    r.arm.as_ref().map(|(e, _)| e.as_str()),
                    r.arm.as_ref().map(|(_, a)| a.as_str()),
                )
            })
            .collect();
        sqlx::query(
            "INSERT INTO runs (id, workspace_id, flow_id, run_key, contact_id, state, step, due_at, started_at, \
             snapshot, outcome, created_at, updated_at, experiment, arm) SELECT value ->> 0, ?1, value ->> 1, \
             value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7, value ->> 8, \
             value ->> 9, value ->> 10, value ->> 11, value ->> 12, value ->> 13 FROM json_each(?2)",
        )
        .bind(ws.to_string())
        .bind(json_rows(&rows)?)
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn write_runs(&mut self, rows: &[RunRow]) -> Result<(), ItemError> {
        type Row<'a> = (
            String,
            &'static str,
            i64,
            Option<String>,
            Option<&'a str>,
            Option<&'a str>,
            String,
        );
        let rows: Vec<Row<'_>> = rows
            .iter()
            .map(|r| {
                (
                    r.id.to_string(),
                    r.state.as_str(),
                    r.step,
                    r.due.map(ts),
                    r.snapshot.as_deref(),
                    r.outcome.as_deref(),
                    ts(r.updated),
                )
            })
            .collect();
        sqlx::query(
            "UPDATE runs SET state = q.value ->> 1, step = q.value ->> 2, due_at = q.value ->> 3, \
             snapshot = COALESCE(q.value ->> 4, runs.snapshot), outcome = q.value ->> 5, updated_at = q.value ->> 6 \
             FROM json_each(?1) q WHERE runs.id = q.value ->> 0",
        )
        .bind(json_rows(&rows)?)
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn insert_logs(&mut self, rows: &[LogRow]) -> Result<(), ItemError> {
        let rows: Vec<(String, String, Option<i64>, &str, Option<&str>, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r.run.to_string(),
                    ts(r.at),
                    r.step,
                    r.kind,
                    r.reason.as_deref(),
                    r.detail.as_str(),
                )
            })
            .collect();
        sqlx::query(
            "INSERT INTO run_log (run_id, at, step, kind, reason, detail) SELECT value ->> 0, value ->> 1, \
             value ->> 2, value ->> 3, value ->> 4, value ->> 5 FROM json_each(?1)",
        )
        .bind(json_rows(&rows)?)
        .execute(&mut **self)
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
             WHERE due_at IS NOT NULL AND due_at <= ?1 ORDER BY due_at LIMIT ?2",
        )
        .bind(ts(now))
        .bind(limit)
        .fetch_all(&mut **self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            match due_run(&r) {
                Ok(run) => out.push(run),
                Err(e) => self.bad.push(bad_row("run", &r, e)),
            }
        }
        Ok(out)
    }

    async fn marks_for(&mut self, runs: &[DueRun]) -> Result<Vec<(RunId, Mark)>, ItemError> {
        let q: Vec<(String, String, &str, &str, String, String)> = runs
            .iter()
            .map(|r| {
                (
                    r.id.to_string(),
                    r.ws.to_string(),
                    r.flow.as_str(),
                    r.key.as_str(),
                    r.contact.to_string(),
                    ts(r.started),
                )
            })
            .collect();
        let sql = format!(
            "WITH q AS (SELECT json_extract(value, '$[0]') AS run, json_extract(value, '$[1]') AS ws, \
             json_extract(value, '$[2]') AS flow, json_extract(value, '$[3]') AS k, \
             json_extract(value, '$[4]') AS contact, json_extract(value, '$[5]') AS started FROM json_each(?1)) \
             SELECT q.run, {MARK_COLUMNS} FROM q CROSS JOIN exit_marks m \
             ON m.workspace_id = q.ws AND m.flow_id = q.flow AND m.run_key = q.k \
             UNION ALL SELECT q.run, {MARK_COLUMNS} FROM q CROSS JOIN exit_marks m \
             ON m.workspace_id = q.ws AND m.flow_id = q.flow AND m.contact_id = q.contact \
             AND m.happened_at >= q.started AND m.run_key IS NULL"
        );
        let rows = sqlx::query(&sql)
            .bind(json_rows(&q)?)
            .fetch_all(&mut **self)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push((uuid(&r.try_get::<String, _>(0)?)?, mark(&r, 1)?));
        }
        Ok(out)
    }

    async fn recipients(&mut self, contacts: &[ContactId]) -> Result<Vec<Addressee>, ItemError> {
        let ids: Vec<String> = contacts.iter().map(ToString::to_string).collect();
        let rows = sqlx::query(
            "SELECT q.value, live.id, live.traits, \
             (SELECT value FROM identities i WHERE i.contact_id = live.id AND i.kind = 'email' ORDER BY created_at DESC LIMIT 1), \
             (SELECT value FROM identities i WHERE i.contact_id = live.id AND i.kind = 'phone' ORDER BY created_at DESC LIMIT 1) \
             FROM json_each(?1) q CROSS JOIN contacts c ON c.id = q.value \
             CROSS JOIN contacts live ON live.id = COALESCE(c.merged_into, c.id)",
        )
        .bind(json_rows(&ids)?)
        .fetch_all(&mut **self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(Addressee {
                asked: uuid(&r.try_get::<String, _>(0)?)?,
                live: uuid(&r.try_get::<String, _>(1)?)?,
                recipient: Recipient {
                    traits: super::json_obj(&r.try_get::<String, _>(2)?)?,
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
        let ids: Vec<String> = contacts.iter().map(ToString::to_string).collect();
        let rows = sqlx::query(
            "SELECT m.contact_id, count(*) FROM json_each(?1) q CROSS JOIN messages m \
             ON m.contact_id = q.value AND m.created_at >= ?2 AND m.channel = 'email' AND m.run_id IS NOT NULL \
             GROUP BY m.contact_id",
        )
        .bind(json_rows(&ids)?)
        .bind(ts(since))
        .fetch_all(&mut **self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push((uuid(&r.try_get::<String, _>(0)?)?, r.try_get(1)?));
        }
        Ok(out)
    }

    async fn insert_messages(&mut self, rows: &[MessageRow]) -> Result<u64, ItemError> {
        let rows: Vec<Value> = rows
            .iter()
            .map(|m| {
                serde_json::json!([
                    m.id.to_string(),
                    m.ws.to_string(),
                    m.key,
                    m.run.map(|r| r.to_string()),
                    m.flow,
                    m.step,
                    m.contact.to_string(),
                    m.channel,
                    m.to,
                    m.from,
                    m.reply_to,
                    m.subject,
                    m.text,
                    m.html,
                    m.unsubscribe_url,
                    ts(m.now),
                    m.lead.map(|l| l.to_string())
                ])
            })
            .collect();
        let done = sqlx::query(
            "INSERT INTO messages (id, workspace_id, idempotency_key, run_id, flow_id, step, contact_id, channel, \
             to_addr, from_addr, reply_to, subject, body_text, body_html, unsubscribe_url, state, attempts, \
             next_attempt_at, created_at, lead_id) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, \
             value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11, value ->> 12, value ->> 13, \
             value ->> 14, 'queued', 0, value ->> 15, value ->> 15, value ->> 16 FROM json_each(?1) WHERE true \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(json_rows(&rows)?)
        .execute(&mut **self)
        .await?;
        Ok(done.rows_affected())
    }

    async fn update_runs(
        &mut self,
        rows: &[RunUpdate],
        now: DateTime<Utc>,
    ) -> Result<(), ItemError> {
        let rows: Vec<(String, &str, i64, Option<String>, Option<&str>)> = rows
            .iter()
            .map(|u| {
                (
                    u.id.to_string(),
                    u.state.as_str(),
                    u.step,
                    u.due.map(ts),
                    u.outcome.as_deref(),
                )
            })
            .collect();
        sqlx::query(
            "UPDATE runs SET state = q.value ->> 1, step = q.value ->> 2, due_at = q.value ->> 3, \
             outcome = q.value ->> 4, updated_at = ?2 FROM json_each(?1) q WHERE runs.id = q.value ->> 0",
        )
        .bind(json_rows(&rows)?)
        .bind(ts(now))
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn next_due(&mut self) -> Result<Option<DateTime<Utc>>, ItemError> {
        let t: Option<String> = sqlx::query_scalar(crate::flows::NEXT_DUE)
            .fetch_one(&mut **self)
            .await?;
        Ok(t.map(|t| parse_ts(&t)).transpose()?)
    }

    async fn notify(&mut self, _channel: &'static str, _payload: &str) -> Result<(), ItemError> {
        Ok(())
    }
}

/// Counts per flow from the runs, their logs and the outbox.
pub(super) async fn flow_stats(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
) -> Result<Vec<FlowStats>, StoreError> {
    let runs = sqlx::query_as(
        "SELECT flow_id, state, COALESCE(outcome, ''), count(*) FROM runs WHERE workspace_id = ?1 \
         GROUP BY flow_id, state, outcome",
    )
    .bind(ws.to_string())
    .fetch_all(&mut *c)
    .await?;
    let skipped = sqlx::query_as(
        "SELECT r.flow_id, COALESCE(l.reason, l.detail), count(*) FROM run_log l JOIN runs r ON r.id = l.run_id \
         WHERE r.workspace_id = ?1 AND l.kind IN ('skipped', 'failed') GROUP BY 1, 2",
    )
    .bind(ws.to_string())
    .fetch_all(&mut *c)
    .await?;
    let messages = sqlx::query_as(
        "SELECT flow_id, state, count(*) FROM messages WHERE workspace_id = ?1 AND flow_id IS NOT NULL \
         GROUP BY flow_id, state",
    )
    .bind(ws.to_string())
    .fetch_all(&mut *c)
    .await?;
    Ok(crate::flows::assemble_stats(runs, skipped, messages))
}

/// Records rows in `quarantine` and clears their timers (a message is failed); answers those not quarantined
/// before.
pub(super) async fn quarantine(
    c: &mut SqliteConnection,
    rows: &[BadRow],
    now: DateTime<Utc>,
) -> Result<Vec<BadRow>, ItemError> {
    let q: Vec<(&str, &str, &str, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r.kind,
                r.id.as_str(),
                r.reason.as_str(),
                r.workspace.as_deref(),
            )
        })
        .collect();
    let q = json_rows(&q)?;
    let fresh = sqlx::query(
        "INSERT INTO quarantine (kind, row_id, reason, workspace_id, at) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, ?2 \
             FROM json_each(?1) WHERE true ON CONFLICT DO NOTHING RETURNING kind, row_id",
    )
    .bind(&q)
    .bind(ts(now))
    .fetch_all(&mut *c)
    .await?;
    for table in ["runs", "leads"] {
        let kind = if table == "runs" { "run" } else { "lead" };
        sqlx::query(&format!(
            "UPDATE {table} SET due_at = NULL WHERE id IN \
                 (SELECT value ->> 1 FROM json_each(?1) WHERE value ->> 0 = '{kind}')"
        ))
        .bind(&q)
        .execute(&mut *c)
        .await?;
    }
    sqlx::query(
        "UPDATE messages SET state = 'failed', claimed_at = NULL, next_attempt_at = NULL, \
             last_error = 'quarantined: the stored message cannot be read' WHERE id IN \
             (SELECT value ->> 1 FROM json_each(?1) WHERE value ->> 0 = 'message')",
    )
    .bind(&q)
    .execute(&mut *c)
    .await?;
    let fresh: std::collections::HashSet<(String, String)> = fresh
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(rows
        .iter()
        .filter(|r| fresh.contains(&(r.kind.to_string(), r.id.clone())))
        .cloned()
        .collect())
}
