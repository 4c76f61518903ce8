//! Shopify's products: the `products/create|update` webhook's product JSON, `products/delete`'s `{"id": …}`,
//! and rows of the product CSV export (Admin → Products → Export).
//!
//! The key is the handle, the one identifier the JSON and the CSV share (the CSV has no product id). A
//! product is available when it is `active` (and, in the CSV, published) and at least one variant can be
//! sold: stock above zero, inventory not tracked, or selling allowed when out of stock (`continue`). Its URL
//! is the storefront's `/products/<handle>`; its price the lowest variant price.

use super::{split_list, storefront, Change, Product};
use crate::shop::{money, object, text, timestamp, Unmappable};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A `products/*` delivery as catalog changes.
pub fn from_webhook(shop: &str, topic: &str, body: &[u8]) -> Result<Vec<Change>, Unmappable> {
    let o = object(body)?;
    if topic == "products/delete" {
        let id =
            text(&o, "id").ok_or_else(|| Unmappable("the deleted product has no `id`".into()))?;
        return Ok(vec![Change::Delete {
            key: None,
            product_id: Some(id),
        }]);
    }
    Ok(vec![Change::Upsert(product(shop, &o)?)])
}

fn sellable(v: &Map<String, Value>) -> bool {
    let tracked = v
        .get("inventory_management")
        .and_then(Value::as_str)
        .is_some_and(|m| !m.is_empty());
    let stock = v.get("inventory_quantity").and_then(Value::as_i64);
    !tracked
        || stock.is_some_and(|q| q > 0)
        || v.get("inventory_policy").and_then(Value::as_str) == Some("continue")
}

fn product(shop: &str, o: &Map<String, Value>) -> Result<Product, Unmappable> {
    let handle =
        text(o, "handle").ok_or_else(|| Unmappable("the product has no `handle`".into()))?;
    let variants: Vec<&Map<String, Value>> = o
        .get("variants")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .collect();
    let image = o
        .get("image")
        .and_then(Value::as_object)
        .and_then(|i| text(i, "src"))
        .or_else(|| {
            o.get("images")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_object)
                .and_then(|i| text(i, "src"))
        });
    let active = text(o, "status").is_none_or(|s| s == "active");
    Ok(Product {
        url: Some(format!("{}/products/{handle}", storefront(shop))),
        key: handle,
        product_id: text(o, "id"),
        skus: variants.iter().filter_map(|v| text(v, "sku")).collect(),
        title: text(o, "title").unwrap_or_default(),
        image_url: image,
        price: variants
            .iter()
            .filter_map(|v| money(v, "price"))
            .min_by(f64::total_cmp),
        available: active && (variants.is_empty() || variants.iter().any(|v| sellable(v))),
        kind: text(o, "product_type"),
        tags: text(o, "tags").map(|t| split_list(&t)).unwrap_or_default(),
        collections: o
            .get("category")
            .and_then(Value::as_object)
            .and_then(|c| text(c, "name"))
            .into_iter()
            .collect(),
        updated_at: timestamp(o, "updated_at"),
    })
}

/// The product CSV export's rows (header → value), grouped by handle: the first row of a handle carries the
/// product's fields, every row may carry a variant (SKU, price, stock) and an image.
pub fn from_csv(shop: &str, rows: &[BTreeMap<String, String>]) -> Vec<Product> {
    let mut order: Vec<String> = Vec::new();
    let mut by_handle: BTreeMap<String, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for r in rows {
        let Some(h) = r.get("Handle").map(|h| h.trim()).filter(|h| !h.is_empty()) else {
            continue;
        };
        if !by_handle.contains_key(h) {
            order.push(h.to_string());
        }
        by_handle.entry(h.to_string()).or_default().push(r);
    }
    order
        .into_iter()
        .map(|handle| {
            let rows = &by_handle[&handle];
            let field = |k: &str| {
                rows.iter()
                    .find_map(|r| r.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()))
                    .map(str::to_string)
            };
            let yes = |k: &str| field(k).is_none_or(|v| v.eq_ignore_ascii_case("true"));
            // A row is a variant when it has a price (image-only rows have none).
            let variants: Vec<_> = rows
                .iter()
                .filter(|r| r.get("Variant Price").is_some_and(|p| !p.trim().is_empty()))
                .collect();
            let sellable = |r: &&&BTreeMap<String, String>| {
                let get = |k: &str| r.get(k).map(|v| v.trim()).unwrap_or("");
                get("Variant Inventory Tracker").is_empty()
                    || get("Variant Inventory Qty").is_empty()
                    || get("Variant Inventory Qty")
                        .parse::<f64>()
                        .is_ok_and(|q| q > 0.0)
                    || get("Variant Inventory Policy") == "continue"
            };
            let active = field("Status").is_none_or(|s| s.eq_ignore_ascii_case("active"));
            Product {
                url: Some(format!("{}/products/{handle}", storefront(shop))),
                product_id: None,
                skus: variants
                    .iter()
                    .filter_map(|r| r.get("Variant SKU").map(|s| s.trim().to_string()))
                    .filter(|s| !s.is_empty())
                    .collect(),
                title: field("Title").unwrap_or_else(|| handle.clone()),
                image_url: field("Image Src").or_else(|| field("Variant Image")),
                price: variants
                    .iter()
                    .filter_map(|r| r.get("Variant Price")?.trim().parse::<f64>().ok())
                    .min_by(f64::total_cmp),
                available: active
                    && yes("Published")
                    && (variants.is_empty() || variants.iter().any(sellable)),
                kind: field("Type"),
                tags: field("Tags").map(|t| split_list(&t)).unwrap_or_default(),
                collections: field("Product Category")
                    .map(|c| {
                        // The standard taxonomy's path (`Home & Garden > Kitchen > Mugs`): its leaf.
                        c.rsplit('>').next().unwrap_or(&c).trim().to_string()
                    })
                    .into_iter()
                    .chain(field("Collection"))
                    .collect(),
                updated_at: None,
                key: handle,
            }
        })
        .collect()
}
