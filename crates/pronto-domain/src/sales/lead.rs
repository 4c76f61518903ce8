//! A lead as it is worked: its state ([`LeadState`], with a typed [`LeadStatus`]), the steps recorded on it
//! ([`LeadLog`]), and the transitions a rep's or the lead's action makes ([`claim`], [`attempt`], [`reply`]).
//! Each transition changes the state it is given and answers what to record; the store loads the lead
//! (locked), calls it, and writes what it answers in the same transaction.
//!
//! Invariants:
//! - a closed lead (won, lost) is never reopened: a claim on it does nothing, an attempt is recorded but does
//!   not change its status;
//! - the first contact time is the earliest attempt's, whatever order attempts are logged in;
//! - a claim or an attempt stops the SLA clock (`due_at` cleared), so no escalation fires after it.

use super::{lead_context, Outcome};
use crate::{ContactId, LeadId, WorkspaceId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt;

/// Where a lead is: open until a rep claims it, contacted once a human attempt is logged, then won or lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LeadStatus {
    Open,
    Claimed,
    Contacted,
    Won,
    Lost,
}

impl LeadStatus {
    pub const ALL: [LeadStatus; 5] = [
        LeadStatus::Open,
        LeadStatus::Claimed,
        LeadStatus::Contacted,
        LeadStatus::Won,
        LeadStatus::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Claimed => "claimed",
            Self::Contacted => "contacted",
            Self::Won => "won",
            Self::Lost => "lost",
        }
    }

    /// Not yet won or lost: it counts against its owner's capacity and its SLA may still escalate.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Open | Self::Claimed | Self::Contacted)
    }

    /// The status after a contact attempt with this outcome: a closing outcome closes it, any other marks it
    /// contacted.
    pub fn after(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Won => Self::Won,
            Outcome::Lost | Outcome::NotInterested => Self::Lost,
            _ => Self::Contacted,
        }
    }
}

impl fmt::Display for LeadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LeadStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown lead status `{s}`"))
    }
}

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
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: LeadStatus,
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

/// A step taken on a lead.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeadLog {
    #[serde(skip)]
    pub lead: LeadId,
    pub at: DateTime<Utc>,
    /// routed, alerted, acknowledged, unassigned, escalated, reassigned, claimed, attempt, replied, erased.
    pub kind: String,
    pub rep: Option<String>,
    pub detail: String,
}

impl LeadState {
    /// A lead as it arrives, before routing: open, unowned, no clock yet.
    pub fn arrived(
        lead: &crate::Lead,
        id: LeadId,
        ws: WorkspaceId,
        contact: ContactId,
        at: DateTime<Utc>,
    ) -> Self {
        LeadState {
            id,
            workspace_id: ws,
            contact_id: contact,
            created_at: at,
            name: lead.name.clone(),
            email: lead.email.as_ref().map(|e| e.as_str().to_string()),
            phone: lead.phone.as_ref().map(|p| p.as_str().to_string()),
            company: lead.company.clone(),
            message: lead.message.clone(),
            source: lead.source.clone(),
            form: lead.form.clone(),
            fields: Value::Object(lead.fields.clone()),
            owner: None,
            team: None,
            route: None,
            status: LeadStatus::Open,
            sla_deadline: None,
            sla_step: 0,
            due_at: None,
            tried: Vec::new(),
            promised_at: None,
            claimed_at: None,
            claimed_by: None,
            first_contact_at: None,
            replied_at: None,
            outcome: None,
            closed_at: None,
        }
    }

    /// The fields as rules and templates see them (see [`lead_context`]).
    fn props(&self) -> Value {
        json!({
            "name": self.name, "email": self.email, "phone": self.phone, "company": self.company,
            "message": self.message, "source": self.source, "form": self.form, "fields": self.fields,
            "first_contact_at": self.first_contact_at,
        })
    }

    /// The `lead` object templates and rule expressions see.
    pub fn context(&self) -> Value {
        lead_context(&self.id.to_string(), &self.props(), self.created_at)
    }

    pub fn is_open(&self) -> bool {
        self.status.is_open()
    }

    /// A line of this lead's history.
    pub fn log(&self, at: DateTime<Utc>, kind: &str, rep: Option<&str>, detail: String) -> LeadLog {
        LeadLog {
            lead: self.id,
            at,
            kind: kind.into(),
            rep: rep.map(str::to_string),
            detail,
        }
    }
}

/// "I'm on it": `rep` takes the lead (it becomes theirs) and the SLA clock stops. A lead already claimed or
/// closed is left as it is (`None`): the first claim wins.
pub fn claim(lead: &mut LeadState, rep: &str, now: DateTime<Utc>) -> Option<LeadLog> {
    if lead.claimed_at.is_some() || !lead.is_open() {
        return None;
    }
    let before = lead.owner.replace(rep.to_string());
    lead.claimed_at = Some(now);
    lead.claimed_by = Some(rep.to_string());
    if !lead.tried.iter().any(|r| r == rep) {
        lead.tried.push(rep.to_string());
    }
    if lead.status == LeadStatus::Open {
        lead.status = LeadStatus::Claimed;
    }
    lead.due_at = None;
    let detail = match before.as_deref() {
        Some(b) if b != rep => format!("claimed by {rep} (taken over from {b}); SLA clock stopped"),
        _ => format!("claimed by {rep}; SLA clock stopped"),
    };
    Some(lead.log(now, "claimed", Some(rep), detail))
}

/// A manager hands the lead to `to` by hand. A closed lead, or one `to` owns already, is left as it is
/// (`None`). The lead's state and clock go on: a running SLA now runs against `to` (who is alerted by the
/// caller), and a claimed lead stays claimed, by whoever claimed it.
pub fn reassign(lead: &mut LeadState, to: &str, by: &str, now: DateTime<Utc>) -> Option<LeadLog> {
    if !lead.is_open() || lead.owner.as_deref() == Some(to) {
        return None;
    }
    let from = lead
        .owner
        .replace(to.to_string())
        .unwrap_or_else(|| "nobody".into());
    lead.tried.push(to.to_string());
    let detail = format!("reassigned by {by} from {from} to {to}");
    Some(lead.log(now, "reassigned", Some(to), detail))
}

/// A contact attempt by a human, as logged.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub rep: Option<&'a str>,
    /// `call`, `email` or `sms`.
    pub channel: &'a str,
    pub outcome: Outcome,
    /// When it happened (may be before it was logged).
    pub at: DateTime<Utc>,
}

/// What an attempt changed beside the lead.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempted {
    /// It is the lead's first contact (the earliest so far).
    pub first: bool,
    /// Close the lead's open call tasks opened at or before this time: a call closes the tasks opened before
    /// it; reaching the lead (which ends its cadence) or closing it closes them all.
    pub close_tasks_upto: Option<DateTime<Utc>>,
    pub log: LeadLog,
}

/// Records a contact attempt: the first contact time, the clock stopped, the status moved on (an open lead
/// only), an unowned lead owned by whoever tried.
pub fn attempt(lead: &mut LeadState, a: Attempt<'_>, now: DateTime<Utc>) -> Attempted {
    let first = lead.first_contact_at.is_none_or(|f| a.at < f);
    if first {
        lead.first_contact_at = Some(a.at);
    }
    lead.due_at = None;
    if lead.owner.is_none() {
        lead.owner = a.rep.map(str::to_string);
    }
    if lead.is_open() {
        lead.status = LeadStatus::after(a.outcome);
        if !lead.status.is_open() {
            lead.outcome = Some(a.outcome.as_str().into());
            lead.closed_at = Some(now);
        }
    }
    let ends = lead.closed_at.is_some() || a.outcome == Outcome::Reached;
    let close_tasks_upto = if ends {
        Some(a.at.max(now))
    } else if a.channel == "call" {
        Some(a.at)
    } else {
        None
    };
    let detail = format!(
        "{}: {}{}",
        a.channel,
        a.outcome.as_str().replace('_', " "),
        if first {
            " (first contact; SLA clock stopped)"
        } else {
            ""
        }
    );
    Attempted {
        first,
        close_tasks_upto,
        log: lead.log(now, "attempt", a.rep, detail),
    }
}

/// The lead answered: the first reply's time is kept. Answers whether the lead changed.
pub fn reply(lead: &mut LeadState, now: DateTime<Utc>) -> bool {
    if lead.replied_at.is_some() {
        return false;
    }
    lead.replied_at = Some(now);
    true
}

#[cfg(test)]
mod tests;
