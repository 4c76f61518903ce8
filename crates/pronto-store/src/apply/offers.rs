//! Offer codes added to a pool and the pools' stock, each in a transaction of its own (a timer batch claims
//! and uses codes inside its own, [`crate::apply::timers`]). `crate::offers` has the statements and says why a
//! code is never given twice.

use crate::offers::OffersTx;
use crate::tx::{Commit, ItemError};
use crate::writer::Begin;
use crate::{OfferStock, StoreError};
use chrono::{DateTime, Utc};
use pronto_domain::WorkspaceId;

/// Codes per insert statement when adding many.
const CHUNK: usize = 5_000;

/// Adds `codes` to a pool in one transaction.
pub(crate) async fn add_codes<B: Begin>(
    db: &B,
    ws: WorkspaceId,
    offer: &str,
    codes: &[String],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut tx = db.begin().await?;
    let mut added = 0;
    for chunk in codes.chunks(CHUNK) {
        match tx.insert_codes(ws, offer, chunk, now).await {
            Ok(n) => added += n,
            Err(e) => {
                tx.rollback().await;
                return Err(e.into_store());
            }
        }
    }
    tx.commit().await?;
    Ok(added)
}

/// The pools' stock, read in a transaction of its own.
pub(crate) async fn stock<B: Begin>(
    db: &B,
    ws: WorkspaceId,
) -> Result<Vec<OfferStock>, StoreError> {
    let mut tx = db.begin().await?;
    let got = tx.offer_stock(ws).await;
    tx.rollback().await;
    got.map_err(ItemError::into_store)
}
