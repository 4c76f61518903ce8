//! Flows in the store: the statements a backend implements for runs, exit marks, timers and the outbox
//! ([`FlowTx`]). The engine's decisions are pure (`pronto_domain::engine`); [`crate::apply`] loads what they
//! need through these statements and writes their effects, once for both backends.
//!
//! - On ingest (inside the group commit): an event that meets an exit rule is recorded as an *exit mark* and
//!   ends the matching runs in progress; a trigger starts a run (or refreshes the one in progress for its key,
//!   pushing its timer out). A run whose exit already happened — an order that arrived before its checkout —
//!   starts already exited, with the reason.
//! - On a timer (`apply::timers::fire`): a batch of due runs is claimed (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several
//!   processes share the work and never take the same run), the guard is re-checked against the store in the
//!   same transaction that writes the outbox: any exit mark for the run's key, or for its contact since the
//!   run began; the contact's consent; the frequency cap. Only then are messages written (unique idempotency key
//!   per run and step) and the run moved on to its next wait or its end.
//!
//! Why this is race-free: the exit mark and the run's state change are written by the ingesting transaction;
//! the firing transaction holds the run's row and reads the marks after claiming it. An order committed before
//! that read is seen; one committed later was not there when the decision was made. On PostgreSQL an ingest
//! that touches a run being fired waits for the fire to commit, and a run being ingested is skipped by the
//! claim and fired in the next batch.

use crate::tx::{BadRow, ItemError, MessageRow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
pub(crate) use pronto_domain::engine::fire::{Addressee, DueRun, RunUpdate};
pub(crate) use pronto_domain::engine::group::{LiveRun, Mark, RunLog as LogRow, RunRow};
use pronto_domain::{ContactId, EventId, RunId, WorkspaceId};

/// When the next run or lead step falls due (either database).
pub(crate) const NEXT_DUE: &str =
    "SELECT min(t) FROM (SELECT min(due_at) AS t FROM runs WHERE due_at IS NOT NULL \
     UNION ALL SELECT min(due_at) FROM leads WHERE due_at IS NOT NULL) AS d";

/// The flow statements each backend implements.
#[async_trait]
pub(crate) trait FlowTx:
    crate::catalog::CatalogTx
    + crate::offers::OffersTx
    + crate::reports::ReportsTx
    + crate::outbox::OutboxTx
    + Send
{
    /// Rows this transaction could not decode so far.
    fn bad_rows(&mut self) -> &mut Vec<BadRow>;
    /// Records the rows in `quarantine` and clears their timers; answers those not quarantined before.
    async fn quarantine(
        &mut self,
        rows: &[BadRow],
        now: DateTime<Utc>,
    ) -> Result<Vec<BadRow>, ItemError>;
    /// Sets aside every row this transaction could not decode. Each is logged once, when it is first
    /// quarantined: a corrupt row costs one warning, not one per batch.
    async fn flush_quarantine(&mut self, now: DateTime<Utc>) -> Result<(), ItemError> {
        let rows = std::mem::take(self.bad_rows());
        if rows.is_empty() {
            return Ok(());
        }
        for r in self.quarantine(&rows, now).await? {
            crate::quarantined(&r);
        }
        Ok(())
    }
    /// The runs in progress of these `(flow, key)`s and `(flow, contact)`s (PostgreSQL: locked for this
    /// transaction, in id order, so two writers touching the same runs queue instead of deadlocking).
    async fn live_runs(
        &mut self,
        ws: WorkspaceId,
        keys: &[(String, String)],
        contacts: &[(String, ContactId)],
    ) -> Result<Vec<LiveRun>, ItemError>;
    /// Every exit mark that stops a new run of `(flow, key, contact, since)`: for the key whenever it
    /// happened, or for the contact at or after `since` (possibly repeated; the domain picks).
    async fn stopping_marks(
        &mut self,
        ws: WorkspaceId,
        q: &[(String, String, ContactId, DateTime<Utc>)],
    ) -> Result<Vec<Mark>, ItemError>;
    async fn insert_marks(
        &mut self,
        ws: WorkspaceId,
        rows: &[(Mark, EventId)],
    ) -> Result<(), ItemError>;
    /// Inserts new runs whole; one that is in progress for a key another writer took is a conflict.
    async fn insert_runs(&mut self, ws: WorkspaceId, rows: &[RunRow]) -> Result<(), ItemError>;
    /// Writes the state, step, timer, snapshot (when given) and outcome of existing runs.
    async fn write_runs(&mut self, rows: &[RunRow]) -> Result<(), ItemError>;
    async fn insert_logs(&mut self, rows: &[LogRow]) -> Result<(), ItemError>;
    /// Up to `limit` runs due at `now`, earliest first, locked for this transaction.
    async fn claim_due(&mut self, now: DateTime<Utc>, limit: i64)
        -> Result<Vec<DueRun>, ItemError>;
    /// Every exit mark that applies to any of `runs`, with the run it applies to.
    async fn marks_for(&mut self, runs: &[DueRun]) -> Result<Vec<(RunId, Mark)>, ItemError>;
    async fn recipients(&mut self, contacts: &[ContactId]) -> Result<Vec<Addressee>, ItemError>;
    /// Emails written for each contact since `since`.
    async fn sent_counts(
        &mut self,
        contacts: &[ContactId],
        since: DateTime<Utc>,
    ) -> Result<Vec<(ContactId, i64)>, ItemError>;
    /// Writes the messages; a row whose idempotency key exists is not written again.
    async fn insert_messages(&mut self, rows: &[MessageRow]) -> Result<u64, ItemError>;
    async fn update_runs(
        &mut self,
        rows: &[RunUpdate],
        now: DateTime<Utc>,
    ) -> Result<(), ItemError>;
    /// When the next timer (a run's or a lead's escalation) falls due, as this transaction sees it.
    async fn next_due(&mut self) -> Result<Option<DateTime<Utc>>, ItemError>;
    /// Tells other processes on the database that timers or messages changed (PostgreSQL `NOTIFY`, sent at
    /// commit); nothing on SQLite, where one process owns the database.
    async fn notify(&mut self, channel: &'static str, payload: &str) -> Result<(), ItemError>;
}

/// Assembles per-flow counts from the three grouped queries each backend runs: runs by (flow, state,
/// outcome), skipped steps by (flow, reason), messages by (flow, state).
pub(crate) fn assemble_stats(
    runs: Vec<(String, String, String, i64)>,
    skipped: Vec<(String, String, i64)>,
    messages: Vec<(String, String, i64)>,
) -> Vec<crate::FlowStats> {
    fn get(
        out: &mut std::collections::BTreeMap<String, crate::FlowStats>,
        flow: String,
    ) -> &mut crate::FlowStats {
        out.entry(flow.clone()).or_insert_with(|| crate::FlowStats {
            flow,
            ..Default::default()
        })
    }
    let mut out = std::collections::BTreeMap::new();
    for (flow, state, outcome, n) in runs {
        let s = get(&mut out, flow);
        match state.as_str() {
            "active" => s.active += n,
            "finished" => s.finished += n,
            _ => *s.exited.entry(outcome).or_default() += n,
        }
    }
    for (flow, reason, n) in skipped {
        *get(&mut out, flow).skipped.entry(reason).or_default() += n;
    }
    for (flow, state, n) in messages {
        *get(&mut out, flow).messages.entry(state).or_default() += n;
    }
    out.into_values().collect()
}

/// A message listing's SQL after `FROM messages`: only the conditions given, newest first (by the
/// `messages_by_workspace` or `messages_by_recipient` index). `p(n)` writes the n-th placeholder (`?n`,
/// `$n`); `$1` is the workspace. Answers the SQL and, in order, what to bind after the workspace (the limit
/// last).
pub(crate) fn message_listing_sql(
    q: &crate::MessageQuery,
    p: impl Fn(usize) -> String,
) -> (String, Vec<MessageBind>) {
    let mut sql = format!("WHERE workspace_id = {}", p(1));
    let mut binds = Vec::new();
    let texts = [
        ("to_addr", &q.to),
        ("flow_id", &q.flow),
        ("state", &q.state),
        ("idempotency_key", &q.key),
    ];
    for (column, value) in texts {
        if let Some(v) = value {
            binds.push(MessageBind::Text(v.clone()));
            sql.push_str(&format!(" AND {column} = {}", p(binds.len() + 1)));
        }
    }
    if let Some(c) = q.contact {
        binds.push(MessageBind::Id(c.0));
        sql.push_str(&format!(" AND contact_id = {}", p(binds.len() + 1)));
    }
    if let Some(id) = q.id {
        binds.push(MessageBind::Id(id.0));
        sql.push_str(&format!(" AND id = {}", p(binds.len() + 1)));
    }
    if let Some(before) = q.before {
        binds.push(MessageBind::Id(before.0));
        let n = p(binds.len() + 1);
        sql.push_str(&format!(
            " AND (created_at, id) < (SELECT created_at, id FROM messages WHERE id = {n})"
        ));
    }
    binds.push(MessageBind::Limit(i64::from(q.limit)));
    sql.push_str(&format!(
        " ORDER BY created_at DESC, id DESC LIMIT {}",
        p(binds.len() + 1)
    ));
    (sql, binds)
}

/// A value [`message_listing_sql`] asks to bind.
pub(crate) enum MessageBind {
    Text(String),
    Id(uuid::Uuid),
    Limit(i64),
}
