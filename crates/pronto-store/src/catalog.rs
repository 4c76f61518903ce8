//! The catalog in the store: products, their terms and what orders bought together ([`CatalogTx`]).
//!
//! - Product changes (a product webhook, an import) are applied by `apply::catalog`, once for both
//!   backends: the stored versions are read, `pronto_domain::catalog::newer` decides which upserts are not
//!   stale, and the rows and their terms are written in bulk, with the deletes, in one transaction.
//! - Orders leave their items inside the ingest group commit (`apply::ingest`), so an order and what it
//!   teaches are committed together; a repeat of an order writes nothing (one row per order and item).
//! - A timer batch loads what the recommendations of its carts need ([`CatalogTx::related`]) in three
//!   statements per shop, whatever the number of runs: the products sharing a relating term with a cart
//!   item, the pairs of items bought together, and the product rows of both and of the cart items.

use crate::tx::ItemError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::catalog::{Bought, Product, Related};
use pronto_domain::WorkspaceId;

/// How many related products and item pairs a shop's carts load at most per timer batch: the best pairs
/// (by orders together) and any products sharing a term, enough to rank the few a message shows.
pub(crate) const RELATED_LIMIT: i64 = 500;

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
    /// What the recommendations for carts with these `items` need (see the module documentation).
    async fn related(
        &mut self,
        ws: WorkspaceId,
        shop: &str,
        items: &[String],
    ) -> Result<Related, ItemError>;
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

/// The item terms whose products a batch loads: the carts' own and those bought with them.
pub(crate) fn wanted_items(items: &[String], together: &[(String, String, i64)]) -> Vec<String> {
    let mut all: Vec<String> = items
        .iter()
        .cloned()
        .chain(together.iter().map(|(_, b, _)| b.clone()))
        .collect();
    all.sort();
    all.dedup();
    all
}
