//! Contacts, identities and events: the statements a backend implements for them ([`IngestTx`]) and the
//! small helpers both backends share (grouping owner rows, merging traits, merging two contacts). The
//! ingestion algorithm that drives them is [`crate::apply::ingest`].

use crate::tx::ItemError;
use crate::{Ingested, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::resolve::Known;
use pronto_domain::{ContactId, EventId, Identity, NewEvent, WorkspaceId};
use serde_json::{Map, Value};

/// An event row for a bulk insert.
pub(crate) struct EventRow<'a> {
    pub id: EventId,
    pub contact: ContactId,
    pub event: &'a NewEvent,
    pub received_at: DateTime<Utc>,
}

/// The statements of one transaction, implemented by each backend with its own SQL. The bulk ones take any
/// number of rows in one statement.
#[async_trait]
pub(crate) trait IngestTx: crate::sales::SalesTx + Send {
    /// Runs a statement without parameters (savepoints).
    async fn exec(&mut self, sql: &'static str) -> Result<(), sqlx::Error>;
    /// Events already stored under any of these `(dedupe scope, message id)` pairs (scope `""`: the Segment
    /// `messageId`), by pair.
    async fn find_events(
        &mut self,
        ws: WorkspaceId,
        keys: &[(&str, &str)],
    ) -> Result<Vec<((String, String), Ingested)>, ItemError>;
    /// Every live contact owning one of `identities`, with all the identities it owns.
    async fn owners(
        &mut self,
        ws: WorkspaceId,
        identities: &[&Identity],
    ) -> Result<Vec<Known>, ItemError>;
    async fn insert_contacts(
        &mut self,
        ws: WorkspaceId,
        ids: &[ContactId],
        now: DateTime<Utc>,
    ) -> Result<(), ItemError>;
    /// How many rows were written; fewer than given means another contact owns one of them already.
    async fn insert_identities(
        &mut self,
        ws: WorkspaceId,
        rows: &[(ContactId, &Identity)],
        now: DateTime<Utc>,
    ) -> Result<u64, ItemError>;
    /// The `(id, seq)` of each row written; a row missing from the answer hit an existing message id.
    async fn insert_events(
        &mut self,
        ws: WorkspaceId,
        rows: &[EventRow<'_>],
    ) -> Result<Vec<(EventId, i64)>, ItemError>;
    /// Moves `from`'s identities, events and leads to `into` and marks `from` (and whatever was merged into it)
    /// merged into `into`.
    async fn move_contact(&mut self, from: ContactId, into: ContactId) -> Result<(), ItemError>;
    async fn record_merge(
        &mut self,
        ws: WorkspaceId,
        from: ContactId,
        into: ContactId,
        event: EventId,
        now: DateTime<Utc>,
    ) -> Result<(), ItemError>;
    /// The traits of each of `contacts`, by contact.
    async fn traits_of(
        &mut self,
        contacts: &[ContactId],
    ) -> Result<Vec<(ContactId, Map<String, Value>)>, ItemError>;
    /// Replaces the traits of each contact, as of its time.
    async fn set_traits_of(
        &mut self,
        rows: &[(ContactId, &Map<String, Value>, DateTime<Utc>)],
    ) -> Result<(), ItemError>;
    async fn traits(&mut self, contact: ContactId) -> Result<Map<String, Value>, ItemError> {
        self.traits_of(&[contact])
            .await?
            .pop()
            .map(|(_, t)| t)
            .ok_or_else(|| StoreError::Corrupt(format!("contact {contact} is missing")).into())
    }
    async fn set_traits(
        &mut self,
        contact: ContactId,
        traits: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<(), ItemError> {
        self.set_traits_of(&[(contact, traits, now)]).await
    }
}

/// Groups `(contact, kind, value)` rows, as both backends' owner queries return them, into contacts.
pub(crate) fn group_owners(
    rows: Vec<(ContactId, String, String)>,
) -> Result<Vec<Known>, StoreError> {
    let mut known: Vec<Known> = Vec::new();
    for (id, kind, value) in rows {
        let identity = Identity {
            kind: kind.parse().map_err(StoreError::Corrupt)?,
            value,
        };
        match known.iter_mut().find(|k| k.id == id) {
            Some(k) => k.identities.push(identity),
            None => known.push(Known {
                id,
                identities: vec![identity],
            }),
        }
    }
    Ok(known)
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

/// Merges `from` into `into`: rows move, `into`'s traits win over `from`'s, and the merge is recorded.
pub(crate) async fn merge<T: IngestTx + ?Sized>(
    tx: &mut T,
    ws: WorkspaceId,
    from: ContactId,
    into: ContactId,
    event: EventId,
    now: DateTime<Utc>,
) -> Result<(), ItemError> {
    tx.move_contact(from, into).await?;
    let older = tx.traits(from).await?;
    let merged = merge_traits(older, &tx.traits(into).await?);
    tx.set_traits(into, &merged, now).await?;
    tx.record_merge(ws, from, into, event, now).await
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
