//! One step of keeping the flows report's counts (`crate::reports` says what is kept and why it stays
//! exact): read the runs changed since the cursor, let the domain re-count them, write the counts, in one
//! transaction.

use crate::reports::{rules_key, Bucket, ReportsTx, Runs};
use crate::tx::{Commit, ItemError};
use crate::writer::Begin;
use crate::StoreError;
use pronto_domain::experiment::results::{
    hour_of, recount, BucketKey, ConversionRule, Counts, Recount, RunSummary,
};
use std::collections::{BTreeMap, HashMap};

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folded {
    /// Runs re-read.
    pub runs: usize,
    /// Rows are left for another step.
    pub more: bool,
}

/// Re-counts the runs changed since the cursor (reading at most about `batch` rows of each table), in one
/// transaction. Counts made with other conversion rules are dropped and made again from the start.
pub(crate) async fn fold<B: Begin>(
    db: &B,
    rules: &[ConversionRule],
    batch: i64,
) -> Result<Folded, StoreError> {
    let mut tx = db.begin().await?;
    match fold_in(&mut tx, rules, batch).await {
        Ok(f) => {
            tx.commit().await?;
            Ok(f)
        }
        Err(e) => {
            tx.rollback().await;
            Err(e.into_store())
        }
    }
}

async fn fold_in<T: ReportsTx>(
    tx: &mut T,
    rules: &[ConversionRule],
    batch: i64,
) -> Result<Folded, ItemError> {
    let key = rules_key(rules);
    let mut cursor = tx.report_cursor().await?;
    if cursor.rules != key {
        cursor = tx.reset_reports(&key).await?;
    }
    let changed = tx.changed_runs(&cursor, batch).await?;
    let outcomes = if changed.runs.is_empty() {
        Vec::new()
    } else {
        tx.run_outcomes(Runs::Ids(&changed.runs), rules).await?
    };
    let mut was: HashMap<_, RunSummary> = if changed.runs.is_empty() {
        HashMap::new()
    } else {
        tx.run_summaries(&changed.runs).await?.into_iter().collect()
    };
    // A run whose summary did not change is left out: its counts and summary stay as they are.
    let (ids, runs): (Vec<pronto_domain::RunId>, Vec<Recount<Bucket>>) = outcomes
        .iter()
        .map(|o| {
            let bucket = (
                o.workspace,
                BucketKey {
                    flow: o.outcome.flow.clone(),
                    experiment: o.outcome.experiment.clone(),
                    hour: hour_of(o.started),
                },
            );
            (
                o.run,
                Recount {
                    bucket,
                    was: was.remove(&o.run),
                    now: RunSummary::of(&o.outcome),
                },
            )
        })
        .filter(|(_, r)| r.was.as_ref() != Some(&r.now))
        .unzip();
    let mut buckets: Vec<Bucket> = runs.iter().map(|r| r.bucket.clone()).collect();
    buckets.sort();
    buckets.dedup();
    let loaded: BTreeMap<Bucket, Counts> = if buckets.is_empty() {
        BTreeMap::new()
    } else {
        tx.bucket_counts(&buckets).await?.into_iter().collect()
    };
    let counts: Vec<(Bucket, Counts)> = recount(loaded, &runs).into_iter().collect();
    let summaries: Vec<(pronto_domain::RunId, RunSummary)> = ids
        .into_iter()
        .zip(runs.into_iter().map(|r| r.now))
        .collect();
    if summaries.is_empty() && changed.next == cursor {
        return Ok(Folded::default());
    }
    tx.write_counts(&summaries, &counts, &changed.next).await?;
    Ok(Folded {
        runs: changed.runs.len(),
        more: changed.more,
    })
}
