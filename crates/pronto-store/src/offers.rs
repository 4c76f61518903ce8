//! Offer pools' codes in the store ([`OffersTx`]): added in bulk (a file, `pronto offers generate`;
//! `apply::offers`), claimed by a timer batch for the sends it may make, and marked used with the message that
//! shows each, in the transaction that writes the message (`apply::timers`).
//!
//! Why a code is never given twice: a batch claims unused codes (`message_key IS NULL`; PostgreSQL locks them
//! `FOR UPDATE SKIP LOCKED`, so two processes never claim the same code; SQLite has one writer), and marks
//! the ones it used with their message's key in the same transaction; the unique index on `message_key`
//! gives a message at most one code even if its step fired twice. Codes claimed but not used are only
//! unlocked at commit.

use crate::tx::ItemError;
use crate::OfferStock;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::engine::fire::CodeUse;
use pronto_domain::WorkspaceId;

/// The offer statements each backend implements.
#[async_trait]
pub(crate) trait OffersTx: Send {
    /// Adds codes to a pool; a code already in it is left as it is. Answers how many were new.
    async fn insert_codes(
        &mut self,
        ws: WorkspaceId,
        offer: &str,
        codes: &[String],
        now: DateTime<Utc>,
    ) -> Result<u64, ItemError>;
    /// Up to `limit` unused codes of a pool, held for this transaction.
    async fn claim_codes(
        &mut self,
        ws: WorkspaceId,
        offer: &str,
        limit: i64,
    ) -> Result<Vec<String>, ItemError>;
    /// Marks codes used by their messages; a code already used, or a message that already has one, is left.
    async fn use_codes(&mut self, uses: &[CodeUse], now: DateTime<Utc>) -> Result<u64, ItemError>;
    /// Unused and used codes per pool of the workspace.
    async fn offer_stock(&mut self, ws: WorkspaceId) -> Result<Vec<OfferStock>, ItemError>;
}
