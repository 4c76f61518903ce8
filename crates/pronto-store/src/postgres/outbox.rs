//! PostgreSQL's outbox and suppression statements: sets of rows go in as arrays (`UNNEST`).

use super::flows::quarantine;
use super::PgTx;
use crate::outbox::{listing_sql, KeyedTable, ListKey, ListingBind, OutboxTx};
use crate::rows::{bad_row, out_message, suppression, Cols};
use crate::tx::ItemError;
use crate::{Delivery, OutMessage, SuppressionQuery};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::suppression::Suppression;
use pronto_domain::{MessageId, WorkspaceId};
use uuid::Uuid;

/// The keys as three arrays: workspaces, media, addresses.
fn key_arrays(keys: &[ListKey]) -> (Vec<Uuid>, Vec<&str>, Vec<&str>) {
    (
        keys.iter().map(|k| k.0 .0).collect(),
        keys.iter().map(|k| k.1.as_str()).collect(),
        keys.iter().map(|k| k.2.as_str()).collect(),
    )
}

#[async_trait]
impl OutboxTx for PgTx {
    async fn claim_messages_due(
        &mut self,
        now: DateTime<Utc>,
        limit: i64,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<OutMessage>, ItemError> {
        // `taken_over`: the message was still leased (claimed_at set) by a worker whose lease ran out — a
        // process that died or hung mid-send.
        let rows = sqlx::query(
            "WITH due AS (SELECT id, claimed_at IS NOT NULL AS taken_over FROM messages \
               WHERE state = 'queued' AND next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
             UPDATE messages m SET attempts = m.attempts + 1, next_attempt_at = $3, claimed_at = $1 FROM due \
             WHERE m.id = due.id RETURNING m.*, due.taken_over",
        )
        .bind(now)
        .bind(limit)
        .bind(lease_until)
        .fetch_all(&mut *self.0)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut bad = Vec::new();
        for r in &rows {
            match out_message(r, r.flag("taken_over")?) {
                Ok(m) => out.push(m),
                Err(e) => bad.push(bad_row("message", r, e)),
            }
        }
        if !bad.is_empty() {
            for r in quarantine(&mut self.0, &bad, now).await? {
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
        let mut ids = Vec::with_capacity(outcomes.len());
        let (mut states, mut transports, mut nexts, mut errors) = (vec![], vec![], vec![], vec![]);
        let mut refunds: Vec<i64> = Vec::with_capacity(outcomes.len());
        for (id, outcome) in outcomes {
            let (state, transport, next, error, refund) = outcome.columns();
            ids.push(id.0);
            states.push(state);
            transports.push(transport);
            nexts.push(next);
            errors.push(error);
            refunds.push(refund);
        }
        sqlx::query(
            "UPDATE messages m SET state = q.state, claimed_at = NULL, transport = coalesce(q.transport, m.transport), \
             sent_at = CASE WHEN q.state = 'sent' THEN $6 ELSE m.sent_at END, next_attempt_at = q.next_at, \
             last_error = coalesce(q.err, m.last_error), attempts = m.attempts - q.refund \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[], $7::int8[]) \
             AS q(id, state, transport, next_at, err, refund) \
             WHERE m.id = q.id AND m.state = 'queued'",
        )
        .bind(&ids)
        .bind(&states)
        .bind(&transports)
        .bind(&nexts)
        .bind(&errors)
        .bind(now)
        .bind(&refunds)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn count_deliveries(
        &mut self,
        rows: &[(Option<WorkspaceId>, Option<MessageId>, &'static str)],
        hour: DateTime<Utc>,
    ) -> Result<(), ItemError> {
        let wss: Vec<Option<Uuid>> = rows.iter().map(|(ws, _, _)| ws.map(|w| w.0)).collect();
        let ids: Vec<Option<Uuid>> = rows.iter().map(|(_, m, _)| m.map(|m| m.0)).collect();
        let kinds: Vec<&str> = rows.iter().map(|(_, _, k)| *k).collect();
        sqlx::query(
            "INSERT INTO delivery_counts (workspace_id, hour, flow_id, kind, n) \
             SELECT coalesce(m.workspace_id, q.ws), $4, coalesce(m.flow_id, ''), q.kind, count(*) \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS q(ws, id, kind) \
             LEFT JOIN messages m ON m.id = q.id \
             WHERE m.channel IS NULL OR m.channel = 'email' GROUP BY 1, 3, 4 \
             ON CONFLICT (workspace_id, hour, flow_id, kind) DO UPDATE SET n = delivery_counts.n + excluded.n",
        )
        .bind(&wss)
        .bind(&ids)
        .bind(&kinds)
        .bind(hour)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn mark_suppressed(&mut self, rows: &[(MessageId, String)]) -> Result<(), ItemError> {
        let ids: Vec<Uuid> = rows.iter().map(|(id, _)| id.0).collect();
        let whys: Vec<&str> = rows.iter().map(|(_, w)| w.as_str()).collect();
        sqlx::query(
            "UPDATE messages m SET state = 'suppressed', attempts = m.attempts - 1, claimed_at = NULL, \
             next_attempt_at = NULL, last_error = q.why FROM UNNEST($1::uuid[], $2::text[]) AS q(id, why) \
             WHERE m.id = q.id AND m.state = 'queued'",
        )
        .bind(&ids)
        .bind(&whys)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn listed(
        &mut self,
        keys: &[ListKey],
    ) -> Result<Vec<(WorkspaceId, Suppression)>, ItemError> {
        let (wss, media, addresses) = key_arrays(keys);
        let rows = sqlx::query(
            "SELECT s.* FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS k(ws, medium, address) \
             JOIN suppressions s ON s.workspace_id = k.ws AND s.medium = k.medium AND s.address = k.address",
        )
        .bind(&wss)
        .bind(&media)
        .bind(&addresses)
        .fetch_all(&mut *self.0)
        .await?;
        Ok(rows.iter().map(suppression).collect::<Result<_, _>>()?)
    }

    async fn put_suppressions(
        &mut self,
        rows: &[(WorkspaceId, Suppression)],
    ) -> Result<(), ItemError> {
        let wss: Vec<Uuid> = rows.iter().map(|(ws, _)| ws.0).collect();
        let media: Vec<&str> = rows.iter().map(|(_, s)| s.medium.as_str()).collect();
        let addresses: Vec<&str> = rows.iter().map(|(_, s)| s.address.as_str()).collect();
        let reasons: Vec<&str> = rows.iter().map(|(_, s)| s.reason.as_str()).collect();
        let sources: Vec<&str> = rows.iter().map(|(_, s)| s.source.as_str()).collect();
        let details: Vec<Option<&str>> = rows.iter().map(|(_, s)| s.detail.as_deref()).collect();
        let sinces: Vec<DateTime<Utc>> = rows.iter().map(|(_, s)| s.since).collect();
        let untils: Vec<Option<DateTime<Utc>>> = rows.iter().map(|(_, s)| s.until).collect();
        sqlx::query(
            "INSERT INTO suppressions (workspace_id, medium, address, reason, source, detail, since, until) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::timestamptz[], $8::timestamptz[]) \
             ON CONFLICT (workspace_id, medium, address) DO UPDATE SET reason = excluded.reason, \
             source = excluded.source, detail = excluded.detail, since = excluded.since, until = excluded.until",
        )
        .bind(&wss)
        .bind(&media)
        .bind(&addresses)
        .bind(&reasons)
        .bind(&sources)
        .bind(&details)
        .bind(&sinces)
        .bind(&untils)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn soft_bounces(
        &mut self,
        rows: &[(ListKey, String)],
        now: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> Result<Vec<(ListKey, i64)>, ItemError> {
        let keys: Vec<ListKey> = rows.iter().map(|(k, _)| k.clone()).collect();
        let (wss, media, addresses) = key_arrays(&keys);
        let details: Vec<&str> = rows.iter().map(|(_, d)| d.as_str()).collect();
        sqlx::query(
            "INSERT INTO soft_bounces (workspace_id, medium, address, at, detail) \
             SELECT ws, medium, address, $5, detail \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[]) AS q(ws, medium, address, detail)",
        )
        .bind(&wss)
        .bind(&media)
        .bind(&addresses)
        .bind(&details)
        .bind(now)
        .execute(&mut *self.0)
        .await?;
        let mut keys = keys;
        keys.sort();
        keys.dedup();
        let (wss, media, addresses) = key_arrays(&keys);
        let counts: Vec<(i64,)> = sqlx::query_as(
            "SELECT (SELECT count(*) FROM soft_bounces b WHERE b.workspace_id = k.ws AND b.medium = k.medium \
             AND b.address = k.address AND b.at > $4) \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS k(ws, medium, address, n) ORDER BY k.n",
        )
        .bind(&wss)
        .bind(&media)
        .bind(&addresses)
        .bind(since)
        .fetch_all(&mut *self.0)
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
        let (filter, binds) = listing_sql(query, |n| format!("${n}"));
        let sql = format!("SELECT * FROM suppressions {filter}");
        let mut q = sqlx::query(&sql).bind(ws.0);
        for b in &binds {
            q = match b {
                ListingBind::Text(t) => q.bind(t.as_str()),
                ListingBind::Limit(n) => q.bind(*n),
                ListingBind::Int(n) => q.bind(*n),
            };
        }
        let rows = q.fetch_all(&mut *self.0).await?;
        Ok(rows.iter().map(suppression).collect::<Result<_, _>>()?)
    }

    async fn delete_key(&mut self, table: KeyedTable, key: &ListKey) -> Result<u64, ItemError> {
        let (ws, medium, address) = key;
        Ok(sqlx::query(&format!(
            "DELETE FROM {} WHERE workspace_id = $1 AND medium = $2 AND address = $3",
            table.name()
        ))
        .bind(ws.0)
        .bind(medium.as_str())
        .bind(address.as_str())
        .execute(&mut *self.0)
        .await?
        .rows_affected())
    }
}
