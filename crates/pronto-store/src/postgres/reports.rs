//! PostgreSQL's report statements. The cursor is a transaction id per table (each row's `seq`; a
//! run's is that of the transaction that last changed it, which wrote its messages too): a step reads
//! every row it can see from the cursor on, but moves the cursor only up to the oldest transaction still
//! running, so a row that commits late is read by a later step, never skipped (a row read twice changes
//! nothing). The cursor row is locked for the step, so processes sharing the database never count a change
//! twice.

use super::PgTx;
use crate::reports::{Bucket, Changed, Cursor, OutcomeRow, Reading, ReportsTx, Runs};
use crate::rows::{
    experiment_outcomes, experiment_run, experiment_touch, report_bucket, report_cursor, Cols,
    CURSOR_COLUMNS,
};
use crate::tx::ItemError;
use crate::StoreError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::experiment::results::{ConversionRule, Counts, RunSummary};
use pronto_domain::RunId;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

/// The outcomes of `runs`: one statement for the runs and their conversions, one for their messages.
///
/// These statements, and the counts' reads of the rows above the cursor, are planned for their values each
/// time (`persistent(false)`, a parse and plan of well under a millisecond): a prepared statement's generic
/// plan cannot know that `seq >= $1` or a start within one partial hour selects a handful of rows, and may
/// scan the whole table for them.
pub(super) async fn outcomes(
    conn: &mut PgConnection,
    runs: Runs<'_>,
    rules: &[ConversionRule],
) -> Result<Vec<OutcomeRow>, StoreError> {
    // The runs' filter and its parameters come first; the rules are the three parameters after them.
    let (filter, rules_at) = match runs {
        Runs::Started { .. } => (
            "r.workspace_id = $1 AND r.started_at >= $2 AND r.started_at < $3",
            4,
        ),
        Runs::Ids(_) => ("r.id = ANY($1::uuid[])", 2),
    };
    let runs_of = runs.of(filter);
    let flows: Vec<&str> = rules.iter().map(|r| r.flow.as_str()).collect();
    let events: Vec<&str> = rules.iter().map(|r| r.event.as_str()).collect();
    let secs: Vec<f64> = rules.iter().map(|r| r.within_secs as f64).collect();
    let (e, s) = (rules_at + 1, rules_at + 2);
    let sql = format!(
        "WITH cv AS (SELECT * FROM UNNEST(${rules_at}::text[], ${e}::text[], ${s}::float8[]) \
         AS cv(flow, event, secs)) \
         SELECT r.id, r.flow_id, COALESCE(r.experiment, ''), COALESCE(r.arm, 'treatment'), c.happened_at, c.payload, r.workspace_id, r.started_at \
         FROM runs r \
         CROSS JOIN LATERAL (SELECT COALESCE((SELECT c2.flow FROM cv c2 WHERE c2.flow = r.flow_id LIMIT 1), '') \
          AS rules) f \
         LEFT JOIN LATERAL (SELECT x.happened_at, e.payload::text AS payload \
          FROM exit_marks x JOIN events e ON e.id = x.event_id JOIN cv ON cv.event = x.name \
          AND cv.flow = f.rules \
          WHERE x.workspace_id = r.workspace_id AND x.flow_id = r.flow_id \
          AND (x.run_key = r.run_key OR (x.run_key IS NULL AND x.contact_id = r.contact_id \
               AND x.happened_at >= r.started_at)) \
          AND x.happened_at <= r.started_at + make_interval(secs => cv.secs) \
          ORDER BY x.happened_at LIMIT 1) c ON true \
         WHERE {runs_of}"
    );
    let touches_sql = format!(
        "SELECT m.run_id, m.step, m.created_at, \
         (SELECT MIN(c.clicked_at) FROM clicks c WHERE c.message_key = m.idempotency_key) \
         FROM messages m WHERE m.run_id IN (SELECT r.id FROM runs r WHERE {runs_of})"
    );
    let (found, touches) = match runs {
        Runs::Started {
            workspace,
            from,
            to,
            ..
        } => {
            let found = sqlx::query(&sql)
                .persistent(false)
                .bind(workspace.0)
                .bind(from)
                .bind(to)
                .bind(&flows)
                .bind(&events)
                .bind(&secs)
                .fetch_all(&mut *conn)
                .await?;
            let touches = sqlx::query(&touches_sql)
                .persistent(false)
                .bind(workspace.0)
                .bind(from)
                .bind(to)
                .fetch_all(&mut *conn)
                .await?;
            (found, touches)
        }
        Runs::Ids(ids) => {
            let ids: Vec<Uuid> = ids.iter().map(|r| r.0).collect();
            let found = sqlx::query(&sql)
                .persistent(false)
                .bind(&ids)
                .bind(&flows)
                .bind(&events)
                .bind(&secs)
                .fetch_all(&mut *conn)
                .await?;
            let touches = sqlx::query(&touches_sql)
                .persistent(false)
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await?;
            (found, touches)
        }
    };
    Ok(experiment_outcomes(
        found.iter().map(experiment_run).collect::<Result<_, _>>()?,
        touches
            .iter()
            .map(experiment_touch)
            .collect::<Result<_, _>>()?,
    ))
}

/// Per source table: its name, which of its rows can name a run, and the runs its rows with `seq` in
/// `[$1, $2)` name. No messages: a run's `seq` is moved by the transaction that writes its messages
/// (`write_runs`), so the runs source brings them.
const SOURCES: [(&str, &str, &str); 3] = [
    (
        "runs",
        "true",
        "SELECT r.id FROM runs r WHERE r.seq >= $1 AND r.seq < $2",
    ),
    (
        "clicks",
        "true",
        "SELECT r.id FROM clicks c JOIN messages m ON m.idempotency_key = c.message_key \
         JOIN runs r ON r.id = m.run_id WHERE c.seq >= $1 AND c.seq < $2",
    ),
    (
        "exit_marks",
        "true",
        "SELECT r.id FROM exit_marks x JOIN runs r ON r.run_key = x.run_key AND r.flow_id = x.flow_id \
         AND r.workspace_id = x.workspace_id WHERE x.seq >= $1 AND x.seq < $2 \
         UNION ALL SELECT r.id FROM exit_marks x JOIN runs r ON r.contact_id = x.contact_id \
         AND r.flow_id = x.flow_id AND r.workspace_id = x.workspace_id AND r.started_at <= x.happened_at \
         WHERE x.seq >= $1 AND x.seq < $2 AND x.run_key IS NULL",
    ),
];

/// Writes the cursor.
async fn put_cursor(conn: &mut PgConnection, cursor: &Cursor) -> Result<(), ItemError> {
    sqlx::query(&crate::reports::put_cursor_sql(|n| format!("${n}")))
        .bind(&cursor.rules)
        .bind(cursor.runs)
        .bind(cursor.messages)
        .bind(cursor.clicks)
        .bind(cursor.marks)
        .execute(conn)
        .await?;
    Ok(())
}

#[async_trait]
impl ReportsTx for PgTx {
    async fn report_cursor(&mut self, reading: Reading) -> Result<Cursor, ItemError> {
        let lock = match reading {
            Reading::Step => " FOR UPDATE",
            Reading::Look => "",
        };
        let r = sqlx::query(&format!(
            "SELECT {CURSOR_COLUMNS} FROM report_cursor WHERE id = 1{lock}"
        ))
        .fetch_one(&mut *self.0)
        .await?;
        Ok(report_cursor(&r)?)
    }

    async fn reset_reports(&mut self, rules: &str) -> Result<Cursor, ItemError> {
        sqlx::query("TRUNCATE run_summaries, report_counts")
            .execute(&mut *self.0)
            .await?;
        // Every transaction below this one has ended: the clicks and marks they wrote are read with their
        // runs; later ones by the cursor.
        let below: i64 =
            sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                .fetch_one(&mut *self.0)
                .await?;
        let cursor = Cursor {
            rules: rules.to_string(),
            runs: 0,
            messages: 0,
            clicks: below,
            marks: below,
        };
        put_cursor(&mut self.0, &cursor).await?;
        Ok(cursor)
    }

    async fn changed_runs(
        &mut self,
        from: &Cursor,
        batch: i64,
        reading: Reading,
    ) -> Result<Changed, ItemError> {
        // Every transaction below this one has ended.
        let below: i64 =
            sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                .fetch_one(&mut *self.0)
                .await?;
        let mut next = from.clone();
        let mut runs = Vec::new();
        let mut more = false;
        let positions = [&mut next.runs, &mut next.clicks, &mut next.marks];
        for ((table, indexed, source), at) in SOURCES.into_iter().zip(positions) {
            // Rows from here to the `batch`-th, or all: those of transactions still running are not there
            // yet, but every row that is can be read (so a step is exact as of now); the cursor only moves
            // past transactions that have ended, so the rows of one still running are read once it ends.
            let cut: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT seq FROM {table} WHERE seq >= $1 AND {indexed} ORDER BY seq OFFSET $2 LIMIT 1"
            ))
            .persistent(false)
            .bind(*at)
            .bind(batch)
            .fetch_optional(&mut *self.0)
            .await?;
            // A transaction's rows are read together, however many. When the batch's end lies past a
            // transaction still running (anywhere in the cluster: the snapshot's xmin is not per database),
            // the cursor cannot move that far, so the step reads every row there is instead: stopping at
            // the batch's end would leave the rows after it unread and the counts short until that
            // transaction ends.
            let end = match cut.map(|c| c.max(*at + 1)) {
                Some(end) if end <= below => end,
                _ => i64::MAX,
            };
            let ids: Vec<Uuid> = sqlx::query_scalar(source)
                .persistent(false)
                .bind(*at)
                .bind(end)
                .fetch_all(&mut *self.0)
                .await?;
            runs.extend(ids.into_iter().map(RunId));
            more |= end != i64::MAX;
            *at = end.min(below).max(*at);
        }
        let dirty: Vec<Uuid> = sqlx::query_scalar(reading.dirty_sql())
            .fetch_all(&mut *self.0)
            .await?;
        runs.extend(dirty.into_iter().map(RunId));
        runs.sort_unstable();
        runs.dedup();
        Ok(Changed { runs, next, more })
    }

    async fn run_outcomes(
        &mut self,
        runs: Runs<'_>,
        rules: &[ConversionRule],
    ) -> Result<Vec<OutcomeRow>, ItemError> {
        Ok(outcomes(&mut self.0, runs, rules).await?)
    }

    async fn run_summaries(
        &mut self,
        runs: &[RunId],
    ) -> Result<Vec<(RunId, RunSummary)>, ItemError> {
        let ids: Vec<Uuid> = runs.iter().map(|r| r.0).collect();
        let rows =
            sqlx::query("SELECT run_id, summary FROM run_summaries WHERE run_id = ANY($1::uuid[])")
                .bind(&ids)
                .fetch_all(&mut *self.0)
                .await?;
        rows.iter()
            .map(|r| Ok((RunId(r.id(0)?), r.json(1)?)))
            .collect()
    }

    async fn bucket_counts(
        &mut self,
        buckets: &[Bucket],
    ) -> Result<Vec<(Bucket, Counts)>, ItemError> {
        let ws: Vec<Uuid> = buckets.iter().map(|(w, _)| w.0).collect();
        let hours: Vec<DateTime<Utc>> = buckets.iter().map(|(_, b)| b.hour).collect();
        let flows: Vec<&str> = buckets.iter().map(|(_, b)| b.flow.as_str()).collect();
        let exps: Vec<&str> = buckets.iter().map(|(_, b)| b.experiment.as_str()).collect();
        let rows = sqlx::query(
            "SELECT c.workspace_id, c.hour, c.flow_id, c.experiment, c.counts FROM report_counts c \
             JOIN UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[]) AS k(ws, hour, flow, exp) \
             ON c.workspace_id = k.ws AND c.hour = k.hour AND c.flow_id = k.flow AND c.experiment = k.exp",
        )
        .bind(&ws)
        .bind(&hours)
        .bind(&flows)
        .bind(&exps)
        .fetch_all(&mut *self.0)
        .await?;
        rows.iter().map(|r| Ok(report_bucket(r)?)).collect()
    }

    async fn write_counts(
        &mut self,
        summaries: &[(RunId, RunSummary)],
        counts: &[(Bucket, Counts)],
        cursor: &Cursor,
    ) -> Result<(), ItemError> {
        if !summaries.is_empty() {
            let ids: Vec<Uuid> = summaries.iter().map(|(id, _)| id.0).collect();
            let values: Vec<Json<&RunSummary>> = summaries.iter().map(|(_, s)| Json(s)).collect();
            sqlx::query(
                "INSERT INTO run_summaries (run_id, summary) SELECT * FROM UNNEST($1::uuid[], $2::jsonb[]) \
                 ON CONFLICT (run_id) DO UPDATE SET summary = excluded.summary",
            )
            .bind(&ids)
            .bind(&values)
            .execute(&mut *self.0)
            .await?;
        }
        if !counts.is_empty() {
            let ws: Vec<Uuid> = counts.iter().map(|((w, _), _)| w.0).collect();
            let hours: Vec<DateTime<Utc>> = counts.iter().map(|((_, b), _)| b.hour).collect();
            let flows: Vec<&str> = counts.iter().map(|((_, b), _)| b.flow.as_str()).collect();
            let exps: Vec<&str> = counts
                .iter()
                .map(|((_, b), _)| b.experiment.as_str())
                .collect();
            let values: Vec<Json<&Counts>> = counts.iter().map(|(_, c)| Json(c)).collect();
            sqlx::query(
                "INSERT INTO report_counts (workspace_id, hour, flow_id, experiment, counts) \
                 SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::jsonb[]) \
                 ON CONFLICT (workspace_id, hour, flow_id, experiment) DO UPDATE SET counts = excluded.counts",
            )
            .bind(&ws)
            .bind(&hours)
            .bind(&flows)
            .bind(&exps)
            .bind(&values)
            .execute(&mut *self.0)
            .await?;
        }
        put_cursor(&mut self.0, cursor).await?;
        Ok(())
    }
}
