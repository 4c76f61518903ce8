//! SQLite's catalog statements: sets of rows as one JSON array parameter expanded by `json_each`.

use super::{json_rows, ts, SqliteTx};
use crate::catalog::{term_rows, CatalogTx};
use crate::rows::{parse_ts, product, PRODUCT_COLUMNS};
use crate::tx::ItemError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::catalog::{Bought, Product};
use pronto_domain::WorkspaceId;
use sqlx::Row;

#[async_trait]
impl CatalogTx for SqliteTx {
    async fn product_versions(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        keys: &[&str],
    ) -> Result<Vec<(String, DateTime<Utc>)>, ItemError> {
        let rows = sqlx::query(
            "SELECT product_key, updated_at FROM products WHERE workspace_id = ?1 AND shop = ?2 \
             AND updated_at IS NOT NULL AND product_key IN (SELECT value FROM json_each(?3))",
        )
        .bind(ws.to_string())
        .bind(shop)
        .bind(json_rows(&keys)?)
        .fetch_all(&mut **self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push((r.try_get(0)?, parse_ts(&r.try_get::<String, _>(1)?)?));
        }
        Ok(out)
    }

    async fn upsert_products(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        products: &[&Product],
    ) -> Result<(), ItemError> {
        let rows: Vec<serde_json::Value> = products
            .iter()
            .map(|p| {
                serde_json::json!([
                    p.key,
                    p.product_id,
                    json_rows(&p.skus).ok(),
                    p.title,
                    p.url,
                    p.image_url,
                    p.price,
                    p.available,
                    p.kind,
                    json_rows(&p.tags).ok(),
                    json_rows(&p.collections).ok(),
                    p.updated_at.map(ts),
                ])
            })
            .collect();
        sqlx::query(
            "INSERT INTO products (workspace_id, shop, product_key, product_id, skus, title, url, image_url, \
             price, available, kind, tags, collections, updated_at) \
             SELECT ?1, ?2, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
             json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'), json_extract(value, '$[9]'), json_extract(value, '$[10]'), json_extract(value, '$[11]') \
             FROM json_each(?3) WHERE true \
             ON CONFLICT (workspace_id, shop, product_key) DO UPDATE SET product_id = excluded.product_id, \
             skus = excluded.skus, title = excluded.title, url = excluded.url, image_url = excluded.image_url, \
             price = excluded.price, available = excluded.available, kind = excluded.kind, \
             tags = excluded.tags, collections = excluded.collections, updated_at = excluded.updated_at",
        )
        .bind(ws.to_string())
        .bind(shop)
        .bind(json_rows(&rows)?)
        .execute(&mut **self)
        .await?;
        let keys: Vec<&str> = products.iter().map(|p| p.key.as_str()).collect();
        delete_terms(self, ws, shop, &keys).await?;
        sqlx::query(
            "INSERT INTO product_terms (workspace_id, shop, product_key, term, relates) \
             SELECT ?1, ?2, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?3) WHERE true \
             ON CONFLICT DO NOTHING",
        )
        .bind(ws.to_string())
        .bind(shop)
        .bind(json_rows(&term_rows(products))?)
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn delete_products(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        keys: &[&str],
        product_ids: &[&str],
    ) -> Result<u64, ItemError> {
        let gone: Vec<String> = sqlx::query_scalar(
            "DELETE FROM products WHERE workspace_id = ?1 AND shop = ?2 \
             AND (product_key IN (SELECT value FROM json_each(?3)) \
             OR product_id IN (SELECT value FROM json_each(?4))) RETURNING product_key",
        )
        .bind(ws.to_string())
        .bind(shop)
        .bind(json_rows(&keys)?)
        .bind(json_rows(&product_ids)?)
        .fetch_all(&mut **self)
        .await?;
        delete_terms(self, ws, shop, &gone).await?;
        Ok(gone.len() as u64)
    }

    async fn insert_order_items(
        &mut self,
        ws: WorkspaceId,
        orders: &[Bought],
    ) -> Result<(), ItemError> {
        let rows: Vec<(&str, &str, &str)> = orders
            .iter()
            .flat_map(|o| {
                o.items
                    .iter()
                    .map(move |i| (o.shop.as_str(), o.order.as_str(), i.as_str()))
            })
            .collect();
        sqlx::query(
            "INSERT INTO order_items (workspace_id, shop, order_id, item) \
             SELECT ?1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?2) WHERE true \
             ON CONFLICT DO NOTHING",
        )
        .bind(ws.to_string())
        .bind(json_rows(&rows)?)
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn keys_by_terms(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        terms: &[String],
        limit: i64,
    ) -> Result<Vec<String>, ItemError> {
        distinct(
            self,
            ("product_key", "product_terms", "term"),
            ws,
            shop,
            terms,
            limit,
        )
        .await
    }

    async fn products_by_keys(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        keys: &[String],
    ) -> Result<Vec<Product>, ItemError> {
        let rows = sqlx::query(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE workspace_id = ?1 AND shop = ?2 \
             AND product_key IN (SELECT value FROM json_each(?3))"
        ))
        .bind(ws.to_string())
        .bind(shop)
        .bind(json_rows(&keys)?)
        .fetch_all(&mut **self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(product(r)?);
        }
        Ok(out)
    }

    async fn orders_having(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        items: &[String],
        limit: i64,
    ) -> Result<Vec<String>, ItemError> {
        distinct(
            self,
            ("order_id", "order_items", "item"),
            ws,
            shop,
            items,
            limit,
        )
        .await
    }

    async fn order_rows(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        orders: &[String],
    ) -> Result<Vec<(String, String)>, ItemError> {
        let rows = sqlx::query(
            "SELECT order_id, item FROM order_items WHERE workspace_id = ?1 AND shop = ?2 \
             AND order_id IN (SELECT value FROM json_each(?3))",
        )
        .bind(ws.to_string())
        .bind(shop)
        .bind(json_rows(&orders)?)
        .fetch_all(&mut **self)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push((r.try_get(0)?, r.try_get(1)?));
        }
        Ok(out)
    }
}

/// Removes the terms of these products (before they are written again, or when they are deleted).
async fn delete_terms<K: serde::Serialize + Sync>(
    tx: &mut SqliteTx,
    ws: WorkspaceId,
    shop: &str,
    keys: &[K],
) -> Result<(), ItemError> {
    sqlx::query(
        "DELETE FROM product_terms WHERE workspace_id = ?1 AND shop = ?2 \
         AND product_key IN (SELECT value FROM json_each(?3))",
    )
    .bind(ws.to_string())
    .bind(shop)
    .bind(json_rows(&keys)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `SELECT DISTINCT column FROM table WHERE … AND where_column` is one of `values`, at most `limit`: a lookup in
/// one table by its index (see `crate::catalog::related` for why one table at a time).
async fn distinct(
    tx: &mut SqliteTx,
    (column, table, where_column): (&str, &str, &str),
    ws: WorkspaceId,
    shop: &str,
    values: &[String],
    limit: i64,
) -> Result<Vec<String>, ItemError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT DISTINCT {column} FROM {table} WHERE workspace_id = ?1 AND shop = ?2 \
         AND {where_column} IN (SELECT value FROM json_each(?3)) LIMIT ?4"
    ))
    .bind(ws.to_string())
    .bind(shop)
    .bind(json_rows(&values)?)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}
