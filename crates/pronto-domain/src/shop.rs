//! Shops that plug in without code: Shopify's and WooCommerce's webhooks, checked and turned into the Segment
//! messages the flows already speak.
//!
//! A delivery goes through three pure steps, each decided here and applied by the server:
//! 1. [`verify`]: the platform's signature (base64 HMAC-SHA256 of the raw body, under the shop's secret),
//!    compared in constant time, before anything is parsed.
//! 2. [`map`]: the topic and body become Segment messages ([`Mapped::Messages`]), or nothing to store
//!    ([`Mapped::Ignored`], e.g. WooCommerce's ping), or catalog changes ([`Mapped::Catalog`], a product webhook), or a reason the signed body cannot be mapped
//!    ([`Unmappable`]), which the server keeps raw and answers 2xx so the shop neither retries for hours nor
//!    disables the webhook.
//! 3. Each message carries `context.shop` (platform, shop, topic, delivery id) and the message that stands for
//!    the delivery carries the body as it was received, byte for byte (`context.shop.raw`).
//!
//! The mapping keeps the flows' vocabulary: a checkout is `Checkout Started` keyed by
//! `properties.checkout_id` (a changed checkout is `Checkout Started` again: the run refreshes); an order is `Order Completed` with the same `checkout_id` (the
//! checkout's token on Shopify, the order's id on WooCommerce, where an abandoned checkout is an order left
//! `pending`), so the shipped recovery flow's exit by key ends the run whichever arrives first.
//!
//! # Layout
//! - this file: [`Platform`], [`verify`], [`map`] and what they answer; the money and timestamp readers both
//!   platforms share.
//! - [`shopify`], [`woocommerce`]: each platform's topics and payloads.

pub mod shopify;
pub mod woocommerce;

use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};

/// The shop platforms pronto takes webhooks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Shopify,
    #[serde(rename = "woocommerce")]
    WooCommerce,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shopify => "shopify",
            Self::WooCommerce => "woocommerce",
        }
    }

    /// The headers that carry the signature (the `X-` form, and the un-prefixed one Shopify's newer event
    /// format sends).
    pub fn signature_headers(self) -> &'static [&'static str] {
        match self {
            Self::Shopify => &["x-shopify-hmac-sha256", "shopify-hmac-sha256"],
            Self::WooCommerce => &["x-wc-webhook-signature"],
        }
    }

    /// The headers that name the shop.
    pub fn shop_headers(self) -> &'static [&'static str] {
        match self {
            Self::Shopify => &["x-shopify-shop-domain", "shopify-shop-domain"],
            Self::WooCommerce => &["x-wc-webhook-source"],
        }
    }

    /// The headers that name the topic.
    pub fn topic_headers(self) -> &'static [&'static str] {
        match self {
            Self::Shopify => &["x-shopify-topic", "shopify-topic"],
            Self::WooCommerce => &["x-wc-webhook-topic"],
        }
    }
}

/// What identifies a delivery across the platform's retries, so a redelivery is stored once.
///
/// Shopify documents `X-Shopify-Event-Id` as the duplicate key ("the same value across more than one webhook
/// indicates a duplicate"), shared by every topic one merchant action triggers, so the topic is part of the
/// id; `X-Shopify-Webhook-Id` (stable across retries of one delivery) stands in when it is missing.
/// WooCommerce's `X-WC-Webhook-Delivery-ID` is made anew for every attempt (`wp_hash(id . time())`), so it
/// cannot recognise a retry: the topic and a SHA-256 of the body do (a retry resends the same body).
pub fn delivery_id(
    platform: Platform,
    topic: &str,
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
) -> String {
    let by_body = || {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(body);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{topic}:sha256:{hex}")
    };
    match platform {
        Platform::Shopify => [
            "x-shopify-event-id",
            "shopify-event-id",
            "x-shopify-webhook-id",
            "shopify-webhook-id",
        ]
        .iter()
        .find_map(|h| header(h).filter(|v| !v.trim().is_empty()))
        .map(|id| format!("{topic}:{}", id.trim()))
        .unwrap_or_else(by_body),
        Platform::WooCommerce => by_body(),
    }
}

impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "shopify" => Ok(Self::Shopify),
            "woocommerce" => Ok(Self::WooCommerce),
            other => Err(format!(
                "unknown platform `{other}` (known: shopify, woocommerce)"
            )),
        }
    }
}

/// A shop as its webhooks name it: Shopify's `X-Shopify-Shop-Domain` (`example.myshopify.com`) or
/// WooCommerce's `X-WC-Webhook-Source` (the site URL, `https://shop.example/`). Compared without scheme, case
/// or trailing slash, so the configured form and the header's need not match to the letter.
pub fn shop_name(s: &str) -> String {
    let s = s.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    s.trim_end_matches('/').to_ascii_lowercase()
}

/// Whether `signature` (base64, as the header carries it) is the HMAC-SHA256 of `body` under `secret`. The
/// comparison takes the same time wherever the first differing byte is (`Mac::verify_slice`).
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The signature a platform would send for `body` (tests and the benchmark sign with it).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// One signed delivery, as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub platform: Platform,
    /// The shop, as [`shop_name`] writes it.
    pub shop: &'a str,
    pub topic: &'a str,
    /// What identifies it across retries ([`delivery_id`]).
    pub id: &'a str,
    pub body: &'a [u8],
}

/// What a signed delivery becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// Segment messages to ingest together, in order. Each has a `messageId` derived from the delivery id, so a
    /// redelivery is a repeat of the same messages.
    Messages(Vec<Value>),
    /// Changes to the shop's catalog (a product webhook).
    Catalog(Vec<crate::catalog::Change>),
    /// Nothing to store, and why (a ping, a topic pronto does not use).
    Ignored(&'static str),
}

/// A signed delivery that cannot be mapped, and why: kept raw, answered 2xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unmappable(pub String);

/// Maps one delivery (see the module documentation).
pub fn map(d: &Delivery<'_>) -> Result<Mapped, Unmappable> {
    match d.platform {
        Platform::Shopify => shopify::map(d),
        Platform::WooCommerce => woocommerce::map(d),
    }
}

/// The body as a JSON object, or why not.
pub(crate) fn object(body: &[u8]) -> Result<Map<String, Value>, Unmappable> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(Unmappable("the body is not a JSON object".into())),
        Err(e) => Err(Unmappable(format!("the body is not JSON: {e}"))),
    }
}

/// A string field, also when the platform sent a number (ids are numbers in both platforms' JSON).
pub(crate) fn text(o: &Map<String, Value>, key: &str) -> Option<String> {
    match o.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An amount: both platforms send money as decimal strings ("199.00").
pub(crate) fn money(o: &Map<String, Value>, key: &str) -> Option<f64> {
    match o.get(key)? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// A timestamp with an offset (Shopify: `2024-01-01T10:00:00-05:00`), or WooCommerce's `*_gmt` form without
/// one (`2017-03-22T16:28:02`, UTC by its name).
pub(crate) fn timestamp(o: &Map<String, Value>, key: &str) -> Option<DateTime<Utc>> {
    let s = o.get(key)?.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// Drops nulls from an object, so an absent field is absent and not `null` (the e-commerce parser refuses
/// wrong types, and a template tests presence).
fn compact(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, compact(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(compact).collect()),
        other => other,
    }
}

/// The Segment message for a delivery. `id_suffix` tells apart the messages of one delivery; `raw` attaches
/// the body as received.
fn message(d: &Delivery<'_>, id_suffix: &str, mut msg: Value, raw: bool) -> Value {
    let mut shop = json!({
        "platform": d.platform.as_str(),
        "shop": d.shop,
        "topic": d.topic,
        "delivery_id": d.id,
    });
    if raw {
        shop["raw"] = Value::String(String::from_utf8_lossy(d.body).into_owned());
    }
    let obj = msg.as_object_mut().expect("messages are built as objects");
    obj.insert(
        "messageId".into(),
        Value::String(format!("{}:{}{id_suffix}", d.platform.as_str(), d.id)),
    );
    let context = obj
        .entry("context")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(c) = context {
        c.insert("shop".into(), shop);
        c.insert(
            "library".into(),
            json!({"name": format!("pronto-{}", d.platform.as_str())}),
        );
    }
    compact(msg)
}

#[cfg(test)]
mod tests;
