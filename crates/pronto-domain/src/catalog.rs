//! A shop's catalog and "the item plus two others": which products a recovery message shows beside the cart.
//!
//! Products come from the shops' product webhooks ([`crate::shop`] maps `products/*` and `product.*` to
//! [`Change`]s) and from their CSV exports (`pronto import products`, [`import`]). Orders teach what is
//! bought together: every `Order Completed` with products, whatever its source, leaves its items
//! ([`bought`]), one row per order and item, so a redelivered order counts once.
//!
//! [`recommend`] picks for a cart, from what the store loaded for it ([`Related`]):
//! - only products in stock and published ([`Product::available`]), never one already in the cart;
//! - only related ones: bought together with a cart item in a past order, or sharing a type, tag or
//!   collection with one;
//! - ranked by how many past orders had them together with the cart's items, then by how many types, tags
//!   and collections they share, then by key (so the answer does not depend on load order).
//!
//! A shop with no catalog yet gets no recommendations, never an error: the template's list is empty.
//!
//! How a cart item is recognised in the catalog: by the platform's product id, else by its SKU (Shopify's
//! product CSV has no ids, only handles and variant SKUs). Both are [`Product::terms`] (`id:…`, `sku:…`), as
//! are the relating ones (`type:…`, `tag:…`, `collection:…`, lower-cased), so the store finds every
//! candidate through one index.
//!
//! # Layout
//! - this file: [`Product`], [`Change`], [`Related`], [`recommend`], [`bought`], the template view.
//! - [`shopify`], [`woocommerce`]: each platform's product JSON and CSV export as [`Product`]s.
//! - [`import`]: reading a product CSV export, its format recognised by its header.

pub mod import;
pub mod shopify;
pub mod woocommerce;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// How many recommendations a template gets at most (the shipped template shows two: "the item plus two
/// others"; a template may show fewer with `recommendations[:1]`).
pub const MAX_RECOMMENDATIONS: usize = 4;

/// One product of a shop's catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    /// Unique in its shop: Shopify's handle (the one identifier its webhooks and its CSV export share),
    /// WooCommerce's product id.
    pub key: String,
    /// The platform's product id, when the source gives one (cart items name it).
    pub product_id: Option<String>,
    /// Its variants' SKUs (cart items name one).
    pub skus: Vec<String>,
    pub title: String,
    pub url: Option<String>,
    pub image_url: Option<String>,
    /// The lowest variant price, in the shop's currency.
    pub price: Option<f64>,
    /// Published and in stock (or sold on backorder).
    pub available: bool,
    /// Shopify's product type (WooCommerce's `type` is simple/variable/grouped, not a kind of goods).
    pub kind: Option<String>,
    pub tags: Vec<String>,
    /// Shopify's product category, WooCommerce's categories.
    pub collections: Vec<String>,
    /// When the shop last changed it: an older update arriving late does not overwrite a newer one.
    pub updated_at: Option<DateTime<Utc>>,
}

/// What a product webhook or an import does to the catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Upsert(Product),
    /// Removed from the shop; by key, or by product id when that is all the delivery names (Shopify's
    /// `products/delete` carries only `{"id": …}`).
    Delete {
        key: Option<String>,
        product_id: Option<String>,
    },
}

/// The upserts of `changes` to write: for each key the newest (later in the list wins a tie), unless the
/// stored version (`stored`, by key) is newer: a delivery that arrives late never overwrites a later change.
/// A change without `updated_at` (an import) always applies.
pub fn newer<'a>(
    changes: &'a [Change],
    stored: &HashMap<String, DateTime<Utc>>,
) -> Vec<&'a Product> {
    let mut out: Vec<&Product> = Vec::new();
    for c in changes {
        let Change::Upsert(p) = c else { continue };
        let older = |than: Option<DateTime<Utc>>| matches!((p.updated_at, than), (Some(a), Some(b)) if a < b);
        if older(stored.get(&p.key).copied()) {
            continue;
        }
        match out.iter_mut().find(|q| q.key == p.key) {
            Some(q) if !older(q.updated_at) => *q = p,
            Some(_) => {}
            None => out.push(p),
        }
    }
    out
}

/// What a set of changes did to a catalog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Applied {
    /// Products written (new or changed).
    pub upserted: usize,
    /// Products removed.
    pub deleted: usize,
    /// Product versions not applied: older than what the catalog holds, or superseded by a newer one in the
    /// same set.
    pub stale: usize,
}

/// A term: `id:…` and `sku:…` recognise the product, `type:…`, `tag:…`, `collection:…` relate it to others.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Term {
    pub text: String,
    /// Whether it relates products (type, tag, collection) rather than identifying one (id, SKU).
    pub relates: bool,
}

impl Product {
    /// Every term the store indexes the product by (see the module documentation).
    pub fn terms(&self) -> Vec<Term> {
        let norm = |s: &str| s.trim().to_lowercase();
        let id = |t: String| Term {
            text: t,
            relates: false,
        };
        let rel = |t: String| Term {
            text: t,
            relates: true,
        };
        let mut out: Vec<Term> = Vec::new();
        out.extend(
            self.product_id
                .iter()
                .map(|p| id(format!("id:{}", p.trim()))),
        );
        out.extend(
            self.skus
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| id(format!("sku:{}", s.trim()))),
        );
        out.extend(
            self.kind
                .iter()
                .filter(|k| !k.trim().is_empty())
                .map(|k| rel(format!("type:{}", norm(k)))),
        );
        out.extend(
            self.tags
                .iter()
                .filter(|t| !t.trim().is_empty())
                .map(|t| rel(format!("tag:{}", norm(t)))),
        );
        out.extend(
            self.collections
                .iter()
                .filter(|c| !c.trim().is_empty())
                .map(|c| rel(format!("collection:{}", norm(c)))),
        );
        out.sort();
        out.dedup();
        out
    }

    /// Its terms split once: those that recognise it as a cart item, and those that relate it to others.
    fn split_terms(&self) -> (Vec<String>, HashSet<String>) {
        let (items, relating): (Vec<Term>, Vec<Term>) =
            self.terms().into_iter().partition(|t| !t.relates);
        (
            items.into_iter().map(|t| t.text).collect(),
            relating.into_iter().map(|t| t.text).collect(),
        )
    }

    /// The product as a template sees it; `params` are appended to its link (tracking).
    pub fn context(&self, params: &[(&str, &str)]) -> Value {
        json!({
            "product_id": self.product_id,
            "name": self.title,
            "url": self.url.as_deref().map(|u| crate::template::tracked_link(u, params)),
            "image_url": self.image_url,
            "price": self.price,
        })
    }
}

/// The item terms a cart or order line can be recognised by: `id:<product id>`, then `sku:<sku>`.
fn line_terms(product_id: Option<&str>, sku: Option<&str>) -> [Option<String>; 2] {
    fn some(s: Option<&str>) -> Option<&str> {
        s.map(str::trim).filter(|s| !s.is_empty())
    }
    [
        some(product_id).map(|p| format!("id:{p}")),
        some(sku).map(|s| format!("sku:{s}")),
    ]
}

/// A cart or order line as an item term: `id:<product id>`, else `sku:<sku>`; none when it names neither.
pub fn item_of(line: &Value) -> Option<String> {
    let field = |k: &str| match line.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let [id, sku] = line_terms(field("product_id").as_deref(), field("sku").as_deref());
    id.or(sku)
}

/// The cart items of an event (its `properties.products`), in order, without repeats.
pub fn items_of(event: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in event
        .pointer("/properties/products")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(i) = item_of(line) {
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
    out
}

/// The shop an event came from: the configured shop a webhook named (`context.shop.shop`), else `""`, the
/// catalog of events from the Segment API and of an import without `--shop`.
pub fn shop_of(event: &Value) -> &str {
    event
        .pointer("/context/shop/shop")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// One order's items, for learning what is bought together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bought {
    pub shop: String,
    pub order: String,
    pub items: Vec<String>,
}

/// The items of an `Order Completed` event (`order_id`, else `checkout_id`, names the order; a repeat of the
/// order is the same rows), or `None` for any other event or an order without items or id.
pub fn bought(name: Option<&str>, event: &Value) -> Option<Bought> {
    if name != Some("Order Completed") {
        return None;
    }
    let props = event.get("properties")?;
    let id = ["order_id", "checkout_id"]
        .iter()
        .find_map(|k| match props.get(*k)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })?;
    let items = items_of(event);
    (!items.is_empty()).then(|| Bought {
        shop: shop_of(event).to_string(),
        order: id,
        items,
    })
}

/// What the store loaded for the carts of one shop in a batch: the candidate products (those the carts'
/// items are, those sharing a relating term with them, those bought with them) and how often each pair of
/// items was in one order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Related {
    pub products: Vec<Product>,
    /// `(cart item, other item, orders with both)`.
    pub together: Vec<(String, String, i64)>,
}

/// How often each item was bought with each of `items`, from the `(order, item)` rows of the orders that had
/// any of them: `(cart item, other item, orders with both)`, most orders first, then by the items' names.
pub fn together(items: &[String], orders: &[(String, String)]) -> Vec<(String, String, i64)> {
    let mut by_order: HashMap<&str, Vec<&str>> = HashMap::new();
    for (order, item) in orders {
        let list = by_order.entry(order.as_str()).or_default();
        if !list.contains(&item.as_str()) {
            list.push(item);
        }
    }
    let mut counts: HashMap<(&str, &str), i64> = HashMap::new();
    for list in by_order.values() {
        for a in list.iter().filter(|a| items.iter().any(|i| i == *a)) {
            for b in list.iter().filter(|b| *b != a) {
                *counts.entry((a, b)).or_default() += 1;
            }
        }
    }
    let mut out: Vec<(String, String, i64)> = counts
        .into_iter()
        .map(|((a, b), n)| (a.to_string(), b.to_string(), n))
        .collect();
    out.sort_by(|x, y| y.2.cmp(&x.2).then_with(|| (&x.0, &x.1).cmp(&(&y.0, &y.1))));
    out
}

/// Up to `n` products to show beside a cart with these `items` (the rules are in the module documentation).
pub fn recommend<'a>(related: &'a Related, items: &[String], n: usize) -> Vec<&'a Product> {
    if items.is_empty() || n == 0 {
        return Vec::new();
    }
    // Each product's terms, worked out once for the whole ranking.
    let products: Vec<(&Product, Vec<String>, HashSet<String>)> = related
        .products
        .iter()
        .map(|p| {
            let (mine, relating) = p.split_terms();
            (p, mine, relating)
        })
        .collect();
    let in_cart = |mine: &[String]| mine.iter().any(|i| items.contains(i));
    let cart_terms: HashSet<&String> = products
        .iter()
        .filter(|(_, mine, _)| in_cart(mine))
        .flat_map(|(_, _, relating)| relating)
        .collect();
    let mut with: HashMap<&str, i64> = HashMap::new();
    for (a, b, count) in &related.together {
        if items.contains(a) {
            *with.entry(b.as_str()).or_default() += count;
        }
    }
    let mut ranked: Vec<(i64, usize, &Product)> = products
        .iter()
        .filter(|(p, mine, _)| p.available && !in_cart(mine))
        .map(|(p, mine, relating)| {
            let together: i64 = mine
                .iter()
                .map(|i| with.get(i.as_str()).copied().unwrap_or(0))
                .sum();
            let shared = relating.iter().filter(|t| cart_terms.contains(t)).count();
            (together, shared, *p)
        })
        .filter(|(together, shared, _)| *together > 0 || *shared > 0)
        .collect();
    ranked.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then_with(|| a.2.key.cmp(&b.2.key))
    });
    let mut seen: HashSet<&str> = HashSet::new();
    ranked
        .into_iter()
        .map(|(_, _, p)| p)
        .filter(|p| seen.insert(p.key.as_str()))
        .take(n)
        .collect()
}

/// Fills in what a cart's lines lack (Shopify's checkout lines carry no image and no product link) from their
/// catalog products: a line's missing `image_url` and `url`, never one it has.
pub fn complete(lines: &mut [crate::ecommerce::Product], related: &Related) {
    for line in lines
        .iter_mut()
        .filter(|l| l.image_url.is_none() || l.url.is_none())
    {
        let ids = line_terms(line.product_id.as_deref(), line.sku.as_deref());
        let Some(p) = related.products.iter().find(|p| {
            let (mine, _) = p.split_terms();
            ids.iter().flatten().any(|x| mine.contains(x))
        }) else {
            continue;
        };
        if line.image_url.is_none() {
            line.image_url = p.image_url.clone();
        }
        if line.url.is_none() {
            line.url = p.url.clone();
        }
    }
}

/// Splits a comma-separated list (Shopify's tags, the CSV exports' lists), trimmed, empties dropped.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// A shop's storefront base URL from its configured name (`example.myshopify.com`, `shop.example/`).
pub(crate) fn storefront(shop: &str) -> String {
    let s = shop.trim().trim_end_matches('/');
    if s.starts_with("http://") || s.starts_with("https://") {
        s.to_string()
    } else {
        format!("https://{s}")
    }
}

#[cfg(test)]
mod tests;
