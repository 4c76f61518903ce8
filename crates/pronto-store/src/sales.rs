//! Speed to lead in the store: routing, alerts, acknowledgements, SLA escalation and lead actions, applied
//! inside transactions (written once for both backends against [`SalesTx`]); the decisions are
//! `pronto_domain::sales`'s.
//!
//! - A new lead is routed in the transaction that records it: the matching rule's team rows are locked
//!   (PostgreSQL `SELECT … FOR UPDATE` in rep order; SQLite's single writer serialises anyway), the strategy
//!   picks on that state and the pick is written back before the lock is released. Two concurrent leads
//!   therefore take turns exactly as two sequential ones would. The rep alert and the acknowledgement are
//!   written to the outbox in the same transaction, so an accepted lead (a 2xx) always gets both.
//! - The lead's `due_at` is its next escalation step; the scheduler fires due leads with the flow timers.
//!   Claiming a lead or logging a contact attempt clears it in the same write, and the firing transaction
//!   holds the lead's row (PostgreSQL: `FOR UPDATE SKIP LOCKED`), so a claim committed before the batch read
//!   the lead always stops the escalation.
//! - Actions on a lead (claim, attempt, reply) arrive as events on the lead's contact (`Lead Claimed`, `Lead
//!   Won`, `Lead Replied`, …), through the same group commit: they are on the timeline, and flows — cadences —
//!   exit on them like on any other event.

use crate::flows::FlowTx;
use crate::tx::{ItemError, Touched};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::program::Program;
use pronto_domain::sales::alerts::{self, LeadEffects};
pub use pronto_domain::sales::lead::{self, LeadLog, LeadState};
use pronto_domain::sales::routing::{Book, Scope};
use pronto_domain::sales::sla::{self, Routed};
use pronto_domain::sales::{Outcome, Sales};
use pronto_domain::{ContactId, EventId, LeadId, MessageId, TaskId, WorkspaceId};
use serde::Serialize;
use serde_json::{Map, Value};

/// A logged contact attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptRow {
    pub id: MessageId,
    #[serde(skip)]
    pub lead: LeadId,
    pub rep: Option<String>,
    pub channel: String,
    pub outcome: String,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
}

/// A task a cadence's `call` step opened, as a rep's queue shows it. Its rep is the lead's owner now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    pub id: TaskId,
    /// `call`.
    pub kind: String,
    pub title: String,
    /// The call script, rendered for this lead.
    pub script: String,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    /// Set when a call attempt is logged on the lead, or the lead is won or lost.
    pub done_at: Option<DateTime<Utc>>,
    pub done_by: Option<String>,
    pub outcome: Option<String>,
    pub flow: Option<String>,
    /// The flow step (1-based, as the config counts them).
    pub step: Option<i64>,
    pub rep: Option<String>,
    pub lead: TaskLead,
}

/// The lead a task is about, as much as a rep needs to make the call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskLead {
    pub id: LeadId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub status: String,
}

/// A task to open, as a call step decided it.
pub(crate) use pronto_domain::engine::fire::NewTask;

/// What a rep or the lead did, carried by the event that records it.
#[derive(Debug, Clone, PartialEq)]
pub enum LeadAction {
    /// "I'm on it": the rep takes the lead (it becomes theirs) and the SLA clock stops.
    Claim { lead: LeadId, rep: String },
    /// A contact attempt by a human: the first one is the lead's first-contact time and stops the clock.
    Attempt {
        lead: LeadId,
        rep: Option<String>,
        channel: String,
        outcome: Outcome,
        note: Option<String>,
        at: DateTime<Utc>,
    },
    /// The lead answered (SMS or email): recorded on their latest lead and forwarded to its owner.
    Reply { channel: String, body: String },
    /// A manager (`by`, a user id) hands the lead to `rep` by hand; the rep is alerted.
    Reassign {
        lead: LeadId,
        rep: String,
        by: String,
    },
}

/// The end of both backends' ownership reads (`Store::ownership_between`, `Store::ownership_of`): the log
/// steps that change who holds a lead, in order.
pub(crate) const OWNERSHIP_STEPS: &str =
    "AND g.kind IN ('routed', 'reassigned', 'claimed') AND g.rep IS NOT NULL ORDER BY g.id";

/// The statements speed to lead needs from a backend.
#[async_trait]
pub(crate) trait SalesTx: FlowTx {
    /// The lead, locked for this transaction.
    async fn lead_for_update(
        &mut self,
        ws: WorkspaceId,
        id: LeadId,
    ) -> Result<Option<LeadState>, ItemError>;
    /// These leads (whichever exist), read without a lock: the leads of a batch of cadence runs.
    async fn leads(&mut self, ids: &[LeadId]) -> Result<Vec<LeadState>, ItemError>;
    /// Opens tasks; one whose key exists is not opened again.
    async fn insert_tasks(&mut self, rows: &[NewTask]) -> Result<(), ItemError>;
    /// Closes the lead's open tasks opened at or before `upto`, as done at `at`.
    async fn close_tasks(
        &mut self,
        lead: LeadId,
        by: Option<&str>,
        outcome: &str,
        at: DateTime<Utc>,
        upto: DateTime<Utc>,
    ) -> Result<(), ItemError>;
    /// The contact's most recent lead other than `except`.
    async fn latest_lead(
        &mut self,
        ws: WorkspaceId,
        contact: ContactId,
        except: Option<LeadId>,
    ) -> Result<Option<LeadState>, ItemError>;
    /// Writes the routing and SLA columns.
    async fn save_lead(&mut self, lead: &LeadState) -> Result<(), ItemError>;
    /// Inserts new leads, whole, each with the event that brought it.
    async fn insert_leads(&mut self, rows: &[(LeadState, EventId)]) -> Result<(), ItemError>;
    /// The team's routing rows for `reps` (created if missing), locked, as `(rep, assigned, last_seq)`.
    async fn lock_team(
        &mut self,
        ws: WorkspaceId,
        team: &str,
        reps: &[String],
    ) -> Result<Vec<(String, i64, i64)>, ItemError>;
    /// Writes a member's routing row (the transaction holds it since [`SalesTx::lock_team`]).
    async fn set_team(
        &mut self,
        ws: WorkspaceId,
        team: &str,
        rep: &str,
        assigned: i64,
        seq: i64,
    ) -> Result<(), ItemError>;
    /// Away flags set through the API (they override the config's).
    async fn away_flags(&mut self, ws: WorkspaceId) -> Result<Vec<(String, bool)>, ItemError>;
    /// Open leads per rep (kept in `rep_open` by triggers on `leads`, migration 0019: a row per rep, not a count).
    async fn open_counts(
        &mut self,
        ws: WorkspaceId,
        reps: &[String],
    ) -> Result<Vec<(String, i64)>, ItemError>;
    async fn insert_lead_logs(&mut self, rows: &[LeadLog]) -> Result<(), ItemError>;
    async fn insert_attempt(&mut self, ws: WorkspaceId, a: &AttemptRow) -> Result<(), ItemError>;
    /// Acknowledgements written to each of `addresses` since `since`.
    async fn ack_counts(
        &mut self,
        ws: WorkspaceId,
        addresses: &[&str],
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>, ItemError>;
    /// Up to `limit` leads whose escalation step is due, locked for this transaction.
    async fn due_leads(
        &mut self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<LeadState>, ItemError>;
}

/// What a batch of lead work writes: the effects the domain decided (logs, messages, timers), the new leads
/// routed but not yet inserted, and the routing state read for the batch.
#[derive(Default)]
pub(crate) struct Work {
    /// New leads, routed, not yet inserted: written in one statement before anything reads leads again.
    new_leads: Vec<(LeadState, EventId)>,
    fx: LeadEffects,
    /// Routing state read once per transaction (see `pronto_domain::sales::routing`): a team's rows are
    /// locked on first use and written back at [`Work::flush`].
    routing: Book,
}

impl Work {
    /// Reads, in one statement, how many acknowledgements went to each address of `leads` in the 24 hours
    /// before `now`: the cap per recipient is checked against it.
    pub async fn count_acks<T: SalesTx + ?Sized>(
        &mut self,
        tx: &mut T,
        ws: WorkspaceId,
        addresses: &[&str],
        now: DateTime<Utc>,
    ) -> Result<(), ItemError> {
        if addresses.is_empty() {
            return Ok(());
        }
        let since = now - chrono::Duration::hours(24);
        for (to, n) in tx.ack_counts(ws, addresses, since).await? {
            self.fx.count_acks(to, n);
        }
        Ok(())
    }

    /// Inserts the new leads collected so far, so that statements reading leads see them.
    async fn write_leads<T: SalesTx + ?Sized>(&mut self, tx: &mut T) -> Result<(), ItemError> {
        if !self.new_leads.is_empty() {
            tx.insert_leads(&self.new_leads).await?;
            self.new_leads.clear();
        }
        Ok(())
    }

    /// Writes the collected rows; answers whether messages were queued.
    pub async fn flush<T: SalesTx + ?Sized>(mut self, tx: &mut T) -> Result<Touched, ItemError> {
        self.write_leads(tx).await?;
        for (ws, team, rep, assigned, seq) in self.routing.changed() {
            tx.set_team(ws, team, rep, assigned, seq).await?;
        }
        let fx = self.fx;
        if fx.capped > 0 {
            metrics::counter!("pronto_acknowledgements_capped_total").increment(fx.capped);
        }
        let mut touched = Touched {
            timers: fx.timers,
            outbox: false,
        };
        if !fx.messages.is_empty() {
            touched.outbox = tx.insert_messages(&fx.messages).await? > 0;
        }
        if !fx.logs.is_empty() {
            tx.insert_lead_logs(&fx.logs).await?;
        }
        if touched.outbox {
            tx.notify("pronto_outbox", "").await?;
        }
        if let Some(at) = touched.timers {
            tx.notify("pronto_timers", &crate::tx::timers_payload(at))
                .await?;
        }
        Ok(touched)
    }
}

/// Routes a new lead: see [`Sales::decide`].
async fn assign<T: SalesTx + ?Sized>(
    tx: &mut T,
    sales: &Sales,
    book: &mut Book,
    new_leads: &[(LeadState, EventId)],
    lead: &LeadState,
    now: DateTime<Utc>,
) -> Result<Routed, ItemError> {
    route(tx, sales, book, new_leads, lead, &[], false, now).await
}

/// An escalation's reassignment: only to a rep who can take the lead now, never one already tried.
async fn reassign<T: SalesTx + ?Sized>(
    tx: &mut T,
    sales: &Sales,
    book: &mut Book,
    new_leads: &[(LeadState, EventId)],
    lead: &LeadState,
    exclude: &[String],
    now: DateTime<Utc>,
) -> Result<Routed, ItemError> {
    route(tx, sales, book, new_leads, lead, exclude, true, now).await
}

/// Loads what the book lacks to route `lead` (the away flags, the team's rows locked, its members' open
/// counts, the contact's earlier owner), then the book decides and counts the pick.
#[allow(clippy::too_many_arguments)]
async fn route<T: SalesTx + ?Sized>(
    tx: &mut T,
    sales: &Sales,
    book: &mut Book,
    new_leads: &[(LeadState, EventId)],
    lead: &LeadState,
    exclude: &[String],
    now_only: bool,
    now: DateTime<Utc>,
) -> Result<Routed, ItemError> {
    let ws = lead.workspace_id;
    let needs = book.needs(sales, lead);
    if needs.away {
        book.set_away(ws, tx.away_flags(ws).await?);
    }
    if let Some((team, members)) = &needs.lock {
        book.set_team(ws, team, tx.lock_team(ws, team, members).await?);
    }
    if let Some((team, members)) = &needs.count {
        book.set_open(ws, team, members, tx.open_counts(ws, members).await?);
    }
    let earlier = if needs.earlier_owner {
        // A lead of the same contact earlier in this transaction is the latest; it is not inserted yet.
        match new_leads
            .iter()
            .rev()
            .find(|(l, _)| l.contact_id == lead.contact_id && l.id != lead.id)
        {
            Some((earlier, _)) => earlier.owner.clone(),
            None => tx
                .latest_lead(ws, lead.contact_id, Some(lead.id))
                .await?
                .and_then(|l| l.owner),
        }
    } else {
        None
    };
    let scope = Scope { exclude, now_only };
    Ok(book.route(sales, lead, &needs, earlier.as_deref(), scope, now))
}

/// A new lead, not yet inserted: route it, then the domain starts its clock ([`sla::start`]: owner, alert,
/// acknowledgement, SLA).
pub(crate) async fn on_new_lead<T: SalesTx + ?Sized>(
    tx: &mut T,
    program: &Program,
    work: &mut Work,
    mut lead: LeadState,
    event: EventId,
    traits: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<(), ItemError> {
    let sales = &program.sales;
    if sales.is_empty() {
        work.new_leads.push((lead, event));
        return Ok(());
    }
    let routed = assign(tx, sales, &mut work.routing, &work.new_leads, &lead, now).await?;
    sla::start(program, &mut work.fx, &mut lead, routed, traits, now);
    work.new_leads.push((lead, event));
    Ok(())
}

/// Applies a rep's or the lead's action. Actions on leads that do not exist (or belong elsewhere) do nothing:
/// the service checks them before it accepts the request.
pub(crate) async fn on_action<T: SalesTx + ?Sized>(
    tx: &mut T,
    program: &Program,
    work: &mut Work,
    ws: WorkspaceId,
    contact: ContactId,
    action: &LeadAction,
    now: DateTime<Utc>,
) -> Result<(), ItemError> {
    // The action may be about a lead routed earlier in this transaction.
    work.write_leads(tx).await?;
    // A claim moves a lead, an outcome may close one: counts are read again when next needed.
    work.routing.forget_open(ws);
    match action {
        LeadAction::Claim { lead, rep } => {
            let Some(mut l) = tx.lead_for_update(ws, *lead).await? else {
                return Ok(());
            };
            if let Some(log) = lead::claim(&mut l, rep, now) {
                tx.save_lead(&l).await?;
                work.fx.logs.push(log);
            }
        }
        LeadAction::Attempt {
            lead,
            rep,
            channel,
            outcome,
            note,
            at,
        } => {
            let Some(mut l) = tx.lead_for_update(ws, *lead).await? else {
                return Ok(());
            };
            let a = lead::Attempt {
                rep: rep.as_deref(),
                channel,
                outcome: *outcome,
                at: *at,
            };
            let done = lead::attempt(&mut l, a, now);
            tx.save_lead(&l).await?;
            if let Some(upto) = done.close_tasks_upto {
                tx.close_tasks(l.id, rep.as_deref(), outcome.as_str(), *at, upto)
                    .await?;
            }
            tx.insert_attempt(
                ws,
                &AttemptRow {
                    id: MessageId::new(),
                    lead: l.id,
                    rep: rep.clone(),
                    channel: channel.clone(),
                    outcome: outcome.as_str().into(),
                    note: note.clone(),
                    at: *at,
                },
            )
            .await?;
            work.fx.logs.push(done.log);
        }
        LeadAction::Reassign { lead, rep, by } => {
            let Some(mut l) = tx.lead_for_update(ws, *lead).await? else {
                return Ok(());
            };
            let Some(to) = program.sales.rep(rep) else {
                return Ok(());
            };
            if let Some(log) = lead::reassign(&mut l, rep, by, now) {
                tx.save_lead(&l).await?;
                work.fx.logs.push(log);
                // Above any escalation step's number, so the alert's key is its own.
                let n = 100 + l.tried.len() as i64;
                alerts::alert_rep(
                    program,
                    &mut work.fx,
                    &l,
                    to,
                    alerts::Alert::Reassigned,
                    n,
                    now,
                );
            }
        }
        LeadAction::Reply { channel, body } => {
            let Some(mut l) = tx.latest_lead(ws, contact, None).await? else {
                return Ok(());
            };
            l = tx.lead_for_update(ws, l.id).await?.unwrap_or(l);
            if lead::reply(&mut l, now) {
                tx.save_lead(&l).await?;
            }
            alerts::forward_reply(program, &mut work.fx, &l, channel, body, now);
        }
    }
    Ok(())
}

/// Fires up to `limit` due escalation steps inside the open transaction; answers the leads fired and the
/// messages queued.
pub(crate) async fn fire<T: SalesTx + ?Sized>(
    tx: &mut T,
    program: &Program,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<(usize, usize), ItemError> {
    let due = tx.due_leads(now, limit).await?;
    if due.is_empty() {
        return Ok((0, 0));
    }
    let sales = &program.sales;
    let mut work = Work::default();
    let n = due.len();
    for mut lead in due {
        let routed = if sla::needs_routing(sales, &lead) {
            let tried = lead.tried.clone();
            let r = &mut work.routing;
            Some(reassign(tx, sales, r, &work.new_leads, &lead, &tried, now).await?)
        } else {
            None
        };
        sla::escalate(program, &mut work.fx, &mut lead, routed, now);
        tx.save_lead(&lead).await?;
    }
    let queued = work.fx.messages.len();
    work.flush(tx).await?;
    Ok((n, queued))
}

/// A lead listing's SQL after `FROM leads`: only the conditions given, so the planner can walk the index that
/// fits (`leads_by_team`, `leads_by_status`, `leads_by_owner_status`) instead of testing `? IS NULL OR …` on
/// every row, newest first. `p(n)` writes the n-th placeholder (`?n`, `$n`); `$1` is the workspace. Answers the
/// SQL, the text values to bind after the workspace (status, owner, team, as given), and whether `before`
/// follows them (then the limit).
pub(crate) fn lead_listing_sql(
    f: &crate::LeadFilter,
    p: impl Fn(usize) -> String,
) -> (String, Vec<String>, bool) {
    let mut sql = format!("WHERE workspace_id = {}", p(1));
    let mut texts = Vec::new();
    let given = [
        ("status", f.status.map(|s| s.as_str().to_string())),
        ("owner", f.owner.clone()),
        ("team", f.team.clone()),
    ];
    for (column, value) in given {
        if let Some(v) = value {
            texts.push(v);
            sql.push_str(&format!(" AND {column} = {}", p(texts.len() + 1)));
        }
    }
    let mut next = texts.len() + 2;
    if f.before.is_some() {
        sql.push_str(&format!(" AND id < {}", p(next)));
        next += 1;
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", p(next)));
    (sql, texts, f.before.is_some())
}
