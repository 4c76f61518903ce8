//! PostgreSQL's offer statements: claimed codes are locked `FOR UPDATE SKIP LOCKED`, so processes sharing the
//! database never claim the same code.

use super::PgTx;
use crate::offers::OffersTx;
use crate::tx::ItemError;
use crate::OfferStock;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::engine::fire::CodeUse;
use pronto_domain::WorkspaceId;
use sqlx::Row;
use uuid::Uuid;

#[async_trait]
impl OffersTx for PgTx {
    async fn insert_codes(
        &mut self,
        ws: WorkspaceId,
        offer: &str,
        codes: &[String],
        now: DateTime<Utc>,
    ) -> Result<u64, ItemError> {
        let done = sqlx::query(
            "INSERT INTO offer_codes (workspace_id, offer_id, code, added_at) \
             SELECT $1, $2, c, $3 FROM UNNEST($4::text[]) AS c ON CONFLICT DO NOTHING",
        )
        .bind(ws.0)
        .bind(offer)
        .bind(now)
        .bind(codes)
        .execute(&mut *self.0)
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
            "SELECT code FROM offer_codes WHERE workspace_id = $1 AND offer_id = $2 \
             AND message_key IS NULL LIMIT $3 FOR UPDATE SKIP LOCKED",
        )
        .bind(ws.0)
        .bind(offer)
        .bind(limit)
        .fetch_all(&mut *self.0)
        .await?)
    }

    async fn use_codes(&mut self, uses: &[CodeUse], now: DateTime<Utc>) -> Result<u64, ItemError> {
        let ws: Vec<Uuid> = uses.iter().map(|u| u.ws.0).collect();
        let pools: Vec<&str> = uses.iter().map(|u| u.pool.as_str()).collect();
        let codes: Vec<&str> = uses.iter().map(|u| u.code.as_str()).collect();
        let keys: Vec<&str> = uses.iter().map(|u| u.message.as_str()).collect();
        let done = sqlx::query(
            "UPDATE offer_codes o SET message_key = u.message, used_at = $5 \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[]) AS u(ws, offer, code, message) \
             WHERE o.workspace_id = u.ws AND o.offer_id = u.offer AND o.code = u.code \
             AND o.message_key IS NULL \
             AND NOT EXISTS (SELECT 1 FROM offer_codes x WHERE x.message_key = u.message)",
        )
        .bind(&ws)
        .bind(&pools)
        .bind(&codes)
        .bind(&keys)
        .bind(now)
        .execute(&mut *self.0)
        .await?;
        Ok(done.rows_affected())
    }

    async fn offer_stock(&mut self, ws: WorkspaceId) -> Result<Vec<OfferStock>, ItemError> {
        let rows = sqlx::query(
            "SELECT offer_id, count(*) FILTER (WHERE message_key IS NULL), \
             count(*) FILTER (WHERE message_key IS NOT NULL) FROM offer_codes \
             WHERE workspace_id = $1 GROUP BY offer_id ORDER BY offer_id",
        )
        .bind(ws.0)
        .fetch_all(&mut *self.0)
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
