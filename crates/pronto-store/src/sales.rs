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
use crate::tx::{ItemError, MessageRow, Touched};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::engine::fire::CadenceLead;
use pronto_domain::program::Program;
use pronto_domain::sales::{
    lead_context, AlertChannel, Escalate, How, Member, Outcome, Rep, Sales, Situation,
};
use pronto_domain::{ContactId, EventId, LeadId, MessageId, TaskId, WorkspaceId};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// A lead with its routing and SLA state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeadState {
    pub id: LeadId,
    pub workspace_id: WorkspaceId,
    pub contact_id: ContactId,
    pub created_at: DateTime<Utc>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub message: Option<String>,
    pub source: Option<String>,
    pub form: Option<String>,
    pub fields: Value,
    /// The rep who owns it now.
    pub owner: Option<String>,
    pub team: Option<String>,
    pub route: Option<String>,
    /// open, claimed, contacted, won, lost.
    pub status: String,
    /// First human contact due by then.
    pub sla_deadline: Option<DateTime<Utc>>,
    /// The next escalation step.
    pub sla_step: i64,
    /// When that step runs; none once the lead is claimed, contacted or past the chain.
    pub due_at: Option<DateTime<Utc>>,
    /// Every rep that has owned it.
    pub tried: Vec<String>,
    /// What the acknowledgement promised.
    pub promised_at: Option<DateTime<Utc>>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub claimed_by: Option<String>,
    /// The first logged human contact attempt.
    pub first_contact_at: Option<DateTime<Utc>>,
    pub replied_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl LeadState {
    /// The fields as rules and templates see them (see [`lead_context`]).
    fn props(&self) -> Value {
        json!({
            "name": self.name, "email": self.email, "phone": self.phone, "company": self.company,
            "message": self.message, "source": self.source, "form": self.form, "fields": self.fields,
            "first_contact_at": self.first_contact_at,
        })
    }

    pub(crate) fn context(&self) -> Value {
        lead_context(&self.id.to_string(), &self.props(), self.created_at)
    }

    /// The lead as a cadence run's steps need it.
    pub(crate) fn cadence(&self) -> CadenceLead {
        CadenceLead {
            id: self.id,
            ws: self.workspace_id,
            owner: self.owner.clone(),
            context: self.context(),
        }
    }

    fn is_open(&self) -> bool {
        matches!(self.status.as_str(), "open" | "claimed" | "contacted")
    }
}

/// A step taken on a lead.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeadLog {
    #[serde(skip)]
    pub lead: LeadId,
    pub at: DateTime<Utc>,
    /// routed, alerted, acknowledged, unassigned, escalated, reassigned, claimed, attempt, replied.
    pub kind: String,
    pub rep: Option<String>,
    pub detail: String,
}

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
}

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
    /// Open leads per rep.
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

/// How long a claim link in an alert works.
const CLAIM_LINK_SECS: i64 = 7 * 24 * 3600;

/// The rep's signed "I'm on it" link for this lead.
pub fn claim_url(program: &Program, ws: WorkspaceId, lead: LeadId, rep: &str, now: i64) -> String {
    let m = &program.messages;
    let token = pronto_domain::claim::sign(
        &m.link_secret,
        &format!("{ws}/{lead}"),
        rep,
        "claim",
        now + CLAIM_LINK_SECS,
    );
    format!(
        "{}/c/{ws}/{lead}/{rep}/{token}",
        m.public_url.trim_end_matches('/')
    )
}

/// Checks a claim link's token.
pub fn check_claim(
    program: &Program,
    ws: WorkspaceId,
    lead: LeadId,
    rep: &str,
    token: &str,
    now: i64,
) -> Result<(), pronto_domain::claim::ClaimError> {
    pronto_domain::claim::verify(
        &program.messages.link_secret,
        &format!("{ws}/{lead}"),
        rep,
        "claim",
        token,
        now,
    )
}

/// Why a rep is alerted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alert {
    New,
    Realert,
    Reassigned,
}

impl Alert {
    fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Realert => "realert",
            Self::Reassigned => "reassigned",
        }
    }
}

/// Collects what a batch of lead work writes, so each kind of row is one statement.
#[derive(Default)]
pub(crate) struct Work {
    /// New leads, routed, not yet inserted: written in one statement before anything reads leads again.
    new_leads: Vec<(LeadState, EventId)>,
    pub logs: Vec<LeadLog>,
    pub messages: Vec<MessageRow>,
    pub timers: bool,
    routing: Routing,
    /// Acknowledgements per recipient address in the last 24 hours (see [`Work::count_acks`]), kept current
    /// as this batch queues more.
    acks: HashMap<String, i64>,
}

/// Routing state read once per transaction and kept in memory while its leads are routed: a team's rows are
/// locked on first use (and stay locked until the commit) and written back at [`Work::flush`], the away flags
/// and open-lead counts are read once. A group of 500 leads then costs one lock and one write per team
/// member instead of five statements per lead, and routes exactly as 500 sequential transactions would.
#[derive(Default)]
struct Routing {
    away: HashMap<WorkspaceId, HashMap<String, bool>>,
    /// Open leads per rep, kept current as this transaction assigns leads. A team's members are counted
    /// when the team is locked (on PostgreSQL another writer may have committed leads for them while this
    /// transaction waited for the lock), and again after a lead action (which may close or move a lead).
    open: HashMap<WorkspaceId, HashMap<String, i64>>,
    /// Teams whose members' counts in `open` are current.
    counted: std::collections::HashSet<(WorkspaceId, String)>,
    /// `(assigned, last_seq)` per member, as locked.
    teams: HashMap<(WorkspaceId, String), HashMap<String, (i64, i64)>>,
    /// Members whose row changed: written at flush.
    dirty: Vec<(WorkspaceId, String, String)>,
}

impl Work {
    fn log(
        &mut self,
        lead: &LeadState,
        at: DateTime<Utc>,
        kind: &str,
        rep: Option<&str>,
        detail: String,
    ) {
        self.logs.push(LeadLog {
            lead: lead.id,
            at,
            kind: kind.into(),
            rep: rep.map(str::to_string),
            detail,
        });
    }

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
            self.acks.insert(to, n);
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
        let r = &self.routing;
        for (ws, team, rep) in &r.dirty {
            if let Some((assigned, seq)) =
                r.teams.get(&(*ws, team.clone())).and_then(|m| m.get(rep))
            {
                tx.set_team(*ws, team, rep, *assigned, *seq).await?;
            }
        }
        let mut touched = Touched {
            timers: self.timers,
            outbox: false,
        };
        if !self.messages.is_empty() {
            touched.outbox = tx.insert_messages(&self.messages).await? > 0;
        }
        if !self.logs.is_empty() {
            tx.insert_lead_logs(&self.logs).await?;
        }
        if touched.outbox {
            tx.notify("pronto_outbox").await?;
        }
        if touched.timers {
            tx.notify("pronto_timers").await?;
        }
        Ok(touched)
    }
}

/// The template context of a lead message.
fn message_context(
    program: &Program,
    lead: &LeadState,
    rep: Option<&Rep>,
    alert: (&str, &str),
    now: DateTime<Utc>,
) -> Value {
    let sales = &program.sales;
    let rep_json = rep.map_or_else(Rep::no_context, Rep::context);
    let claim = rep
        .map(|r| claim_url(program, lead.workspace_id, lead.id, &r.id, now.timestamp()))
        .unwrap_or_default();
    let sla = pronto_domain::sales::sla_context(sales, lead.sla_deadline, rep, now);
    json!({
        "lead": lead.context(),
        "rep": rep_json,
        "links": {"claim": claim, "call": lead.phone.as_ref().map(|p| format!("tel:{p}"))},
        "promise": {"text": "", "at": lead.promised_at},
        "sla": sla,
        "alert": {"kind": alert.0, "reason": alert.1},
        "reply": {"channel": "", "body": ""},
    })
}

/// Queues one message about a lead. `key` makes it idempotent; a template error is logged on the lead.
#[allow(clippy::too_many_arguments)]
fn queue(
    program: &Program,
    work: &mut Work,
    lead: &LeadState,
    key: String,
    channel: AlertChannel,
    to: &str,
    template: &str,
    ctx: &Value,
    reply_to: Option<String>,
    now: DateTime<Utc>,
) -> bool {
    let rendered = match program.templates.render(template, ctx) {
        Ok(r) => r,
        Err(e) => {
            work.log(lead, now, "failed", None, e.to_string());
            return false;
        }
    };
    let (subject, text, html) = match channel {
        AlertChannel::Email => (rendered.subject, rendered.text, rendered.html),
        AlertChannel::Sms => (String::new(), rendered.text.trim().to_string(), None),
        // Slack-compatible incoming webhook body.
        AlertChannel::Webhook => (
            rendered.subject.clone(),
            json!({"text": format!("*{}*\n{}", rendered.subject, rendered.text.trim())})
                .to_string(),
            None,
        ),
    };
    work.messages.push(MessageRow {
        id: MessageId::new(),
        ws: lead.workspace_id,
        key,
        run: None,
        flow: None,
        step: None,
        lead: Some(lead.id),
        contact: lead.contact_id,
        channel: channel.as_str(),
        to: to.to_string(),
        from: program.messages.from.clone(),
        reply_to,
        subject,
        text,
        html,
        unsubscribe_url: None,
        now,
    });
    true
}

/// Where `rep` gets alerts on `ch`, if the rep has that channel and it can be sent now.
fn address(program: &Program, rep: &Rep, ch: AlertChannel) -> Option<String> {
    match ch {
        AlertChannel::Email => rep.email.clone(),
        AlertChannel::Sms if program.messages.sms => rep.phone.clone(),
        AlertChannel::Sms => None,
        AlertChannel::Webhook => rep.webhook.clone(),
    }
}

/// Queues `ctx` to `rep` on each of the rep's alert channels (`template` by email and webhook, the short
/// `rep-alert-sms` by SMS), keyed `{key}.{channel}.{n}`; a reply goes to the lead. Answers the channels used.
#[allow(clippy::too_many_arguments)]
fn send_to_rep(
    program: &Program,
    work: &mut Work,
    lead: &LeadState,
    rep: &Rep,
    template: &str,
    key: &str,
    n: i64,
    ctx: &Value,
    now: DateTime<Utc>,
) -> Vec<&'static str> {
    let mut sent = Vec::new();
    for ch in &rep.alerts {
        let Some(to) = address(program, rep, *ch) else {
            continue;
        };
        let template = if *ch == AlertChannel::Sms {
            "rep-alert-sms"
        } else {
            template
        };
        let key = format!("{key}.{}.{n}", ch.as_str());
        if queue(
            program,
            work,
            lead,
            key,
            *ch,
            &to,
            template,
            ctx,
            lead.email.clone(),
            now,
        ) {
            sent.push(ch.as_str());
        }
    }
    sent
}

/// Alerts `rep` about `lead` on each of the rep's channels. `n` tells repeated alerts apart.
fn alert_rep(
    program: &Program,
    work: &mut Work,
    lead: &LeadState,
    rep: &Rep,
    kind: Alert,
    n: i64,
    now: DateTime<Utc>,
) {
    let ctx = message_context(program, lead, Some(rep), (kind.as_str(), ""), now);
    let key = format!("lead.{}.alert.{}", lead.id, rep.id);
    let sent = send_to_rep(program, work, lead, rep, "rep-alert", &key, n, &ctx, now);
    work.log(
        lead,
        now,
        "alerted",
        Some(&rep.id),
        format!(
            "{} alert to {} by {}",
            kind.as_str(),
            rep.name,
            sent.join(", ")
        ),
    );
}

/// Tells the manager of the lead's team (or of the team its rule names).
fn alert_manager(
    program: &Program,
    work: &mut Work,
    lead: &LeadState,
    reason: &str,
    n: i64,
    now: DateTime<Utc>,
) {
    let sales = &program.sales;
    let manager = lead
        .team
        .as_deref()
        .and_then(|t| sales.team(t))
        .and_then(|t| t.manager.as_deref())
        .and_then(|m| sales.rep(m));
    let Some(m) = manager else {
        work.log(
            lead,
            now,
            "escalated",
            None,
            format!("{reason}; no manager is configured for the team"),
        );
        return;
    };
    let owner = lead.owner.as_deref().and_then(|o| sales.rep(o));
    let mut ctx = message_context(program, lead, owner, ("manager", reason), now);
    // The manager's own claim link: taking the lead themselves is the quickest fix.
    ctx["links"]["claim"] = json!(claim_url(
        program,
        lead.workspace_id,
        lead.id,
        &m.id,
        now.timestamp()
    ));
    let key = format!("lead.{}.manager.{}", lead.id, m.id);
    let sent = send_to_rep(program, work, lead, m, "lead-escalated", &key, n, &ctx, now);
    work.log(
        lead,
        now,
        "escalated",
        Some(&m.id),
        format!("{reason}; told manager {} by {}", m.name, sent.join(", ")),
    );
}

/// Routing state for `route`'s team, the contact's earlier owner and the away flags, then the decision; the
/// pick is counted in `routing` (written at flush).
/// Routes a new lead: see [`Sales::decide`].
async fn assign<T: SalesTx + ?Sized>(
    tx: &mut T,
    sales: &Sales,
    routing: &mut Routing,
    new_leads: &[(LeadState, EventId)],
    lead: &LeadState,
    now: DateTime<Utc>,
) -> Result<
    (
        pronto_domain::sales::Assignment,
        Option<String>,
        Option<String>,
    ),
    ItemError,
> {
    route(tx, sales, routing, new_leads, lead, &[], false, now).await
}

/// An escalation's reassignment: only to a rep who can take the lead now, never one already tried.
async fn reassign<T: SalesTx + ?Sized>(
    tx: &mut T,
    sales: &Sales,
    routing: &mut Routing,
    new_leads: &[(LeadState, EventId)],
    lead: &LeadState,
    exclude: &[String],
    now: DateTime<Utc>,
) -> Result<
    (
        pronto_domain::sales::Assignment,
        Option<String>,
        Option<String>,
    ),
    ItemError,
> {
    route(tx, sales, routing, new_leads, lead, exclude, true, now).await
}

#[allow(clippy::too_many_arguments)]
async fn route<T: SalesTx + ?Sized>(
    tx: &mut T,
    sales: &Sales,
    routing: &mut Routing,
    new_leads: &[(LeadState, EventId)],
    lead: &LeadState,
    exclude: &[String],
    now_only: bool,
    now: DateTime<Utc>,
) -> Result<
    (
        pronto_domain::sales::Assignment,
        Option<String>,
        Option<String>,
    ),
    ItemError,
> {
    let ws = lead.workspace_id;
    let route = sales.route_for(&lead.context());
    let team = route.and_then(|r| sales.team(&r.team));
    if let std::collections::hash_map::Entry::Vacant(e) = routing.away.entry(ws) {
        e.insert(tx.away_flags(ws).await?.into_iter().collect());
    }
    let away = &routing.away[&ws];
    let is_away = |rep: &str| {
        away.get(rep)
            .copied()
            .unwrap_or_else(|| sales.rep(rep).is_some_and(|r| r.away))
    };
    let mut members: Vec<Member> = Vec::new();
    if let Some(t) = team {
        let key = (ws, t.id.clone());
        if !routing.teams.contains_key(&key) {
            let ids: Vec<String> = t.members.iter().map(|(r, _)| r.clone()).collect();
            let state = tx
                .lock_team(ws, &t.id, &ids)
                .await?
                .into_iter()
                .map(|(r, a, s)| (r, (a, s)))
                .collect();
            routing.teams.insert(key.clone(), state);
        }
        if routing.counted.insert(key.clone()) {
            let ids: Vec<String> = t.members.iter().map(|(r, _)| r.clone()).collect();
            let counts: HashMap<String, i64> =
                tx.open_counts(ws, &ids).await?.into_iter().collect();
            let open = routing.open.entry(ws).or_default();
            for rep in ids {
                let n = counts.get(&rep).copied().unwrap_or(0);
                open.insert(rep, n);
            }
        }
        let state = &routing.teams[&key];
        let open = &routing.open[&ws];
        for (rep, weight) in &t.members {
            let (assigned, last_seq) = state.get(rep).copied().unwrap_or((0, 0));
            members.push(Member {
                rep: rep.clone(),
                weight: *weight,
                away: is_away(rep),
                open: open.get(rep).copied().unwrap_or(0).max(0) as u32,
                assigned,
                last_seq,
            });
        }
    }
    let owner = if route.is_some_and(|r| r.keep_owner) {
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
    let owner_ref = owner.as_deref().map(|o| (o, is_away(o)));
    let fallback_away = sales.fallback.as_deref().is_some_and(is_away);
    let decision = sales.decide(
        route,
        &Situation {
            now,
            members: &members,
            exclude,
            owner: owner_ref,
            fallback_away,
            now_only,
        },
    );
    if let Some(rep) = decision.rep.as_deref() {
        if let Some(open) = routing.open.get_mut(&ws) {
            *open.entry(rep.to_string()).or_default() += 1;
            if let Some(before) = lead.owner.as_deref().filter(|b| *b != rep) {
                *open.entry(before.to_string()).or_default() -= 1;
            }
        }
        if let Some(t) = team.filter(|_| matches!(decision.how, How::Rule | How::NextShift)) {
            let seq = members.iter().map(|m| m.last_seq).max().unwrap_or(0) + 1;
            if let Some(state) = routing.teams.get_mut(&(ws, t.id.clone())) {
                let row = state.entry(rep.to_string()).or_insert((0, 0));
                *row = (row.0 + 1, seq);
            }
            let dirty = (ws, t.id.clone(), rep.to_string());
            if !routing.dirty.contains(&dirty) {
                routing.dirty.push(dirty);
            }
        }
    }
    Ok((
        decision,
        team.map(|t| t.id.clone()),
        route.map(|r| r.id.clone()),
    ))
}

/// A new lead, just inserted: route it, alert its owner, acknowledge it, start its SLA clock.
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
    let (decision, team, route) =
        assign(tx, sales, &mut work.routing, &work.new_leads, &lead, now).await?;
    let owner = decision.rep.as_deref().and_then(|r| sales.rep(r));
    lead.owner = decision.rep.clone();
    lead.team = team;
    lead.route = route;
    lead.tried = decision.rep.iter().cloned().collect();
    lead.sla_deadline = Some(sales.deadline(now, owner));
    lead.due_at = sales.escalation_due(0, lead.created_at, owner);
    lead.timers_touched(work);
    // The promise is written for the lead: their zone and clock (their own `timezone`, the contact's, their
    // phone's country, else the business's).
    let person =
        json!({"properties": {"fields": lead.fields, "phone": lead.phone}, "contact": traits});
    let reader = pronto_domain::calendar::Reader::of(&person, sales.timezone);
    let promise = sales.promise(owner, now, reader);
    lead.promised_at = promise.at;
    work.log(
        &lead,
        now,
        if owner.is_some() {
            "routed"
        } else {
            "unassigned"
        },
        decision.rep.as_deref(),
        decision.reason.clone(),
    );
    match owner {
        Some(rep) => alert_rep(program, work, &lead, rep, Alert::New, 0, now),
        None => alert_manager(
            program,
            work,
            &lead,
            &format!("nobody could take the lead: {}", decision.reason),
            0,
            now,
        ),
    }
    acknowledge(program, work, &lead, owner, &promise, traits, now);
    work.new_leads.push((lead, event));
    Ok(())
}

impl LeadState {
    fn timers_touched(&self, work: &mut Work) {
        if self.due_at.is_some() {
            work.timers = true;
        }
    }
}

/// The acknowledgement to the lead: email, and SMS when they gave a phone and texts are possible and allowed.
fn acknowledge(
    program: &Program,
    work: &mut Work,
    lead: &LeadState,
    owner: Option<&Rep>,
    promise: &pronto_domain::sales::Promise,
    traits: &Map<String, Value>,
    now: DateTime<Utc>,
) {
    let ack = &program.sales.ack;
    if !ack.enabled {
        return;
    }
    let recipient = pronto_domain::program::Recipient {
        email: lead.email.clone(),
        phone: lead.phone.clone(),
        traits: traits.clone(),
    };
    if let Some(why) = recipient.refusal() {
        work.log(
            lead,
            now,
            "acknowledged",
            None,
            format!("no acknowledgement: {why}"),
        );
        return;
    }
    let mut ctx = message_context(program, lead, owner, ("ack", ""), now);
    ctx["promise"] = json!({"text": promise.text, "at": promise.at});
    let reply_to = owner
        .and_then(|r| r.email.clone())
        .or_else(|| program.messages.reply_to.clone());
    let mut sent = Vec::new();
    let mut capped = Vec::new();
    // The cap per address: counted before the group (loaded once) and as this group queues.
    let mut admit = |work: &mut Work, to: &str| {
        let n = work.acks.entry(to.to_string()).or_default();
        if pronto_domain::sales::may_acknowledge(ack, *n) {
            *n += 1;
            true
        } else {
            capped.push(to.to_string());
            false
        }
    };
    if let Some(email) = lead.email.as_ref().filter(|e| admit(work, e)) {
        let key = format!("lead.{}.ack.email", lead.id);
        if queue(
            program,
            work,
            lead,
            key,
            AlertChannel::Email,
            email,
            &ack.email,
            &ctx,
            reply_to.clone(),
            now,
        ) {
            sent.push(format!("email to {email}"));
        }
    }
    if let Some(phone) = &lead.phone {
        let texts = program.messages.sms && !pronto_domain::sales::sms_opted_out(traits);
        if texts && admit(work, phone) {
            let key = format!("lead.{}.ack.sms", lead.id);
            if queue(
                program,
                work,
                lead,
                key,
                AlertChannel::Sms,
                phone,
                &ack.sms,
                &ctx,
                None,
                now,
            ) {
                sent.push(format!("SMS to {phone}"));
            }
        }
    }
    if !capped.is_empty() {
        metrics::counter!("pronto_acknowledgements_capped_total").increment(capped.len() as u64);
        work.log(
            lead,
            now,
            "acknowledged",
            None,
            format!(
                "no acknowledgement to {}: already {} in the last 24 hours (leads.ack.max_per_recipient_per_day)",
                capped.join(" and "),
                ack.max_per_recipient_per_day
            ),
        );
    }
    if !sent.is_empty() {
        work.log(
            lead,
            now,
            "acknowledged",
            None,
            format!(
                "promised contact {} by {}",
                promise.text,
                sent.join(" and ")
            ),
        );
    }
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
    work.routing.open.remove(&ws);
    work.routing.counted.retain(|(w, _)| *w != ws);
    match action {
        LeadAction::Claim { lead, rep } => {
            let Some(mut l) = tx.lead_for_update(ws, *lead).await? else {
                return Ok(());
            };
            if l.claimed_at.is_some() || !l.is_open() {
                return Ok(());
            }
            let before = l.owner.clone();
            l.claimed_at = Some(now);
            l.claimed_by = Some(rep.clone());
            l.owner = Some(rep.clone());
            if !l.tried.contains(rep) {
                l.tried.push(rep.clone());
            }
            if l.status == "open" {
                l.status = "claimed".into();
            }
            l.due_at = None;
            tx.save_lead(&l).await?;
            let detail = match before.as_deref() {
                Some(b) if b != rep => {
                    format!("claimed by {rep} (taken over from {b}); SLA clock stopped")
                }
                _ => format!("claimed by {rep}; SLA clock stopped"),
            };
            work.log(&l, now, "claimed", Some(rep), detail);
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
            let first = l.first_contact_at.is_none_or(|f| *at < f);
            if first {
                l.first_contact_at = Some(*at);
            }
            l.due_at = None;
            if l.owner.is_none() {
                l.owner = rep.clone();
            }
            if l.is_open() {
                l.status = outcome.status().into();
                if matches!(outcome.status(), "won" | "lost") {
                    l.outcome = Some(outcome.as_str().into());
                    l.closed_at = Some(now);
                }
            }
            tx.save_lead(&l).await?;
            // A call closes the call tasks cadences opened before it; reaching the lead (which ends its
            // cadence) or closing it closes them all.
            let ends = l.closed_at.is_some() || *outcome == Outcome::Reached;
            if channel == "call" || ends {
                let upto = if ends { (*at).max(now) } else { *at };
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
            work.log(
                &l,
                now,
                "attempt",
                rep.as_deref(),
                format!(
                    "{channel}: {}{}",
                    outcome.as_str().replace('_', " "),
                    if first {
                        " (first contact; SLA clock stopped)"
                    } else {
                        ""
                    }
                ),
            );
        }
        LeadAction::Reply { channel, body } => {
            let Some(mut l) = tx.latest_lead(ws, contact, None).await? else {
                return Ok(());
            };
            l = tx.lead_for_update(ws, l.id).await?.unwrap_or(l);
            if l.replied_at.is_none() {
                l.replied_at = Some(now);
                tx.save_lead(&l).await?;
            }
            let sales = &program.sales;
            let owner = l.owner.as_deref().and_then(|o| sales.rep(o));
            let short: String = body.chars().take(200).collect();
            match owner.and_then(|r| r.email.as_deref().map(|e| (r, e))) {
                Some((rep, email)) => {
                    let mut ctx = message_context(program, &l, Some(rep), ("reply", ""), now);
                    ctx["reply"] = json!({"channel": channel, "body": body});
                    let key = format!("lead.{}.reply.{}", l.id, MessageId::new());
                    queue(
                        program,
                        work,
                        &l,
                        key,
                        AlertChannel::Email,
                        email,
                        "lead-reply",
                        &ctx,
                        l.email.clone(),
                        now,
                    );
                    work.log(
                        &l,
                        now,
                        "replied",
                        Some(&rep.id),
                        format!("{channel} reply forwarded to {}: {short}", rep.name),
                    );
                }
                None => work.log(
                    &l,
                    now,
                    "replied",
                    None,
                    format!("{channel} reply (no owner with an email to forward it to): {short}"),
                ),
            }
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
        let step = usize::try_from(lead.sla_step).unwrap_or(usize::MAX);
        let Some((_, action)) = sales.sla.chain.get(step).copied() else {
            lead.due_at = None;
            tx.save_lead(&lead).await?;
            continue;
        };
        if lead.claimed_at.is_some() || lead.first_contact_at.is_some() || !lead.is_open() {
            lead.due_at = None;
            tx.save_lead(&lead).await?;
            continue;
        }
        let waited =
            pronto_domain::sales::human((now - lead.created_at).to_std().unwrap_or_default());
        let reason = format!(
            "no claim or contact {waited} after arrival (SLA {})",
            pronto_domain::sales::human(sales.sla.within)
        );
        match action {
            Escalate::Realert => match lead.owner.as_deref().and_then(|o| sales.rep(o)) {
                Some(rep) => {
                    work.log(
                        &lead,
                        now,
                        "escalated",
                        Some(&rep.id),
                        format!("{reason}; alerting {} again", rep.name),
                    );
                    alert_rep(
                        program,
                        &mut work,
                        &lead,
                        rep,
                        Alert::Realert,
                        step as i64 + 1,
                        now,
                    );
                }
                None => work.log(
                    &lead,
                    now,
                    "escalated",
                    None,
                    format!("{reason}; nobody owns it to re-alert"),
                ),
            },
            Escalate::Reassign => {
                let tried = lead.tried.clone();
                let (decision, team, route) = reassign(
                    tx,
                    sales,
                    &mut work.routing,
                    &work.new_leads,
                    &lead,
                    &tried,
                    now,
                )
                .await?;
                match decision.rep.as_deref().and_then(|r| sales.rep(r)) {
                    Some(rep) => {
                        let from = lead.owner.clone().unwrap_or_else(|| "nobody".into());
                        lead.owner = Some(rep.id.clone());
                        lead.tried.push(rep.id.clone());
                        if lead.team.is_none() {
                            lead.team = team;
                            lead.route = route;
                        }
                        work.log(
                            &lead,
                            now,
                            "reassigned",
                            Some(&rep.id),
                            format!(
                                "{reason}; reassigned from {from} to {} ({})",
                                rep.name, decision.reason
                            ),
                        );
                        alert_rep(
                            program,
                            &mut work,
                            &lead,
                            rep,
                            Alert::Reassigned,
                            step as i64 + 1,
                            now,
                        );
                    }
                    // Nobody can take it now: the manager hears of it instead, with the lead where it was.
                    None => alert_manager(
                        program,
                        &mut work,
                        &lead,
                        &format!(
                            "{reason}; nobody can take it now to reassign it to ({})",
                            decision.reason
                        ),
                        step as i64 + 1,
                        now,
                    ),
                }
            }
            Escalate::Manager => {
                alert_manager(program, &mut work, &lead, &reason, step as i64 + 1, now)
            }
        }
        lead.sla_step += 1;
        let owner = lead.owner.as_deref().and_then(|o| sales.rep(o));
        lead.due_at = sales.escalation_due(step + 1, lead.created_at, owner);
        lead.timers_touched(&mut work);
        tx.save_lead(&lead).await?;
    }
    let queued = work.messages.len();
    work.flush(tx).await?;
    Ok((n, queued))
}
