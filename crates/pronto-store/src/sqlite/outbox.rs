//! SQLite's outbox and suppression statements: sets of rows go in as one JSON array (`json_each`).

use super::flows::quarantine;
use super::{json_rows, ts, SqliteTx};
use crate::outbox::{listing_sql, KeyedTable, ListKey, ListingBind, OutboxTx};
use crate::rows::{bad_row, out_message, suppression};
use crate::tx::ItemError;
use crate::{Delivery, OutMessage, SuppressionQuery};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::suppression::Suppression;
use pronto_domain::{MessageId, WorkspaceId};

fn keys_json(keys: &[ListKey]) -> Result<String, ItemError> {
    let rows: Vec<(String, &str, &str)> = keys
        .iter()
        .map(|(ws, m, a)| (ws.to_string(), m.as_str(), a.as_str()))
        .collect();
    json_rows(&rows)
}

#[async_trait]
impl OutboxTx for SqliteTx {
    async fn claim_messages_due(
        &mut self,
        now: DateTime<Utc>,
        limit: i64,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<OutMessage>, ItemError> {
        // Two statements in the writer's transaction: RETURNING sees only the new values, and whether a
        // message was still leased (taken over from a worker whose lease ran out) is in the old ones.
        let due: Vec<(String, bool)> = sqlx::query_as(
            "SELECT id, claimed_at IS NOT NULL FROM messages WHERE state = 'queued' AND next_attempt_at <= ?1 \
             ORDER BY next_attempt_at LIMIT ?2",
        )
        .bind(ts(now))
        .bind(limit)
        .fetch_all(&mut **self)
        .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = due.iter().map(|(id, _)| id.as_str()).collect();
        let rows = sqlx::query(
            "UPDATE messages SET attempts = attempts + 1, next_attempt_at = ?3, claimed_at = ?1 \
             WHERE id IN (SELECT value FROM json_each(?2)) RETURNING *",
        )
        .bind(ts(now))
        .bind(json_rows(&ids)?)
        .bind(ts(lease_until))
        .fetch_all(&mut **self)
        .await?;
        let leased: std::collections::HashSet<&str> = due
            .iter()
            .filter(|(_, leased)| *leased)
            .map(|(id, _)| id.as_str())
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        let mut bad = Vec::new();
        for r in &rows {
            match out_message(r, false) {
                Ok(mut m) => {
                    m.taken_over = leased.contains(m.id.to_string().as_str());
                    out.push(m)
                }
                Err(e) => bad.push(bad_row("message", r, e)),
            }
        }
        // The claim order is the due order.
        let order: std::collections::HashMap<&str, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        out.sort_by_key(|m| {
            order
                .get(m.id.to_string().as_str())
                .copied()
                .unwrap_or(usize::MAX)
        });
        if !bad.is_empty() {
            for r in quarantine(&mut **self, &bad, now).await? {
                crate::quarantined(&r);
            }
        }
        Ok(out)
    }

    async fn record_outcomes(
        &mut self,
        outcomes: &[(MessageId, Delivery)],
        now: DateTime<Utc>,
    ) -> Result<(), ItemError> {
        let rows = outcomes
            .iter()
            .map(|(id, outcome)| {
                let (state, transport, next, error, refund) = outcome.columns();
                (
                    id.to_string(),
                    state,
                    transport,
                    next.map(ts),
                    error,
                    refund,
                )
            })
            .collect::<Vec<_>>();
        sqlx::query(
            "UPDATE messages SET state = q.value ->> 1, claimed_at = NULL, transport = coalesce(q.value ->> 2, transport), \
             sent_at = CASE WHEN q.value ->> 1 = 'sent' THEN ?2 ELSE sent_at END, next_attempt_at = q.value ->> 3, \
             last_error = coalesce(q.value ->> 4, last_error), attempts = attempts - (q.value ->> 5) \
             FROM json_each(?1) q \
             WHERE messages.id = q.value ->> 0 AND messages.state = 'queued'",
        )
        .bind(json_rows(&rows)?)
        .bind(ts(now))
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn count_deliveries(
        &mut self,
        rows: &[(Option<WorkspaceId>, Option<MessageId>, &'static str)],
        hour: DateTime<Utc>,
    ) -> Result<(), ItemError> {
        let rows: Vec<(Option<String>, Option<String>, &str)> = rows
            .iter()
            .map(|(ws, m, kind)| (ws.map(|w| w.to_string()), m.map(|m| m.to_string()), *kind))
            .collect();
        sqlx::query(
            "INSERT INTO delivery_counts (workspace_id, hour, flow_id, kind, n) \
             SELECT coalesce(m.workspace_id, q.value ->> 0), ?2, coalesce(m.flow_id, ''), q.value ->> 2, count(*) \
             FROM json_each(?1) q LEFT JOIN messages m ON m.id = q.value ->> 1 \
             WHERE m.channel IS NULL OR m.channel = 'email' GROUP BY 1, 3, 4 \
             ON CONFLICT (workspace_id, hour, flow_id, kind) DO UPDATE SET n = n + excluded.n",
        )
        .bind(json_rows(&rows)?)
        .bind(ts(hour))
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn mark_suppressed(&mut self, rows: &[(MessageId, String)]) -> Result<(), ItemError> {
        let rows: Vec<(String, &str)> = rows
            .iter()
            .map(|(id, why)| (id.to_string(), why.as_str()))
            .collect();
        sqlx::query(
            "UPDATE messages SET state = 'suppressed', attempts = attempts - 1, claimed_at = NULL, \
             next_attempt_at = NULL, last_error = q.value ->> 1 FROM json_each(?1) q \
             WHERE messages.id = q.value ->> 0 AND messages.state = 'queued'",
        )
        .bind(json_rows(&rows)?)
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn listed(
        &mut self,
        keys: &[ListKey],
    ) -> Result<Vec<(WorkspaceId, Suppression)>, ItemError> {
        let rows = sqlx::query(
            "SELECT s.* FROM json_each(?1) k JOIN suppressions s ON s.workspace_id = k.value ->> 0 \
             AND s.medium = k.value ->> 1 AND s.address = k.value ->> 2",
        )
        .bind(keys_json(keys)?)
        .fetch_all(&mut **self)
        .await?;
        Ok(rows.iter().map(suppression).collect::<Result<_, _>>()?)
    }

    async fn put_suppressions(
        &mut self,
        rows: &[(WorkspaceId, Suppression)],
    ) -> Result<(), ItemError> {
        let rows: Vec<_> = rows
            .iter()
            .map(|(ws, s)| {
                (
                    ws.to_string(),
                    s.medium.as_str(),
                    s.address.as_str(),
                    s.reason.as_str(),
                    s.source.as_str(),
                    s.detail.as_deref(),
                    ts(s.since),
                    s.until.map(ts),
                )
            })
            .collect();
        sqlx::query(
            "INSERT INTO suppressions (workspace_id, medium, address, reason, source, detail, since, until) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, \
             value ->> 7 FROM json_each(?1) WHERE true \
             ON CONFLICT (workspace_id, medium, address) DO UPDATE SET reason = excluded.reason, \
             source = excluded.source, detail = excluded.detail, since = excluded.since, until = excluded.until",
        )
        .bind(json_rows(&rows)?)
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn soft_bounces(
        &mut self,
        rows: &[(ListKey, String)],
        now: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> Result<Vec<(ListKey, i64)>, ItemError> {
        let json: Vec<(String, &str, &str, &str)> = rows
            .iter()
            .map(|((ws, m, a), detail)| (ws.to_string(), m.as_str(), a.as_str(), detail.as_str()))
            .collect();
        sqlx::query(
            "INSERT INTO soft_bounces (workspace_id, medium, address, at, detail) \
             SELECT value ->> 0, value ->> 1, value ->> 2, ?2, value ->> 3 FROM json_each(?1)",
        )
        .bind(json_rows(&json)?)
        .bind(ts(now))
        .execute(&mut **self)
        .await?;
        let mut keys: Vec<ListKey> = rows.iter().map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys.dedup();
        let counts: Vec<(i64,)> = sqlx::query_as(
            "SELECT (SELECT count(*) FROM soft_bounces b WHERE b.workspace_id = k.value ->> 0 \
             AND b.medium = k.value ->> 1 AND b.address = k.value ->> 2 AND b.at > ?2) \
             FROM json_each(?1) k ORDER BY k.key",
        )
        .bind(keys_json(&keys)?)
        .bind(ts(since))
        .fetch_all(&mut **self)
        .await?;
        Ok(keys
            .into_iter()
            .zip(counts.into_iter().map(|(n,)| n))
            .collect())
    }

    async fn list_suppressions(
        &mut self,
        ws: WorkspaceId,
        query: &SuppressionQuery,
    ) -> Result<Vec<(WorkspaceId, Suppression)>, ItemError> {
        let (filter, binds) = listing_sql(query, |n| format!("?{n}"));
        let sql = format!("SELECT * FROM suppressions {filter}");
        let mut q = sqlx::query(&sql).bind(ws.to_string());
        for b in &binds {
            q = match b {
                ListingBind::Text(t) => q.bind(t.as_str()),
                ListingBind::Limit(n) => q.bind(n.unwrap_or(-1)),
                ListingBind::Int(n) => q.bind(*n),
            };
        }
        let rows = q.fetch_all(&mut **self).await?;
        Ok(rows.iter().map(suppression).collect::<Result<_, _>>()?)
    }

    async fn delete_key(&mut self, table: KeyedTable, key: &ListKey) -> Result<u64, ItemError> {
        let (ws, medium, address) = key;
        Ok(sqlx::query(&format!(
            "DELETE FROM {} WHERE workspace_id = ?1 AND medium = ?2 AND address = ?3",
            table.name()
        ))
        .bind(ws.to_string())
        .bind(medium.as_str())
        .bind(address.as_str())
        .execute(&mut **self)
        .await?
        .rows_affected())
    }
}
