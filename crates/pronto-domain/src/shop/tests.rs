//! The shop door's decisions, on the platforms' own published samples (tests/fixtures/shops/README.md names
//! each source and licence) and their published signature test vectors.

use super::*;
use crate::event::parse_message;
use crate::{EventType, ParseOptions};

const SHOPIFY_CHECKOUT: &[u8] =
    include_bytes!("../../../../tests/fixtures/shops/shopify-checkouts-create.json");
const SHOPIFY_ORDER: &[u8] =
    include_bytes!("../../../../tests/fixtures/shops/shopify-orders-create.json");
const SHOPIFY_CUSTOMER: &[u8] =
    include_bytes!("../../../../tests/fixtures/shops/shopify-customers-create.json");
const SHOPIFY_REFUND: &[u8] =
    include_bytes!("../../../../tests/fixtures/shops/shopify-refunds-create.json");
const WOO_ORDER: &[u8] = include_bytes!("../../../../tests/fixtures/shops/woocommerce-order.json");
const WOO_CUSTOMER: &[u8] =
    include_bytes!("../../../../tests/fixtures/shops/woocommerce-customer.json");

fn delivery<'a>(platform: Platform, topic: &'a str, body: &'a [u8]) -> Delivery<'a> {
    Delivery {
        platform,
        shop: "shop.example",
        topic,
        id: "d-1",
        body,
    }
}

fn messages(d: &Delivery<'_>) -> Vec<Value> {
    match map(d) {
        Ok(Mapped::Messages(m)) => m,
        other => panic!(
            "{} {}: expected messages, got {other:?}",
            d.platform.as_str(),
            d.topic
        ),
    }
}

/// The message that stands for the delivery (the last; an identify may come first).
fn track(d: &Delivery<'_>) -> Value {
    messages(d).pop().unwrap()
}

/// A fixture with some fields replaced (to link an order to a checkout, or move an order's status), the rest
/// as published.
fn patched(body: &[u8], fields: Value) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(body).unwrap();
    for (k, x) in fields.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn signatures_match_the_platforms_published_test_vectors() {
    // Shopify/shopify-app-js (MIT): lib/webhooks/__tests__/validate.test.ts with lib/__tests__/test-config.ts.
    let shopify = (
        b"test_secret_key".as_slice(),
        br#"{"foo": "bar"}"#.as_slice(),
        "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=",
    );
    // woocommerce/woocommerce (GPL-3.0): tests/legacy/unit-tests/webhooks/crud.php, test_generate_signature: a
    // new webhook's secret is empty and the payload signed is the string "secret".
    let woo = (
        b"".as_slice(),
        b"secret".as_slice(),
        "GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs=",
    );
    for (secret, body, expected) in [shopify, woo] {
        assert_eq!(sign(secret, body), expected);
        assert!(verify(secret, body, expected));
        assert!(
            verify(secret, body, &format!(" {expected}\n")),
            "header whitespace is not part of it"
        );
    }
}

#[test]
fn a_signature_that_does_not_match_is_refused() {
    let (secret, body) = (
        b"test_secret_key".as_slice(),
        br#"{"foo": "bar"}"#.as_slice(),
    );
    let good = sign(secret, body);
    let cases: &[(&str, &[u8], &[u8], String)] = &[
        ("another secret", b"test_secret_kez", body, good.clone()),
        ("another body", secret, br#"{"foo": "baz"}"#, good.clone()),
        ("no signature", secret, body, String::new()),
        ("not base64", secret, body, "not base64!".into()),
        ("truncated", secret, body, good[..20].to_string()),
        ("hex instead of base64", secret, body, "07".repeat(32)),
    ];
    for (case, secret, body, sig) in cases {
        assert!(!verify(secret, body, sig), "{case}");
    }
}

#[test]
fn a_redelivery_has_the_same_delivery_id_and_another_topic_another() {
    let headers = |pairs: &'static [(&'static str, &'static str)]| {
        move |h: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == h)
                .map(|(_, v)| v.to_string())
        }
    };
    let ev = headers(&[
        ("x-shopify-event-id", "59d6"),
        ("x-shopify-webhook-id", "545e"),
    ]);
    let wh = headers(&[("x-shopify-webhook-id", "545e")]);
    let none = headers(&[]);
    let cases: Vec<(&str, String, String)> = vec![
        (
            "Shopify: the event id, with the topic",
            delivery_id(Platform::Shopify, "orders/create", ev, b"{}"),
            "orders/create:59d6".into(),
        ),
        (
            "Shopify: the webhook id when there is no event id",
            delivery_id(Platform::Shopify, "orders/create", wh, b"{}"),
            "orders/create:545e".into(),
        ),
        (
            "Shopify: the body when neither header came",
            delivery_id(Platform::Shopify, "orders/create", none, b"{}"),
            "orders/create:sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
                .into(),
        ),
        (
            // WooCommerce's delivery id changes on every attempt.
            "WooCommerce: the body, whatever the delivery id",
            delivery_id(
                Platform::WooCommerce,
                "order.updated",
                headers(&[("x-wc-webhook-delivery-id", "changes-every-time")]),
                b"{}",
            ),
            "order.updated:sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
                .into(),
        ),
    ];
    for (case, got, want) in cases {
        assert_eq!(got, want, "{case}");
    }
    assert_ne!(
        delivery_id(Platform::Shopify, "orders/create", ev, b"{}"),
        delivery_id(Platform::Shopify, "orders/paid", ev, b"{}"),
        "one merchant action, two topics: two deliveries"
    );
}

#[test]
fn shop_names_compare_without_scheme_case_or_trailing_slash() {
    for (given, name) in [
        ("example.myshopify.com", "example.myshopify.com"),
        ("Example.MyShopify.com", "example.myshopify.com"),
        ("https://shop.example/", "shop.example"),
        ("http://shop.example/store/", "shop.example/store"),
        (" shop.example ", "shop.example"),
    ] {
        assert_eq!(shop_name(given), name, "{given}");
    }
}

#[test]
fn a_shopify_checkout_becomes_checkout_started_keyed_by_its_token_with_the_cart_as_it_was() {
    let d = delivery(Platform::Shopify, "checkouts/create", SHOPIFY_CHECKOUT);
    let all = messages(&d);
    assert_eq!(all.len(), 2, "an identify for the buyer, then the checkout");
    let (identify, track) = (&all[0], &all[1]);
    assert_eq!(identify["type"], "identify");
    assert_eq!(identify["anonymousId"], "shopify-checkout:123123123");
    assert_eq!(identify["userId"], "603851970716743426");
    assert_eq!(identify["traits"]["email"], "example@email.com");
    assert_eq!(identify["traits"]["first_name"], "John");
    assert_eq!(identify["traits"]["accepts_marketing"], false);

    assert_eq!(track["event"], "Checkout Started");
    assert_eq!(track["anonymousId"], identify["anonymousId"]);
    let p = &track["properties"];
    assert_eq!(p["checkout_id"], "123123123");
    assert_eq!(p["cart_id"], "eeafa272cebfd4b22385bc4b645e762c");
    assert_eq!(p["value"], 421.88);
    assert_eq!(p["currency"], "USD");
    assert_eq!(
        p["checkout_url"],
        "https://checkout.local/548380009/checkouts/123123123/recover?key=example-secret-token"
    );
    let products = p["products"].as_array().unwrap();
    assert_eq!(products.len(), 2);
    assert_eq!(products[0]["name"], "IPod Nano - 8GB");
    assert_eq!(products[0]["variant"], "Pink");
    assert_eq!(products[0]["price"], 199.0);
    assert_eq!(products[0]["quantity"], 1.0);
    assert_eq!(products[0]["product_id"], "632910392");
    assert!(
        p.get("coupon").is_none(),
        "no discount code: absent, not null"
    );

    let shop = &track["context"]["shop"];
    assert_eq!(shop["topic"], "checkouts/create");
    assert_eq!(
        shop["raw"].as_str().unwrap().as_bytes(),
        SHOPIFY_CHECKOUT,
        "the body, byte for byte"
    );
    assert!(
        identify["context"]["shop"].get("raw").is_none(),
        "attached once"
    );
    assert_ne!(identify["messageId"], track["messageId"]);
}

#[test]
fn every_mapped_message_is_one_the_segment_parser_accepts() {
    let linked = patched(SHOPIFY_ORDER, json!({"checkout_token": "123123123"}));
    let pending = patched(WOO_ORDER, json!({"status": "pending"}));
    let cases: Vec<Delivery<'_>> = vec![
        delivery(Platform::Shopify, "checkouts/create", SHOPIFY_CHECKOUT),
        delivery(Platform::Shopify, "checkouts/update", SHOPIFY_CHECKOUT),
        delivery(Platform::Shopify, "orders/create", SHOPIFY_ORDER),
        delivery(Platform::Shopify, "orders/create", &linked),
        delivery(Platform::Shopify, "orders/paid", SHOPIFY_ORDER),
        delivery(Platform::Shopify, "orders/cancelled", SHOPIFY_ORDER),
        delivery(Platform::Shopify, "customers/create", SHOPIFY_CUSTOMER),
        delivery(Platform::WooCommerce, "order.created", WOO_ORDER),
        delivery(Platform::WooCommerce, "order.created", &pending),
        delivery(Platform::WooCommerce, "order.deleted", br#"{"id":727}"#),
        delivery(Platform::WooCommerce, "customer.created", WOO_CUSTOMER),
    ];
    for d in cases {
        for m in messages(&d) {
            let parsed = parse_message(m.clone(), None, None, ParseOptions::default())
                .unwrap_or_else(|e| panic!("{} {}: {e:?} in {m}", d.platform.as_str(), d.topic));
            assert!(parsed.message_id.is_some());
            assert!(!parsed.identities.is_empty());
        }
    }
}

#[test]
fn a_shopify_order_names_the_checkout_it_completes() {
    let linked = patched(SHOPIFY_ORDER, json!({"checkout_token": "123123123"}));
    let d = delivery(Platform::Shopify, "orders/create", &linked);
    let all = messages(&d);
    let (identify, track) = (&all[0], &all[1]);
    assert_eq!(track["event"], "Order Completed");
    assert_eq!(track["properties"]["checkout_id"], "123123123");
    assert_eq!(track["properties"]["order_id"], "820982911946154508");
    assert_eq!(track["properties"]["revenue"], 404.95);
    assert_eq!(track["anonymousId"], "shopify-order:820982911946154508");
    assert_eq!(
        identify["anonymousId"], "shopify-checkout:123123123",
        "the identify joins the order's buyer to the checkout's"
    );
    // As published (no checkout token): no key, so the run ends by the same person.
    let unlinked = track_of(Platform::Shopify, "orders/create", SHOPIFY_ORDER);
    assert!(unlinked["properties"].get("checkout_id").is_none());
    assert_eq!(unlinked["context"]["traits"]["email"], "jon@example.com");
}

fn track_of(platform: Platform, topic: &str, body: &[u8]) -> Value {
    track(&delivery(platform, topic, body))
}

#[test]
fn each_topic_becomes_its_event_or_is_ignored_with_a_reason() {
    let completed = patched(
        SHOPIFY_CHECKOUT,
        json!({"completed_at": "2026-12-06T10:00:00Z"}),
    );
    let woo = |status: &str| patched(WOO_ORDER, json!({ "status": status }));
    let (pending, failed, hold, cancelled, refunded) = (
        woo("pending"),
        woo("failed"),
        woo("on-hold"),
        woo("cancelled"),
        woo("refunded"),
    );
    // Platform, topic, body, and the event it becomes (Ok) or why it is ignored (Err).
    type Case<'a> = (Platform, &'a str, &'a [u8], Result<&'a str, &'a str>);
    let cases: Vec<Case<'_>> = vec![
        (
            Platform::Shopify,
            "checkouts/update",
            SHOPIFY_CHECKOUT,
            Ok("Checkout Started"),
        ),
        (
            Platform::Shopify,
            "checkouts/update",
            &completed,
            Err("completed"),
        ),
        (
            Platform::Shopify,
            "orders/paid",
            SHOPIFY_ORDER,
            Ok("Order Updated"),
        ),
        (
            Platform::Shopify,
            "orders/cancelled",
            SHOPIFY_ORDER,
            Ok("Order Cancelled"),
        ),
        (
            Platform::Shopify,
            "app/uninstalled",
            b"{}",
            Err("does not use"),
        ),
        (
            Platform::WooCommerce,
            "order.created",
            &pending,
            Ok("Checkout Started"),
        ),
        (
            Platform::WooCommerce,
            "order.updated",
            &pending,
            Ok("Checkout Started"),
        ),
        (
            Platform::WooCommerce,
            "order.updated",
            &failed,
            Ok("Checkout Started"),
        ),
        (
            Platform::WooCommerce,
            "order.updated",
            WOO_ORDER,
            Ok("Order Completed"),
        ),
        (
            Platform::WooCommerce,
            "order.updated",
            &hold,
            Ok("Order Completed"),
        ),
        (
            Platform::WooCommerce,
            "order.updated",
            &cancelled,
            Ok("Order Cancelled"),
        ),
        (
            Platform::WooCommerce,
            "order.updated",
            &refunded,
            Ok("Order Refunded"),
        ),
        (
            Platform::WooCommerce,
            "order.deleted",
            br#"{"id":727}"#,
            Ok("Order Cancelled"),
        ),
        (Platform::WooCommerce, "", b"webhook_id=12", Err("ping")),
    ];
    for (platform, topic, body, want) in cases {
        let d = delivery(platform, topic, body);
        match (map(&d), want) {
            (Ok(Mapped::Messages(m)), Ok(name)) => {
                assert_eq!(m.last().unwrap()["event"], name, "{topic}")
            }
            (Ok(Mapped::Ignored(why)), Err(reason)) => {
                assert!(why.contains(reason), "{topic}: {why}")
            }
            (got, want) => panic!("{topic}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn a_woocommerce_order_is_keyed_by_its_id_with_the_payment_page_as_the_restore_link() {
    let pending = patched(
        WOO_ORDER,
        json!({"status": "pending", "payment_url": "https://example.com/checkout/order-pay/727/?pay_for_order=true&key=wc_order_58d2d042d1d"}),
    );
    let t = track_of(Platform::WooCommerce, "order.created", &pending);
    let p = &t["properties"];
    assert_eq!(p["checkout_id"], "727");
    assert!(p.get("order_id").is_none(), "not an order yet");
    assert_eq!(p["checkout_url"], pending_url());
    assert_eq!(p["value"], 29.35);
    assert_eq!(p["products"][0]["name"], "Woo Single #1");
    assert_eq!(p["products"][0]["price"], 3.0);
    assert_eq!(p["products"][0]["quantity"], 2.0);
    assert_eq!(t["context"]["traits"]["email"], "john.doe@example.com");
    assert!(t.get("userId").is_none(), "customer_id 0 is a guest");
    let done = track_of(Platform::WooCommerce, "order.updated", WOO_ORDER);
    assert_eq!(
        done["properties"]["checkout_id"], "727",
        "the same key ends the run"
    );
    assert_eq!(done["properties"]["order_id"], "727");
    assert!(done["properties"].get("checkout_url").is_none());
}

fn pending_url() -> &'static str {
    "https://example.com/checkout/order-pay/727/?pay_for_order=true&key=wc_order_58d2d042d1d"
}

#[test]
fn a_signed_body_that_cannot_be_mapped_says_why() {
    let cases: &[(Platform, &str, &[u8], &str)] = &[
        (
            Platform::Shopify,
            "checkouts/create",
            b"not json",
            "not JSON",
        ),
        (
            Platform::Shopify,
            "checkouts/create",
            b"[1]",
            "not a JSON object",
        ),
        (
            Platform::Shopify,
            "checkouts/create",
            br#"{"email":"a@b.example"}"#,
            "token",
        ),
        (
            Platform::Shopify,
            "orders/create",
            br#"{"email":"a@b.example"}"#,
            "id",
        ),
        (Platform::Shopify, "", b"{}", "X-Shopify-Topic"),
        (
            Platform::WooCommerce,
            "order.updated",
            br#"{"id":1,"status":"shipped-by-owl"}"#,
            "shipped-by-owl",
        ),
        (
            Platform::WooCommerce,
            "order.updated",
            br#"{"id":1}"#,
            "status",
        ),
        (Platform::WooCommerce, "", b"{}", "X-WC-Webhook-Topic"),
    ];
    for (platform, topic, body, reason) in cases {
        match map(&delivery(*platform, topic, body)) {
            Err(Unmappable(why)) => assert!(why.contains(reason), "{topic}: {why}"),
            other => panic!("{topic} {:?}: {other:?}", String::from_utf8_lossy(body)),
        }
    }
}

#[test]
fn customers_become_identifies_with_their_consent() {
    let s = track_of(Platform::Shopify, "customers/create", SHOPIFY_CUSTOMER);
    assert_eq!(s["type"], "identify");
    assert!(s["userId"].is_string());
    assert!(s["traits"]["email"].is_string());
    let w = track_of(Platform::WooCommerce, "customer.created", WOO_CUSTOMER);
    assert_eq!(w["type"], "identify");
    assert_eq!(w["userId"], "25");
    assert_eq!(w["traits"]["email"], "john.doe@example.com");
    let _ = EventType::Identify;
}

#[test]
fn shopifys_published_refund_is_order_refunded_with_the_sum_of_its_successful_refund_transactions()
{
    let t = track_of(Platform::Shopify, "refunds/create", SHOPIFY_REFUND);
    assert_eq!(t["event"], "Order Refunded");
    let p = &t["properties"];
    // The sample's ids, as published (rounded past 2^53 by the page that shows them).
    assert_eq!(p["order_id"], "820982911946154500");
    assert_eq!(p["refund_id"], "890088186047892400");
    assert_eq!(p["total"], 85.0, "75.00 + 10.00");
    assert_eq!(p["refunded_by"], "548380009");
    assert_eq!(t["anonymousId"], "shopify-order:820982911946154500");
    assert_eq!(t["timestamp"], "2022-01-01T00:00:00Z");
}
