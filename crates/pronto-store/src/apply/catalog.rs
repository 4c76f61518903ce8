//! Product changes applied to a shop's catalog in one transaction, and the related products a cart would be
//! shown, read for tools and tests (a timer batch reads them inside its own transaction,
//! [`crate::apply::timers`]). `crate::catalog` has the statements and says how they are used.

use crate::catalog::CatalogTx;
use crate::tx::{Commit, ItemError};
use crate::writer::Begin;
use crate::StoreError;
use chrono::{DateTime, Utc};
use pronto_domain::catalog::{self, Applied, Change, Related};
use pronto_domain::WorkspaceId;
use std::collections::HashMap;

/// Applies `changes` to the catalog of `shop` in one transaction.
pub(crate) async fn apply_changes<B: Begin>(
    db: &B,
    ws: WorkspaceId,
    shop: &str,
    changes: &[Change],
) -> Result<Applied, StoreError> {
    let mut tx = db.begin().await?;
    match apply(&mut tx, ws, shop, changes).await {
        Ok(done) => {
            tx.commit().await?;
            Ok(done)
        }
        Err(e) => {
            tx.rollback().await;
            Err(e.into_store())
        }
    }
}

/// What [`crate::catalog::related`] loads for `items`, in a transaction of its own.
pub(crate) async fn related<B: Begin>(
    db: &B,
    ws: WorkspaceId,
    shop: &str,
    items: &[String],
) -> Result<Related, StoreError> {
    let mut tx = db.begin().await?;
    let got = crate::catalog::related(&mut tx, ws, shop, items).await;
    tx.rollback().await;
    got.map_err(ItemError::into_store)
}

/// Applies product changes inside the open transaction.
async fn apply<T: CatalogTx + ?Sized>(
    tx: &mut T,
    ws: WorkspaceId,
    shop: &str,
    changes: &[Change],
) -> Result<Applied, ItemError> {
    let mut keys: Vec<&str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Upsert(p) => Some(p.key.as_str()),
            Change::Delete { .. } => None,
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let stored: HashMap<String, DateTime<Utc>> = if keys.is_empty() {
        HashMap::new()
    } else {
        tx.product_versions(ws, shop, &keys)
            .await?
            .into_iter()
            .collect()
    };
    let upserts = catalog::newer(changes, &stored);
    let upserts_asked = changes
        .iter()
        .filter(|c| matches!(c, Change::Upsert(_)))
        .count();
    if !upserts.is_empty() {
        tx.upsert_products(ws, shop, &upserts).await?;
    }
    let (mut del_keys, mut del_ids): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for c in changes {
        if let Change::Delete { key, product_id } = c {
            del_keys.extend(key.as_deref());
            del_ids.extend(product_id.as_deref());
        }
    }
    let deleted = if del_keys.is_empty() && del_ids.is_empty() {
        0
    } else {
        tx.delete_products(ws, shop, &del_keys, &del_ids).await?
    };
    Ok(Applied {
        upserted: upserts.len(),
        deleted: deleted as usize,
        stale: upserts_asked - upserts.len(),
    })
}
