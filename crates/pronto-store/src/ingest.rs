//! The ingestion algorithm, written once for both backends.
//!
//! Per item, inside the group commit's transaction and a savepoint of its own:
//! 1. a known `message_id` answers with the first delivery's ids (retries are no-ops);
//! 2. the contacts owning the event's identities are loaded and [`pronto_domain::resolve::resolve`] decides;
//! 3. the decision is applied (create, merge, attach), the event appended, traits merged, the lead written.
//!
//! Races between writers (several PostgreSQL writers or processes) surface as a conflict on a unique key;
//! the item's savepoint is rolled back and the item retried, when the other writer's rows are visible.

use crate::{IngestItem, Ingested, LeadRow, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::resolve::{resolve, Known};
use pronto_domain::{ContactId, EventId, Identity, NewEvent, WorkspaceId};
use serde_json::{Map, Value};

/// What an item's attempt ran into.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ItemError {
    /// Another writer took a unique key first; retrying sees its rows.
    #[error("conflict with a concurrent writer")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ItemError {
    fn from(e: sqlx::Error) -> Self {
        let retryable = match &e {
            sqlx::Error::Database(d) => {
                d.is_unique_violation()
                    // PostgreSQL: deadlock_detected, serialization_failure.
                    || matches!(d.code().as_deref(), Some("40P01") | Some("40001"))
            }
            _ => false,
        };
        if retryable {
            Self::Conflict
        } else {
            Self::Store(e.into())
        }
    }
}

/// The primitive statements of one transaction, implemented by each backend with its own SQL.
#[async_trait]
pub(crate) trait IngestTx: Send {
    /// Runs a statement without parameters (savepoints).
    async fn exec(&mut self, sql: &'static str) -> Result<(), sqlx::Error>;
    async fn find_event(
        &mut self,
        ws: WorkspaceId,
        message_id: &str,
    ) -> Result<Option<Ingested>, ItemError>;
    /// Every live contact owning one of `identities`, with all the identities it owns.
    async fn owners(
        &mut self,
        ws: WorkspaceId,
        identities: &[Identity],
    ) -> Result<Vec<Known>, ItemError>;
    async fn insert_contact(
        &mut self,
        ws: WorkspaceId,
        id: ContactId,
        now: DateTime<Utc>,
    ) -> Result<(), ItemError>;
    /// `false` when another contact owns the identity already.
    async fn attach(
        &mut self,
        ws: WorkspaceId,
        contact: ContactId,
        identity: &Identity,
        now: DateTime<Utc>,
    ) -> Result<bool, ItemError>;
    /// Moves `from`'s identities, events and leads to `into`, marks `from` merged and records the merge.
    /// `into`'s traits win over `from`'s.
    async fn merge(
        &mut self,
        ws: WorkspaceId,
        from: ContactId,
        into: ContactId,
        event: EventId,
        now: DateTime<Utc>,
    ) -> Result<(), ItemError>;
    /// `None` when the message id exists already (a concurrent retry).
    async fn insert_event(
        &mut self,
        ws: WorkspaceId,
        id: EventId,
        contact: ContactId,
        event: &NewEvent,
        received_at: DateTime<Utc>,
    ) -> Result<Option<i64>, ItemError>;
    async fn traits(&mut self, contact: ContactId) -> Result<Map<String, Value>, ItemError>;
    async fn set_traits(
        &mut self,
        contact: ContactId,
        traits: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<(), ItemError>;
    async fn insert_lead(
        &mut self,
        ws: WorkspaceId,
        row: &LeadRow<'_>,
        contact: ContactId,
        event: EventId,
        now: DateTime<Utc>,
    ) -> Result<(), ItemError>;
}

/// Shallow merge where `newer` wins; a `null` in `newer` removes the trait (how an identify unsets one).
pub(crate) fn merge_traits(
    mut base: Map<String, Value>,
    newer: &Map<String, Value>,
) -> Map<String, Value> {
    for (k, v) in newer {
        if v.is_null() {
            base.remove(k);
        } else {
            base.insert(k.clone(), v.clone());
        }
    }
    base
}

/// Ingests one item. The caller wraps it in a savepoint and retries on [`ItemError::Conflict`].
pub(crate) async fn ingest_item<T: IngestTx + ?Sized>(
    tx: &mut T,
    ws: WorkspaceId,
    item: &IngestItem,
    received_at: DateTime<Utc>,
) -> Result<Ingested, ItemError> {
    let ev = &item.event;
    if let Some(mid) = &ev.message_id {
        if let Some(first) = tx.find_event(ws, mid).await? {
            return Ok(first);
        }
    }
    let event_id = EventId::new();
    let known = if ev.identities.is_empty() {
        Vec::new()
    } else {
        tx.owners(ws, &ev.identities).await?
    };
    let decision = resolve(&ev.identities, &known);
    let contact = match decision.contact {
        Some(c) => c,
        None => {
            let c = ContactId::new();
            tx.insert_contact(ws, c, received_at).await?;
            c
        }
    };
    for from in &decision.merge {
        tx.merge(ws, *from, contact, event_id, received_at).await?;
    }
    for identity in &decision.attach {
        if !tx.attach(ws, contact, identity, received_at).await? {
            return Err(ItemError::Conflict);
        }
    }
    let Some(seq) = tx
        .insert_event(ws, event_id, contact, ev, received_at)
        .await?
    else {
        return Err(ItemError::Conflict);
    };
    if !ev.traits.is_empty() {
        let merged = merge_traits(tx.traits(contact).await?, &ev.traits);
        tx.set_traits(contact, &merged, received_at).await?;
    }
    let lead_id = match &item.lead {
        Some(lead) => {
            let row = LeadRow::new(lead);
            tx.insert_lead(ws, &row, contact, event_id, received_at)
                .await?;
            Some(row.id)
        }
        None => None,
    };
    Ok(Ingested {
        event_id,
        seq,
        contact_id: contact,
        lead_id,
        duplicate: false,
    })
}

/// How often an item is retried after conflicts before its request fails.
const MAX_ATTEMPTS: usize = 5;

/// Ingests one request's items inside the open transaction, all or none, each attempt in a savepoint so a
/// failed request leaves the other requests of the group untouched.
pub(crate) async fn ingest_request<T: IngestTx + ?Sized>(
    tx: &mut T,
    ws: WorkspaceId,
    items: &[IngestItem],
    received_at: DateTime<Utc>,
) -> Result<Vec<Ingested>, StoreError> {
    tx.exec("SAVEPOINT request").await?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut attempt = 0;
        loop {
            attempt += 1;
            tx.exec("SAVEPOINT item").await?;
            match ingest_item(tx, ws, item, received_at).await {
                Ok(done) => {
                    tx.exec("RELEASE SAVEPOINT item").await?;
                    out.push(done);
                    break;
                }
                Err(ItemError::Conflict) if attempt < MAX_ATTEMPTS => {
                    tx.exec("ROLLBACK TO SAVEPOINT item").await?;
                    tx.exec("RELEASE SAVEPOINT item").await?;
                }
                Err(e) => {
                    tx.exec("ROLLBACK TO SAVEPOINT request").await?;
                    tx.exec("RELEASE SAVEPOINT request").await?;
                    return Err(match e {
                        ItemError::Store(s) => s,
                        ItemError::Conflict => {
                            StoreError::Corrupt("conflict persisted after retries".into())
                        }
                    });
                }
            }
        }
    }
    tx.exec("RELEASE SAVEPOINT request").await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn newer_traits_win_and_null_unsets() {
        let base = json!({"name": "Ann", "plan": "free", "city": "Oslo"});
        let newer = json!({"plan": "pro", "city": null, "age": 3});
        let got = merge_traits(
            base.as_object().unwrap().clone(),
            newer.as_object().unwrap(),
        );
        assert_eq!(
            Value::Object(got),
            json!({"name": "Ann", "plan": "pro", "age": 3})
        );
    }
}
