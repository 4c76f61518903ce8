//! One timer batch, in its own transaction ([`fire_batch`]): the due runs of flows ([`fire`]), then the due
//! escalation steps of leads ([`crate::sales::fire`]).
//!
//! A batch of due runs is claimed (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several processes share the work
//! and never take the same run) and what the guard needs is read in the same transaction that writes the
//! outbox: the exit marks for the runs' keys and contacts, the contacts' consent, the frequency cap's counts.
//! `pronto_domain::engine::fire` decides (the guard, the cap, the SMS skip rule, call tasks); only its
//! effects are written here (unique idempotency key per run and step). `crate::flows` says why this is
//! race-free.

use crate::flows::FlowTx;
use crate::tx::{Commit, ItemError};
use crate::writer::Begin;
use chrono::{DateTime, Utc};
use pronto_domain::engine::{self, fire::Loaded};
use pronto_domain::program::Program;
use pronto_domain::ContactId;

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
    /// The workspaces whose offer pools this batch drew codes from (their stock is worth a look).
    pub code_workspaces: Vec<pronto_domain::WorkspaceId>,
    /// When the next timer falls due, as the batch's transaction saw it after firing (its own new timers
    /// included); `None`: nothing is scheduled. A scheduler sleeps until then (or until it is rung) without
    /// asking again, as mini-redis's `purge_expired_keys` answers its next expiry.
    pub next_due: Option<DateTime<Utc>>,
}

/// Fires up to `limit` due runs inside the open transaction: claims them, loads what
/// [`engine::fire::fire`] needs (marks, recipients, the cap's counts, the leads of cadence runs, the catalog
/// for recommendations, unused offer codes; a fixed number of statements, but one per contact whose cadence
/// run names no lead, seven per shop whose carts show recommendations and one per offer pool the sends may
/// draw from), and writes the effects it decides (the codes given marked used with their messages).
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
    let mut loaded = Loaded::default();
    for (run, m) in tx.marks_for(&runs).await? {
        loaded.marks.entry(run).or_default().push(m);
    }
    let mut contacts: Vec<ContactId> = runs.iter().map(|r| r.contact).collect();
    contacts.sort();
    contacts.dedup();
    loaded.recipients = tx
        .recipients(&contacts)
        .await?
        .into_iter()
        .map(|f| (f.asked, f))
        .collect();
    let wanted = engine::fire::wanted(program, &runs, &loaded.recipients, now);
    if let Some(since) = wanted.sent_since {
        let mut live: Vec<ContactId> = loaded.recipients.values().map(|f| f.live).collect();
        live.sort();
        live.dedup();
        loaded.sent = tx.sent_counts(&live, since).await?.into_iter().collect();
    }
    if !wanted.leads.is_empty() {
        loaded.leads = tx
            .leads(&wanted.leads)
            .await?
            .iter()
            .map(|l| (l.id, l.into()))
            .collect();
    }
    for (ws, shop, items) in wanted.catalogs {
        let related = crate::catalog::related(tx, ws, &shop, &items).await?;
        loaded.catalogs.insert((ws, shop), related);
    }
    let mut code_workspaces: Vec<_> = wanted.codes.iter().map(|c| c.0).collect();
    code_workspaces.sort();
    code_workspaces.dedup();
    for (ws, pool, n) in wanted.codes {
        let codes = tx.claim_codes(ws, &pool, n as i64).await?;
        loaded.codes.insert((ws, pool), codes);
    }
    for (ws, contact) in wanted.latest {
        if let Some(l) = tx.latest_lead(ws, contact, None).await? {
            loaded.latest.insert(contact, (&l).into());
        }
    }

    let n = runs.len();
    let fx = engine::fire::fire(program, runs, loaded, now);
    let written = if fx.messages.is_empty() {
        0
    } else {
        tx.insert_messages(&fx.messages).await?
    };
    if !fx.codes.is_empty() {
        tx.use_codes(&fx.codes, now).await?;
    }
    tx.update_runs(&fx.updates, now).await?;
    if !fx.tasks.is_empty() {
        tx.insert_tasks(&fx.tasks).await?;
    }
    if !fx.logs.is_empty() {
        tx.insert_logs(&fx.logs).await?;
    }
    if written > 0 {
        tx.notify("pronto_outbox", "").await?;
    }
    Ok(Fired {
        runs: n,
        messages: written as usize,
        sent_keys: fx.sent_keys,
        leads: 0,
        quarantined: 0,
        code_workspaces,
        next_due: None,
    })
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
        fired.next_due = tx.next_due().await?;
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
