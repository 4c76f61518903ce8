//! The Segment e-commerce v2 spec's events as typed structs.
//!
//! Only the documented properties are read; anything else stays in the stored payload. Amounts may arrive as
//! numbers or numeric strings (shop platforms send both); any other type for a documented property is refused,
//! because a flow that later reads `value` must be able to trust it.

use crate::error::Invalid;
use crate::fields::{Errors, Obj};
use serde::Serialize;
use serde_json::Value;

/// One product as the spec describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Product {
    pub product_id: Option<String>,
    pub sku: Option<String>,
    pub category: Option<String>,
    pub name: Option<String>,
    pub brand: Option<String>,
    pub variant: Option<String>,
    pub price: Option<f64>,
    pub quantity: Option<f64>,
    pub coupon: Option<String>,
    pub position: Option<f64>,
    pub url: Option<String>,
    pub image_url: Option<String>,
}

/// A cart (`Cart Viewed`, `Product Added`/`Removed` carry its id).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cart {
    pub cart_id: Option<String>,
    pub products: Vec<Product>,
    /// Not in the spec's list, but what the restore link of a recovery message needs; taken when present.
    pub cart_url: Option<String>,
}

/// A checkout or order (`Checkout Started`, `Order Completed`, …).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Order {
    pub checkout_id: Option<String>,
    pub order_id: Option<String>,
    pub cart_id: Option<String>,
    pub affiliation: Option<String>,
    pub value: Option<f64>,
    pub revenue: Option<f64>,
    pub total: Option<f64>,
    pub subtotal: Option<f64>,
    pub shipping: Option<f64>,
    pub tax: Option<f64>,
    pub discount: Option<f64>,
    pub coupon: Option<String>,
    pub currency: Option<String>,
    pub products: Vec<Product>,
    pub checkout_url: Option<String>,
}

impl Order {
    /// The amount the spec means by the order's worth: `value`, else `revenue`, else `total`.
    pub fn amount(&self) -> Option<f64> {
        self.value.or(self.revenue).or(self.total)
    }
}

/// The spec's events that pronto understands; any other name is a custom event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", content = "properties")]
pub enum EcommerceEvent {
    #[serde(rename = "Product Viewed")]
    ProductViewed(Product),
    #[serde(rename = "Product Added")]
    ProductAdded {
        cart_id: Option<String>,
        product: Product,
    },
    #[serde(rename = "Product Removed")]
    ProductRemoved {
        cart_id: Option<String>,
        product: Product,
    },
    #[serde(rename = "Cart Viewed")]
    CartViewed(Cart),
    #[serde(rename = "Checkout Started")]
    CheckoutStarted(Order),
    #[serde(rename = "Checkout Step Viewed")]
    CheckoutStepViewed(Order),
    #[serde(rename = "Checkout Step Completed")]
    CheckoutStepCompleted(Order),
    #[serde(rename = "Payment Info Entered")]
    PaymentInfoEntered(Order),
    #[serde(rename = "Order Updated")]
    OrderUpdated(Order),
    #[serde(rename = "Order Completed")]
    OrderCompleted(Order),
    #[serde(rename = "Order Refunded")]
    OrderRefunded(Order),
    #[serde(rename = "Order Cancelled")]
    OrderCancelled(Order),
}

impl EcommerceEvent {
    /// The spec's event names.
    pub const NAMES: [&'static str; 12] = [
        "Product Viewed",
        "Product Added",
        "Product Removed",
        "Cart Viewed",
        "Checkout Started",
        "Checkout Step Viewed",
        "Checkout Step Completed",
        "Payment Info Entered",
        "Order Updated",
        "Order Completed",
        "Order Refunded",
        "Order Cancelled",
    ];

    /// `Ok(None)` for a custom event; `Err` names the documented property with a wrong type (paths are relative
    /// to `properties`).
    pub fn parse(name: &str, props: &Obj) -> Result<Option<Self>, Invalid> {
        let mut e = Errors::default();
        let ev = match name {
            "Product Viewed" => Self::ProductViewed(product(&mut e, props, "")),
            "Product Added" => Self::ProductAdded {
                cart_id: e.id(props, "cart_id", ""),
                product: product(&mut e, props, ""),
            },
            "Product Removed" => Self::ProductRemoved {
                cart_id: e.id(props, "cart_id", ""),
                product: product(&mut e, props, ""),
            },
            "Cart Viewed" => Self::CartViewed(Cart {
                cart_id: e.id(props, "cart_id", ""),
                products: products(&mut e, props),
                cart_url: e.str(props, "cart_url", ""),
            }),
            "Checkout Started" => Self::CheckoutStarted(order(&mut e, props)),
            "Checkout Step Viewed" => Self::CheckoutStepViewed(order(&mut e, props)),
            "Checkout Step Completed" => Self::CheckoutStepCompleted(order(&mut e, props)),
            "Payment Info Entered" => Self::PaymentInfoEntered(order(&mut e, props)),
            "Order Updated" => Self::OrderUpdated(order(&mut e, props)),
            "Order Completed" => Self::OrderCompleted(order(&mut e, props)),
            "Order Refunded" => Self::OrderRefunded(order(&mut e, props)),
            "Order Cancelled" => Self::OrderCancelled(order(&mut e, props)),
            _ => return Ok(None),
        };
        e.into_result(Some(ev))
    }
}

fn product(e: &mut Errors, o: &Obj, prefix: &str) -> Product {
    Product {
        product_id: e.id(o, "product_id", prefix),
        sku: e.id(o, "sku", prefix),
        category: e.str(o, "category", prefix),
        name: e.str(o, "name", prefix),
        brand: e.str(o, "brand", prefix),
        variant: e.str(o, "variant", prefix),
        price: e.num(o, "price", prefix),
        quantity: e.num(o, "quantity", prefix),
        coupon: e.str(o, "coupon", prefix),
        position: e.num(o, "position", prefix),
        url: e.str(o, "url", prefix),
        image_url: e.str(o, "image_url", prefix),
    }
}

fn products(e: &mut Errors, o: &Obj) -> Vec<Product> {
    let Some(items) = e.array(o, "products", "") else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("products[{i}]");
        match item {
            Value::Object(p) => out.push(product(e, p, &prefix)),
            _ => e.push(prefix, "must be an object"),
        }
    }
    out
}

fn order(e: &mut Errors, o: &Obj) -> Order {
    Order {
        checkout_id: e.id(o, "checkout_id", ""),
        order_id: e.id(o, "order_id", ""),
        cart_id: e.id(o, "cart_id", ""),
        affiliation: e.str(o, "affiliation", ""),
        value: e.num(o, "value", ""),
        revenue: e.num(o, "revenue", ""),
        total: e.num(o, "total", ""),
        subtotal: e.num(o, "subtotal", ""),
        shipping: e.num(o, "shipping", ""),
        tax: e.num(o, "tax", ""),
        discount: e.num(o, "discount", ""),
        coupon: e.str(o, "coupon", ""),
        currency: e.str(o, "currency", ""),
        products: products(e, o),
        checkout_url: e.str(o, "checkout_url", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: Value) -> Obj {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_checkout_started_is_read_with_its_cart_and_amounts() {
        let ev = EcommerceEvent::parse(
            "Checkout Started",
            &props(json!({
                "checkout_id": "chk_1", "order_id": 1001, "value": 54.5, "revenue": "50", "currency": "EUR",
                "checkout_url": "https://shop.example/c/chk_1",
                "products": [{"product_id": "p1", "name": "Mug", "variant": "blue", "price": 12.25, "quantity": 2,
                              "image_url": "https://shop.example/mug.png"}]
            })),
        )
        .unwrap();
        let Some(EcommerceEvent::CheckoutStarted(o)) = ev else {
            panic!("wrong variant {ev:?}")
        };
        assert_eq!(o.checkout_id.as_deref(), Some("chk_1"));
        assert_eq!(o.order_id.as_deref(), Some("1001"));
        assert_eq!(o.amount(), Some(54.5));
        assert_eq!(o.revenue, Some(50.0));
        assert_eq!(o.products[0].variant.as_deref(), Some("blue"));
        assert_eq!(o.products[0].quantity, Some(2.0));
    }

    #[test]
    fn every_spec_name_is_recognised_and_others_are_custom() {
        for name in EcommerceEvent::NAMES {
            let ev = EcommerceEvent::parse(name, &Obj::new()).unwrap();
            let tagged = serde_json::to_value(ev.expect(name)).unwrap();
            assert_eq!(tagged["event"], name);
        }
        assert_eq!(
            EcommerceEvent::parse("Signed Up", &Obj::new()).unwrap(),
            None
        );
    }

    #[test]
    fn a_product_that_is_not_an_object_is_named_by_index() {
        let err = EcommerceEvent::parse("Cart Viewed", &props(json!({"products": [{}, "mug"]})))
            .unwrap_err();
        assert_eq!(err.0[0].field, "products[1]");
    }
}
