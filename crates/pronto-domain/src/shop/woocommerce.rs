//! WooCommerce's webhook topics (REST API v3 resources) as Segment messages.
//!
//! WooCommerce has no checkout object: a shopper who reaches the payment step and leaves leaves an order
//! `pending` (or `failed` when the payment was refused, `checkout-draft` from the block checkout). So an
//! order's status decides:
//!
//! | order status | message |
//! | --- | --- |
//! | `pending`, `failed`, `checkout-draft` | identify + `Checkout Started` (a later one refreshes the run) |
//! | `processing`, `on-hold`, `completed` | identify + `Order Completed` |
//! | `cancelled` | `Order Cancelled` |
//! | `refunded` | `Order Refunded` |
//!
//! Both carry `checkout_id` = the order id, so the purchase ends the recovery run by key whichever delivery
//! comes first; the restore link is the order's `payment_url`. `order.deleted` is `Order Cancelled`.
//! `customer.created|updated` is an identify; `product.*` changes the catalog ([`crate::catalog::woocommerce`]). The ping WooCommerce sends when a webhook is saved
//! (`webhook_id=<n>`, form-encoded) is answered and stores nothing.

use super::{compact, message, money, object, text, timestamp, Delivery, Mapped, Unmappable};
use serde_json::{json, Map, Value};

pub(super) fn map(d: &Delivery<'_>) -> Result<Mapped, Unmappable> {
    if is_ping(d.body) {
        return Ok(Mapped::Ignored(
            "WooCommerce's ping when a webhook is saved",
        ));
    }
    match d.topic {
        "order.created" | "order.updated" | "order.restored" => order(d, &object(d.body)?),
        "order.deleted" => deleted(d, &object(d.body)?),
        "customer.created" | "customer.updated" => customer(d, &object(d.body)?),
        "product.created" | "product.updated" | "product.restored" | "product.deleted" => {
            crate::catalog::woocommerce::from_webhook(d.topic, d.body).map(Mapped::Catalog)
        }
        "" => Err(Unmappable("no X-WC-Webhook-Topic header".into())),
        _ => Ok(Mapped::Ignored("a topic pronto does not use")),
    }
}

/// `webhook_id=<digits>`, the whole body of WooCommerce's ping.
pub fn is_ping(body: &[u8]) -> bool {
    body.strip_prefix(b"webhook_id=")
        .is_some_and(|id| !id.is_empty() && id.iter().all(u8::is_ascii_digit))
}

/// Email, phone and name: an order's from its billing address; a customer's own first (the account's email
/// may differ from the last billing address's).
fn contact_traits(o: &Map<String, Value>, own_first: bool) -> Map<String, Value> {
    let b = o.get("billing").and_then(Value::as_object);
    let mut traits = Map::new();
    for key in ["email", "phone", "first_name", "last_name"] {
        let (own, billed) = (text(o, key), b.and_then(|b| text(b, key)));
        let v = if own_first {
            own.or(billed)
        } else {
            billed.or(own)
        };
        if let Some(v) = v {
            traits.insert(key.into(), Value::String(v));
        }
    }
    traits
}

/// `customer_id` 0 is a guest.
fn customer_id(o: &Map<String, Value>) -> Option<String> {
    text(o, "customer_id").filter(|c| c != "0")
}

fn products(o: &Map<String, Value>) -> Vec<Value> {
    o.get("line_items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_object)
                .map(|i| {
                    let quantity = i.get("quantity").and_then(Value::as_f64);
                    // `price` is the unit price after discounts; older payloads have only `subtotal`.
                    let price = money(i, "price").or_else(|| {
                        money(i, "subtotal").zip(quantity.filter(|q| *q > 0.0)).map(|(s, q)| s / q)
                    });
                    compact(json!({
                        "product_id": text(i, "product_id"),
                        "variant_id": text(i, "variation_id").filter(|v| v != "0"),
                        "sku": text(i, "sku"),
                        "name": text(i, "name"),
                        "price": price,
                        "quantity": quantity,
                        "image_url": i.get("image").and_then(Value::as_object).and_then(|im| text(im, "src")),
                    }))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn identify(
    d: &Delivery<'_>,
    user_id: Option<&str>,
    anonymous: &str,
    traits: &Map<String, Value>,
) -> Option<Value> {
    (!traits.is_empty()).then(|| {
        message(
            d,
            ":identify",
            json!({"type": "identify", "userId": user_id, "anonymousId": anonymous, "traits": traits}),
            false,
        )
    })
}

fn order(d: &Delivery<'_>, o: &Map<String, Value>) -> Result<Mapped, Unmappable> {
    let id = text(o, "id").ok_or_else(|| Unmappable("the order has no `id`".into()))?;
    let status = text(o, "status").ok_or_else(|| Unmappable("the order has no `status`".into()))?;
    let name = match status.as_str() {
        // Created or changed, the same trigger: a later one refreshes the run with the order as it is now.
        "pending" | "failed" | "checkout-draft" => "Checkout Started",
        "processing" | "on-hold" | "completed" => "Order Completed",
        "cancelled" | "trash" => "Order Cancelled",
        "refunded" => "Order Refunded",
        other => {
            return Err(Unmappable(format!(
                "order status `{other}` is not one pronto knows"
            )))
        }
    };
    let anonymous = format!("woocommerce-order:{id}");
    let user = customer_id(o);
    let traits = contact_traits(o, false);
    let coupon = o
        .get("coupon_lines")
        .and_then(Value::as_array)
        .and_then(|c| {
            c.iter()
                .filter_map(Value::as_object)
                .find_map(|c| text(c, "code"))
        });
    let checkout = name.starts_with("Checkout");
    let track = message(
        d,
        "",
        json!({
            "type": "track",
            "event": name,
            "userId": user,
            "anonymousId": anonymous,
            "timestamp": timestamp(o, "date_modified_gmt").or_else(|| timestamp(o, "date_created_gmt")),
            "properties": {
                "checkout_id": id,
                "order_id": (!checkout).then(|| id.clone()),
                "order_number": text(o, "number"),
                "status": status,
                "value": money(o, "total"),
                "revenue": (!checkout).then(|| money(o, "total")).flatten(),
                "total": money(o, "total"),
                "tax": money(o, "total_tax"),
                "shipping": money(o, "shipping_total"),
                "discount": money(o, "discount_total"),
                "coupon": coupon,
                "currency": text(o, "currency"),
                "products": products(o),
                "checkout_url": checkout.then(|| text(o, "payment_url")).flatten(),
            },
            "context": {"traits": traits},
        }),
        true,
    );
    Ok(Mapped::Messages(
        identify(d, user.as_deref(), &anonymous, &traits)
            .into_iter()
            .chain([track])
            .collect(),
    ))
}

fn deleted(d: &Delivery<'_>, o: &Map<String, Value>) -> Result<Mapped, Unmappable> {
    let id = text(o, "id").ok_or_else(|| Unmappable("the deleted order has no `id`".into()))?;
    Ok(Mapped::Messages(vec![message(
        d,
        "",
        json!({
            "type": "track",
            "event": "Order Cancelled",
            "anonymousId": format!("woocommerce-order:{id}"),
            "properties": {"order_id": id, "checkout_id": id, "deleted": true},
        }),
        true,
    )]))
}

fn customer(d: &Delivery<'_>, o: &Map<String, Value>) -> Result<Mapped, Unmappable> {
    let id = text(o, "id")
        .filter(|c| c != "0")
        .ok_or_else(|| Unmappable("the customer has no `id`".into()))?;
    let traits = contact_traits(o, true);
    Ok(Mapped::Messages(vec![message(
        d,
        "",
        json!({
            "type": "identify",
            "userId": id,
            "timestamp": timestamp(o, "date_modified_gmt").or_else(|| timestamp(o, "date_created_gmt")),
            "traits": traits,
        }),
        true,
    )]))
}
