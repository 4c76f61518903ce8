//! SQLite's speed-to-lead statements. One writer connection owns the database, so the transaction is the lock
//! routing and escalation need.

use super::{json_rows, ts, uuid, SqliteTx};
use crate::rows::{bad_row, lead_state, Cols, LEAD_COLUMNS};
use crate::sales::{AttemptRow, LeadLog, LeadState, NewTask, SalesTx, Task, TaskLead};
use crate::tx::ItemError;
use crate::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::{ContactId, EventId, LeadId, WorkspaceId};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

pub(super) async fn lead_by_id(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    id: LeadId,
) -> Result<Option<LeadState>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {LEAD_COLUMNS} FROM leads WHERE id = ?1 AND workspace_id = ?2"
    ))
    .bind(id.to_string())
    .bind(ws.to_string())
    .fetch_optional(c)
    .await?;
    row.map(|r| lead_state(&r)).transpose()
}

#[async_trait]
impl SalesTx for SqliteTx {
    async fn insert_tasks(&mut self, rows: &[NewTask]) -> Result<(), ItemError> {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|t| {
                serde_json::json!([
                    t.id.to_string(),
                    t.ws.to_string(),
                    t.key,
                    t.lead.to_string(),
                    t.contact.to_string(),
                    t.run.to_string(),
                    t.flow,
                    t.step,
                    t.title,
                    t.script,
                    ts(t.due),
                ])
            })
            .collect();
        sqlx::query(
            // `owner`: the lead's, read in the same statement (migration 0020).
            "INSERT INTO tasks (id, workspace_id, key, lead_id, contact_id, run_id, flow_id, step, kind, title, \
             script, due_at, created_at, owner) SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, \
             value ->> 4, value ->> 5, value ->> 6, value ->> 7, 'call', value ->> 8, value ->> 9, value ->> 10, \
             value ->> 10, (SELECT owner FROM leads WHERE id = value ->> 3) \
             FROM json_each(?1) WHERE true ON CONFLICT (key) DO NOTHING",
        )
        .bind(json_rows(&rows)?)
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn leads(&mut self, ids: &[LeadId]) -> Result<Vec<LeadState>, ItemError> {
        let rows = sqlx::query(&format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE id IN (SELECT value FROM json_each(?1))"
        ))
        .bind(json_rows(&ids)?)
        .fetch_all(&mut **self)
        .await?;
        Ok(self.decode_leads(&rows))
    }

    async fn close_tasks(
        &mut self,
        lead: LeadId,
        by: Option<&str>,
        outcome: &str,
        at: DateTime<Utc>,
        upto: DateTime<Utc>,
    ) -> Result<(), ItemError> {
        sqlx::query(
            "UPDATE tasks SET done_at = ?2, done_by = ?3, outcome = ?4 \
             WHERE lead_id = ?1 AND done_at IS NULL AND created_at <= ?5",
        )
        .bind(lead.to_string())
        .bind(ts(at))
        .bind(by)
        .bind(outcome)
        .bind(ts(upto))
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn lead_for_update(
        &mut self,
        ws: WorkspaceId,
        id: LeadId,
    ) -> Result<Option<LeadState>, ItemError> {
        let row = sqlx::query(&format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE id = ?1 AND workspace_id = ?2"
        ))
        .bind(id.to_string())
        .bind(ws.to_string())
        .fetch_optional(&mut **self)
        .await?;
        Ok(self.decode_leads(row.as_slice()).pop())
    }

    async fn latest_lead(
        &mut self,
        ws: WorkspaceId,
        contact: ContactId,
        except: Option<LeadId>,
    ) -> Result<Option<LeadState>, ItemError> {
        let row = sqlx::query(&format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE contact_id = ?1 AND workspace_id = ?2 AND id <> ?3 \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        ))
        .bind(contact.to_string())
        .bind(ws.to_string())
        .bind(except.map(|e| e.to_string()).unwrap_or_default())
        .fetch_optional(&mut **self)
        .await?;
        Ok(self.decode_leads(row.as_slice()).pop())
    }

    async fn save_lead(&mut self, l: &LeadState) -> Result<(), ItemError> {
        sqlx::query(
            "UPDATE leads SET owner = ?2, team = ?3, route = ?4, status = ?5, sla_deadline = ?6, sla_step = ?7, \
             due_at = ?8, tried = ?9, promised_at = ?10, claimed_at = ?11, claimed_by = ?12, first_contact_at = ?13, \
             replied_at = ?14, outcome = ?15, closed_at = ?16 WHERE id = ?1",
        )
        .bind(l.id.to_string())
        .bind(&l.owner)
        .bind(&l.team)
        .bind(&l.route)
        .bind(l.status.as_str())
        .bind(l.sla_deadline.map(ts))
        .bind(l.sla_step)
        .bind(l.due_at.map(ts))
        .bind(json_rows(&l.tried)?)
        .bind(l.promised_at.map(ts))
        .bind(l.claimed_at.map(ts))
        .bind(&l.claimed_by)
        .bind(l.first_contact_at.map(ts))
        .bind(l.replied_at.map(ts))
        .bind(&l.outcome)
        .bind(l.closed_at.map(ts))
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn insert_leads(&mut self, rows: &[(LeadState, EventId)]) -> Result<(), ItemError> {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|(l, event)| {
                Ok(serde_json::json!([
                    l.id.to_string(),
                    l.workspace_id.to_string(),
                    l.contact_id.to_string(),
                    event.to_string(),
                    l.name,
                    l.email,
                    l.phone,
                    l.company,
                    l.message,
                    l.source,
                    l.form,
                    l.fields.to_string(),
                    ts(l.created_at),
                    l.owner,
                    l.team,
                    l.route,
                    l.status,
                    l.sla_deadline.map(ts),
                    l.sla_step,
                    l.due_at.map(ts),
                    json_rows(&l.tried)?,
                    l.promised_at.map(ts),
                ]))
            })
            .collect::<Result<_, ItemError>>()?;
        sqlx::query(
            "INSERT INTO leads (id, workspace_id, contact_id, event_id, name, email, phone, company, message, source, \
             form, fields, created_at, owner, team, route, status, sla_deadline, sla_step, due_at, tried, promised_at) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, \
             value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11, value ->> 12, value ->> 13, \
             value ->> 14, value ->> 15, value ->> 16, value ->> 17, value ->> 18, value ->> 19, value ->> 20, \
             value ->> 21 FROM json_each(?1)",
        )
        .bind(json_rows(&rows)?)
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn lock_team(
        &mut self,
        ws: WorkspaceId,
        team: &str,
        reps: &[String],
    ) -> Result<Vec<(String, i64, i64)>, ItemError> {
        let rows = sqlx::query(
            "SELECT rep, assigned, last_seq FROM route_state WHERE workspace_id = ?1 AND team = ?2 \
             AND rep IN (SELECT value FROM json_each(?3))",
        )
        .bind(ws.to_string())
        .bind(team)
        .bind(json_rows(&reps)?)
        .fetch_all(&mut **self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
        }
        Ok(out)
    }

    async fn set_team(
        &mut self,
        ws: WorkspaceId,
        team: &str,
        rep: &str,
        assigned: i64,
        seq: i64,
    ) -> Result<(), ItemError> {
        sqlx::query(
            "INSERT INTO route_state (workspace_id, team, rep, assigned, last_seq) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (workspace_id, team, rep) DO UPDATE SET assigned = ?4, last_seq = ?5",
        )
        .bind(ws.to_string())
        .bind(team)
        .bind(rep)
        .bind(assigned)
        .bind(seq)
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn away_flags(&mut self, ws: WorkspaceId) -> Result<Vec<(String, bool)>, ItemError> {
        Ok(away_flags(&mut self.conn, ws).await?)
    }

    async fn open_counts(
        &mut self,
        ws: WorkspaceId,
        reps: &[String],
    ) -> Result<Vec<(String, i64)>, ItemError> {
        Ok(open_counts(&mut self.conn, ws, reps).await?)
    }

    async fn insert_lead_logs(&mut self, rows: &[LeadLog]) -> Result<(), ItemError> {
        let rows: Vec<(String, String, &str, Option<&str>, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r.lead.to_string(),
                    ts(r.at),
                    r.kind.as_str(),
                    r.rep.as_deref(),
                    r.detail.as_str(),
                )
            })
            .collect();
        sqlx::query(
            "INSERT INTO lead_log (lead_id, at, kind, rep, detail) SELECT value ->> 0, value ->> 1, value ->> 2, \
             value ->> 3, value ->> 4 FROM json_each(?1)",
        )
        .bind(json_rows(&rows)?)
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn insert_attempt(&mut self, ws: WorkspaceId, a: &AttemptRow) -> Result<(), ItemError> {
        sqlx::query(
            "INSERT INTO attempts (id, workspace_id, lead_id, rep, channel, outcome, note, at, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        )
        .bind(a.id.to_string())
        .bind(ws.to_string())
        .bind(a.lead.to_string())
        .bind(&a.rep)
        .bind(&a.channel)
        .bind(&a.outcome)
        .bind(&a.note)
        .bind(ts(a.at))
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn ack_counts(
        &mut self,
        ws: WorkspaceId,
        addresses: &[&str],
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, ItemError> {
        // Probed by recipient, address by address (`CROSS JOIN` keeps the addresses outside; `+workspace_id`
        // keeps the planner off `messages_by_workspace`): the workspace's messages of the day, which it
        // otherwise walked, were 3.4 million in `pronto bench app` and held the writer 1.5-3.5 s per lead.
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT a.value, count(*) FROM (SELECT DISTINCT value FROM json_each(?2)) a \
             CROSS JOIN messages m ON m.to_addr = a.value AND m.created_at >= ?3 \
             WHERE +m.workspace_id = ?1 AND m.idempotency_key LIKE 'lead.%.ack.%' GROUP BY a.value",
        )
        .bind(ws.to_string())
        .bind(json_rows(&addresses)?)
        .bind(ts(since))
        .fetch_all(&mut **self)
        .await?;
        Ok(rows)
    }

    async fn due_leads(
        &mut self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<LeadState>, ItemError> {
        let rows = sqlx::query(&format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE due_at IS NOT NULL AND due_at <= ?1 ORDER BY due_at LIMIT ?2"
        ))
        .bind(ts(now))
        .bind(limit)
        .fetch_all(&mut **self)
        .await?;
        Ok(self.decode_leads(&rows))
    }
}

impl SqliteTx {
    /// The rows that decode; the others are noted for quarantine and treated as absent.
    fn decode_leads(&mut self, rows: &[SqliteRow]) -> Vec<LeadState> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            match lead_state(r) {
                Ok(l) => out.push(l),
                Err(e) => self.bad.push(bad_row("lead", r, e)),
            }
        }
        out
    }
}

pub(super) async fn away_flags(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
) -> Result<Vec<(String, bool)>, StoreError> {
    let rows = sqlx::query("SELECT rep, away FROM rep_state WHERE workspace_id = ?1")
        .bind(ws.to_string())
        .fetch_all(c)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push((r.try_get(0)?, r.try_get::<i64, _>(1)? != 0));
    }
    Ok(out)
}

pub(super) async fn open_counts(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    reps: &[String],
) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT rep, open FROM rep_open WHERE rep IN (SELECT value FROM json_each(?1)) AND workspace_id = ?2",
    )
    .bind(serde_json::to_string(reps).map_err(|e| StoreError::Corrupt(e.to_string()))?)
    .bind(ws.to_string())
    .fetch_all(c)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push((r.try_get(0)?, r.try_get(1)?));
    }
    Ok(out)
}

pub(super) async fn lead_view(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    id: LeadId,
) -> Result<Option<crate::LeadView>, StoreError> {
    let Some(lead) = lead_by_id(&mut *c, ws, id).await? else {
        return Ok(None);
    };
    let rows =
        sqlx::query("SELECT at, kind, rep, detail FROM lead_log WHERE lead_id = ?1 ORDER BY id")
            .bind(id.to_string())
            .fetch_all(&mut *c)
            .await?;
    let mut log = Vec::with_capacity(rows.len());
    for r in rows {
        log.push(LeadLog {
            lead: id,
            at: r.at(0)?,
            kind: r.try_get(1)?,
            rep: r.try_get(2)?,
            detail: r.try_get(3)?,
        });
    }
    let rows = sqlx::query(
        "SELECT id, rep, channel, outcome, note, at FROM attempts WHERE lead_id = ?1 ORDER BY at, id",
    )
    .bind(id.to_string())
    .fetch_all(&mut *c)
    .await?;
    let mut attempts = Vec::with_capacity(rows.len());
    for r in rows {
        attempts.push(AttemptRow {
            id: uuid(&r.try_get::<String, _>(0)?)?,
            lead: id,
            rep: r.try_get(1)?,
            channel: r.try_get(2)?,
            outcome: r.try_get(3)?,
            note: r.try_get(4)?,
            at: r.at(5)?,
        });
    }
    Ok(Some(crate::LeadView {
        lead,
        log,
        attempts,
    }))
}

pub(super) async fn leads(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    f: &crate::LeadFilter,
    limit: i64,
) -> Result<Vec<LeadState>, StoreError> {
    let (filter, texts, before) = crate::sales::lead_listing_sql(f, |n| format!("?{n}"));
    let sql = format!("SELECT {LEAD_COLUMNS} FROM leads {filter}");
    let mut q = sqlx::query(&sql).bind(ws.to_string());
    for t in &texts {
        q = q.bind(t.as_str());
    }
    if before {
        q = q.bind(f.before.map(|id| id.to_string()));
    }
    let rows = q.bind(limit).fetch_all(c).await?;
    rows.iter().map(lead_state).collect()
}

pub(super) async fn leads_between(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<LeadState>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {LEAD_COLUMNS} FROM leads WHERE workspace_id = ?1 AND created_at >= ?2 AND created_at < ?3 \
         ORDER BY created_at"
    ))
    .bind(ws.to_string())
    .bind(ts(from))
    .bind(ts(to))
    .fetch_all(c)
    .await?;
    rows.iter().map(lead_state).collect()
}

pub(super) async fn set_away(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    rep: &str,
    away: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rep_state (workspace_id, rep, away, updated_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (workspace_id, rep) DO UPDATE SET away = ?3, updated_at = ?4",
    )
    .bind(ws.to_string())
    .bind(rep)
    .bind(away)
    .bind(ts(now))
    .execute(c)
    .await?;
    Ok(())
}

pub(super) async fn tasks(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    rep: Option<&str>,
    open_only: bool,
) -> Result<Vec<Task>, StoreError> {
    // One rep's open tasks (the inbox's): the first 1,000 in due order from `tasks_open_by_owner` (migration
    // 0020), whether the rep holds ten leads or a million. Walking every task of the workspace by due date
    // read done ones too (124 ms at 200,000 for a rep with few); starting from the rep's leads read all of
    // them first (1 s for a rep holding a million).
    let from = if rep.is_some() && open_only {
        "FROM tasks t JOIN leads l ON l.id = t.lead_id \
         WHERE t.workspace_id = ?1 AND t.owner = ?2 AND t.done_at IS NULL AND ?3"
    } else {
        "FROM tasks t JOIN leads l ON l.id = t.lead_id \
         WHERE t.workspace_id = ?1 AND (?2 IS NULL OR l.owner = ?2) AND (?3 = 0 OR t.done_at IS NULL)"
    };
    let rows = sqlx::query(&format!(
        "SELECT t.id, t.kind, t.title, t.script, t.due_at, t.created_at, t.done_at, t.done_by, t.outcome, \
         t.flow_id, t.step, l.owner, l.id, l.name, l.email, l.phone, l.company, l.status \
         {from} ORDER BY t.due_at, t.id LIMIT 1000"
    ))
    .bind(ws.to_string())
    .bind(rep)
    .bind(open_only)
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Task {
                id: uuid(&r.try_get::<String, _>(0)?)?,
                kind: r.try_get(1)?,
                title: r.try_get(2)?,
                script: r.try_get(3)?,
                due_at: r.at(4)?,
                created_at: r.at(5)?,
                done_at: r.opt_at(6)?,
                done_by: r.try_get(7)?,
                outcome: r.try_get(8)?,
                flow: r.try_get(9)?,
                step: r.try_get::<Option<i64>, _>(10)?.map(|s| s + 1),
                rep: r.try_get(11)?,
                lead: TaskLead {
                    id: uuid(&r.try_get::<String, _>(12)?)?,
                    name: r.try_get(13)?,
                    email: r.try_get(14)?,
                    phone: r.try_get(15)?,
                    company: r.try_get(16)?,
                    status: r.try_get(17)?,
                },
            })
        })
        .collect()
}
