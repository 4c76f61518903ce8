//! PostgreSQL's speed-to-lead statements. Routing locks the team's rows (`FOR UPDATE`, in rep order so two
//! transactions cannot deadlock on them); escalation claims due leads with `FOR UPDATE SKIP LOCKED`, as flow
//! timers are claimed, so several processes share the work and never take the same lead.

use super::PgTx;
use crate::rows::{bad_row, lead_state, LEAD_COLUMNS};
use crate::sales::{AttemptRow, LeadLog, LeadState, NewTask, SalesTx, Task, TaskLead};
use crate::tx::ItemError;
use crate::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::{ContactId, EventId, LeadId, TaskId, WorkspaceId};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

pub(super) async fn lead_by_id(
    c: &mut PgConnection,
    ws: WorkspaceId,
    id: LeadId,
    lock: bool,
) -> Result<Option<LeadState>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {LEAD_COLUMNS} FROM leads WHERE id = $1 AND workspace_id = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    ))
    .bind(id.0)
    .bind(ws.0)
    .fetch_optional(c)
    .await?;
    row.map(|r| lead_state(&r)).transpose()
}

#[async_trait]
impl SalesTx for PgTx {
    async fn insert_tasks(&mut self, rows: &[NewTask]) -> Result<(), ItemError> {
        let ids = |f: fn(&NewTask) -> Uuid| rows.iter().map(f).collect::<Vec<_>>();
        let text = |f: fn(&NewTask) -> &str| rows.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO tasks (id, workspace_id, key, lead_id, contact_id, run_id, flow_id, step, kind, title, \
             script, due_at, created_at) SELECT id, ws, k, lead, contact, run, flow, step, 'call', title, script, \
             due, due FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::uuid[], \
             $7::text[], $8::int[], $9::text[], $10::text[], $11::timestamptz[]) \
             AS q(id, ws, k, lead, contact, run, flow, step, title, script, due) ON CONFLICT (key) DO NOTHING",
        )
        .bind(ids(|t| t.id.0))
        .bind(ids(|t| t.ws.0))
        .bind(text(|t| &t.key))
        .bind(ids(|t| t.lead.0))
        .bind(ids(|t| t.contact.0))
        .bind(ids(|t| t.run.0))
        .bind(text(|t| &t.flow))
        .bind(rows.iter().map(|t| t.step as i32).collect::<Vec<_>>())
        .bind(text(|t| &t.title))
        .bind(text(|t| &t.script))
        .bind(rows.iter().map(|t| t.due).collect::<Vec<_>>())
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn leads(&mut self, ids: &[LeadId]) -> Result<Vec<LeadState>, ItemError> {
        let ids: Vec<Uuid> = ids.iter().map(|l| l.0).collect();
        let rows = sqlx::query(&format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE id = ANY($1)"
        ))
        .bind(&ids)
        .fetch_all(&mut *self.0)
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
            "UPDATE tasks SET done_at = $2, done_by = $3, outcome = $4 \
             WHERE lead_id = $1 AND done_at IS NULL AND created_at <= $5",
        )
        .bind(lead.0)
        .bind(at)
        .bind(by)
        .bind(outcome)
        .bind(upto)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn lead_for_update(
        &mut self,
        ws: WorkspaceId,
        id: LeadId,
    ) -> Result<Option<LeadState>, ItemError> {
        let row = sqlx::query(&format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE id = $1 AND workspace_id = $2 FOR UPDATE"
        ))
        .bind(id.0)
        .bind(ws.0)
        .fetch_optional(&mut *self.0)
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
            "SELECT {LEAD_COLUMNS} FROM leads WHERE contact_id = $1 AND workspace_id = $2 \
             AND id IS DISTINCT FROM $3 ORDER BY created_at DESC, id DESC LIMIT 1"
        ))
        .bind(contact.0)
        .bind(ws.0)
        .bind(except.map(|e| e.0))
        .fetch_optional(&mut *self.0)
        .await?;
        Ok(self.decode_leads(row.as_slice()).pop())
    }

    async fn save_lead(&mut self, l: &LeadState) -> Result<(), ItemError> {
        sqlx::query(
            "UPDATE leads SET owner = $2, team = $3, route = $4, status = $5, sla_deadline = $6, sla_step = $7, \
             due_at = $8, tried = $9, promised_at = $10, claimed_at = $11, claimed_by = $12, first_contact_at = $13, \
             replied_at = $14, outcome = $15, closed_at = $16 WHERE id = $1",
        )
        .bind(l.id.0)
        .bind(&l.owner)
        .bind(&l.team)
        .bind(&l.route)
        .bind(l.status.as_str())
        .bind(l.sla_deadline)
        .bind(l.sla_step as i32)
        .bind(l.due_at)
        .bind(Json(&l.tried))
        .bind(l.promised_at)
        .bind(l.claimed_at)
        .bind(&l.claimed_by)
        .bind(l.first_contact_at)
        .bind(l.replied_at)
        .bind(&l.outcome)
        .bind(l.closed_at)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn insert_leads(&mut self, rows: &[(LeadState, EventId)]) -> Result<(), ItemError> {
        let uuids = |f: fn(&(LeadState, EventId)) -> Uuid| rows.iter().map(f).collect::<Vec<_>>();
        let text = |f: fn(&LeadState) -> Option<String>| {
            rows.iter().map(|(l, _)| f(l)).collect::<Vec<_>>()
        };
        let time = |f: fn(&LeadState) -> Option<DateTime<Utc>>| {
            rows.iter().map(|(l, _)| f(l)).collect::<Vec<_>>()
        };
        sqlx::query(
            "INSERT INTO leads (id, workspace_id, contact_id, event_id, name, email, phone, company, message, source, \
             form, fields, created_at, owner, team, route, status, sla_deadline, sla_step, due_at, tried, promised_at) \
             SELECT id, ws, contact, event, name, email, phone, company, message, source, form, fields::jsonb, \
             created_at, owner, team, route, status, sla_deadline, sla_step, due_at, tried::jsonb, promised_at \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], \
             $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::text[], \
             $15::text[], $16::text[], $17::text[], $18::timestamptz[], $19::int[], $20::timestamptz[], \
             $21::text[], $22::timestamptz[]) AS q(id, ws, contact, event, name, email, phone, company, message, \
             source, form, fields, created_at, owner, team, route, status, sla_deadline, sla_step, due_at, tried, \
             promised_at)",
        )
        .bind(uuids(|(l, _)| l.id.0))
        .bind(uuids(|(l, _)| l.workspace_id.0))
        .bind(uuids(|(l, _)| l.contact_id.0))
        .bind(uuids(|(_, e)| e.0))
        .bind(text(|l| l.name.clone()))
        .bind(text(|l| l.email.clone()))
        .bind(text(|l| l.phone.clone()))
        .bind(text(|l| l.company.clone()))
        .bind(text(|l| l.message.clone()))
        .bind(text(|l| l.source.clone()))
        .bind(text(|l| l.form.clone()))
        .bind(text(|l| Some(l.fields.to_string())))
        .bind(time(|l| Some(l.created_at)))
        .bind(text(|l| l.owner.clone()))
        .bind(text(|l| l.team.clone()))
        .bind(text(|l| l.route.clone()))
        .bind(text(|l| Some(l.status.as_str().to_string())))
        .bind(time(|l| l.sla_deadline))
        .bind(rows.iter().map(|(l, _)| l.sla_step as i32).collect::<Vec<_>>())
        .bind(time(|l| l.due_at))
        .bind(text(|l| Some(serde_json::Value::from(l.tried.clone()).to_string())))
        .bind(time(|l| l.promised_at))
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn lock_team(
        &mut self,
        ws: WorkspaceId,
        team: &str,
        reps: &[String],
    ) -> Result<Vec<(String, i64, i64)>, ItemError> {
        // Rows first (a concurrent insert of the same row waits for the other commit), then the lock.
        sqlx::query(
            "INSERT INTO route_state (workspace_id, team, rep) SELECT $1, $2, r FROM UNNEST($3::text[]) AS r \
             ON CONFLICT (workspace_id, team, rep) DO NOTHING",
        )
        .bind(ws.0)
        .bind(team)
        .bind(reps)
        .execute(&mut *self.0)
        .await?;
        let rows = sqlx::query(
            "SELECT rep, assigned, last_seq FROM route_state WHERE workspace_id = $1 AND team = $2 \
             AND rep = ANY($3) ORDER BY rep FOR UPDATE",
        )
        .bind(ws.0)
        .bind(team)
        .bind(reps)
        .fetch_all(&mut *self.0)
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
            "INSERT INTO route_state (workspace_id, team, rep, assigned, last_seq) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (workspace_id, team, rep) DO UPDATE SET assigned = $4, last_seq = $5",
        )
        .bind(ws.0)
        .bind(team)
        .bind(rep)
        .bind(assigned)
        .bind(seq)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn away_flags(&mut self, ws: WorkspaceId) -> Result<Vec<(String, bool)>, ItemError> {
        Ok(away_flags(&mut self.0, ws).await?)
    }

    async fn open_counts(
        &mut self,
        ws: WorkspaceId,
        reps: &[String],
    ) -> Result<Vec<(String, i64)>, ItemError> {
        Ok(open_counts(&mut self.0, ws, reps).await?)
    }

    async fn insert_lead_logs(&mut self, rows: &[LeadLog]) -> Result<(), ItemError> {
        let leads: Vec<Uuid> = rows.iter().map(|r| r.lead.0).collect();
        let ats: Vec<DateTime<Utc>> = rows.iter().map(|r| r.at).collect();
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        let reps: Vec<Option<&str>> = rows.iter().map(|r| r.rep.as_deref()).collect();
        let details: Vec<&str> = rows.iter().map(|r| r.detail.as_str()).collect();
        sqlx::query(
            "INSERT INTO lead_log (lead_id, at, kind, rep, detail) SELECT * FROM UNNEST($1::uuid[], \
             $2::timestamptz[], $3::text[], $4::text[], $5::text[])",
        )
        .bind(&leads)
        .bind(&ats)
        .bind(&kinds)
        .bind(&reps)
        .bind(&details)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn insert_attempt(&mut self, ws: WorkspaceId, a: &AttemptRow) -> Result<(), ItemError> {
        sqlx::query(
            "INSERT INTO attempts (id, workspace_id, lead_id, rep, channel, outcome, note, at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(a.id.0)
        .bind(ws.0)
        .bind(a.lead.0)
        .bind(&a.rep)
        .bind(&a.channel)
        .bind(&a.outcome)
        .bind(&a.note)
        .bind(a.at)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn ack_counts(
        &mut self,
        ws: WorkspaceId,
        addresses: &[&str],
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, ItemError> {
        // Probed by recipient, address by address (`OFFSET 0` keeps the planner from turning the probe back
        // into a join over the workspace's messages of the day, as it did on SQLite at 3.4 million).
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT a.addr, count(*) FROM (SELECT DISTINCT addr FROM unnest($2::text[]) AS u(addr)) a \
             CROSS JOIN LATERAL (SELECT 1 FROM messages m WHERE m.to_addr = a.addr AND m.created_at >= $3 \
             AND m.workspace_id = $1 AND m.idempotency_key LIKE 'lead.%.ack.%' OFFSET 0) x GROUP BY a.addr",
        )
        .bind(ws.0)
        .bind(addresses)
        .bind(since)
        .fetch_all(&mut *self.0)
        .await?;
        Ok(rows)
    }

    async fn due_leads(
        &mut self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<LeadState>, ItemError> {
        let rows = sqlx::query(&format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE due_at IS NOT NULL AND due_at <= $1 ORDER BY due_at LIMIT $2 \
             FOR UPDATE SKIP LOCKED"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *self.0)
        .await?;
        Ok(self.decode_leads(&rows))
    }
}

impl PgTx {
    /// The rows that decode; the others are noted for quarantine and treated as absent.
    fn decode_leads(&mut self, rows: &[PgRow]) -> Vec<LeadState> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            match lead_state(r) {
                Ok(l) => out.push(l),
                Err(e) => self.1.push(bad_row("lead", r, e)),
            }
        }
        out
    }
}

pub(super) async fn away_flags(
    c: &mut PgConnection,
    ws: WorkspaceId,
) -> Result<Vec<(String, bool)>, StoreError> {
    let rows = sqlx::query("SELECT rep, away FROM rep_state WHERE workspace_id = $1")
        .bind(ws.0)
        .fetch_all(c)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push((r.try_get(0)?, r.try_get::<bool, _>(1)?));
    }
    Ok(out)
}

pub(super) async fn open_counts(
    c: &mut PgConnection,
    ws: WorkspaceId,
    reps: &[String],
) -> Result<Vec<(String, i64)>, StoreError> {
    let rows =
        sqlx::query("SELECT rep, open FROM rep_open WHERE rep = ANY($1) AND workspace_id = $2")
            .bind(reps)
            .bind(ws.0)
            .fetch_all(c)
            .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push((r.try_get(0)?, r.try_get(1)?));
    }
    Ok(out)
}

pub(super) async fn lead_view(
    c: &mut PgConnection,
    ws: WorkspaceId,
    id: LeadId,
) -> Result<Option<crate::LeadView>, StoreError> {
    let Some(lead) = lead_by_id(&mut *c, ws, id, false).await? else {
        return Ok(None);
    };
    let rows =
        sqlx::query("SELECT at, kind, rep, detail FROM lead_log WHERE lead_id = $1 ORDER BY id")
            .bind(id.0)
            .fetch_all(&mut *c)
            .await?;
    let mut log = Vec::with_capacity(rows.len());
    for r in rows {
        log.push(LeadLog {
            lead: id,
            at: r.try_get(0)?,
            kind: r.try_get(1)?,
            rep: r.try_get(2)?,
            detail: r.try_get(3)?,
        });
    }
    let rows = sqlx::query(
        "SELECT id, rep, channel, outcome, note, at FROM attempts WHERE lead_id = $1 ORDER BY at, id",
    )
    .bind(id.0)
    .fetch_all(&mut *c)
    .await?;
    let mut attempts = Vec::with_capacity(rows.len());
    for r in rows {
        attempts.push(AttemptRow {
            id: pronto_domain::MessageId(r.try_get(0)?),
            lead: id,
            rep: r.try_get(1)?,
            channel: r.try_get(2)?,
            outcome: r.try_get(3)?,
            note: r.try_get(4)?,
            at: r.try_get(5)?,
        });
    }
    Ok(Some(crate::LeadView {
        lead,
        log,
        attempts,
    }))
}

pub(super) async fn leads(
    c: &mut PgConnection,
    ws: WorkspaceId,
    f: &crate::LeadFilter,
    limit: i64,
) -> Result<Vec<LeadState>, StoreError> {
    let (filter, texts, before) = crate::sales::lead_listing_sql(f, |n| format!("${n}"));
    let sql = format!("SELECT {LEAD_COLUMNS} FROM leads {filter}");
    let mut q = sqlx::query(&sql).bind(ws.0);
    for t in &texts {
        q = q.bind(t.as_str());
    }
    if before {
        q = q.bind(f.before.map(|id| id.0));
    }
    let rows = q.bind(limit).fetch_all(c).await?;
    rows.iter().map(lead_state).collect()
}

pub(super) async fn leads_between(
    c: &mut PgConnection,
    ws: WorkspaceId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<LeadState>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {LEAD_COLUMNS} FROM leads WHERE workspace_id = $1 AND created_at >= $2 AND created_at < $3 \
         ORDER BY created_at"
    ))
    .bind(ws.0)
    .bind(from)
    .bind(to)
    .fetch_all(c)
    .await?;
    rows.iter().map(lead_state).collect()
}

pub(super) async fn set_away(
    c: &mut PgConnection,
    ws: WorkspaceId,
    rep: &str,
    away: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rep_state (workspace_id, rep, away, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (workspace_id, rep) DO UPDATE SET away = $3, updated_at = $4",
    )
    .bind(ws.0)
    .bind(rep)
    .bind(away)
    .bind(now)
    .execute(c)
    .await?;
    Ok(())
}

pub(super) async fn tasks(
    c: &mut PgConnection,
    ws: WorkspaceId,
    rep: Option<&str>,
    open_only: bool,
) -> Result<Vec<Task>, StoreError> {
    // One rep's open tasks (the inbox's): the first 1,000 in due order from `tasks_open_by_owner` (migration
    // 0020), whether the rep holds ten leads or a million; only the conditions that hold, so the planner
    // sees the index's predicate.
    let filter = if rep.is_some() && open_only {
        "t.workspace_id = $1 AND t.owner = $2 AND t.done_at IS NULL AND $3"
    } else {
        "t.workspace_id = $1 AND ($2::text IS NULL OR l.owner = $2) AND (NOT $3 OR t.done_at IS NULL)"
    };
    let rows = sqlx::query(&format!(
        "SELECT t.id, t.kind, t.title, t.script, t.due_at, t.created_at, t.done_at, t.done_by, t.outcome, \
         t.flow_id, t.step, l.owner, l.id, l.name, l.email, l.phone, l.company, l.status \
         FROM tasks t JOIN leads l ON l.id = t.lead_id WHERE {filter} \
         ORDER BY t.due_at, t.id LIMIT 1000"
    ))
    .bind(ws.0)
    .bind(rep)
    .bind(open_only)
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Task {
                id: TaskId(r.try_get(0)?),
                kind: r.try_get(1)?,
                title: r.try_get(2)?,
                script: r.try_get(3)?,
                due_at: r.try_get(4)?,
                created_at: r.try_get(5)?,
                done_at: r.try_get(6)?,
                done_by: r.try_get(7)?,
                outcome: r.try_get(8)?,
                flow: r.try_get(9)?,
                step: r.try_get::<Option<i32>, _>(10)?.map(|s| i64::from(s) + 1),
                rep: r.try_get(11)?,
                lead: TaskLead {
                    id: LeadId(r.try_get(12)?),
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
