//! What a group of ingested events does to the flows, decided at once for the whole group.
//!
//! The store loads, in a fixed number of statements whatever the group's size, every run in progress the
//! group's events can touch (by trigger key, exit key and exit contact) and every exit mark a new run could
//! meet; [`on_events`] walks the events in order against that picture, kept current as runs start, refresh and
//! exit; the store then writes the [`FlowEffects`] in bulk. Walking in order keeps what per-event statements
//! gave: an exit earlier in the group ends a run started earlier in the group, a second trigger for a key
//! refreshes the run the first one started, and an exit mark written earlier in the group stops a later
//! trigger's run before it begins.
//!
//! Invariants: at most one run in progress per flow and key (the store's unique index says the same; a
//! concurrent writer's run surfaces there as a conflict and the group is redone); every run the effects
//! change was loaded or is inserted by them; the runs' final states are written once each.

use super::{context, exit_rule, Action, OnTrigger, Run};
use crate::experiment::Arm;
use crate::flow::{Flow, Same};
use crate::program::Program;
use crate::{ContactId, EventId, RunId};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Waiting at a step or due to continue.
    Active,
    /// Ended by an exit rule; `outcome` says which.
    Exited,
    /// Walked past its last step.
    Finished,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Active => "active",
            RunState::Exited => "exited",
            RunState::Finished => "finished",
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(RunState::Active),
            "exited" => Ok(RunState::Exited),
            "finished" => Ok(RunState::Finished),
            other => Err(format!("unknown run state `{other}`")),
        }
    }
}

/// An event that met an exit rule. `key` is set for `same = "key"` rules, absent for `same = "contact"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub flow: String,
    pub rule: i64,
    pub name: String,
    pub key: Option<String>,
    pub contact: ContactId,
    pub happened: DateTime<Utc>,
}

impl Mark {
    /// What runs are counted by: "Order Completed for the same checkout_id".
    pub fn category(&self, flow: &Flow) -> String {
        let what = match (&self.key, &flow.key) {
            (Some(_), Some(p)) => format!("the same {}", p.last()),
            _ => "the same contact".to_string(),
        };
        format!("{} for {what}", self.name)
    }

    /// The reason shown on the run: "Order Completed at 2026-11-24T12:03:00Z for the same checkout_id".
    pub fn reason(&self, flow: &Flow) -> String {
        let category = self.category(flow);
        let at = self.happened.to_rfc3339_opts(SecondsFormat::Secs, true);
        match category.strip_prefix(&self.name) {
            Some(rest) => format!("{} at {at}{rest}", self.name),
            None => category,
        }
    }

    /// Whether this mark stops a run for `key` and `contact` that starts at `since`: a mark for the key
    /// whenever it happened, or one for the contact at or after the start.
    fn stops(&self, flow: &str, key: &str, contact: ContactId, since: DateTime<Utc>) -> bool {
        self.flow == flow
            && match &self.key {
                Some(k) => k == key,
                None => self.contact == contact && self.happened >= since,
            }
    }
}

/// One line of a run's history.
#[derive(Debug, Clone, PartialEq)]
pub struct RunLog {
    pub run: RunId,
    pub at: DateTime<Utc>,
    pub step: Option<i64>,
    pub kind: &'static str,
    /// Time-free, to count by; for skips, exits and failures.
    pub reason: Option<String>,
    pub detail: String,
}

/// A run in progress as the store loaded it for a group.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRun {
    pub id: RunId,
    pub flow: String,
    pub key: String,
    pub contact: ContactId,
    /// The step it waits at; -1 before the first.
    pub step: i64,
    pub due: Option<DateTime<Utc>>,
    pub started: DateTime<Utc>,
    /// Its experiment and group, as written when it started (a refresh waits as its variant says).
    pub arm: Option<(String, Arm)>,
}

/// A run as the effects leave it: inserted whole when new, else updated in place.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: RunId,
    pub flow: String,
    pub key: String,
    pub contact: ContactId,
    pub state: RunState,
    pub step: i64,
    pub due: Option<DateTime<Utc>>,
    pub started: DateTime<Utc>,
    /// The latest trigger event as sent; `None` on an update: unchanged.
    pub snapshot: Option<String>,
    pub outcome: Option<String>,
    /// When the run was created (new runs) and last changed.
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// The flow's experiment and the run's group in it, decided when the run starts (written with new runs
    /// only: a refresh keeps the group).
    pub arm: Option<(String, Arm)>,
}

/// An event of the group as flows see it: written, with its contact as it is after the group's merges.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub id: EventId,
    pub contact: ContactId,
    pub name: Option<&'a str>,
    pub payload: &'a Value,
    /// The client's timestamp, if it sent one.
    pub timestamp: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
}

impl Seen<'_> {
    /// When it happened: the client's clock, else when pronto received it.
    pub fn happened(&self) -> DateTime<Utc> {
        self.timestamp.unwrap_or(self.received_at)
    }
}

/// What the store must load before [`on_events`] decides: the runs in progress for these flow keys and
/// contacts, and the exit marks that could stop these new runs.
#[derive(Debug, Default, PartialEq)]
pub struct Wanted {
    /// `(flow, key)`: triggers and `same = "key"` exits.
    pub keys: Vec<(String, String)>,
    /// `(flow, contact)`: `same = "contact"` exits.
    pub contacts: Vec<(String, ContactId)>,
    /// `(flow, key, contact, since)`: a trigger's possible new run (see [`Mark`]'s rule).
    pub marks: Vec<(String, String, ContactId, DateTime<Utc>)>,
}

/// What the group does to the flows, for the store to write in bulk.
#[derive(Debug, Default, PartialEq)]
pub struct FlowEffects {
    /// Exit marks to record, with the event that made each.
    pub marks: Vec<(Mark, EventId)>,
    pub inserts: Vec<RunRow>,
    pub updates: Vec<RunRow>,
    pub logs: Vec<RunLog>,
    /// A timer was set, moved or cleared: the scheduler should look again.
    pub timers: bool,
}

/// The events of the group that concern a flow, with the name they have.
fn concerning<'a, 'b>(
    program: &'b Program,
    seen: &'b [Seen<'a>],
) -> impl Iterator<Item = (&'b Seen<'a>, &'a str)> + 'b {
    seen.iter().filter_map(|s| {
        let name = s.name?;
        program.concerns(name).then_some((s, name))
    })
}

/// Whether a trigger of this flow reads the contact's traits: for its filter (`contact.*`). The key is the
/// same with or without them only for keys outside `contact`, so the key, too, is taken from this context.
fn reads_traits(flow: &Flow) -> bool {
    flow.filter.is_some()
}

/// The context a trigger of this flow is decided on: the event, and the contact's traits when it reads them.
fn trigger_context(
    flow: &Flow,
    s: &Seen<'_>,
    traits: &HashMap<ContactId, Map<String, Value>>,
) -> Value {
    let none = Map::new();
    let t = if reads_traits(flow) {
        traits.get(&s.contact).unwrap_or(&none)
    } else {
        &none
    };
    context(s.payload, t)
}

/// The contacts whose traits the group's triggers read (step one of four: traits, want, load, decide).
pub fn traits_wanted(program: &Program, seen: &[Seen<'_>]) -> Vec<ContactId> {
    let mut out: Vec<ContactId> = concerning(program, seen)
        .filter(|(_, name)| {
            program
                .flows
                .iter()
                .any(|f| reads_traits(f) && f.triggers.iter().any(|t| t == name))
        })
        .map(|(s, _)| s.contact)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What to load for this group (step two), given the traits [`traits_wanted`] named.
pub fn wanted(
    program: &Program,
    seen: &[Seen<'_>],
    traits: &HashMap<ContactId, Map<String, Value>>,
) -> Wanted {
    let mut w = Wanted::default();
    for (s, name) in concerning(program, seen) {
        for flow in &program.flows {
            for exit in flow.exits.iter().filter(|x| x.event == name) {
                match exit.same {
                    Same::Key => {
                        if let Some(k) = flow.key.as_ref().and_then(|p| p.key(s.payload)) {
                            w.keys.push((flow.id.clone(), k));
                        }
                    }
                    Same::Contact => w.contacts.push((flow.id.clone(), s.contact)),
                }
            }
            if flow.triggers.iter().any(|t| t == name) {
                let ctx = trigger_context(flow, s, traits);
                if let Some(k) = flow.run_key(&ctx, &s.contact.to_string()) {
                    w.keys.push((flow.id.clone(), k.clone()));
                    w.marks.push((flow.id.clone(), k, s.contact, s.happened()));
                }
            }
        }
    }
    w.keys.sort();
    w.keys.dedup();
    w.contacts.sort();
    w.contacts.dedup();
    w
}

/// A run as the walk knows it.
struct Slot {
    row: RunRow,
    new: bool,
    changed: bool,
}

/// The picture of the group's runs, kept current as events are walked.
struct Picture {
    slots: Vec<Slot>,
    /// The run in progress per `(flow, key)`.
    active: HashMap<(String, String), usize>,
    /// Every run per `(flow, contact)` (filter on state when used).
    by_contact: HashMap<(String, ContactId), Vec<usize>>,
    marks: Vec<Mark>,
}

impl Picture {
    fn add(&mut self, row: RunRow, new: bool) -> usize {
        let i = self.slots.len();
        self.active.insert((row.flow.clone(), row.key.clone()), i);
        self.by_contact
            .entry((row.flow.clone(), row.contact))
            .or_default()
            .push(i);
        self.slots.push(Slot {
            row,
            new,
            changed: new,
        });
        i
    }

    fn run(&self, i: usize) -> Run {
        let r = &self.slots[i].row;
        Run {
            key: r.key.clone(),
            contact: r.contact.to_string(),
            step: usize::try_from(r.step).unwrap_or(0),
            started: r.started,
            arm: r.arm.as_ref().map(|(_, a)| a.clone()),
        }
    }

    fn first_mark(
        &self,
        flow: &str,
        key: &str,
        contact: ContactId,
        since: DateTime<Utc>,
    ) -> Option<&Mark> {
        // A mark for the key comes first, as the store's lookup always answered.
        let stops = |m: &&Mark| m.stops(flow, key, contact, since);
        self.marks
            .iter()
            .filter(|m| m.key.is_some())
            .find(stops)
            .or_else(|| self.marks.iter().filter(|m| m.key.is_none()).find(stops))
    }
}

/// Where a run waits after a start or refresh: the first wait's step and time, or "continue now" (step `from`,
/// due now) when the flow goes on with a send, so the scheduler sends it within moments and the guard applies
/// to it like to any other.
fn first_wait(actions: &[Action], from: i64, now: DateTime<Utc>) -> (i64, Option<DateTime<Utc>>) {
    match actions.first() {
        Some(Action::Wait { step, at }) => (*step as i64, Some(*at)),
        _ => (from, Some(now)),
    }
}

fn until(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Decides what the group's events do to the flows (step three: the store loaded what [`wanted`] named).
/// `runs` are the loaded runs in progress, `marks` the loaded exit marks, `traits` the contacts' traits a
/// trigger filter reads. Events are walked in order; see the module docs for what that preserves.
pub fn on_events(
    program: &Program,
    seen: &[Seen<'_>],
    runs: Vec<LiveRun>,
    marks: Vec<Mark>,
    traits: &HashMap<ContactId, Map<String, Value>>,
) -> FlowEffects {
    let mut pic = Picture {
        slots: Vec::with_capacity(runs.len()),
        active: HashMap::new(),
        by_contact: HashMap::new(),
        marks,
    };
    for r in runs {
        pic.add(
            RunRow {
                id: r.id,
                flow: r.flow,
                key: r.key,
                contact: r.contact,
                state: RunState::Active,
                step: r.step,
                due: r.due,
                started: r.started,
                snapshot: None,
                outcome: None,
                created: r.started,
                updated: r.started,
                arm: r.arm,
            },
            false,
        );
    }
    let mut fx = FlowEffects::default();
    for (s, name) in concerning(program, seen) {
        let happened = s.happened();
        let now = s.received_at;
        for flow in &program.flows {
            exits(&mut pic, &mut fx, flow, s, name, happened, now);
            if flow.triggers.iter().any(|t| t == name) {
                let ctx = trigger_context(flow, s, traits);
                trigger(&mut pic, &mut fx, flow, s, &ctx, happened, now);
            }
        }
    }
    for slot in pic.slots.into_iter().filter(|s| s.changed) {
        if slot.new {
            fx.inserts.push(slot.row);
        } else {
            fx.updates.push(slot.row);
        }
    }
    fx
}

/// Records the event's exit marks for this flow and ends the runs in progress it meets (through
/// [`exit_rule`], the one exit matcher).
fn exits(
    pic: &mut Picture,
    fx: &mut FlowEffects,
    flow: &Flow,
    s: &Seen<'_>,
    name: &str,
    happened: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    let mut made: Vec<Mark> = Vec::new();
    for (rule, exit) in flow.exits.iter().enumerate() {
        if exit.event != name {
            continue;
        }
        let key = match exit.same {
            Same::Key => match flow.key.as_ref().and_then(|p| p.key(s.payload)) {
                Some(k) => Some(k),
                None => continue,
            },
            Same::Contact => None,
        };
        made.push(Mark {
            flow: flow.id.clone(),
            rule: rule as i64,
            name: name.to_string(),
            key,
            contact: s.contact,
            happened,
        });
    }
    if made.is_empty() {
        return;
    }
    // The runs in progress these marks may end: by key, and the contact's.
    let mut candidates: Vec<usize> = Vec::new();
    for m in &made {
        match &m.key {
            Some(k) => candidates.extend(pic.active.get(&(flow.id.clone(), k.clone())).copied()),
            None => candidates.extend(
                pic.by_contact
                    .get(&(flow.id.clone(), s.contact))
                    .into_iter()
                    .flatten()
                    .copied(),
            ),
        }
    }
    candidates.sort_unstable();
    candidates.dedup();
    let contact = s.contact.to_string();
    for i in candidates {
        if pic.slots[i].row.state != RunState::Active {
            continue;
        }
        let Some(rule) = exit_rule(flow, &pic.run(i), name, s.payload, &contact, happened) else {
            continue;
        };
        let Some(m) = made.iter().find(|m| m.rule == rule as i64) else {
            continue;
        };
        let (category, reason) = (m.category(flow), m.reason(flow));
        let slot = &mut pic.slots[i];
        slot.row.state = RunState::Exited;
        slot.row.due = None;
        slot.row.outcome = Some(category.clone());
        slot.row.updated = now;
        slot.changed = true;
        pic.active.remove(&(flow.id.clone(), slot.row.key.clone()));
        fx.timers = true;
        fx.logs.push(RunLog {
            run: slot.row.id,
            at: now,
            step: None,
            kind: "exited",
            reason: Some(category),
            detail: reason,
        });
    }
    for m in made {
        fx.marks.push((m.clone(), s.id));
        pic.marks.push(m);
    }
}

/// Starts, refreshes or ignores this flow's run for a trigger event.
fn trigger(
    pic: &mut Picture,
    fx: &mut FlowEffects,
    flow: &Flow,
    s: &Seen<'_>,
    ctx: &Value,
    happened: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    let contact = s.contact.to_string();
    let Some(key) = flow.run_key(ctx, &contact) else {
        return;
    };
    let existing = pic.active.get(&(flow.id.clone(), key.clone())).copied();
    let run = existing.map(|i| pic.run(i));
    match super::decide_trigger(flow, key, ctx, run.as_ref(), now) {
        OnTrigger::Start { key, arm, actions } => {
            let id = RunId::new();
            let (step, due) = first_wait(&actions, -1, now);
            // An exit that happened first (an order sent before its checkout) ends the run before it begins.
            let done = pic
                .first_mark(&flow.id, &key, s.contact, happened)
                .map(|m| (m.category(flow), m.reason(flow)));
            fx.logs.push(RunLog {
                run: id,
                at: now,
                step: None,
                kind: "started",
                reason: None,
                detail: format!("{name} for {key}", name = s.name.unwrap_or("")),
            });
            match &done {
                Some((category, reason)) => fx.logs.push(RunLog {
                    run: id,
                    at: now,
                    step: None,
                    kind: "exited",
                    reason: Some(category.clone()),
                    detail: format!("{reason} (before this trigger was processed)"),
                }),
                None => {
                    fx.timers = true;
                    if let Some(at) = due.filter(|d| *d > now) {
                        fx.logs.push(RunLog {
                            run: id,
                            at: now,
                            step: Some(step),
                            kind: "waiting",
                            reason: None,
                            detail: format!("until {}", until(at)),
                        });
                    }
                }
            }
            let arm = flow
                .experiment
                .as_ref()
                .zip(arm)
                .map(|(e, a)| (e.id.clone(), a));
            let row = RunRow {
                id,
                flow: flow.id.clone(),
                key,
                contact: s.contact,
                state: if done.is_some() {
                    RunState::Exited
                } else {
                    RunState::Active
                },
                step,
                due: if done.is_some() { None } else { due },
                started: happened,
                arm,
                snapshot: Some(snapshot_of(s.payload)),
                outcome: done.map(|(category, _)| category),
                created: now,
                updated: now,
            };
            let exited = row.state != RunState::Active;
            let i = pic.add(row, true);
            if exited {
                pic.active
                    .remove(&(flow.id.clone(), pic.slots[i].row.key.clone()));
            }
        }
        OnTrigger::Refresh { actions } => {
            let Some(i) = existing else { return };
            let slot = &mut pic.slots[i];
            let (step, due) = if actions.is_empty() {
                (slot.row.step, None)
            } else {
                first_wait(&actions, slot.row.step, now)
            };
            slot.row.snapshot = Some(snapshot_of(s.payload));
            slot.row.step = step;
            if due.is_some() {
                slot.row.due = due;
            }
            slot.row.updated = now;
            slot.changed = true;
            let detail = match due {
                Some(at) => {
                    fx.timers = true;
                    format!("snapshot updated; waiting again until {}", until(at))
                }
                None => "snapshot updated".to_string(),
            };
            fx.logs.push(RunLog {
                run: slot.row.id,
                at: now,
                step: Some(step),
                kind: "refreshed",
                reason: None,
                detail,
            });
        }
        OnTrigger::Ignore(why) => {
            if let Some(i) = existing {
                fx.logs.push(RunLog {
                    run: pic.slots[i].row.id,
                    at: now,
                    step: None,
                    kind: "ignored",
                    reason: Some(why.to_string()),
                    detail: why.to_string(),
                });
            }
        }
    }
}

/// What a run keeps of its trigger: the event as sent, less a shop delivery's raw body
/// (`context.shop.raw`). The stored event keeps that body byte for byte; the run needs only what its messages
/// show, and a shop's body is several kilobytes that every refresh would write again.
pub fn snapshot_of(payload: &Value) -> String {
    let has_raw = payload
        .pointer("/context/shop")
        .and_then(Value::as_object)
        .is_some_and(|shop| shop.contains_key("raw"));
    if !has_raw {
        return payload.to_string();
    }
    let mut lean = payload.clone();
    if let Some(shop) = lean
        .pointer_mut("/context/shop")
        .and_then(Value::as_object_mut)
    {
        shop.remove("raw");
    }
    lean.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowConfig;
    use serde_json::json;

    const CHECKOUT: &str = r#"
id = "checkout-recovery"
trigger = { event = "Checkout Started" }
key = "properties.checkout_id"
exit = [{ event = "Order Completed", same = "key" }, { event = "Order Completed", same = "contact" }]
[[step]]
wait = "1h"
[[step]]
send = { channel = "email", template = "reminder" }
"#;

    fn program(extra: &str) -> Program {
        let c: FlowConfig = toml::from_str(&format!("{CHECKOUT}{extra}")).unwrap();
        let mut p = Program::empty();
        p.flows = vec![Flow::check(&c, &["reminder"]).unwrap()];
        p
    }

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::minutes(min)
    }

    fn ann() -> ContactId {
        ContactId(uuid::Uuid::from_u128(1))
    }

    /// An event of the group: its name, checkout id, and the minute it happened (received at minute 10).
    struct Ev(&'static str, &'static str, i64);

    fn payloads(events: &[Ev]) -> Vec<Value> {
        events
            .iter()
            .map(|e| json!({"event": e.0, "properties": {"checkout_id": e.1}}))
            .collect()
    }

    fn seen<'a>(events: &'a [Ev], payloads: &'a [Value]) -> Vec<Seen<'a>> {
        events
            .iter()
            .zip(payloads)
            .map(|(e, p)| Seen {
                id: EventId::new(),
                contact: ann(),
                name: Some(e.0),
                payload: p,
                timestamp: Some(t(e.2)),
                received_at: t(10),
            })
            .collect()
    }

    fn live(key: &str, started: i64) -> LiveRun {
        LiveRun {
            id: RunId(uuid::Uuid::from_u128(7)),
            flow: "checkout-recovery".into(),
            key: key.into(),
            contact: ann(),
            step: 0,
            due: Some(t(60)),
            started: t(started),
            arm: None,
        }
    }

    fn mark(key: Option<&str>, happened: i64) -> Mark {
        Mark {
            flow: "checkout-recovery".into(),
            rule: if key.is_some() { 0 } else { 1 },
            name: "Order Completed".into(),
            key: key.map(String::from),
            contact: ann(),
            happened: t(happened),
        }
    }

    /// A row as the table shows it: (key, state, due minute or none, outcome or none).
    type Shown = (String, RunState, Option<i64>, Option<String>);

    fn show(rows: &[RunRow]) -> Vec<Shown> {
        rows.iter()
            .map(|r| {
                (
                    r.key.clone(),
                    r.state,
                    r.due.map(|d| (d - t(0)).num_minutes()),
                    r.outcome.clone(),
                )
            })
            .collect()
    }

    const BY_KEY: &str = "Order Completed for the same checkout_id";
    const BY_CONTACT: &str = "Order Completed for the same contact";

    struct Case {
        name: &'static str,
        extra: &'static str,
        runs: Vec<LiveRun>,
        marks: Vec<Mark>,
        events: Vec<Ev>,
        inserts: Vec<(&'static str, RunState, Option<i64>, Option<&'static str>)>,
        updates: Vec<(&'static str, RunState, Option<i64>, Option<&'static str>)>,
        logs: Vec<&'static str>,
        marks_written: usize,
        timers: bool,
    }

    fn owned(v: &[(&str, RunState, Option<i64>, Option<&str>)]) -> Vec<Shown> {
        v.iter()
            .map(|(k, s, d, o)| (k.to_string(), *s, *d, o.map(String::from)))
            .collect()
    }

    #[test]
    fn a_group_of_events_starts_refreshes_and_exits_runs_as_events_one_by_one_would() {
        use RunState::*;
        let cases = vec![
            Case {
                name: "a checkout with no run starts one, waiting an hour from receipt",
                extra: "",
                runs: vec![],
                marks: vec![],
                events: vec![Ev("Checkout Started", "c1", 9)],
                inserts: vec![("c1", Active, Some(70), None)],
                updates: vec![],
                logs: vec!["started", "waiting"],
                marks_written: 0,
                timers: true,
            },
            Case {
                name: "an order earlier in the group ends the later checkout's run before it begins",
                extra: "",
                runs: vec![],
                marks: vec![],
                events: vec![Ev("Order Completed", "c1", 8), Ev("Checkout Started", "c1", 9)],
                inserts: vec![("c1", Exited, None, Some(BY_KEY))],
                updates: vec![],
                logs: vec!["started", "exited"],
                marks_written: 2,
                timers: false,
            },
            Case {
                name: "an order later in the group ends the run the group started",
                extra: "",
                runs: vec![],
                marks: vec![],
                events: vec![Ev("Checkout Started", "c1", 8), Ev("Order Completed", "c1", 9)],
                inserts: vec![("c1", Exited, None, Some(BY_KEY))],
                updates: vec![],
                logs: vec!["started", "waiting", "exited"],
                marks_written: 2,
                timers: true,
            },
            Case {
                name: "a second checkout for the key refreshes the run the first started",
                extra: "",
                runs: vec![],
                marks: vec![],
                events: vec![Ev("Checkout Started", "c1", 8), Ev("Checkout Started", "c1", 9)],
                inserts: vec![("c1", Active, Some(70), None)],
                updates: vec![],
                logs: vec!["started", "waiting", "refreshed"],
                marks_written: 0,
                timers: true,
            },
            Case {
                name: "a stored order for the key stops a new run whenever it happened",
                extra: "",
                runs: vec![],
                marks: vec![mark(Some("c1"), -500)],
                events: vec![Ev("Checkout Started", "c1", 9)],
                inserts: vec![("c1", Exited, None, Some(BY_KEY))],
                updates: vec![],
                logs: vec!["started", "exited"],
                marks_written: 0,
                timers: false,
            },
            Case {
                name: "a stored order of the contact stops a new run only if it happened after the checkout",
                extra: "",
                runs: vec![],
                marks: vec![mark(None, 5), mark(None, 9)],
                events: vec![Ev("Checkout Started", "c1", 7), Ev("Checkout Started", "c2", 9)],
                inserts: vec![
                    ("c1", Exited, None, Some(BY_CONTACT)),
                    ("c2", Exited, None, Some(BY_CONTACT)),
                ],
                updates: vec![],
                logs: vec!["started", "exited", "started", "exited"],
                marks_written: 0,
                timers: false,
            },
            Case {
                name: "a stored run is refreshed: its wait restarts and its snapshot changes",
                extra: "",
                runs: vec![live("c1", 0)],
                marks: vec![],
                events: vec![Ev("Checkout Started", "c1", 9)],
                inserts: vec![],
                updates: vec![("c1", Active, Some(70), None)],
                logs: vec!["refreshed"],
                marks_written: 0,
                timers: true,
            },
            Case {
                name: "an order of the contact ends a stored run started before it, by the contact rule",
                extra: "",
                runs: vec![live("c1", 0)],
                marks: vec![],
                events: vec![Ev("Order Completed", "other", 9)],
                inserts: vec![],
                updates: vec![("c1", Exited, None, Some(BY_CONTACT))],
                logs: vec!["exited"],
                marks_written: 2,
                timers: true,
            },
            Case {
                name: "an order of the contact from before the run began leaves it running",
                extra: "",
                runs: vec![live("c1", 5)],
                marks: vec![],
                events: vec![Ev("Order Completed", "other", 1)],
                inserts: vec![],
                updates: vec![],
                logs: vec![],
                marks_written: 2,
                timers: false,
            },
            Case {
                name: "an order for the key ends a stored run by the key rule, whenever it happened",
                extra: "",
                runs: vec![live("c1", 5)],
                marks: vec![],
                events: vec![Ev("Order Completed", "c1", 1)],
                inserts: vec![],
                updates: vec![("c1", Exited, None, Some(BY_KEY))],
                logs: vec!["exited"],
                marks_written: 2,
                timers: true,
            },
            Case {
                name: "with reentry once a second checkout is ignored and logged",
                extra: "reentry = \"once\"\n",
                runs: vec![live("c1", 0)],
                marks: vec![],
                events: vec![Ev("Checkout Started", "c1", 9)],
                inserts: vec![],
                updates: vec![],
                logs: vec!["ignored"],
                marks_written: 0,
                timers: false,
            },
            Case {
                name: "events no flow names change nothing",
                extra: "",
                runs: vec![live("c1", 0)],
                marks: vec![],
                events: vec![Ev("Product Viewed", "c1", 9)],
                inserts: vec![],
                updates: vec![],
                logs: vec![],
                marks_written: 0,
                timers: false,
            },
        ];
        for c in cases {
            // `reentry` must come before the steps in TOML: put it at the top.
            let p = program_with(c.extra);
            let payloads = payloads(&c.events);
            let seen = seen(&c.events, &payloads);
            let want = wanted(&p, &seen, &HashMap::new());
            assert!(
                seen.iter().all(|s| s.name != Some("Checkout Started")
                    || want.keys.contains(&(
                        "checkout-recovery".into(),
                        s.payload["properties"]["checkout_id"]
                            .as_str()
                            .unwrap()
                            .into()
                    ))),
                "{}: every trigger key is loaded",
                c.name
            );
            let fx = on_events(&p, &seen, c.runs, c.marks, &HashMap::new());
            assert_eq!(show(&fx.inserts), owned(&c.inserts), "{}: inserts", c.name);
            assert_eq!(show(&fx.updates), owned(&c.updates), "{}: updates", c.name);
            let kinds: Vec<&str> = fx.logs.iter().map(|l| l.kind).collect();
            assert_eq!(kinds, c.logs, "{}: logs", c.name);
            assert_eq!(fx.marks.len(), c.marks_written, "{}: marks", c.name);
            assert_eq!(fx.timers, c.timers, "{}: timers", c.name);
        }
    }

    fn program_with(extra: &str) -> Program {
        if extra.is_empty() {
            return program("");
        }
        let c: FlowConfig = toml::from_str(&format!("{extra}{CHECKOUT}")).unwrap();
        let mut p = Program::empty();
        p.flows = vec![Flow::check(&c, &["reminder"]).unwrap()];
        p
    }

    #[test]
    fn a_trigger_filter_reads_the_contacts_traits_and_only_those_are_asked_for() {
        let c: FlowConfig = toml::from_str(&CHECKOUT.replace(
            "trigger = { event = \"Checkout Started\" }",
            "trigger = { event = \"Checkout Started\", filter = \"contact.plan == 'pro'\" }",
        ))
        .unwrap();
        let mut p = Program::empty();
        p.flows = vec![Flow::check(&c, &["reminder"]).unwrap()];
        let events = [Ev("Checkout Started", "c1", 9)];
        let payloads = payloads(&events);
        let seen = seen(&events, &payloads);
        assert_eq!(traits_wanted(&p, &seen), vec![ann()]);
        assert_eq!(traits_wanted(&program(""), &seen), Vec::<ContactId>::new());
        let free = HashMap::from([(ann(), json!({"plan": "free"}).as_object().unwrap().clone())]);
        let pro = HashMap::from([(ann(), json!({"plan": "pro"}).as_object().unwrap().clone())]);
        assert!(on_events(&p, &seen, vec![], vec![], &free)
            .inserts
            .is_empty());
        assert_eq!(on_events(&p, &seen, vec![], vec![], &pro).inserts.len(), 1);
    }

    #[test]
    fn a_runs_snapshot_is_the_event_as_sent_less_a_shop_deliverys_raw_body() {
        let cases = [
            (
                json!({"event": "Checkout Started", "properties": {"checkout_id": "c1"}}),
                json!({"event": "Checkout Started", "properties": {"checkout_id": "c1"}}),
            ),
            (
                json!({"event": "Checkout Started", "context": {"shop": {"topic": "checkouts/create", "raw": "{\"token\":\"c1\"}"}}}),
                json!({"event": "Checkout Started", "context": {"shop": {"topic": "checkouts/create"}}}),
            ),
            (
                json!({"event": "Checkout Started", "context": {"shop": "not an object", "raw": "kept"}}),
                json!({"event": "Checkout Started", "context": {"shop": "not an object", "raw": "kept"}}),
            ),
        ];
        for (payload, want) in cases {
            let got: Value = serde_json::from_str(&snapshot_of(&payload)).unwrap();
            assert_eq!(got, want, "{payload}");
        }
    }
}
