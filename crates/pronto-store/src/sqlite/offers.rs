//! SQLite's offer statements (one writer: claiming needs no lock).

use super::{json_rows, ts, SqliteTx};
use crate::offers::OffersTx;
use crate::tx::ItemError;
use crate::OfferStock;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::engine::fire::CodeUse;
use pronto_domain::WorkspaceId;
use sqlx::Row;

#[async_trait]
impl OffersTx for SqliteTx {
    async fn insert_codes(
        &mut self,
        ws: WorkspaceId,
        offer: &str,
        codes: &[String],
        now: DateTime<Utc>,
    ) -> Result<u64, ItemError> {
        let done = sqlx::query(
            "INSERT INTO offer_codes (workspace_id, offer_id, code, added_at) \
             SELECT ?1, ?2, value, ?3 FROM json_each(?4) WHERE true ON CONFLICT DO NOTHING",
        )
        .bind(ws.to_string())
        .bind(offer)
        .bind(ts(now))
        .bind(json_rows(&codes)?)
        .execute(&mut **self)
        .await?;
        Ok(done.rows_affected())
    }

    async fn claim_codes(
        &mut self,
        ws: WorkspaceId,
        offer: &str,
        limit: i64,
    ) -> Result<Vec<String>, ItemError> {
        Ok(sqlx::query_scalar(
            "SELECT code FROM offer_codes WHERE workspace_id = ?1 AND offer_id = ?2 \
             AND message_key IS NULL LIMIT ?3",
        )
        .bind(ws.to_string())
        .bind(offer)
        .bind(limit)
        .fetch_all(&mut **self)
        .await?)
    }

    async fn use_codes(&mut self, uses: &[CodeUse], now: DateTime<Utc>) -> Result<u64, ItemError> {
        let rows: Vec<(String, &str, &str, &str)> = uses
            .iter()
            .map(|u| {
                (
                    u.ws.to_string(),
                    u.pool.as_str(),
                    u.code.as_str(),
                    u.message.as_str(),
                )
            })
            .collect();
        let done = sqlx::query(
            "WITH u AS (SELECT value ->> 0 AS ws, value ->> 1 AS offer, value ->> 2 AS code, \
             value ->> 3 AS message FROM json_each(?1)) \
             UPDATE offer_codes SET message_key = u.message, used_at = ?2 FROM u \
             WHERE offer_codes.workspace_id = u.ws AND offer_codes.offer_id = u.offer \
             AND offer_codes.code = u.code AND offer_codes.message_key IS NULL \
             AND NOT EXISTS (SELECT 1 FROM offer_codes o WHERE o.message_key = u.message)",
        )
        .bind(json_rows(&rows)?)
        .bind(ts(now))
        .execute(&mut **self)
        .await?;
        Ok(done.rows_affected())
    }

    async fn offer_stock(&mut self, ws: WorkspaceId) -> Result<Vec<OfferStock>, ItemError> {
        let rows = sqlx::query(
            "SELECT offer_id, SUM(message_key IS NULL), SUM(message_key IS NOT NULL) FROM offer_codes \
             WHERE workspace_id = ?1 GROUP BY offer_id ORDER BY offer_id",
        )
        .bind(ws.to_string())
        .fetch_all(&mut **self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(OfferStock {
                offer: r.try_get(0)?,
                unused: r.try_get::<i64, _>(1)?.max(0) as u64,
                used: r.try_get::<i64, _>(2)?.max(0) as u64,
            });
        }
        Ok(out)
    }
}
