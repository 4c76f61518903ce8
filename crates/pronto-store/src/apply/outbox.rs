//! The outbox's units of work, each in one transaction: a claim (due messages, less those whose address
//! is listed, which become `suppressed`), a batch of outcomes (with the bounces they carry listed or
//! counted), and changes to the suppression list. `pronto_domain::suppression` decides which message is
//! skipped, which entry wins and when soft bounces list an address; `crate::outbox` has the statements.

use super::finish;
use crate::outbox::{KeyedTable, ListKey, OutboxTx};
use crate::tx::ItemError;
use crate::writer::Begin;
use crate::{hour_of, Bounce, Delivery, OutMessage, StoreError, SuppressionQuery};
use chrono::{DateTime, Utc};
use pronto_domain::suppression::{self, Medium, SoftBounces, Suppression, Verdict};
use pronto_domain::{MessageId, WorkspaceId};
use std::collections::HashMap;

/// The entries listed under `keys`, by key.
async fn listed<T: OutboxTx>(
    tx: &mut T,
    keys: Vec<ListKey>,
) -> Result<HashMap<ListKey, Suppression>, ItemError> {
    let mut keys = keys;
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(tx
        .listed(&keys)
        .await?
        .into_iter()
        .map(|(ws, s)| ((ws, s.medium, s.address.clone()), s))
        .collect())
}

/// Claims due messages; those whose address is listed are marked `suppressed` instead of answered.
pub(crate) async fn claim<B: Begin>(
    db: &B,
    now: DateTime<Utc>,
    limit: i64,
    lease_until: DateTime<Utc>,
) -> Result<Vec<OutMessage>, StoreError> {
    let mut tx = db.begin().await?;
    let result = claim_in(&mut tx, now, limit, lease_until).await;
    finish(tx, result).await
}

async fn claim_in<T: OutboxTx>(
    tx: &mut T,
    now: DateTime<Utc>,
    limit: i64,
    lease_until: DateTime<Utc>,
) -> Result<Vec<OutMessage>, ItemError> {
    let claimed = tx.claim_messages_due(now, limit, lease_until).await?;
    // Each address is looked up as itself and hashed (an erased person stays listed by the hash alone).
    let keys = claimed
        .iter()
        .filter_map(|m| suppression::key_of(&m.channel, &m.to).map(|(md, a)| (m.workspace, md, a)))
        .flat_map(|(ws, md, a)| {
            let hash = suppression::hashed(&a);
            [(ws, md, a), (ws, md, hash)]
        })
        .collect();
    let listed = listed(tx, keys).await?;
    if listed.is_empty() {
        return Ok(claimed);
    }
    let skip = suppression::suppressed(
        claimed
            .iter()
            .map(|m| (&m.workspace, m.channel.as_str(), m.to.as_str())),
        &listed,
        now,
    );
    let mut marks = Vec::new();
    let mut send = Vec::with_capacity(claimed.len());
    for (m, why) in claimed.into_iter().zip(skip) {
        match why {
            Some(why) => marks.push((m.id, why)),
            None => send.push(m),
        }
    }
    if !marks.is_empty() {
        tx.mark_suppressed(&marks).await?;
    }
    Ok(send)
}

/// Records outcomes and what their bounces say about the addresses.
pub(crate) async fn record<B: Begin>(
    db: &B,
    outcomes: &[(MessageId, Delivery)],
    now: DateTime<Utc>,
    policy: SoftBounces,
) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    let result = record_in(&mut tx, outcomes, now, policy).await;
    finish(tx, result).await
}

async fn record_in<T: OutboxTx>(
    tx: &mut T,
    outcomes: &[(MessageId, Delivery)],
    now: DateTime<Utc>,
    policy: SoftBounces,
) -> Result<(), ItemError> {
    tx.record_outcomes(outcomes, now).await?;
    let sent: Vec<(Option<WorkspaceId>, Option<MessageId>, &'static str)> = outcomes
        .iter()
        .filter(|(_, d)| matches!(d, Delivery::Sent { .. }))
        .map(|(id, _)| (None, Some(*id), "sent"))
        .collect();
    if !sent.is_empty() {
        tx.count_deliveries(&sent, hour_of(now)).await?;
    }
    let bounces: Vec<&Bounce> = outcomes
        .iter()
        .filter_map(|(_, d)| match d {
            Delivery::Failed {
                bounce: Some(b), ..
            } => Some(b),
            _ => None,
        })
        .collect();
    bounces_in(tx, &bounces, now, policy).await
}

/// Bounces learnt elsewhere (a delivery status notification, a feedback report), in one transaction.
pub(crate) async fn bounces<B: Begin>(
    db: &B,
    bounces: &[Bounce],
    now: DateTime<Utc>,
    policy: SoftBounces,
) -> Result<(), StoreError> {
    let refs: Vec<&Bounce> = bounces.iter().collect();
    let mut tx = db.begin().await?;
    let result = bounces_in(&mut tx, &refs, now, policy).await;
    finish(tx, result).await
}

/// Lists what the bounces say to list, and counts their soft bounces (listing those past the rule).
async fn bounces_in<T: OutboxTx>(
    tx: &mut T,
    bounces: &[&Bounce],
    now: DateTime<Utc>,
    policy: SoftBounces,
) -> Result<(), ItemError> {
    if bounces.is_empty() {
        return Ok(());
    }
    let counted: Vec<(Option<WorkspaceId>, Option<MessageId>, &'static str)> = bounces
        .iter()
        .filter(|b| b.medium == Medium::Email)
        .filter_map(|b| Some((Some(b.workspace), b.message, b.verdict.counted_as()?)))
        .collect();
    if !counted.is_empty() {
        tx.count_deliveries(&counted, hour_of(now)).await?;
    }
    let key = |b: &Bounce| (b.workspace, b.medium, b.address.clone());
    let mut entries: Vec<(WorkspaceId, Suppression)> = Vec::new();
    let mut soft: Vec<(ListKey, String)> = Vec::new();
    for b in bounces {
        match &b.verdict {
            Verdict::Suppress { reason, detail } => entries.push((
                b.workspace,
                Suppression {
                    medium: b.medium,
                    address: b.address.clone(),
                    reason: *reason,
                    source: b.source.into(),
                    detail: Some(detail.clone()),
                    since: now,
                    until: None,
                },
            )),
            Verdict::SoftBounce { detail } => soft.push((key(b), detail.clone())),
            Verdict::Keep => {}
        }
    }
    if !soft.is_empty() {
        let last: HashMap<&ListKey, &str> = soft.iter().map(|(k, d)| (k, d.as_str())).collect();
        for ((ws, medium, address), count) in
            tx.soft_bounces(&soft, now, now - policy.within).await?
        {
            let detail = last
                .get(&(ws, medium, address.clone()))
                .copied()
                .unwrap_or("");
            let n = u32::try_from(count).unwrap_or(u32::MAX);
            if let Some(s) = policy.suppression(medium, &address, n, detail, now) {
                entries.push((ws, s));
            }
        }
    }
    put(tx, entries).await.map(|_| ())
}

/// Writes entries where `suppression::merge` says they replace what is listed; answers how many.
async fn put<T: OutboxTx>(
    tx: &mut T,
    entries: Vec<(WorkspaceId, Suppression)>,
) -> Result<u64, ItemError> {
    if entries.is_empty() {
        return Ok(0);
    }
    let listed = listed(
        tx,
        entries
            .iter()
            .map(|(ws, s)| (*ws, s.medium, s.address.clone()))
            .collect(),
    )
    .await?;
    // One entry per key: the last given of a batch that names a key twice.
    let mut by_key: HashMap<ListKey, (WorkspaceId, Suppression)> = HashMap::new();
    for (ws, s) in entries {
        by_key.insert((ws, s.medium, s.address.clone()), (ws, s));
    }
    let rows: Vec<(WorkspaceId, Suppression)> = by_key
        .into_iter()
        .filter_map(|(k, (ws, s))| suppression::merge(listed.get(&k), s).map(|s| (ws, s)))
        .collect();
    if !rows.is_empty() {
        tx.put_suppressions(&rows).await?;
    }
    Ok(rows.len() as u64)
}

/// Lists entries given by an admin (API, CSV, CLI).
pub(crate) async fn suppress<B: Begin>(
    db: &B,
    ws: WorkspaceId,
    entries: &[Suppression],
) -> Result<u64, StoreError> {
    let rows: Vec<(WorkspaceId, Suppression)> = entries.iter().map(|s| (ws, s.clone())).collect();
    let mut tx = db.begin().await?;
    let result = put(&mut tx, rows).await;
    finish(tx, result).await
}

/// A workspace's entries.
pub(crate) async fn list<B: Begin>(
    db: &B,
    ws: WorkspaceId,
    query: &SuppressionQuery,
) -> Result<Vec<Suppression>, StoreError> {
    let mut tx = db.begin().await?;
    let result = tx
        .list_suppressions(ws, query)
        .await
        .map(|rows| rows.into_iter().map(|(_, s)| s).collect());
    finish(tx, result).await
}

/// Takes an address off the list.
pub(crate) async fn unsuppress<B: Begin>(
    db: &B,
    ws: WorkspaceId,
    medium: Medium,
    address: &str,
) -> Result<bool, StoreError> {
    let key = (ws, medium, address.to_string());
    let mut tx = db.begin().await?;
    let result = remove(&mut tx, &key).await;
    finish(tx, result).await
}

/// An entry and the key's soft bounces gone; whether an entry was there.
async fn remove<T: OutboxTx>(tx: &mut T, key: &ListKey) -> Result<bool, ItemError> {
    let listed = tx.delete_key(KeyedTable::Suppressions, key).await?;
    tx.delete_key(KeyedTable::SoftBounces, key).await?;
    Ok(listed > 0)
}
