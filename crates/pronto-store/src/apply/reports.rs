//! Keeping the flows report's counts (`crate::reports` says what is kept and why it stays exact): a step
//! ([`fold`]) reads the runs changed since the cursor, lets the domain re-count them and writes the counts,
//! in one transaction; a look ([`look`]) does the same reading and re-counting in a read-only snapshot and
//! answers the counts instead of writing them, so a page can be exact as of now without waiting for the
//! writer (on SQLite the one writer may be busy for seconds: a timer batch, a burst of deliveries).

use crate::reports::{rules_key, Bucket, Changed, Reading, ReportsTx, Runs};
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
    let mut cursor = tx.report_cursor(Reading::Step).await?;
    if cursor.rules != key {
        cursor = tx.reset_reports(&key).await?;
    }
    let changed = tx.changed_runs(&cursor, batch, Reading::Step).await?;
    let (summaries, counts) = recount_changed(tx, rules, &changed).await?;
    if summaries.is_empty() && changed.next == cursor {
        return Ok(Folded::default());
    }
    tx.write_counts(&summaries, &counts, &changed.next).await?;
    Ok(Folded {
        runs: changed.runs.len(),
        more: changed.more,
    })
}

/// The kept counts of every bucket the runs changed since the cursor fall in, re-counted as they would be
/// by the next step, read in `tx` (a read-only snapshot) and not written. `None` when the counts were made
/// with other rules (a step starts them again) or when more than about `batch` rows of a table wait (too
/// many to re-count for one page: the steps catch up).
pub(crate) async fn look<T: ReportsTx>(
    tx: &mut T,
    rules: &[ConversionRule],
    batch: i64,
) -> Result<Option<Vec<(Bucket, Counts)>>, ItemError> {
    let cursor = tx.report_cursor(Reading::Look).await?;
    if cursor.rules != rules_key(rules) {
        return Ok(None);
    }
    let changed = tx.changed_runs(&cursor, batch, Reading::Look).await?;
    if changed.more {
        return Ok(None);
    }
    Ok(Some(recount_changed(tx, rules, &changed).await?.1))
}

/// The changed runs' new summaries (those that differ from what they were counted as) and the new counts of
/// the buckets they fall in.
type Recounted = (
    Vec<(pronto_domain::RunId, RunSummary)>,
    Vec<(Bucket, Counts)>,
);

async fn recount_changed<T: ReportsTx>(
    tx: &mut T,
    rules: &[ConversionRule],
    changed: &Changed,
) -> Result<Recounted, ItemError> {
    if changed.runs.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let outcomes = tx.run_outcomes(Runs::Ids(&changed.runs), rules).await?;
    let mut was: HashMap<_, RunSummary> =
        tx.run_summaries(&changed.runs).await?.into_iter().collect();
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
    Ok((summaries, counts))
}
