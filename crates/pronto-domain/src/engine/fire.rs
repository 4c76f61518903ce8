//! What a batch of due runs does when their timers fire, decided at once for the whole batch.
//!
//! The store claims the due runs and loads, in a fixed number of statements, what the decision needs: the
//! exit marks that apply to each run, each run's contact as it is now (after merges), the emails each
//! contact got in the frequency-cap window, and the leads cadence runs are about ([`wanted`] says which).
//! [`fire`] decides, and the store writes the [`RunEffects`] in bulk in the same transaction, so a decision
//! and its effects are atomic (`pronto_store::flows` says why that is race-free).
//!
//! The rules, in the order they are checked for a run:
//! 1. Its flow is no longer configured: the run exits.
//! 2. **The guard.** An exit mark for the run's key (whenever it happened: an order for this checkout is final)
//!    or for its contact at or after the run started: the step is skipped and the run exits, with the rule as
//!    its outcome.
//! 3. The contact no longer exists, or [`crate::consent::Policy::refusal`] refuses the message: marked
//!    do-not-contact, or (marketing flows) unsubscribed, not a subscriber of a subscribers-only flow, or
//!    without recorded consent where `[consent]` requires opt-in: the run exits.
//! 4. The steps after the one it waited at are walked ([`super::advance`]). An SMS the quiet hours would hold
//!    but that cannot be sent at all (no provider, STOP, no phone) is skipped at once, so the steps after it
//!    are not held until morning for nothing.
//! 5. **The frequency cap.** An email step to a contact who already got the cap's number of flow emails in
//!    its window (counting those this batch writes) is skipped, with the reason; the run goes on.
//! 6. A run held out by the flow's experiment ([`crate::experiment`]) sends nothing: each send is logged as
//!    skipped ("holdout"); it waits, calls and exits like the others.
//! 7. A send whose `offer` names a pool ([`crate::offer`]) takes one of the codes the store claimed for the
//!    batch (the pool's fallbacks in turn); with none left and `fallback = "skip"`, the step is skipped with
//!    the reason. A code a message did not end up using stays unused.
//! 8. Each send is composed (a step that cannot be, for want of an address or a template error, is logged
//!    and skipped); each call opens a task for the lead's owner (no lead: skipped). Every message and task
//!    is keyed `run.step`, so a double fire writes it once.
//!
//! Invariants: every due run gets exactly one [`RunUpdate`]; logs are in the order the steps were met.

use super::group::{Mark, RunLog, RunState};
use super::{advance, context, Action};
use crate::catalog::{self, Product, Related, MAX_RECOMMENDATIONS};
use crate::experiment::Arm;
use crate::flow::{Channel, Step};
use crate::message::links::{click_url, unsubscribe_url};
use crate::message::Outgoing;
use crate::offer::Pick;
use crate::program::{compose, compose_call, sms_refusal, NotSent, Program, Recipient, Subject};
use crate::sales::lead::LeadState;
use crate::{ContactId, LeadId, MessageId, RunId, TaskId, WorkspaceId};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use std::collections::HashMap;

/// A claimed run whose timer is due.
#[derive(Debug, Clone, PartialEq)]
pub struct DueRun {
    pub id: RunId,
    pub ws: WorkspaceId,
    pub flow: String,
    pub key: String,
    pub contact: ContactId,
    /// The step it waited at; -1 before the first.
    pub step: i64,
    pub started: DateTime<Utc>,
    /// The latest trigger event as sent (`Null` if it could not be read back).
    pub snapshot: Value,
    /// Its group in the flow's experiment, if it was started in one.
    pub arm: Option<Arm>,
}

/// The contact a message goes to, found from the (possibly merged) contact a run was started for.
#[derive(Debug, Clone)]
pub struct Addressee {
    /// The contact the run was started for.
    pub asked: ContactId,
    /// The contact it is now (itself, or the one it was merged into).
    pub live: ContactId,
    pub recipient: Recipient,
}

/// The lead a cadence run is about, as its steps need it.
#[derive(Debug, Clone, PartialEq)]
pub struct CadenceLead {
    pub id: LeadId,
    pub ws: WorkspaceId,
    /// The rep who owns it now: the call task's queue and the emails' Reply-To.
    pub owner: Option<String>,
    /// The lead as templates see it ([`crate::sales::lead_context`]).
    pub context: Value,
}

impl From<&LeadState> for CadenceLead {
    fn from(l: &LeadState) -> Self {
        CadenceLead {
            id: l.id,
            ws: l.workspace_id,
            owner: l.owner.clone(),
            context: l.context(),
        }
    }
}

/// A run's next state, written in place.
#[derive(Debug, Clone, PartialEq)]
pub struct RunUpdate {
    pub id: RunId,
    pub state: RunState,
    pub step: i64,
    pub due: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
}

/// A call task a `call` step opens in the lead owner's queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub id: TaskId,
    pub ws: WorkspaceId,
    /// `run.step`: opened once however often the step fires.
    pub key: String,
    pub lead: LeadId,
    pub contact: ContactId,
    pub run: RunId,
    pub flow: String,
    pub step: i64,
    pub title: String,
    pub script: String,
    pub due: DateTime<Utc>,
}

/// What the store must load before [`fire`] decides, beyond the marks and recipients every run needs.
#[derive(Debug, Default, PartialEq)]
pub struct Wanted {
    /// Leads the runs name (`properties.lead_id` of their snapshot).
    pub leads: Vec<LeadId>,
    /// `(workspace, live contact)`: runs of flows with a call step that name no lead take the contact's
    /// latest lead.
    pub latest: Vec<(WorkspaceId, ContactId)>,
    /// Count the flow emails each live contact got since then (the frequency cap's window), if capped.
    pub sent_since: Option<DateTime<Utc>>,
    /// `(workspace, shop, cart items)`: the catalogs to load what is related to these items from, for runs
    /// of flows whose messages show recommendations (each shop once, its runs' items together).
    pub catalogs: Vec<(WorkspaceId, String, Vec<String>)>,
    /// `(workspace, offer pool, at most)`: unused codes to claim for the batch's sends that show a pool's
    /// code (an upper bound: every send after each run's position, with its fallback pools).
    pub codes: Vec<(WorkspaceId, String, usize)>,
}

/// What the store loaded for a batch.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Exit marks that may apply to each run (its flow's, by its key or its contact; [`fire`] checks the time).
    pub marks: HashMap<RunId, Vec<Mark>>,
    /// By the contact the run was started for.
    pub recipients: HashMap<ContactId, Addressee>,
    /// Flow emails per live contact since [`Wanted::sent_since`].
    pub sent: HashMap<ContactId, i64>,
    /// The leads of [`Wanted::leads`] that exist.
    pub leads: HashMap<LeadId, CadenceLead>,
    /// By live contact, for [`Wanted::latest`].
    pub latest: HashMap<ContactId, CadenceLead>,
    /// By `(workspace, shop)`, for [`Wanted::catalogs`].
    pub catalogs: HashMap<(WorkspaceId, String), Related>,
    /// Unused codes claimed for the batch, by `(workspace, pool)` ([`Wanted::codes`]); those [`fire`] does not
    /// give to a message stay unused.
    pub codes: HashMap<(WorkspaceId, String), Vec<String>>,
}

/// A pool's code given to a message, to be marked used with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeUse {
    pub ws: WorkspaceId,
    pub pool: String,
    pub code: String,
    /// The message's outbox key.
    pub message: String,
}

/// What a batch of due runs does, for the store to write in bulk.
#[derive(Debug, Default, PartialEq)]
pub struct RunEffects {
    pub updates: Vec<RunUpdate>,
    pub logs: Vec<RunLog>,
    pub messages: Vec<Outgoing>,
    pub tasks: Vec<NewTask>,
    /// The keys of the runs that got a message (what a test of the guard's timing needs).
    pub sent_keys: Vec<String>,
    /// Codes given to the messages written.
    pub codes: Vec<CodeUse>,
}

/// The lead a run's snapshot names, if it names a valid id.
fn named_lead(snapshot: &Value) -> Option<LeadId> {
    snapshot
        .pointer("/properties/lead_id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

/// What to load for these runs, once their recipients are known.
pub fn wanted(
    program: &Program,
    runs: &[DueRun],
    recipients: &HashMap<ContactId, Addressee>,
    now: DateTime<Utc>,
) -> Wanted {
    let mut w = Wanted {
        sent_since: program.messages.email_cap.map(|(_, window)| {
            now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(1))
        }),
        ..Wanted::default()
    };
    for run in runs {
        if let Some(f) = program
            .flow(&run.flow)
            .filter(|_| !program.offers.is_empty())
        {
            let from = usize::try_from(run.step + 1).unwrap_or(0);
            for i in from..f.steps.len() {
                if let Some(Step::Send { offer: Some(o), .. }) = f.step(i, run.arm.as_ref()) {
                    for pool in program.offers.chain(o).unwrap_or_default() {
                        match w
                            .codes
                            .iter_mut()
                            .find(|(ws, p, _)| *ws == run.ws && p == pool)
                        {
                            Some((_, _, n)) => *n += 1,
                            None => w.codes.push((run.ws, pool.to_string(), 1)),
                        }
                    }
                }
            }
        }
        if program
            .flow(&run.flow)
            .is_some_and(|f| program.recommends(f))
        {
            let shop = catalog::shop_of(&run.snapshot);
            let items = catalog::items_of(&run.snapshot);
            match w
                .catalogs
                .iter_mut()
                .find(|(ws, s, _)| *ws == run.ws && s == shop)
            {
                Some((_, _, all)) => all.extend(items),
                None => w.catalogs.push((run.ws, shop.to_string(), items)),
            }
        }
        match named_lead(&run.snapshot) {
            Some(id) => w.leads.push(id),
            None => {
                let calls = program
                    .flow(&run.flow)
                    .is_some_and(|f| f.steps.iter().any(|s| matches!(s, Step::Call { .. })));
                if let (true, Some(to)) = (calls, recipients.get(&run.contact)) {
                    w.latest.push((run.ws, to.live));
                }
            }
        }
    }
    w.leads.sort();
    w.leads.dedup();
    w.latest.sort();
    w.latest.dedup();
    for (_, _, items) in &mut w.catalogs {
        items.sort();
        items.dedup();
    }
    w.catalogs.retain(|(_, _, items)| !items.is_empty());
    w
}

/// Decides what the due `runs` do at `now` (see the module docs for the rules).
pub fn fire(
    program: &Program,
    runs: Vec<DueRun>,
    mut loaded: Loaded,
    now: DateTime<Utc>,
) -> RunEffects {
    let mut out = RunEffects::default();
    for run in runs {
        let (update, sent) = fire_one(program, &run, &mut loaded, now, &mut out);
        if sent && out.sent_keys.last() != Some(&run.key) {
            out.sent_keys.push(run.key.clone());
        }
        out.updates.push(update);
    }
    out
}

/// One run: pushes its logs, messages and tasks onto `out`; answers its update and whether it sent.
fn fire_one(
    program: &Program,
    run: &DueRun,
    loaded: &mut Loaded,
    now: DateTime<Utc>,
    out: &mut RunEffects,
) -> (RunUpdate, bool) {
    let mut log = |step: Option<i64>, kind: &'static str, reason: Option<&str>, detail: String| {
        out.logs.push(RunLog {
            run: run.id,
            at: now,
            step,
            kind,
            reason: reason.map(str::to_string),
            detail,
        })
    };
    let end = |reason: String| RunUpdate {
        id: run.id,
        state: RunState::Exited,
        step: run.step,
        due: None,
        outcome: Some(reason),
    };
    let Some(flow) = program.flow(&run.flow) else {
        let why = "the flow is no longer in the configuration";
        let detail = format!("flow `{}` is no longer in the configuration", run.flow);
        log(None, "exited", Some(why), detail);
        return (end(why.into()), false);
    };
    // The guard: an exit rule met by any event stored before this read.
    let applies = |m: &&Mark| match &m.key {
        Some(k) => *k == run.key,
        None => m.happened >= run.started,
    };
    if let Some(m) = loaded
        .marks
        .get(&run.id)
        .and_then(|ms| ms.iter().find(applies))
    {
        let category = m.category(flow);
        log(Some(run.step), "skipped", Some(&category), m.reason(flow));
        return (end(category), false);
    }
    let Some(to) = loaded.recipients.get(&run.contact) else {
        let why = "the contact no longer exists";
        log(None, "exited", Some(why), why.into());
        return (end(why.into()), false);
    };
    if let Some((why, detail)) = program.consent.refusal(
        &to.recipient.traits,
        to.recipient.phone.as_deref(),
        flow.purpose,
        flow.send_to,
    ) {
        log(Some(run.step), "skipped", Some(why), detail);
        return (end(why.to_string()), false);
    }

    let ctx = context(&run.snapshot, &to.recipient.traits);
    let from = usize::try_from(run.step + 1).unwrap_or(0);
    let arm = run.arm.as_ref();
    let mut actions = advance(flow, arm, from, &ctx, now);
    // An SMS that could never be sent is skipped now rather than waited for (an email held for its window
    // is waited for: nothing about the person stops it).
    while let Some(&Action::Defer { step, .. }) = actions.last() {
        let Some(why) = is_sms(flow, step, arm)
            .then(|| sms_refusal(program, &to.recipient))
            .flatten()
        else {
            break;
        };
        actions.pop();
        log(
            Some(step as i64),
            "skipped",
            Some(&why.to_string()),
            why.to_string(),
        );
        actions.extend(advance(flow, arm, step + 1, &ctx, now));
    }

    // The lead the run is about (a cadence keyed by `properties.lead_id`, else for call steps the contact's
    // latest), for `lead`/`rep` in its messages, its owner as Reply-To, and its call tasks.
    let needs_lead = actions
        .iter()
        .any(|a| matches!(a, Action::Send { .. } | Action::Call { .. }));
    let lead = match named_lead(&run.snapshot) {
        _ if !needs_lead => None,
        Some(id) => loaded.leads.get(&id).filter(|l| l.ws == run.ws),
        None if actions.iter().any(|a| matches!(a, Action::Call { .. })) => {
            loaded.latest.get(&to.live).filter(|l| l.ws == run.ws)
        }
        None => None,
    };
    let owner = lead
        .and_then(|l| l.owner.as_deref())
        .and_then(|o| program.sales.rep(o));
    let ws = run.ws.to_string();
    let unsub = unsubscribe_url(
        &program.messages,
        &ws,
        &to.live.to_string(),
        now.timestamp(),
    );
    // "The item plus two others": only for flows whose messages show them.
    let related = if program.recommends(flow) {
        loaded
            .catalogs
            .get(&(run.ws, catalog::shop_of(&run.snapshot).to_string()))
    } else {
        None
    };
    let recommendations: Vec<&Product> = related
        .map(|r| catalog::recommend(r, &catalog::items_of(&run.snapshot), MAX_RECOMMENDATIONS))
        .unwrap_or_default();
    let about = Subject {
        snapshot: &run.snapshot,
        to: &to.recipient,
        lead: lead.map(|l| &l.context),
        rep: owner,
        message_id: "",
        tracking: None,
        offer: None,
        unsubscribe_url: &unsub,
        recommendations: &recommendations,
        catalog: related,
    };

    let mut next = RunUpdate {
        id: run.id,
        state: RunState::Finished,
        step: run.step,
        due: None,
        outcome: Some("finished".into()),
    };
    let mut sent = false;
    for action in actions {
        match action {
            Action::Send { step } if run.arm == Some(Arm::Holdout) => {
                log(
                    Some(step as i64),
                    "skipped",
                    Some("holdout"),
                    "held out: the flow's experiment sends this run nothing".into(),
                );
            }
            Action::Send { step } => {
                let key = format!("{}.{step}", run.id);
                let is_email = matches!(
                    flow.step(step, arm),
                    Some(Step::Send {
                        channel: Channel::Email,
                        ..
                    })
                );
                if let Some((max, window)) = program.messages.email_cap.filter(|_| is_email) {
                    let n = loaded.sent.entry(to.live).or_default();
                    if *n >= i64::from(max) {
                        let detail = format!(
                            "frequency cap: {n} emails to this contact in the last {}",
                            humantime::format_duration(window)
                        );
                        log(Some(step as i64), "skipped", Some("frequency cap"), detail);
                        continue;
                    }
                    *n += 1;
                }
                let offer = match flow.step(step, arm) {
                    Some(Step::Send { offer, .. }) => offer.as_deref(),
                    _ => None,
                };
                let pick = program.offers.pick(offer, |pool| {
                    loaded
                        .codes
                        .get_mut(&(run.ws, pool.to_string()))
                        .and_then(Vec::pop)
                });
                let (code, taken) = match pick {
                    Pick::Skip(why) => {
                        log(Some(step as i64), "skipped", Some("offer pool empty"), why);
                        continue;
                    }
                    Pick::Literal(code) => (code, None),
                    Pick::Code { pool, code } => (Some(code.clone()), Some((pool, code))),
                };
                let track = |u: &str| click_url(&program.messages, &ws, &key, u, now.timestamp());
                let subject = Subject {
                    message_id: &key,
                    tracking: Some(&track),
                    offer: code.as_deref(),
                    ..about
                };
                let composed = compose(program, flow, step, arm, &subject);
                match (&composed, taken) {
                    (Ok(_), Some((pool, code))) => out.codes.push(CodeUse {
                        ws: run.ws,
                        pool,
                        code,
                        message: key.clone(),
                    }),
                    // Not sent: the code stays unused for the next message.
                    (Err(_), Some((pool, code))) => {
                        loaded.codes.entry((run.ws, pool)).or_default().push(code)
                    }
                    (_, None) => {}
                }
                match composed {
                    Ok(c) => {
                        let what = match c.channel {
                            Channel::Sms => &c.rendered.text,
                            _ => &c.rendered.subject,
                        };
                        let detail = format!("{} to {}: {what}", channel_name(c.channel), c.to);
                        log(Some(step as i64), "sent", None, detail);
                        sent = true;
                        // A reply to a lead's cadence reaches its owner, not a shared inbox.
                        let reply_to = owner
                            .and_then(|r| r.email.clone())
                            .or_else(|| program.messages.reply_to.clone());
                        out.messages.push(Outgoing {
                            id: MessageId::new(),
                            ws: run.ws,
                            key,
                            run: Some(run.id),
                            flow: Some(flow.id.clone()),
                            step: Some(step as i64),
                            lead: lead.map(|l| l.id),
                            contact: to.live,
                            channel: channel_name(c.channel),
                            to: c.to,
                            from: program.messages.from.clone(),
                            reply_to,
                            subject: c.rendered.subject,
                            text: c.rendered.text,
                            html: c.rendered.html,
                            unsubscribe_url: Some(unsub.clone()),
                            now,
                        });
                    }
                    Err(e) => {
                        let (kind, reason) = not_sent(&e);
                        log(Some(step as i64), kind, Some(&reason), e.to_string());
                    }
                }
            }
            Action::Call { step } => {
                let key = format!("{}.{step}", run.id);
                let subject = Subject {
                    message_id: &key,
                    ..about
                };
                match (compose_call(program, flow, step, &subject), lead) {
                    (Ok(task), Some(l)) => {
                        let detail = format!(
                            "call task for {}: {}",
                            l.owner
                                .as_deref()
                                .unwrap_or("nobody (the lead has no owner)"),
                            task.title
                        );
                        log(Some(step as i64), "task", None, detail);
                        out.tasks.push(NewTask {
                            id: TaskId::new(),
                            ws: run.ws,
                            key,
                            lead: l.id,
                            contact: to.live,
                            run: run.id,
                            flow: flow.id.clone(),
                            step: step as i64,
                            title: task.title,
                            script: task.script,
                            due: now,
                        });
                    }
                    (Err(e), _) => {
                        let (kind, reason) = not_sent(&e);
                        log(Some(step as i64), kind, Some(&reason), e.to_string());
                    }
                    (Ok(_), None) => {
                        let e = NotSent::NoLead;
                        log(
                            Some(step as i64),
                            "skipped",
                            Some(&e.to_string()),
                            e.to_string(),
                        );
                    }
                }
            }
            Action::Defer { step, at } => {
                let (what, why) = match is_sms(flow, step, arm) {
                    true => ("SMS held for the contact's quiet hours", "quiet hours"),
                    false => ("email held for the flow's send window", "send window"),
                };
                let detail = format!(
                    "{what} until {}",
                    at.to_rfc3339_opts(SecondsFormat::Secs, true)
                );
                log(Some(step as i64), "deferred", Some(why), detail);
                next = RunUpdate {
                    id: run.id,
                    state: RunState::Active,
                    step: step as i64 - 1,
                    due: Some(at),
                    outcome: None,
                };
            }
            Action::Wait { step, at } => {
                let detail = format!("until {}", at.to_rfc3339_opts(SecondsFormat::Secs, true));
                log(Some(step as i64), "waiting", None, detail);
                next = RunUpdate {
                    id: run.id,
                    state: RunState::Active,
                    step: step as i64,
                    due: Some(at),
                    outcome: None,
                };
            }
            Action::Finish => log(None, "finished", None, "no steps left".into()),
        }
    }
    (next, sent)
}

/// How a step that produced nothing is logged: a template error is a failure to fix, the rest are skips.
fn not_sent(e: &NotSent) -> (&'static str, String) {
    match e {
        NotSent::Template(_) => ("failed", "template error".to_string()),
        other => ("skipped", other.to_string()),
    }
}

fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Webhook => "webhook",
    }
}

#[cfg(test)]
mod tests;

/// Whether step `step` of `flow`, as a run in `arm` takes it, sends an SMS.
fn is_sms(flow: &crate::flow::Flow, step: usize, arm: Option<&crate::experiment::Arm>) -> bool {
    matches!(
        flow.step(step, arm),
        Some(Step::Send {
            channel: Channel::Sms,
            ..
        })
    )
}
