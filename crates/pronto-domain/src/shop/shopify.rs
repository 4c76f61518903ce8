//! Shopify's webhook topics (JSON, Admin API `2024-01` and later) as Segment messages.
//!
//! | topic | message |
//! | --- | --- |
//! | `checkouts/create` | identify (when the buyer is known) + `Checkout Started` |
//! | `checkouts/update` | identify + `Checkout Started` again (see below); a completed checkout is ignored (its order ends the run) |
//! | `orders/create` | identify + `Order Completed` |
//! | `orders/paid`, `orders/updated`, `orders/fulfilled` | identify + `Order Updated` |
//! | `orders/cancelled` | identify + `Order Cancelled` |
//! | `refunds/create` | `Order Refunded` |
//! | `customers/create`, `customers/update` | identify |
//! | `products/create`, `products/update`, `products/delete` | the catalog ([`crate::catalog::shopify`]) |
//!
//! A changed checkout is `Checkout Started` again with the same key: to a flow that is a refresh of the run
//! (the snapshot becomes the cart as it is now and the wait counts from this activity), which is what a
//! recovery email wants, and the shipped flows work unchanged.
//!
//! Who it is: the customer's id is the `userId` (as Segment's own Shopify source does), the email and phone
//! are contact points, and the checkout token is the `anonymousId` of every message about that checkout, so
//! a checkout created before the buyer typed an email and updated after is one person. An order's messages
//! are `shopify-order:<id>` (a refund names only its order), and its identify names the checkout's
//! anonymous id with the buyer's email, phone or customer id, which joins the two.

use super::{compact, message, money, object, text, timestamp, Delivery, Mapped, Unmappable};
use serde_json::{json, Map, Value};

pub(super) fn map(d: &Delivery<'_>) -> Result<Mapped, Unmappable> {
    let kind = match d.topic {
        "checkouts/create" => Kind::Checkout("Checkout Started"),
        "checkouts/update" => Kind::Checkout("Checkout Started"),
        "orders/create" => Kind::Order("Order Completed"),
        "orders/paid" | "orders/updated" | "orders/fulfilled" => Kind::Order("Order Updated"),
        "orders/cancelled" => Kind::Order("Order Cancelled"),
        "refunds/create" => Kind::Refund,
        "customers/create" | "customers/update" => Kind::Customer,
        "products/create" | "products/update" | "products/delete" => {
            return crate::catalog::shopify::from_webhook(d.shop, d.topic, d.body)
                .map(Mapped::Catalog);
        }
        "" => return Err(Unmappable("no X-Shopify-Topic header".into())),
        _ => return Ok(Mapped::Ignored("a topic pronto does not use")),
    };
    let o = object(d.body)?;
    match kind {
        Kind::Checkout(name) => checkout(d, &o, name),
        Kind::Order(name) => order(d, &o, name),
        Kind::Refund => refund(d, &o),
        Kind::Customer => customer(d, &o),
    }
}

enum Kind {
    Checkout(&'static str),
    Order(&'static str),
    Refund,
    Customer,
}

/// The buyer's id, email and phone, and the traits an identify sets: the customer object's, else the
/// checkout's or order's own fields, else the billing address's.
struct Buyer {
    user_id: Option<String>,
    traits: Map<String, Value>,
}

fn buyer(o: &Map<String, Value>) -> Buyer {
    let customer = o.get("customer").and_then(Value::as_object);
    let billing = o.get("billing_address").and_then(Value::as_object);
    let pick = |key: &str, alt: &str| {
        text(o, key)
            .or_else(|| customer.and_then(|c| text(c, key)))
            .or_else(|| billing.and_then(|b| text(b, alt)))
    };
    let mut traits = Map::new();
    for (key, value) in [
        ("email", pick("email", "email")),
        ("phone", pick("phone", "phone")),
        (
            "first_name",
            customer
                .and_then(|c| text(c, "first_name"))
                .or_else(|| billing.and_then(|b| text(b, "first_name"))),
        ),
        (
            "last_name",
            customer
                .and_then(|c| text(c, "last_name"))
                .or_else(|| billing.and_then(|b| text(b, "last_name"))),
        ),
    ] {
        if let Some(v) = value {
            traits.insert(key.into(), Value::String(v));
        }
    }
    if let Some(accepts) = accepts_marketing(o).or_else(|| customer.and_then(accepts_marketing)) {
        traits.insert("accepts_marketing".into(), Value::Bool(accepts));
    }
    Buyer {
        user_id: customer.and_then(|c| text(c, "id")),
        traits,
    }
}

/// Email marketing consent: `email_marketing_consent.state` (`subscribed`, …), else the older
/// `accepts_marketing` / `buyer_accepts_marketing` flags.
fn accepts_marketing(o: &Map<String, Value>) -> Option<bool> {
    o.get("email_marketing_consent")
        .and_then(|c| c.get("state"))
        .and_then(Value::as_str)
        .map(|s| s == "subscribed")
        .or_else(|| o.get("buyer_accepts_marketing").and_then(Value::as_bool))
        .or_else(|| o.get("accepts_marketing").and_then(Value::as_bool))
}

/// Line items as the e-commerce spec's products.
fn products(o: &Map<String, Value>) -> Vec<Value> {
    o.get("line_items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_object)
                .map(|i| {
                    compact(json!({
                        "product_id": text(i, "product_id"),
                        "variant_id": text(i, "variant_id"),
                        "sku": text(i, "sku"),
                        "name": text(i, "title").or_else(|| text(i, "name")),
                        "variant": text(i, "variant_title"),
                        "brand": text(i, "vendor"),
                        "price": money(i, "price"),
                        "quantity": i.get("quantity").and_then(Value::as_f64),
                        "image_url": text(i, "image_url"),
                        "url": text(i, "url"),
                    }))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn first_code(o: &Map<String, Value>) -> Option<String> {
    o.get("discount_codes")?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .find_map(|c| text(c, "code"))
}

fn currency(o: &Map<String, Value>) -> Option<String> {
    text(o, "presentment_currency").or_else(|| text(o, "currency"))
}

/// The identify that carries the buyer's traits, when there is anyone to identify.
fn identify(d: &Delivery<'_>, b: &Buyer, anonymous: Option<&str>) -> Option<Value> {
    if b.traits.is_empty() || (b.user_id.is_none() && anonymous.is_none()) {
        return None;
    }
    Some(message(
        d,
        ":identify",
        json!({
            "type": "identify",
            "userId": b.user_id,
            "anonymousId": anonymous,
            "traits": b.traits,
        }),
        false,
    ))
}

/// A checkout's or order's track message: the cart and its totals in the e-commerce spec's names, with
/// `more` (the keys that tell a checkout from an order) on top.
fn cart_track(
    d: &Delivery<'_>,
    o: &Map<String, Value>,
    name: &str,
    b: &Buyer,
    anonymous: &str,
    more: Value,
) -> Value {
    let mut properties = json!({
        "cart_id": text(o, "cart_token"),
        "value": money(o, "total_price"),
        "total": money(o, "total_price"),
        "subtotal": money(o, "subtotal_price"),
        "tax": money(o, "total_tax"),
        "discount": money(o, "total_discounts"),
        "coupon": first_code(o),
        "currency": currency(o),
        "products": products(o),
    });
    if let (Value::Object(p), Value::Object(more)) = (&mut properties, more) {
        p.extend(more);
    }
    message(
        d,
        "",
        json!({
            "type": "track",
            "event": name,
            "userId": b.user_id,
            "anonymousId": anonymous,
            "timestamp": timestamp(o, "updated_at").or_else(|| timestamp(o, "created_at")),
            "properties": properties,
            "context": {"traits": b.traits},
        }),
        true,
    )
}

fn checkout(d: &Delivery<'_>, o: &Map<String, Value>, name: &str) -> Result<Mapped, Unmappable> {
    let token = text(o, "token").ok_or_else(|| Unmappable("the checkout has no `token`".into()))?;
    if o.get("completed_at").is_some_and(|c| !c.is_null()) {
        return Ok(Mapped::Ignored(
            "the checkout is completed; its order ends the run",
        ));
    }
    let anonymous = format!("shopify-checkout:{token}");
    let b = buyer(o);
    let track = cart_track(
        d,
        o,
        name,
        &b,
        &anonymous,
        json!({"checkout_id": token, "checkout_url": text(o, "abandoned_checkout_url")}),
    );
    Ok(Mapped::Messages(
        identify(d, &b, Some(&anonymous))
            .into_iter()
            .chain([track])
            .collect(),
    ))
}

fn order(d: &Delivery<'_>, o: &Map<String, Value>, name: &str) -> Result<Mapped, Unmappable> {
    let id = text(o, "id").ok_or_else(|| Unmappable("the order has no `id`".into()))?;
    let checkout = text(o, "checkout_token");
    // The order is its own anonymous id (a refund names only the order); the identify ties it to the
    // checkout's person through the buyer's email, phone or customer id.
    let anonymous = format!("shopify-order:{id}");
    let checkout_person = checkout
        .as_ref()
        .map(|t| format!("shopify-checkout:{t}"))
        .unwrap_or_else(|| anonymous.clone());
    let b = buyer(o);
    let track = cart_track(
        d,
        o,
        name,
        &b,
        &anonymous,
        json!({
            "order_id": id,
            // The checkout's token is the recovery run's key; the numeric checkout id is kept for flows
            // keyed on it.
            "checkout_id": checkout,
            "checkout_number_id": text(o, "checkout_id"),
            "order_number": text(o, "name"),
            "revenue": money(o, "total_price"),
            "financial_status": text(o, "financial_status"),
            "cancel_reason": text(o, "cancel_reason"),
        }),
    );
    Ok(Mapped::Messages(
        identify(d, &b, Some(&checkout_person))
            .into_iter()
            .chain([track])
            .collect(),
    ))
}

fn refund(d: &Delivery<'_>, o: &Map<String, Value>) -> Result<Mapped, Unmappable> {
    let order_id =
        text(o, "order_id").ok_or_else(|| Unmappable("the refund has no `order_id`".into()))?;
    let transactions = o.get("transactions").and_then(Value::as_array);
    let amount: f64 = transactions
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter(|t| {
            text(t, "kind").as_deref() == Some("refund")
                && text(t, "status").as_deref() != Some("failure")
        })
        .filter_map(|t| money(t, "amount"))
        .sum();
    let currency = transactions
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .find_map(|t| text(t, "currency"));
    let user_id = text(o, "user_id");
    Ok(Mapped::Messages(vec![message(
        d,
        "",
        json!({
            "type": "track",
            "event": "Order Refunded",
            // A refund names its order only; the order's own messages tie that to the buyer.
            "anonymousId": format!("shopify-order:{order_id}"),
            "timestamp": timestamp(o, "processed_at").or_else(|| timestamp(o, "created_at")),
            "properties": {
                "order_id": order_id,
                "refund_id": text(o, "id"),
                "total": amount,
                "currency": currency,
                "refunded_by": user_id,
            },
        }),
        true,
    )]))
}

fn customer(d: &Delivery<'_>, o: &Map<String, Value>) -> Result<Mapped, Unmappable> {
    let id = text(o, "id").ok_or_else(|| Unmappable("the customer has no `id`".into()))?;
    let mut traits = Map::new();
    for key in ["email", "phone", "first_name", "last_name"] {
        if let Some(v) = text(o, key) {
            traits.insert(key.into(), Value::String(v));
        }
    }
    if let Some(a) = accepts_marketing(o) {
        traits.insert("accepts_marketing".into(), Value::Bool(a));
    }
    Ok(Mapped::Messages(vec![message(
        d,
        "",
        json!({
            "type": "identify",
            "userId": id,
            "timestamp": timestamp(o, "updated_at").or_else(|| timestamp(o, "created_at")),
            "traits": traits,
        }),
        true,
    )]))
}
