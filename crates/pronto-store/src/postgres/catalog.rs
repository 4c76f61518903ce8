//! PostgreSQL's catalog statements: sets of rows as array parameters expanded by `UNNEST`.

use super::PgTx;
use crate::catalog::{term_rows, CatalogTx};
use crate::rows::{product, PRODUCT_COLUMNS};
use crate::tx::ItemError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::catalog::{Bought, Product};
use pronto_domain::WorkspaceId;
use sqlx::types::Json;
use sqlx::Row;

#[async_trait]
impl CatalogTx for PgTx {
    async fn product_versions(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        keys: &[&str],
    ) -> Result<Vec<(String, DateTime<Utc>)>, ItemError> {
        let rows = sqlx::query(
            "SELECT product_key, updated_at FROM products WHERE workspace_id = $1 AND shop = $2 \
             AND updated_at IS NOT NULL AND product_key = ANY($3::text[])",
        )
        .bind(ws.0)
        .bind(shop)
        .bind(keys)
        .fetch_all(&mut *self.0)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push((r.try_get(0)?, r.try_get(1)?));
        }
        Ok(out)
    }

    async fn upsert_products(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        products: &[&Product],
    ) -> Result<(), ItemError> {
        let col = |f: fn(&Product) -> Option<&str>| -> Vec<Option<&str>> {
            products.iter().map(|p| f(p)).collect()
        };
        let keys: Vec<&str> = products.iter().map(|p| p.key.as_str()).collect();
        let titles: Vec<&str> = products.iter().map(|p| p.title.as_str()).collect();
        let lists = |f: fn(&Product) -> &Vec<String>| -> Vec<Json<&Vec<String>>> {
            products.iter().map(|p| Json(f(p))).collect()
        };
        let prices: Vec<Option<f64>> = products.iter().map(|p| p.price).collect();
        let available: Vec<bool> = products.iter().map(|p| p.available).collect();
        let updated: Vec<Option<DateTime<Utc>>> = products.iter().map(|p| p.updated_at).collect();
        sqlx::query(
            "INSERT INTO products (workspace_id, shop, product_key, product_id, skus, title, url, image_url, \
             price, available, kind, tags, collections, updated_at) \
             SELECT $1, $2, k, pid, sk, t, u, i, pr, av, kd, tg, co, up FROM UNNEST($3::text[], $4::text[], \
             $5::jsonb[], $6::text[], $7::text[], $8::text[], $9::float8[], $10::bool[], $11::text[], \
             $12::jsonb[], $13::jsonb[], $14::timestamptz[]) AS r(k, pid, sk, t, u, i, pr, av, kd, tg, co, up) \
             ON CONFLICT (workspace_id, shop, product_key) DO UPDATE SET product_id = excluded.product_id, \
             skus = excluded.skus, title = excluded.title, url = excluded.url, image_url = excluded.image_url, \
             price = excluded.price, available = excluded.available, kind = excluded.kind, \
             tags = excluded.tags, collections = excluded.collections, updated_at = excluded.updated_at",
        )
        .bind(ws.0)
        .bind(shop)
        .bind(&keys)
        .bind(col(|p| p.product_id.as_deref()))
        .bind(lists(|p| &p.skus))
        .bind(&titles)
        .bind(col(|p| p.url.as_deref()))
        .bind(col(|p| p.image_url.as_deref()))
        .bind(&prices)
        .bind(&available)
        .bind(col(|p| p.kind.as_deref()))
        .bind(lists(|p| &p.tags))
        .bind(lists(|p| &p.collections))
        .bind(&updated)
        .execute(&mut *self.0)
        .await?;
        delete_terms(self, ws, shop, &keys).await?;
        let terms = term_rows(products);
        let (tk, tt, tr): (Vec<&str>, Vec<&str>, Vec<bool>) = terms
            .iter()
            .map(|(k, t, r)| (k.as_str(), t.as_str(), *r))
            .fold(
                (vec![], vec![], vec![]),
                |(mut a, mut b, mut c), (k, t, r)| {
                    a.push(k);
                    b.push(t);
                    c.push(r);
                    (a, b, c)
                },
            );
        sqlx::query(
            "INSERT INTO product_terms (workspace_id, shop, product_key, term, relates) \
             SELECT $1, $2, k, t, r FROM UNNEST($3::text[], $4::text[], $5::bool[]) AS x(k, t, r) \
             ON CONFLICT DO NOTHING",
        )
        .bind(ws.0)
        .bind(shop)
        .bind(&tk)
        .bind(&tt)
        .bind(&tr)
        .execute(&mut *self.0)
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
            "DELETE FROM products WHERE workspace_id = $1 AND shop = $2 \
             AND (product_key = ANY($3::text[]) OR product_id = ANY($4::text[])) RETURNING product_key",
        )
        .bind(ws.0)
        .bind(shop)
        .bind(keys)
        .bind(product_ids)
        .fetch_all(&mut *self.0)
        .await?;
        delete_terms(self, ws, shop, &gone).await?;
        Ok(gone.len() as u64)
    }

    async fn insert_order_items(
        &mut self,
        ws: WorkspaceId,
        orders: &[Bought],
    ) -> Result<(), ItemError> {
        let (mut shops, mut ids, mut items): (Vec<&str>, Vec<&str>, Vec<&str>) =
            (Vec::new(), Vec::new(), Vec::new());
        for o in orders {
            for i in &o.items {
                shops.push(&o.shop);
                ids.push(&o.order);
                items.push(i);
            }
        }
        sqlx::query(
            "INSERT INTO order_items (workspace_id, shop, order_id, item) \
             SELECT $1, s, o, i FROM UNNEST($2::text[], $3::text[], $4::text[]) AS r(s, o, i) \
             ON CONFLICT DO NOTHING",
        )
        .bind(ws.0)
        .bind(&shops)
        .bind(&ids)
        .bind(&items)
        .execute(&mut *self.0)
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
            "SELECT {PRODUCT_COLUMNS} FROM products WHERE workspace_id = $1 AND shop = $2 \
             AND product_key = ANY($3::text[])"
        ))
        .bind(ws.0)
        .bind(shop)
        .bind(keys)
        .fetch_all(&mut *self.0)
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
            "SELECT order_id, item FROM order_items WHERE workspace_id = $1 AND shop = $2 \
             AND order_id = ANY($3::text[])",
        )
        .bind(ws.0)
        .bind(shop)
        .bind(orders)
        .fetch_all(&mut *self.0)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push((r.try_get(0)?, r.try_get(1)?));
        }
        Ok(out)
    }
}

/// Removes the terms of these products (before they are written again, or when they are deleted).
async fn delete_terms<K: AsRef<str> + Sync>(
    tx: &mut PgTx,
    ws: WorkspaceId,
    shop: &str,
    keys: &[K],
) -> Result<(), ItemError> {
    let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
    sqlx::query(
        "DELETE FROM product_terms WHERE workspace_id = $1 AND shop = $2 AND product_key = ANY($3::text[])",
    )
    .bind(ws.0)
    .bind(shop)
    .bind(&keys)
    .execute(&mut *tx.0)
    .await?;
    Ok(())
}

/// `SELECT DISTINCT column FROM table WHERE … AND where_column` is one of `values`, at most `limit`: a lookup in
/// one table by its index (see `crate::catalog::related` for why one table at a time).
async fn distinct(
    tx: &mut PgTx,
    (column, table, where_column): (&str, &str, &str),
    ws: WorkspaceId,
    shop: &str,
    values: &[String],
    limit: i64,
) -> Result<Vec<String>, ItemError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT DISTINCT {column} FROM {table} WHERE workspace_id = $1 AND shop = $2 \
         AND {where_column} = ANY($3::text[]) LIMIT $4"
    ))
    .bind(ws.0)
    .bind(shop)
    .bind(values)
    .bind(limit)
    .fetch_all(&mut *tx.0)
    .await?)
}
