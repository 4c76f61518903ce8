//! Routing a batch of leads: the state the rules' strategies read (away flags, open leads per rep, each team's
//! assignment counters), loaded once per transaction and kept current in a [`Book`] as the batch's leads are
//! assigned, so a group of 500 leads routes exactly as 500 sequential transactions would while the store
//! reads each team's rows once (locked) and writes the changed ones back once.
//!
//! The store asks [`Book::needs`] what to load for a lead, loads it into the book, then [`Book::route`]
//! decides ([`Sales::decide`]) and counts the pick: the rep's open leads up (the previous owner's down), and
//! for a rule's pick the team's round-robin counters, marked to be written.

use super::lead::LeadState;
use super::sla::Routed;
use super::{How, Member, Sales, Situation};
use crate::WorkspaceId;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

/// The routing state of one transaction.
#[derive(Debug, Default)]
pub struct Book {
    /// Away flags set through the API, per workspace (they override the config's).
    away: HashMap<WorkspaceId, HashMap<String, bool>>,
    /// Open leads per rep, kept current as this transaction assigns leads. A team's members are counted
    /// when the team is locked (on PostgreSQL another writer may have committed leads for them while this
    /// transaction waited for the lock), and again after a lead action (which may close or move a lead).
    open: HashMap<WorkspaceId, HashMap<String, i64>>,
    /// Teams whose members' counts in `open` are current.
    counted: HashSet<(WorkspaceId, String)>,
    /// `(assigned, last_seq)` per member, as locked.
    teams: HashMap<(WorkspaceId, String), HashMap<String, (i64, i64)>>,
    /// Members whose row changed: written at the end of the transaction.
    dirty: Vec<(WorkspaceId, String, String)>,
}

/// What the store must load before [`Book::route`] can route a lead.
#[derive(Debug, Default, PartialEq)]
pub struct Needs {
    /// The workspace's away flags.
    pub away: bool,
    /// Lock (and create if missing) this team's rows for these members.
    pub lock: Option<(String, Vec<String>)>,
    /// Count the open leads of this team's members.
    pub count: Option<(String, Vec<String>)>,
    /// The rule keeps the contact's owner: find the contact's latest earlier lead's owner.
    pub earlier_owner: bool,
    /// The `[[route]]` that matches the lead (its index), chosen once: rules may hold expressions.
    pub rule: Option<usize>,
}

/// Whom a routing may pick beyond a rule's own tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    /// Reps that already had the lead (a reassignment skips them).
    pub exclude: &'a [String],
    /// Only a rep who can take the lead now (an escalation's reassignment).
    pub now_only: bool,
}

impl Book {
    /// What routing `lead` needs that this book does not hold yet.
    pub fn needs(&self, sales: &Sales, lead: &LeadState) -> Needs {
        let ws = lead.workspace_id;
        let ctx = lead.context();
        let rule = sales.routes.iter().position(|r| sales.matches(r, &ctx));
        let route = rule.map(|i| &sales.routes[i]);
        let team = route.and_then(|r| sales.team(&r.team));
        let mut n = Needs {
            away: !self.away.contains_key(&ws),
            earlier_owner: route.is_some_and(|r| r.keep_owner),
            rule,
            ..Needs::default()
        };
        if let Some(t) = team {
            let key = (ws, t.id.clone());
            let ids = || t.members.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>();
            if !self.teams.contains_key(&key) {
                n.lock = Some((t.id.clone(), ids()));
            }
            if !self.counted.contains(&key) {
                n.count = Some((t.id.clone(), ids()));
            }
        }
        n
    }

    pub fn set_away(&mut self, ws: WorkspaceId, flags: impl IntoIterator<Item = (String, bool)>) {
        self.away.insert(ws, flags.into_iter().collect());
    }

    /// A team's rows as locked: `(rep, assigned, last_seq)`.
    pub fn set_team(
        &mut self,
        ws: WorkspaceId,
        team: &str,
        rows: impl IntoIterator<Item = (String, i64, i64)>,
    ) {
        let rows = rows.into_iter().map(|(r, a, s)| (r, (a, s))).collect();
        self.teams.insert((ws, team.to_string()), rows);
    }

    /// These members' open leads, as counted now (a member missing from `counts` has none).
    pub fn set_open(
        &mut self,
        ws: WorkspaceId,
        team: &str,
        members: &[String],
        counts: impl IntoIterator<Item = (String, i64)>,
    ) {
        let counts: HashMap<String, i64> = counts.into_iter().collect();
        let open = self.open.entry(ws).or_default();
        for rep in members {
            open.insert(rep.clone(), counts.get(rep).copied().unwrap_or(0));
        }
        self.counted.insert((ws, team.to_string()));
    }

    /// A lead action may have closed or moved a lead: the workspace's counts are read again when next needed.
    pub fn forget_open(&mut self, ws: WorkspaceId) {
        self.open.remove(&ws);
        self.counted.retain(|(w, _)| *w != ws);
    }

    /// Routes `lead` by the rule `needs` chose, on what the book holds (what `needs` named, loaded):
    /// `earlier_owner` is the owner of the contact's latest earlier lead (for rules that keep it). The pick
    /// is counted.
    pub fn route(
        &mut self,
        sales: &Sales,
        lead: &LeadState,
        needs: &Needs,
        earlier_owner: Option<&str>,
        scope: Scope<'_>,
        now: DateTime<Utc>,
    ) -> Routed {
        let Scope { exclude, now_only } = scope;
        let ws = lead.workspace_id;
        let route = needs.rule.and_then(|i| sales.routes.get(i));
        let team = route.and_then(|r| sales.team(&r.team));
        let none = HashMap::new();
        let away = self.away.get(&ws).unwrap_or(&none);
        let is_away = |rep: &str| {
            away.get(rep)
                .copied()
                .unwrap_or_else(|| sales.rep(rep).is_some_and(|r| r.away))
        };
        let mut members: Vec<Member> = Vec::new();
        if let Some(t) = team {
            let rows = self.teams.get(&(ws, t.id.clone()));
            let open = self.open.get(&ws);
            for (rep, weight) in &t.members {
                let (assigned, last_seq) = rows.and_then(|r| r.get(rep)).copied().unwrap_or((0, 0));
                let n = open.and_then(|o| o.get(rep)).copied().unwrap_or(0);
                members.push(Member {
                    rep: rep.clone(),
                    weight: *weight,
                    away: is_away(rep),
                    open: n.max(0) as u32,
                    assigned,
                    last_seq,
                });
            }
        }
        let owner = earlier_owner
            .filter(|_| route.is_some_and(|r| r.keep_owner))
            .map(|o| (o, is_away(o)));
        let fallback_away = sales.fallback.as_deref().is_some_and(is_away);
        let decision = sales.decide(
            route,
            &Situation {
                now,
                members: &members,
                exclude,
                owner,
                fallback_away,
                now_only,
            },
        );
        if let Some(rep) = decision.rep.as_deref() {
            if let Some(open) = self.open.get_mut(&ws) {
                *open.entry(rep.to_string()).or_default() += 1;
                if let Some(before) = lead.owner.as_deref().filter(|b| *b != rep) {
                    *open.entry(before.to_string()).or_default() -= 1;
                }
            }
            if let Some(t) = team.filter(|_| matches!(decision.how, How::Rule | How::NextShift)) {
                let seq = members.iter().map(|m| m.last_seq).max().unwrap_or(0) + 1;
                if let Some(rows) = self.teams.get_mut(&(ws, t.id.clone())) {
                    let row = rows.entry(rep.to_string()).or_insert((0, 0));
                    *row = (row.0 + 1, seq);
                }
                let dirty = (ws, t.id.clone(), rep.to_string());
                if !self.dirty.contains(&dirty) {
                    self.dirty.push(dirty);
                }
            }
        }
        Routed {
            decision,
            team: team.map(|t| t.id.clone()),
            route: route.map(|r| r.id.clone()),
        }
    }

    /// The team rows this transaction changed: `(workspace, team, rep, assigned, last_seq)`, to write back.
    pub fn changed(&self) -> Vec<(WorkspaceId, &str, &str, i64, i64)> {
        self.dirty
            .iter()
            .filter_map(|(ws, team, rep)| {
                let (a, s) = self.teams.get(&(*ws, team.clone()))?.get(rep)?;
                Some((*ws, team.as_str(), rep.as_str(), *a, *s))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
