//! The SLA clock of a lead: started when the lead is routed ([`start`]: owner, deadline, first escalation,
//! the promise, the rep's alert and the acknowledgement) and stepped along the escalation chain when a step
//! falls due ([`escalate`]: re-alert the owner, reassign to a rep who can take it now, or tell the manager).
//!
//! The routing itself needs the team's locked state, which the store holds: it routes (with
//! [`super::Sales::decide`]) and hands the answer in as a [`Routed`]; [`needs_routing`] says when an
//! escalation step needs one.
//!
//! Invariants: each chain step fires at most once (the step counter moves on with every fire, and the next
//! due time is the next step's); a lead claimed, contacted or closed never escalates (its timer is cleared
//! instead); an escalation's reassignment never goes back to a rep already tried.

use super::alerts::{acknowledge, alert_manager, alert_rep, Alert, LeadEffects};
use super::lead::LeadState;
use super::{human, Assignment, Escalate, Sales};
use crate::calendar::Reader;
use crate::program::Program;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

/// Where routing put a lead: the decision, and the team and rule that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    pub decision: Assignment,
    pub team: Option<String>,
    pub route: Option<String>,
}

/// A new lead, routed: it gets its owner, team and rule, its SLA deadline and first escalation time, the
/// promise its acknowledgement makes (written in the lead's zone and clock: their own `timezone`, the
/// contact's, their phone's country, else the business's); the owner is alerted (nobody: the manager is
/// told) and the lead acknowledged.
pub fn start(
    program: &Program,
    fx: &mut LeadEffects,
    lead: &mut LeadState,
    routed: Routed,
    traits: &Map<String, Value>,
    now: DateTime<Utc>,
) {
    let sales = &program.sales;
    let Routed {
        decision,
        team,
        route,
    } = routed;
    let owner = decision.rep.as_deref().and_then(|r| sales.rep(r));
    lead.owner = decision.rep.clone();
    lead.team = team;
    lead.route = route;
    lead.tried = decision.rep.iter().cloned().collect();
    lead.sla_deadline = Some(sales.deadline(now, owner));
    lead.due_at = sales.escalation_due(0, lead.created_at, owner);
    fx.timer_of(lead);
    let person =
        json!({"properties": {"fields": lead.fields, "phone": lead.phone}, "contact": traits});
    let promise = sales.promise(owner, now, Reader::of(&person, sales.timezone));
    lead.promised_at = promise.at;
    let kind = if owner.is_some() {
        "routed"
    } else {
        "unassigned"
    };
    fx.log(
        lead,
        now,
        kind,
        decision.rep.as_deref(),
        decision.reason.clone(),
    );
    match owner {
        Some(rep) => alert_rep(program, fx, lead, rep, Alert::New, 0, now),
        None => {
            let reason = format!("nobody could take the lead: {}", decision.reason);
            alert_manager(program, fx, lead, &reason, 0, now)
        }
    }
    acknowledge(program, fx, lead, owner, &promise, traits, now);
}

/// The escalation step due for this lead, if it still escalates: not past the chain, not claimed, not
/// contacted, not closed.
fn due_step(sales: &Sales, lead: &LeadState) -> Option<(usize, Escalate)> {
    let step = usize::try_from(lead.sla_step).unwrap_or(usize::MAX);
    let (_, action) = sales.sla.chain.get(step).copied()?;
    let stopped = lead.claimed_at.is_some() || lead.first_contact_at.is_some() || !lead.is_open();
    (!stopped).then_some((step, action))
}

/// Whether [`escalate`] needs the lead routed again first (its due step is a reassignment).
pub fn needs_routing(sales: &Sales, lead: &LeadState) -> bool {
    matches!(due_step(sales, lead), Some((_, Escalate::Reassign)))
}

/// What an escalation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalated {
    /// Nothing was due any more (claimed, contacted, closed, or past the chain): the timer is cleared.
    Stopped,
    /// The step fired; the lead waits for the next one, if any.
    Fired(Escalate),
}

/// Fires the lead's due escalation step at `now`. A reassignment takes `routed` (the store routed the lead
/// with [`Sales::decide`], only to reps who can take it now and were not tried); a rep found there becomes
/// the owner and is alerted, nobody found tells the manager instead, with the lead where it was.
pub fn escalate(
    program: &Program,
    fx: &mut LeadEffects,
    lead: &mut LeadState,
    routed: Option<Routed>,
    now: DateTime<Utc>,
) -> Escalated {
    let sales = &program.sales;
    let Some((step, action)) = due_step(sales, lead) else {
        lead.due_at = None;
        return Escalated::Stopped;
    };
    let waited = human((now - lead.created_at).to_std().unwrap_or_default());
    let reason = format!(
        "no claim or contact {waited} after arrival (SLA {})",
        human(sales.sla.within)
    );
    let n = step as i64 + 1;
    match (action, routed) {
        (Escalate::Realert, _) => match lead.owner.as_deref().and_then(|o| sales.rep(o)) {
            Some(rep) => {
                let detail = format!("{reason}; alerting {} again", rep.name);
                fx.log(lead, now, "escalated", Some(&rep.id), detail);
                alert_rep(program, fx, lead, rep, Alert::Realert, n, now);
            }
            None => {
                let detail = format!("{reason}; nobody owns it to re-alert");
                fx.log(lead, now, "escalated", None, detail);
            }
        },
        (Escalate::Reassign, Some(r)) => {
            match r.decision.rep.as_deref().and_then(|x| sales.rep(x)) {
                Some(rep) => {
                    let from = lead.owner.clone().unwrap_or_else(|| "nobody".into());
                    lead.owner = Some(rep.id.clone());
                    lead.tried.push(rep.id.clone());
                    if lead.team.is_none() {
                        lead.team = r.team;
                        lead.route = r.route;
                    }
                    let detail = format!(
                        "{reason}; reassigned from {from} to {} ({})",
                        rep.name, r.decision.reason
                    );
                    fx.log(lead, now, "reassigned", Some(&rep.id), detail);
                    alert_rep(program, fx, lead, rep, Alert::Reassigned, n, now);
                }
                None => {
                    let why = format!(
                        "{reason}; nobody can take it now to reassign it to ({})",
                        r.decision.reason
                    );
                    alert_manager(program, fx, lead, &why, n, now);
                }
            }
        }
        (Escalate::Reassign, None) => {
            let why = format!("{reason}; nobody can take it now to reassign it to (not routed)");
            alert_manager(program, fx, lead, &why, n, now);
        }
        (Escalate::Manager, _) => alert_manager(program, fx, lead, &reason, n, now),
    }
    lead.sla_step += 1;
    let owner = lead.owner.as_deref().and_then(|o| sales.rep(o));
    lead.due_at = sales.escalation_due(step + 1, lead.created_at, owner);
    fx.timer_of(lead);
    Escalated::Fired(action)
}

#[cfg(test)]
mod tests;
