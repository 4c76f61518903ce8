//! The top of the store: each function applies one unit of work end to end — load what it needs in bulk, let
//! the domain decide, write the effects in bulk — over the per-concern statements of the leaves
//! (`contacts`, `flows`, `sales`, `catalog`, `offers`). Nothing below imports this module except the group-commit writer.
//!
//! - [`erase`]: erasing a person (every row of theirs cleaned, their addresses kept as hashes), audited.
//! - [`catalog`]: product changes to a shop's catalog, in their own transaction.
//! - [`ingest`]: one group of requests (inside the writer's transaction).
//! - [`outbox`]: a claim of due messages (less the suppressed), a batch of outcomes with their bounces,
//!   the suppression list's changes.
//! - [`offers`]: codes added to an offer pool, and the pools' stock.
//! - [`retention`]: one batch of old events and messages deleted, oldest first, from a cursor.
//! - [`reports`]: one step of keeping the flows report's counts.
//! - [`timers`]: one timer batch (due runs, then due escalation steps), in its own transaction.

pub(crate) mod catalog;
pub(crate) mod erase;
pub(crate) mod ingest;
pub(crate) mod offers;
pub(crate) mod outbox;
pub(crate) mod reports;
pub(crate) mod retention;
pub(crate) mod timers;

use crate::tx::{Commit, ItemError};
use crate::StoreError;

/// Ends a unit of work's transaction: committed if the work succeeded, rolled back if not.
pub(crate) async fn finish<T: Commit, V>(
    tx: T,
    result: Result<V, ItemError>,
) -> Result<V, StoreError> {
    match result {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            tx.rollback().await;
            Err(e.into_store())
        }
    }
}
