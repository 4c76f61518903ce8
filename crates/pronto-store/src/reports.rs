//! Every flow's run counts in the store ([`ReportsTx`]), kept up to date by `apply::reports` so that the
//! flows report and the owner's recovery page over any period sum per-hour counts instead of reading every
//! run (1,000,000 runs: seconds to read, milliseconds to sum).
//!
//! **What is kept.** Per run, the summary it is counted as (`run_summaries`); per workspace, hour of the
//! runs' start, flow and experiment (`""` for a run outside any experiment, as [`RunsOf::EveryFlow`] reads
//! it), the sum of those summaries (`report_counts`); and a cursor:
//! how far runs, messages, clicks and exit marks have been read, and the conversion rules the counts were
//! made with.
//!
//! **How it stays exact.** A run's summary changes only when a row about it is inserted: the run itself, a
//! message, a click on one, an exit mark of its flow (rows are never updated in a way that matters, nor
//! deleted). A step reads the rows inserted since the cursor, re-reads every run they name from scratch, takes
//! back its old summary and adds the new one (`pronto_domain::experiment::results::recount`), and moves the
//! cursor, in one transaction. Re-reading a run twice changes nothing, so a step may overlap another.
//! "Since the cursor" must not miss a row that commits late: SQLite has one writer, so rowids are in commit
//! order; PostgreSQL rows carry the id of the transaction that inserted them (a run: that last
//! changed it, which is also the one that wrote its messages), and a step reads every row it
//! can see from the cursor on but moves the cursor only up to the oldest transaction still running, so a
//! transaction that commits late is read by a later step. (So a step is exact as of its start unless more
//! than a batch of rows sit above a transaction still running; those are read as soon as it ends.)
//! A contact merge moves runs and exit marks to one contact without inserting a row, so it lists the
//! contact's runs in `report_dirty`, which the next step re-reads and empties.
//! The cursor row is locked for the step, so two processes never count one change twice. Changed conversion
//! rules (a flow's `conversion`) start the counts again from nothing.
//!
//! **Starting again.** The counts then read every run once, in the runs' own order, and the other tables only
//! from where they end at the reset: a run read after the reset is read whole (its messages, clicks and marks
//! as they are then), and a row inserted after the reset names its run again as always. (Walking the other
//! tables too re-read each run once per message and mark: on a file of 1.45 million runs, 5 million messages
//! and 1.8 million marks, steps of 10,000 rows went at about 2,100 rows a second, some 40 minutes; reading
//! each run once took 120 s.)

use crate::tx::ItemError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::experiment::results::{
    BucketKey, ConversionRule, Counts, RunOutcome, RunSummary,
};
use pronto_domain::{RunId, WorkspaceId};

/// How far the counts have read each table: the next rowid (SQLite) or transaction id (PostgreSQL, which
/// reads no messages table and leaves `messages` at 0) to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The conversion rules the counts were made with ([`rules_key`]).
    pub rules: String,
    pub runs: i64,
    pub messages: i64,
    pub clicks: i64,
    pub marks: i64,
}

/// What the counts cover, ahead of the rules in the cursor's key: counts kept before every flow's runs were
/// (experiments' only, with a key of the rules alone) are made again.
const COVERS: &str = "every flow\u{1d}";

/// The conversion rules as the cursor keeps them, after [`COVERS`]: counts made with other rules are made
/// again.
pub(crate) fn rules_key(rules: &[ConversionRule]) -> String {
    let mut v: Vec<String> = rules
        .iter()
        .map(|r| format!("{}\u{1f}{}\u{1f}{}", r.flow, r.event, r.within_secs))
        .collect();
    v.sort();
    format!("{COVERS}{}", v.join("\u{1e}"))
}

/// The statement that writes the cursor (`p`: the backend's placeholder); binds: rules, runs, messages,
/// clicks, marks.
pub(crate) fn put_cursor_sql(p: impl Fn(usize) -> String) -> String {
    format!(
        "UPDATE report_cursor SET rules = {}, runs = {}, messages = {}, clicks = {}, marks = {} WHERE id = 1",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5)
    )
}

/// The runs rows since the cursor name, and the cursor past those rows.
#[derive(Debug)]
pub(crate) struct Changed {
    pub runs: Vec<RunId>,
    pub next: Cursor,
    /// A table had more rows than one step reads.
    pub more: bool,
}

/// A run as read, with what places it in the counts.
#[derive(Debug, Clone)]
pub(crate) struct OutcomeRow {
    pub run: RunId,
    pub workspace: WorkspaceId,
    pub started: DateTime<Utc>,
    pub outcome: RunOutcome,
}

/// Whose runs [`Store::run_outcomes`](crate::Store::run_outcomes) reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunsOf {
    /// The flows' experiments' (what the flows report counts).
    Experiments,
    /// Every flow's (the owner's recovery page).
    EveryFlow,
}

/// Which runs' outcomes to read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Runs<'a> {
    /// Of one workspace, started in `[from, to)`: experiments' runs only, or (`every_flow`) every run, those
    /// of a flow without an experiment read as experiment `""`, group `treatment`.
    Started {
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        every_flow: bool,
    },
    /// These, whichever flow they belong to.
    Ids(&'a [RunId]),
}

impl Runs<'_> {
    /// The runs' condition (`filter`: the backend's own for their ids or start), with experiments' runs only
    /// when only those were asked for.
    pub(crate) fn of(&self, filter: &str) -> String {
        match self {
            Runs::Started {
                every_flow: false, ..
            } => format!("r.arm IS NOT NULL AND r.experiment IS NOT NULL AND {filter}"),
            _ => filter.to_string(),
        }
    }
}

/// Whether the counts' state is read by a step that writes it back, or by a look that writes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// A step (`apply::reports::fold`): the cursor is locked for the transaction and the runs listed dirty
    /// are taken off the list, since the step re-counts them.
    Step,
    /// A look (`apply::reports::look`), in a read-only snapshot: the cursor is read as it is and the dirty
    /// list is left for the next step.
    Look,
}

impl Reading {
    /// The runs listed dirty: taken off the list by a step, read as they are by a look.
    pub(crate) fn dirty_sql(self) -> &'static str {
        match self {
            Reading::Step => "DELETE FROM report_dirty RETURNING run_id",
            Reading::Look => "SELECT run_id FROM report_dirty",
        }
    }
}

/// A bucket of counts: its workspace, flow, experiment and hour.
pub(crate) type Bucket = (WorkspaceId, BucketKey);

/// The report statements each backend implements.
#[async_trait]
pub(crate) trait ReportsTx: Send {
    /// The cursor, locked for this transaction when read for a [`Reading::Step`].
    async fn report_cursor(&mut self, reading: Reading) -> Result<Cursor, ItemError>;
    /// Forgets every summary and count, and answers (and writes) the cursor they start again from, with
    /// `rules`: every run from the first, the other tables from their ends as of now (see the module doc).
    async fn reset_reports(&mut self, rules: &str) -> Result<Cursor, ItemError>;
    /// The runs that rows inserted since `from` name, reading at most about `batch` rows of
    /// each table (all rows of one PostgreSQL transaction together), and those listed dirty (taken off the
    /// list by a [`Reading::Step`]).
    async fn changed_runs(
        &mut self,
        from: &Cursor,
        batch: i64,
        reading: Reading,
    ) -> Result<Changed, ItemError>;
    /// The runs' outcomes as they are now (see `Store::run_outcomes` for what converts a run).
    async fn run_outcomes(
        &mut self,
        runs: Runs<'_>,
        rules: &[ConversionRule],
    ) -> Result<Vec<OutcomeRow>, ItemError>;
    /// The summaries the runs are counted as, for those counted before.
    async fn run_summaries(
        &mut self,
        runs: &[RunId],
    ) -> Result<Vec<(RunId, RunSummary)>, ItemError>;
    /// The counts of these buckets, for those that have some.
    async fn bucket_counts(
        &mut self,
        buckets: &[Bucket],
    ) -> Result<Vec<(Bucket, Counts)>, ItemError>;
    /// Writes runs' summaries, buckets' counts and the cursor.
    async fn write_counts(
        &mut self,
        summaries: &[(RunId, RunSummary)],
        counts: &[(Bucket, Counts)],
        cursor: &Cursor,
    ) -> Result<(), ItemError>;
}
