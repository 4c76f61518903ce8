//! The catalog in the store: products, their terms and what orders bought together ([`CatalogTx`]).
//!
//! - Product changes (a product webhook, an import) are applied by `apply::catalog`, once for both
//!   backends: the stored versions are read, `pronto_domain::catalog::newer` decides which upserts are not
//!   stale, and the rows and their terms are written in bulk, with the deletes, in one transaction.
//! - Orders leave their items inside the ingest group commit (`apply::ingest`), so an order and what it
//!   teaches are committed together; a repeat of an order writes nothing (one row per order and item).
//! - A timer batch loads what the recommendations of its carts need ([`related`]) in seven single-table
//!   statements per shop, whatever the number of runs.

use crate::tx::ItemError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::catalog::{self, Bought, Product, Related};
use pronto_domain::WorkspaceId;

/// How many products each lookup of a shop's carts loads at most per timer batch (the cart's own, those
/// sharing a term, those bought with them): enough to rank the few a message shows.
pub(crate) const RELATED_LIMIT: i64 = 500;
/// How many past orders with a cart's items are read to count what was bought with them.
pub(crate) const ORDERS_LIMIT: i64 = 2_000;

/// The catalog statements each backend implements.
#[async_trait]
pub(crate) trait CatalogTx: Send {
    /// The stored `updated_at` of these products, where they have one.
    async fn product_versions(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        keys: &[&str],
    ) -> Result<Vec<(String, DateTime<Utc>)>, ItemError>;
    /// Writes the products whole and replaces their terms.
    async fn upsert_products(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        products: &[&Product],
    ) -> Result<(), ItemError>;
    /// Removes products by key or product id, with their terms; answers how many.
    async fn delete_products(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        keys: &[&str],
        product_ids: &[&str],
    ) -> Result<u64, ItemError>;
    /// Records orders' items; an order and item already recorded is not written again.
    async fn insert_order_items(
        &mut self,
        ws: WorkspaceId,
        orders: &[Bought],
    ) -> Result<(), ItemError>;
    /// The keys of the products any of these terms names (`id:…`, `sku:…`: cart items; `type:…`, …:
    /// related ones), at most `limit`.
    async fn keys_by_terms(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        terms: &[String],
        limit: i64,
    ) -> Result<Vec<String>, ItemError>;
    async fn products_by_keys(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        keys: &[String],
    ) -> Result<Vec<Product>, ItemError>;
    /// Up to `limit` orders that had any of `items`.
    async fn orders_having(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        items: &[String],
        limit: i64,
    ) -> Result<Vec<String>, ItemError>;
    /// The `(order, item)` rows of these orders.
    async fn order_rows(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        orders: &[String],
    ) -> Result<Vec<(String, String)>, ItemError>;
}

/// What the recommendations for carts with these `items` need: the cart's products, those sharing a relating
/// term with them, and what past orders bought with the cart's items ([`catalog::together`]) with those
/// products. Seven statements per shop, each reading one table by its key: a join planned without
/// statistics (as right after a catalog is loaded, before PostgreSQL's autovacuum has analysed it) was
/// measured taking seconds as nested loops of index scans; one table read at a time is linear in the shop's
/// rows at worst.
pub(crate) async fn related<T: CatalogTx + ?Sized>(
    tx: &mut T,
    ws: WorkspaceId,
    shop: &str,
    items: &[String],
) -> Result<Related, ItemError> {
    let in_cart = tx.keys_by_terms(ws, shop, items, RELATED_LIMIT).await?;
    let mut products = if in_cart.is_empty() {
        Vec::new()
    } else {
        tx.products_by_keys(ws, shop, &in_cart).await?
    };
    let mut relating: Vec<String> = products
        .iter()
        .flat_map(Product::terms)
        .filter(|t| t.relates)
        .map(|t| t.text)
        .collect();
    relating.sort();
    relating.dedup();
    let mut keys = if relating.is_empty() {
        Vec::new()
    } else {
        tx.keys_by_terms(ws, shop, &relating, RELATED_LIMIT).await?
    };
    let orders = tx.orders_having(ws, shop, items, ORDERS_LIMIT).await?;
    let together = if orders.is_empty() {
        Vec::new()
    } else {
        catalog::together(items, &tx.order_rows(ws, shop, &orders).await?)
    };
    let mut bought: Vec<String> = together.iter().map(|(_, b, _)| b.clone()).collect();
    bought.sort();
    bought.dedup();
    bought.truncate(RELATED_LIMIT as usize);
    if !bought.is_empty() {
        keys.extend(tx.keys_by_terms(ws, shop, &bought, RELATED_LIMIT).await?);
    }
    keys.sort();
    keys.dedup();
    keys.retain(|k| !in_cart.contains(k));
    if !keys.is_empty() {
        products.extend(tx.products_by_keys(ws, shop, &keys).await?);
    }
    Ok(Related { products, together })
}

/// A product's terms as rows: `(product key, term, relates)`.
pub(crate) fn term_rows(products: &[&Product]) -> Vec<(String, String, bool)> {
    products
        .iter()
        .flat_map(|p| {
            p.terms()
                .into_iter()
                .map(|t| (p.key.clone(), t.text, t.relates))
        })
        .collect()
}
