//! Transaction types shared by every part of the store, at the bottom: what an attempt ran into
//! ([`ItemError`]), what a write touched ([`Touched`]), the outbox and quarantine rows every concern writes,
//! a queued group-commit request ([`Job`]) and how a transaction ends ([`Commit`]). Nothing here imports a
//! module of this crate other than the crate root's answer types, so every other module may import it.

use crate::{IngestItem, Ingested, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::WorkspaceId;
use tokio::sync::oneshot;

/// What an attempt at a group ran into.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ItemError {
    /// Another writer took a unique key first; redoing the group sees its rows.
    #[error("conflict with a concurrent writer")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ItemError {
    /// As the store's error, for work that is not redone on a conflict (one that persists is "unavailable").
    pub(crate) fn into_store(self) -> StoreError {
        match self {
            Self::Store(e) => e,
            Self::Conflict => {
                StoreError::Unavailable("a concurrent writer took the same rows; retry".into())
            }
        }
    }
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

impl From<ItemError> for StoreError {
    fn from(e: ItemError) -> Self {
        match e {
            ItemError::Store(e) => e,
            ItemError::Conflict => {
                StoreError::Unavailable("conflict with a concurrent writer; retry".into())
            }
        }
    }
}

/// What an ingest did to flows, so the writer can wake the scheduler.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Touched {
    /// A timer was set: the earliest due time among those set. (Timers moved later or cleared need no wake:
    /// the scheduler, waking at the old time, finds nothing due and reads the next.)
    pub timers: Option<DateTime<Utc>>,
    /// Messages were queued (rep alerts, acknowledgements).
    pub outbox: bool,
}

impl Touched {
    /// Both writes' wake-ups.
    pub fn and(self, other: Touched) -> Touched {
        Touched {
            timers: match (self.timers, other.timers) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            outbox: self.outbox || other.outbox,
        }
    }
}

/// The `NOTIFY pronto_timers` payload: the earliest due time set, so a listener's scheduler that sleeps
/// toward an earlier one need not look.
pub(crate) fn timers_payload(at: DateTime<Utc>) -> String {
    at.timestamp_millis().to_string()
}

/// A message to write to the outbox, as a decision left it.
pub(crate) use pronto_domain::message::Outgoing as MessageRow;

/// A row a transaction read and could not decode: treated as absent, then set aside with its reason
/// ([`FlowTx::flush_quarantine`]) so no batch meets it again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct BadRow {
    /// `run`, `lead` or `message`.
    pub kind: &'static str,
    /// The row's id as stored.
    pub id: String,
    /// Its workspace, when that column could be read.
    pub workspace: Option<String>,
    pub reason: String,
}

/// A request queued for the group commit.
pub(crate) struct Job {
    pub workspace: WorkspaceId,
    pub items: Vec<IngestItem>,
    pub received_at: DateTime<Utc>,
    pub reply: oneshot::Sender<Result<Vec<Ingested>, StoreError>>,
}

/// Ends a transaction. Both leave the connection ready for the next transaction whatever the database did
/// (a failed commit is rolled back), so one failure never poisons the writers that come after it.
#[async_trait]
pub(crate) trait Commit: Send {
    async fn commit(self) -> Result<(), StoreError>;
    async fn rollback(self);
}
