//! SQLite's report statements. One writer commits in rowid order, so the cursor is the next rowid of each
//! table; the whole step runs in the writer's transaction.

use super::{json_rows, ts, SqliteTx};
use crate::reports::{Bucket, Changed, Cursor, OutcomeRow, Reading, ReportsTx, Runs};
use crate::rows::{
    experiment_outcomes, experiment_run, experiment_touch, report_bucket, report_cursor, Cols,
    CURSOR_COLUMNS,
};
use crate::tx::ItemError;
use crate::StoreError;
use async_trait::async_trait;
use pronto_domain::experiment::results::{ConversionRule, Counts, RunSummary};
use pronto_domain::RunId;
use sqlx::SqliteConnection;

/// The outcomes of `runs`: one statement for the runs and their conversions, one for their messages.
pub(super) async fn outcomes(
    conn: &mut SqliteConnection,
    runs: Runs<'_>,
    rules: &[ConversionRule],
) -> Result<Vec<OutcomeRow>, StoreError> {
    // The runs' filter and its parameters come first; the rules are the parameter after them.
    let (filter, rules_at) = match runs {
        Runs::Started { .. } => (
            "r.workspace_id = ?1 AND r.started_at >= ?2 AND r.started_at < ?3",
            4,
        ),
        Runs::Ids(_) => ("r.id IN (SELECT value FROM json_each(?1))", 2),
    };
    let runs_of = runs.of(filter);
    let rules: Vec<(&str, &str, i64)> = rules
        .iter()
        .map(|r| (r.flow.as_str(), r.event.as_str(), r.within_secs))
        .collect();
    let sql = format!(
        "WITH cv AS (SELECT value ->> 0 AS flow, value ->> 1 AS event, value ->> 2 AS secs \
         FROM json_each(?{rules_at})), \
         r AS (SELECT r.*, COALESCE((SELECT c2.flow FROM cv c2 WHERE c2.flow = r.flow_id LIMIT 1), '') \
         AS rules FROM runs r WHERE {runs_of}), \
         rr AS (SELECT r.id, r.flow_id, r.experiment, r.arm, r.workspace_id, r.started_at, \
         (SELECT x.rowid FROM exit_marks x JOIN cv ON cv.event = x.name AND cv.flow = r.rules \
          WHERE x.workspace_id = r.workspace_id AND x.flow_id = r.flow_id \
          AND (x.run_key = r.run_key OR (x.run_key IS NULL AND x.contact_id = r.contact_id \
               AND x.happened_at >= r.started_at)) \
          AND x.happened_at <= strftime('%Y-%m-%dT%H:%M:%fZ', r.started_at, '+' || cv.secs || ' seconds') \
          ORDER BY x.happened_at LIMIT 1) AS mark FROM r) \
         SELECT rr.id, rr.flow_id, COALESCE(rr.experiment, ''), COALESCE(rr.arm, 'treatment'), x.happened_at, e.payload, rr.workspace_id, \
         rr.started_at FROM rr \
         LEFT JOIN exit_marks x ON x.rowid = rr.mark LEFT JOIN events e ON e.id = x.event_id"
    );
    let touches_sql = format!(
        "SELECT m.run_id, m.step, m.created_at, \
         (SELECT MIN(c.clicked_at) FROM clicks c WHERE c.message_key = m.idempotency_key) \
         FROM messages m WHERE m.run_id IN (SELECT r.id FROM runs r WHERE {runs_of})"
    );
    let rules = json_rows(&rules).map_err(ItemError::into_store)?;
    let (found, touches) = match runs {
        Runs::Started {
            workspace,
            from,
            to,
            ..
        } => {
            let (ws, from, to) = (workspace.to_string(), ts(from), ts(to));
            let found = sqlx::query(&sql)
                .bind(&ws)
                .bind(&from)
                .bind(&to)
                .bind(&rules)
                .fetch_all(&mut *conn)
                .await?;
            let touches = sqlx::query(&touches_sql)
                .bind(&ws)
                .bind(&from)
                .bind(&to)
                .fetch_all(&mut *conn)
                .await?;
            (found, touches)
        }
        Runs::Ids(ids) => {
            let ids = json_rows(&ids).map_err(ItemError::into_store)?;
            let found = sqlx::query(&sql)
                .bind(&ids)
                .bind(&rules)
                .fetch_all(&mut *conn)
                .await?;
            let touches = sqlx::query(&touches_sql)
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

/// Per source table: the rows from rowid `from` on (at most `batch`), the runs they name. An exit mark
/// without a key names its contact's runs of its flow: the `+` keeps SQLite on `runs_by_contact` (without it,
/// the planner probed `runs_by_start` with the workspace and scanned every run started before the mark: 45 s
/// for 10,000 marks over a million runs).
const SOURCES: [&str; 4] = [
    "SELECT r.rowid, r.id FROM runs r WHERE r.rowid >= ?1 AND r.rowid < ?2",
    "SELECT m.rowid, r.id FROM messages m JOIN runs r ON r.id = m.run_id \
     WHERE m.rowid >= ?1 AND m.rowid < ?2",
    "SELECT c.rowid, r.id FROM clicks c JOIN messages m ON m.idempotency_key = c.message_key \
     JOIN runs r ON r.id = m.run_id WHERE c.rowid >= ?1 AND c.rowid < ?2",
    "SELECT x.rowid, r.id FROM exit_marks x JOIN runs r ON r.run_key = x.run_key AND r.flow_id = x.flow_id \
     AND r.workspace_id = x.workspace_id WHERE x.rowid >= ?1 AND x.rowid < ?2 \
     UNION ALL SELECT x.rowid, r.id FROM exit_marks x JOIN runs r ON r.contact_id = x.contact_id \
     AND r.flow_id = x.flow_id AND +r.workspace_id = x.workspace_id AND +r.started_at <= x.happened_at \
     WHERE x.rowid >= ?1 AND x.rowid < ?2 AND x.run_key IS NULL",
];
const TABLES: [&str; 4] = ["runs", "messages", "clicks", "exit_marks"];

/// Writes the cursor.
async fn put_cursor(conn: &mut SqliteConnection, cursor: &Cursor) -> Result<(), ItemError> {
    sqlx::query(&crate::reports::put_cursor_sql(|n| format!("?{n}")))
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
impl ReportsTx for SqliteTx {
    /// SQLite has one writer: a step's transaction already excludes every other.
    async fn report_cursor(&mut self, _reading: Reading) -> Result<Cursor, ItemError> {
        let r = sqlx::query(&format!(
            "SELECT {CURSOR_COLUMNS} FROM report_cursor WHERE id = 1"
        ))
        .fetch_one(&mut **self)
        .await?;
        Ok(report_cursor(&r)?)
    }

    async fn reset_reports(&mut self, rules: &str) -> Result<Cursor, ItemError> {
        sqlx::query("DELETE FROM run_summaries")
            .execute(&mut **self)
            .await?;
        sqlx::query("DELETE FROM report_counts")
            .execute(&mut **self)
            .await?;
        // The writer's transaction: every row below each table's end has committed.
        let mut ends = [0i64; 3];
        for (end, table) in ends.iter_mut().zip(&TABLES[1..]) {
            *end = sqlx::query_scalar(&format!("SELECT COALESCE(max(rowid), 0) + 1 FROM {table}"))
                .fetch_one(&mut **self)
                .await?;
        }
        let [messages, clicks, marks] = ends;
        let cursor = Cursor {
            rules: rules.to_string(),
            runs: 0,
            messages,
            clicks,
            marks,
        };
        put_cursor(&mut **self, &cursor).await?;
        Ok(cursor)
    }

    async fn changed_runs(
        &mut self,
        from: &Cursor,
        batch: i64,
        reading: Reading,
    ) -> Result<Changed, ItemError> {
        let mut next = from.clone();
        let mut runs = Vec::new();
        let mut more = false;
        let positions = [
            &mut next.runs,
            &mut next.messages,
            &mut next.clicks,
            &mut next.marks,
        ];
        for ((table, source), at) in TABLES.iter().zip(SOURCES).zip(positions) {
            // Up to the `batch`-th row from here, or past the last.
            let cut: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT rowid FROM {table} WHERE rowid >= ?1 ORDER BY rowid LIMIT 1 OFFSET ?2"
            ))
            .bind(*at)
            .bind(batch)
            .fetch_optional(&mut **self)
            .await?;
            let upto = match cut {
                Some(c) => {
                    more = true;
                    c
                }
                None => {
                    let last: Option<i64> =
                        sqlx::query_scalar(&format!("SELECT max(rowid) FROM {table}"))
                            .fetch_one(&mut **self)
                            .await?;
                    last.map_or(*at, |l| (l + 1).max(*at))
                }
            };
            if upto > *at {
                let rows = sqlx::query(source)
                    .bind(*at)
                    .bind(upto)
                    .fetch_all(&mut **self)
                    .await?;
                for r in &rows {
                    runs.push(RunId(r.id(1)?));
                }
            }
            *at = upto;
        }
        let dirty: Vec<String> = sqlx::query_scalar(reading.dirty_sql())
            .fetch_all(&mut **self)
            .await?;
        for id in dirty {
            runs.push(super::uuid(&id)?);
        }
        runs.sort_unstable();
        runs.dedup();
        Ok(Changed { runs, next, more })
    }

    async fn run_outcomes(
        &mut self,
        runs: Runs<'_>,
        rules: &[ConversionRule],
    ) -> Result<Vec<OutcomeRow>, ItemError> {
        Ok(outcomes(&mut **self, runs, rules).await?)
    }

    async fn run_summaries(
        &mut self,
        runs: &[RunId],
    ) -> Result<Vec<(RunId, RunSummary)>, ItemError> {
        let rows = sqlx::query(
            "SELECT run_id, summary FROM run_summaries WHERE run_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(json_rows(&runs)?)
        .fetch_all(&mut **self)
        .await?;
        rows.iter()
            .map(|r| Ok((RunId(r.id(0)?), r.json(1)?)))
            .collect()
    }

    async fn bucket_counts(
        &mut self,
        buckets: &[Bucket],
    ) -> Result<Vec<(Bucket, Counts)>, ItemError> {
        let keys: Vec<(String, String, &str, &str)> = buckets
            .iter()
            .map(|(ws, b)| {
                (
                    ws.to_string(),
                    ts(b.hour),
                    b.flow.as_str(),
                    b.experiment.as_str(),
                )
            })
            .collect();
        let rows = sqlx::query(
            "WITH k AS (SELECT value ->> 0 AS ws, value ->> 1 AS hour, value ->> 2 AS flow, value ->> 3 AS exp \
             FROM json_each(?1)) \
             SELECT c.workspace_id, c.hour, c.flow_id, c.experiment, c.counts FROM report_counts c JOIN k \
             ON c.workspace_id = k.ws AND c.hour = k.hour AND c.flow_id = k.flow AND c.experiment = k.exp",
        )
        .bind(json_rows(&keys)?)
        .fetch_all(&mut **self)
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
            let rows: Vec<(String, &RunSummary)> = summaries
                .iter()
                .map(|(id, s)| (id.to_string(), s))
                .collect();
            sqlx::query(
                "INSERT INTO run_summaries (run_id, summary) SELECT value ->> 0, value ->> 1 \
                 FROM json_each(?1) WHERE true ON CONFLICT (run_id) DO UPDATE SET summary = excluded.summary",
            )
            .bind(json_rows(&rows)?)
            .execute(&mut **self)
            .await?;
        }
        if !counts.is_empty() {
            let rows: Vec<(String, String, &str, &str, &Counts)> = counts
                .iter()
                .map(|((ws, b), c)| {
                    (
                        ws.to_string(),
                        ts(b.hour),
                        b.flow.as_str(),
                        b.experiment.as_str(),
                        c,
                    )
                })
                .collect();
            sqlx::query(
                "INSERT INTO report_counts (workspace_id, hour, flow_id, experiment, counts) \
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 FROM json_each(?1) \
                 WHERE true ON CONFLICT (workspace_id, hour, flow_id, experiment) \
                 DO UPDATE SET counts = excluded.counts",
            )
            .bind(json_rows(&rows)?)
            .execute(&mut **self)
            .await?;
        }
        put_cursor(&mut **self, cursor).await?;
        Ok(())
    }
}
