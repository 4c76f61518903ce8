//! Shop webhooks: Shopify and WooCommerce deliveries, and the signed ones that could not be mapped.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Admin, Body};
use crate::shops::ShopAnswer;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use pronto_domain::shop::Platform;
use serde::Serialize;
use utoipa::ToSchema;

fn reader(headers: &HeaderMap) -> impl Fn(&str) -> Option<String> + '_ {
    |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// A Shopify webhook delivery (JSON), for the topics `checkouts/create|update`, `orders/create|paid|updated|
/// cancelled`, `refunds/create`, `customers/create|update`, and `products/create|update|delete`, which keep the
/// shop's catalog for recommendations (answered `catalog` with what changed).
/// Authenticated by `X-Shopify-Hmac-Sha256`, the base64 HMAC-SHA256 of the raw body under the signing secret
/// of the `[[shop]]` that `X-Shopify-Shop-Domain` names, checked before anything is parsed or stored. A
/// redelivery (same `X-Shopify-Event-Id` and topic) is stored once.
#[utoipa::path(post, path = "/v1/webhooks/shopify", tag = "shops",
    request_body(content = serde_json::Value, description = "The webhook's JSON body, exactly as Shopify sent it"),
    params(
        ("X-Shopify-Shop-Domain" = Option<String>, Header, description = "The shop (`example.myshopify.com`)"),
        ("X-Shopify-Topic" = Option<String>, Header, description = "The topic (`checkouts/create`, …)"),
        ("X-Shopify-Event-Id" = Option<String>, Header, description = "The same on every delivery of one event"),
        ("X-Shopify-Webhook-Id" = Option<String>, Header, description = "Stands in for a missing event id"),
    ),
    responses(
        (status = 200, description = "Stored, a repeat, a catalog change, ignored or kept raw (the answer says which)", body = ShopAnswer),
        (status = 400, description = "A signed but empty body", body = ErrorBody),
        (status = 401, description = "Unsigned, wrongly signed, or not a configured shop: nothing stored", body = ErrorBody),
        (status = 413, description = "Over the body limit", body = ErrorBody),
        (status = 503, description = "Storage unavailable; the shop retries", body = ErrorBody)
    ),
    security(("shopifySignature" = [])))]
pub async fn shopify(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ShopAnswer>, ApiError> {
    Ok(Json(
        s.service
            .shop_webhook(Platform::Shopify, reader(&headers), &body.0)
            .await?,
    ))
}

/// A WooCommerce webhook delivery (REST API v3 resources): `order.created|updated|deleted|restored`,
/// `customer.created|updated`, and `product.created|updated|restored|deleted`, which keep the shop's catalog
/// for recommendations (answered `catalog` with what changed). An order left `pending` or
/// `failed` is an abandoned checkout; `processing`, `on-hold` and `completed` are the purchase. Authenticated
/// by `X-WC-Webhook-Signature` (base64 HMAC-SHA256 of the raw body) under the secret of the `[[shop]]` that
/// `X-WC-Webhook-Source` names. WooCommerce's unsigned ping (`webhook_id=<n>`) when a webhook is saved is
/// answered 200 and stores nothing.
#[utoipa::path(post, path = "/v1/webhooks/woocommerce", tag = "shops",
    request_body(content = serde_json::Value, description = "The webhook's JSON body, exactly as WooCommerce sent it"),
    params(
        ("X-WC-Webhook-Source" = Option<String>, Header, description = "The store's site URL"),
        ("X-WC-Webhook-Topic" = Option<String>, Header, description = "The topic (`order.updated`, …)"),
    ),
    responses(
        (status = 200, description = "Stored, a repeat, a catalog change, ignored or kept raw (the answer says which)", body = ShopAnswer),
        (status = 400, description = "A signed but empty body", body = ErrorBody),
        (status = 401, description = "Unsigned, wrongly signed, or not a configured shop: nothing stored", body = ErrorBody),
        (status = 413, description = "Over the body limit", body = ErrorBody),
        (status = 503, description = "Storage unavailable; the shop retries", body = ErrorBody)
    ),
    security(("wooSignature" = [])))]
pub async fn woocommerce(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ShopAnswer>, ApiError> {
    Ok(Json(
        s.service
            .shop_webhook(Platform::WooCommerce, reader(&headers), &body.0)
            .await?,
    ))
}

/// Signed shop deliveries that could not be mapped, newest first (at most 100).
#[derive(Debug, Serialize, ToSchema)]
pub struct UnmappedList {
    pub deliveries: Vec<pronto_store::UnmappedDelivery>,
}

/// Shop deliveries that were signed but could not be mapped to events, kept as received with the reason.
#[utoipa::path(get, path = "/v1/webhooks/unmapped", tag = "shops",
    responses((status = 200, body = UnmappedList), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn unmapped(
    State(s): State<AppState>,
    Admin(ws): Admin,
) -> Result<Json<UnmappedList>, ApiError> {
    Ok(Json(UnmappedList {
        deliveries: s.service.unmapped_deliveries(ws).await?,
    }))
}
