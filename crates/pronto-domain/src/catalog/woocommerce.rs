//! WooCommerce's products: the `product.created|updated|restored` webhook's product (REST API v3),
//! `product.deleted`'s `{"id": …}`, and rows of the product CSV export (Products → Export).
//!
//! The key is the product id (both the JSON and the CSV have it; order lines name it). A product is
//! available when it is published and in stock or on backorder (`stock_status`; the CSV's `In stock?`, with
//! `backorder` for the latter). Categories are its collections. A variation (the CSV's `variation` rows) is
//! not a product of its own: its SKU and price count for its parent (`Parent` = `id:<parent>`).

use super::{split_list, storefront, Change, Product};
use crate::shop::{money, object, text, timestamp, Unmappable};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A `product.*` delivery as catalog changes.
pub fn from_webhook(topic: &str, body: &[u8]) -> Result<Vec<Change>, Unmappable> {
    let o = object(body)?;
    let id = text(&o, "id").ok_or_else(|| Unmappable("the product has no `id`".into()))?;
    if topic == "product.deleted" {
        return Ok(vec![Change::Delete {
            key: Some(id.clone()),
            product_id: Some(id),
        }]);
    }
    Ok(vec![Change::Upsert(product(id, &o))])
}

fn names(o: &Map<String, Value>, key: &str) -> Vec<String> {
    o.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter_map(|c| text(c, "name"))
        .collect()
}

fn product(id: String, o: &Map<String, Value>) -> Product {
    // `stock_status` since WooCommerce 3.5; `in_stock` before.
    let in_stock = match text(o, "stock_status") {
        Some(s) => s == "instock" || s == "onbackorder",
        None => o.get("in_stock").and_then(Value::as_bool).unwrap_or(true),
    };
    let published = text(o, "status").is_none_or(|s| s == "publish");
    Product {
        key: id.clone(),
        product_id: Some(id),
        skus: text(o, "sku").into_iter().collect(),
        title: text(o, "name").unwrap_or_default(),
        url: text(o, "permalink"),
        image_url: o
            .get("images")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_object)
            .and_then(|i| text(i, "src")),
        price: money(o, "price").or_else(|| money(o, "regular_price")),
        available: published && in_stock,
        kind: None,
        tags: names(o, "tags"),
        collections: names(o, "categories"),
        updated_at: timestamp(o, "date_modified_gmt"),
    }
}

fn cell(r: &BTreeMap<String, String>, k: &str) -> Option<String> {
    r.get(k)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A row's price: the sale price when it has one.
fn price(r: &BTreeMap<String, String>) -> Option<f64> {
    cell(r, "Sale price")
        .or_else(|| cell(r, "Regular price"))
        .and_then(|p| p.parse::<f64>().ok())
}

/// The product CSV export's rows (header → value). `shop` is the site, for a product's link
/// (`<site>/?p=<id>`, which WordPress redirects to the product's page; the export has no permalink).
pub fn from_csv(shop: &str, rows: &[BTreeMap<String, String>]) -> Vec<Product> {
    let get = cell;
    let mut out: Vec<Product> = Vec::new();
    let mut variations: Vec<&BTreeMap<String, String>> = Vec::new();
    for r in rows {
        let Some(id) = get(r, "ID") else { continue };
        if get(r, "Type").is_some_and(|t| t.contains("variation")) {
            variations.push(r);
            continue;
        }
        let stock = get(r, "In stock?");
        let in_stock = stock
            .as_deref()
            .is_none_or(|s| s == "1" || s == "backorder");
        let published = get(r, "Published").is_none_or(|p| p == "1");
        out.push(Product {
            url: Some(format!("{}/?p={id}", storefront(shop))),
            key: id.clone(),
            product_id: Some(id),
            skus: get(r, "SKU").into_iter().collect(),
            title: get(r, "Name").unwrap_or_default(),
            image_url: get(r, "Images").and_then(|i| split_list(&i).into_iter().next()),
            price: price(r),
            available: published && in_stock,
            kind: None,
            tags: get(r, "Tags").map(|t| split_list(&t)).unwrap_or_default(),
            // `Clothing > Hoodies, Music`: each path's leaf.
            collections: get(r, "Categories")
                .map(|c| {
                    split_list(&c)
                        .into_iter()
                        .map(|p| p.rsplit('>').next().unwrap_or(&p).trim().to_string())
                        .collect()
                })
                .unwrap_or_default(),
            updated_at: None,
        });
    }
    for v in variations {
        // `id:<parent id>`, or the parent's SKU.
        let Some(parent) = get(v, "Parent") else {
            continue;
        };
        let is_parent = |p: &Product| match parent.strip_prefix("id:") {
            Some(id) => p.key == id,
            None => p.skus.contains(&parent),
        };
        if let Some(p) = out.iter_mut().find(|p| is_parent(p)) {
            p.skus.extend(get(v, "SKU"));
            p.price = match (p.price, price(v)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    out
}
