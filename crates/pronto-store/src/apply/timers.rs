//! One timer batch, in its own transaction ([`fire_batch`]): the due runs of flows ([`fire`]), then the due
//! escalation steps of leads ([`crate::sales::fire`]).
//!
//! A batch of due runs is claimed (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several processes share the work
//! and never take the same run), the guard is re-checked against the store in the same transaction that
//! writes the outbox: any exit mark for the run's key, or for its contact since the run began; the contact's
//! consent; the frequency cap. Only then are messages written (unique idempotency key per run and step) and
//! the run moved on to its next wait or its end. `crate::flows` says why this is race-free.

use crate::flows::{FlowTx, Found, LogRow, RunUpdate};
use crate::sales::{LeadState, NewTask};
use crate::tx::{Commit, ItemError, MessageRow};
use crate::writer::Begin;
use chrono::{DateTime, Utc};
use pronto_domain::engine::group::Mark;
use pronto_domain::engine::{self, Action};
use pronto_domain::flow::{Channel, Step};
use pronto_domain::program::{
    compose, compose_call, sms_refusal, unsubscribe_url, NotSent, Program, Subject,
};
use pronto_domain::{ContactId, LeadId, MessageId, RunId, TaskId};
use serde_json::Value;
use std::collections::HashMap;

/// What one timer batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fired {
    /// Runs whose timer fired.
    pub runs: usize,
    /// Messages written to the outbox.
    pub messages: usize,
    /// The keys of the runs that got a message in this batch (what a test of the guard's timing needs).
    pub sent_keys: Vec<String>,
    /// Leads whose escalation step fired.
    pub leads: usize,
    /// Rows the batch could not read, set aside (they do not count as fired).
    pub quarantined: usize,
}

/// Fires up to `limit` due runs inside the open transaction (see the module docs for the guard).
pub(crate) async fn fire<T: crate::sales::SalesTx + ?Sized>(
    tx: &mut T,
    program: &Program,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Fired, ItemError> {
    let runs = tx.claim_due(now, limit).await?;
    if runs.is_empty() {
        return Ok(Fired::default());
    }
    let mut marks: HashMap<RunId, Vec<Mark>> = HashMap::new();
    for (run, m) in tx.marks_for(&runs).await? {
        marks.entry(run).or_default().push(m);
    }
    let mut contacts: Vec<ContactId> = runs.iter().map(|r| r.contact).collect();
    contacts.sort();
    contacts.dedup();
    let found: HashMap<ContactId, Found> = tx
        .recipients(&contacts)
        .await?
        .into_iter()
        .map(|f| (f.asked, f))
        .collect();
    let cap = program.messages.email_cap;
    let mut sent: HashMap<ContactId, i64> = HashMap::new();
    if let Some((_, window)) = cap {
        let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(1));
        let live: Vec<ContactId> = found.values().map(|f| f.live).collect();
        sent = tx.sent_counts(&live, since).await?.into_iter().collect();
    }

    // The leads cadence runs name (`properties.lead_id`), read together.
    let named = |snapshot: &Value| {
        snapshot
            .pointer("/properties/lead_id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<LeadId>().ok())
    };
    let mut snapshots: Vec<Value> = runs
        .iter()
        .map(|r| serde_json::from_str(&r.snapshot).unwrap_or(Value::Null))
        .collect();
    let lead_ids: Vec<LeadId> = snapshots.iter().filter_map(named).collect();
    let named_leads: HashMap<LeadId, LeadState> = if lead_ids.is_empty() {
        HashMap::new()
    } else {
        tx.leads(&lead_ids)
            .await?
            .into_iter()
            .map(|l| (l.id, l))
            .collect()
    };

    let mut updates = Vec::with_capacity(runs.len());
    let mut logs = Vec::new();
    let mut messages = Vec::new();
    let mut sent_keys: Vec<String> = Vec::new();
    let mut tasks: Vec<NewTask> = Vec::new();
    for (run, snapshot) in runs.iter().zip(snapshots.iter_mut()) {
        let snapshot = std::mem::take(snapshot);
        let mut log =
            |step: Option<i64>, kind: &'static str, reason: Option<&str>, detail: String| {
                logs.push(LogRow {
                    run: run.id,
                    at: now,
                    step,
                    kind,
                    reason: reason.map(str::to_string),
                    detail,
                })
            };
        let end = |state: &'static str, reason: String| RunUpdate {
            id: run.id,
            state,
            step: run.step,
            due: None,
            outcome: Some(reason),
        };
        let Some(flow) = program.flow(&run.flow) else {
            let why = "the flow is no longer in the configuration";
            log(
                None,
                "exited",
                Some(why),
                format!("flow `{}` is no longer in the configuration", run.flow),
            );
            updates.push(end("exited", why.into()));
            continue;
        };
        // The guard: an exit rule met by any event stored before this read.
        let applies = |m: &&Mark| match &m.key {
            Some(k) => *k == run.key,
            None => m.happened >= run.started,
        };
        if let Some(m) = marks.get(&run.id).and_then(|ms| ms.iter().find(applies)) {
            let category = m.category(flow);
            log(Some(run.step), "skipped", Some(&category), m.reason(flow));
            updates.push(end("exited", category));
            continue;
        }
        let Some(to) = found.get(&run.contact) else {
            log(
                None,
                "exited",
                Some("the contact no longer exists"),
                "the contact no longer exists".into(),
            );
            updates.push(end("exited", "the contact no longer exists".into()));
            continue;
        };
        if let Some(why) = to.recipient.refusal() {
            log(Some(run.step), "skipped", Some(why), why.to_string());
            updates.push(end("exited", why.to_string()));
            continue;
        }
        let ctx = engine::context(&snapshot, &to.recipient.traits);
        let from = usize::try_from(run.step + 1).unwrap_or(0);
        let mut next = RunUpdate {
            id: run.id,
            state: "finished",
            step: run.step,
            due: None,
            outcome: Some("finished".into()),
        };
        let mut actions = engine::advance(flow, from, &ctx, now);
        // An SMS the quiet hours would hold but that cannot be sent at all is skipped now, so the steps after
        // it (a call, an email) are not held until morning for nothing.
        while let Some(&Action::Defer { step, .. }) = actions.last() {
            let Some(why) = sms_refusal(program, &to.recipient) else {
                break;
            };
            actions.pop();
            log(
                Some(step as i64),
                "skipped",
                Some(&why.to_string()),
                why.to_string(),
            );
            actions.extend(engine::advance(flow, step + 1, &ctx, now));
        }
        // The lead the run is about (a cadence keyed by `properties.lead_id`), for `lead`/`rep` in its messages,
        // its owner as Reply-To, and its call tasks; read only when a step needs it.
        let needs_lead = actions
            .iter()
            .any(|a| matches!(a, Action::Send { .. } | Action::Call { .. }));
        let mut lead = None;
        if needs_lead {
            lead = match named(&snapshot) {
                Some(id) => named_leads
                    .get(&id)
                    .filter(|l| l.workspace_id == run.ws)
                    .cloned(),
                None if actions.iter().any(|a| matches!(a, Action::Call { .. })) => {
                    tx.latest_lead(run.ws, to.live, None).await?
                }
                None => None,
            };
        }
        let owner = lead
            .as_ref()
            .and_then(|l| l.owner.as_deref())
            .and_then(|o| program.sales.rep(o));
        let unsub = unsubscribe_url(
            &program.messages,
            &run.ws.to_string(),
            &to.live.to_string(),
            now.timestamp(),
        );
        let lead_ctx = lead.as_ref().map(LeadState::context);
        let about = Subject {
            snapshot: &snapshot,
            to: &to.recipient,
            lead: lead_ctx.as_ref(),
            rep: owner,
            message_id: "",
            unsubscribe_url: &unsub,
        };
        for action in actions {
            match action {
                Action::Send { step } => {
                    let key = format!("{}.{step}", run.id);
                    let is_email = matches!(
                        flow.steps.get(step),
                        Some(Step::Send {
                            channel: Channel::Email,
                            ..
                        })
                    );
                    if let Some((max, window)) = cap.filter(|_| is_email) {
                        let n = sent.entry(to.live).or_default();
                        if *n >= i64::from(max) {
                            log(
                                Some(step as i64),
                                "skipped",
                                Some("frequency cap"),
                                format!(
                                    "frequency cap: {n} emails to this contact in the last {}",
                                    humanize(window)
                                ),
                            );
                            continue;
                        }
                        *n += 1;
                    }
                    match compose(
                        program,
                        flow,
                        step,
                        &Subject {
                            message_id: &key,
                            ..about
                        },
                    ) {
                        Ok(c) => {
                            log(
                                Some(step as i64),
                                "sent",
                                None,
                                format!(
                                    "{} to {}: {}",
                                    channel_name(c.channel),
                                    c.to,
                                    if c.channel == Channel::Sms {
                                        &c.rendered.text
                                    } else {
                                        &c.rendered.subject
                                    }
                                ),
                            );
                            if sent_keys.last() != Some(&run.key) {
                                sent_keys.push(run.key.clone());
                            }
                            // A reply to a lead's cadence reaches its owner, not a shared inbox.
                            let reply_to = owner
                                .and_then(|r| r.email.clone())
                                .or_else(|| program.messages.reply_to.clone());
                            messages.push(MessageRow {
                                id: MessageId::new(),
                                ws: run.ws,
                                key,
                                run: Some(run.id),
                                flow: Some(flow.id.clone()),
                                step: Some(step as i64),
                                lead: lead.as_ref().map(|l| l.id),
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
                    match (
                        compose_call(
                            program,
                            flow,
                            step,
                            &Subject {
                                message_id: &key,
                                ..about
                            },
                        ),
                        &lead,
                    ) {
                        (Ok(task), Some(l)) => {
                            log(
                                Some(step as i64),
                                "task",
                                None,
                                format!(
                                    "call task for {}: {}",
                                    l.owner
                                        .as_deref()
                                        .unwrap_or("nobody (the lead has no owner)"),
                                    task.title
                                ),
                            );
                            tasks.push(NewTask {
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
                    log(
                        Some(step as i64),
                        "deferred",
                        Some("quiet hours"),
                        format!(
                            "SMS held for the contact's quiet hours until {}",
                            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ),
                    );
                    next = RunUpdate {
                        id: run.id,
                        state: "active",
                        step: step as i64 - 1,
                        due: Some(at),
                        outcome: None,
                    };
                }
                Action::Wait { step, at } => {
                    log(
                        Some(step as i64),
                        "waiting",
                        None,
                        format!(
                            "until {}",
                            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ),
                    );
                    next = RunUpdate {
                        id: run.id,
                        state: "active",
                        step: step as i64,
                        due: Some(at),
                        outcome: None,
                    };
                }
                Action::Finish => log(None, "finished", None, "no steps left".into()),
            }
        }
        updates.push(next);
    }
    let written = if messages.is_empty() {
        0
    } else {
        tx.insert_messages(&messages).await?
    };
    tx.update_runs(&updates, now).await?;
    if !tasks.is_empty() {
        tx.insert_tasks(&tasks).await?;
    }
    if !logs.is_empty() {
        tx.insert_logs(&logs).await?;
    }
    if written > 0 {
        tx.notify("pronto_outbox").await?;
    }
    Ok(Fired {
        runs: runs.len(),
        messages: written as usize,
        sent_keys,
        leads: 0,
        quarantined: 0,
    })
}

/// How a step that produced nothing is logged: a template error is a failure to fix, the rest are skips.
fn not_sent(e: &NotSent) -> (&'static str, String) {
    match e {
        NotSent::Template(_) => ("failed", "template error".to_string()),
        other => ("skipped", other.to_string()),
    }
}

fn channel_name(c: pronto_domain::flow::Channel) -> &'static str {
    match c {
        pronto_domain::flow::Channel::Email => "email",
        pronto_domain::flow::Channel::Sms => "sms",
        pronto_domain::flow::Channel::Webhook => "webhook",
    }
}

fn humanize(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// One timer batch in its own transaction; wakes the delivery worker when messages were queued.
pub(crate) async fn fire_batch<B: Begin>(
    db: &B,
    shared: &crate::Shared,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Fired, crate::StoreError> {
    let program = shared.program();
    let mut tx = db.begin().await?;
    let both = async {
        let mut fired = fire(&mut tx, &program, now, limit).await?;
        let (leads, messages) = crate::sales::fire(&mut tx, &program, now, limit).await?;
        fired.leads = leads;
        fired.messages += messages;
        fired.quarantined = tx.bad_rows().len();
        tx.flush_quarantine(now).await?;
        Ok::<_, ItemError>(fired)
    };
    let fired = match both.await {
        Ok(f) => f,
        Err(e) => {
            tx.rollback().await;
            let e = match e {
                ItemError::Store(e) => e,
                ItemError::Conflict => crate::StoreError::Unavailable(
                    "timer batch conflicted with a concurrent writer; retried next round".into(),
                ),
            };
            shared.write_failed(&e);
            return Err(e);
        }
    };
    if let Err(e) = tx.commit().await {
        shared.write_failed(&e);
        return Err(e);
    }
    shared.write_ok();
    if fired.messages > 0 {
        shared.outbox.notify_one();
    }
    Ok(fired)
}
