//! Shops plugged in: Shopify's and WooCommerce's webhooks end to end, over HTTP, on SQLite and PostgreSQL,
//! with the recovery email delivered over a real SMTP conversation. The bodies are the platforms' published
//! samples (tests/fixtures/shops/README.md), signed here as the platforms sign them; the shipped example
//! flows run unchanged. Time is a [`ManualClock`] moved by the test; the workers run stepped.

use chrono::{DateTime, Duration, Utc};
use pronto_domain::shop::sign;
use pronto_server::config::EXAMPLE_CONFIG;
use reqwest::StatusCode;
use serde_json::{json, Value};

mod common;
use common::Server;

const SHOPIFY_CHECKOUT: &[u8] =
    include_bytes!("../../../tests/fixtures/shops/shopify-checkouts-create.json");
const SHOPIFY_ORDER: &[u8] =
    include_bytes!("../../../tests/fixtures/shops/shopify-orders-create.json");
const WOO_ORDER: &[u8] = include_bytes!("../../../tests/fixtures/shops/woocommerce-order.json");
const SHOPIFY_PRODUCT: &[u8] =
    include_bytes!("../../../tests/fixtures/shops/shopify-products-create.json");
const WOO_PRODUCT: &[u8] = include_bytes!("../../../tests/fixtures/shops/woocommerce-product.json");

const SHOPIFY_SECRET: &str = "shpss_test_secret_0001";
const WOO_SECRET: &str = "wc_test_secret_0001";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

async fn start(backend: &str) -> Server {
    start_with(backend, EXAMPLE_CONFIG).await
}

/// The shipped checkout flow set to send to subscribers only, as a shop that mails only those who accepted
/// marketing would set it.
async fn subscribers_only(backend: &str) -> Server {
    let config = EXAMPLE_CONFIG.replacen(
        "id = \"checkout-recovery\"",
        "id = \"checkout-recovery\"\nsend_to = \"subscribers\"",
        1,
    );
    start_with(backend, &config).await
}

async fn start_with(backend: &str, flows: &str) -> Server {
    let config = format!(
        "{flows}\n[[shop]]\nplatform = \"shopify\"\nshop = \"example.myshopify.com\"\nsecret = \"{SHOPIFY_SECRET}\"\n\
         [[shop]]\nplatform = \"woocommerce\"\nshop = \"https://example.com/\"\nsecret = \"{WOO_SECRET}\"\n"
    );
    common::start_stepped(backend, true, &config, t0()).await
}

pronto_store::for_each_backend!(start;
    a_shopify_checkout_gets_the_recovery_email_with_its_exact_line_items_and_restore_link,
    a_shopify_order_ends_the_run_whether_it_comes_before_racing_or_after_the_checkout,
    a_forged_or_unknown_shop_delivery_is_refused_and_nothing_is_stored,
    a_redelivery_is_stored_once,
    a_signed_delivery_that_cannot_be_mapped_is_answered_2xx_and_kept_with_its_reason,
    a_woocommerce_order_left_pending_is_recovered_and_paying_ends_the_run,
    a_recovery_email_shows_two_products_from_the_catalog_bought_with_the_cart_and_related_to_it,
    a_woocommerce_product_webhook_keeps_the_catalog_and_a_deletion_removes_it,
);

mod consent {
    use super::*;
    pronto_store::for_each_backend!(subscribers_only;
        a_flow_for_subscribers_mails_only_buyers_who_accepted_marketing_in_the_shop,
    );
}

/// A fixture with named fields replaced; the rest as published.
fn patched(body: &[u8], fields: Value) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(body).unwrap();
    for (k, x) in fields.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::to_vec(&v).unwrap()
}

impl Server {
    async fn shopify(
        &self,
        topic: &str,
        event_id: &str,
        body: &[u8],
        secret: &str,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/webhooks/shopify", self.base))
            .header("Content-Type", "application/json")
            .header("X-Shopify-Topic", topic)
            .header("X-Shopify-Shop-Domain", "example.myshopify.com")
            .header("X-Shopify-Event-Id", event_id)
            .header("X-Shopify-Webhook-Id", format!("wh-{event_id}"))
            .header("X-Shopify-Hmac-Sha256", sign(secret.as_bytes(), body))
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// A delivery signed with the configured secret; the answer's JSON.
    async fn shopify_ok(&self, topic: &str, event_id: &str, body: &[u8]) -> Value {
        let r = self.shopify(topic, event_id, body, SHOPIFY_SECRET).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    async fn woo(&self, topic: &str, body: &[u8]) -> Value {
        let r = self
            .http
            .post(format!("{}/v1/webhooks/woocommerce", self.base))
            .header("Content-Type", "application/json")
            .header("X-WC-Webhook-Source", "https://example.com/")
            .header("X-WC-Webhook-Topic", topic)
            .header("X-WC-Webhook-Delivery-ID", uuid::Uuid::now_v7().to_string())
            .header("X-WC-Webhook-Signature", sign(WOO_SECRET.as_bytes(), body))
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    fn mails(&self) -> Vec<String> {
        self.sink
            .as_ref()
            .unwrap()
            .received()
            .into_iter()
            .map(|m| m.replace("=\r\n", "").replace("=\n", ""))
            .collect()
    }
}

async fn a_shopify_checkout_gets_the_recovery_email_with_its_exact_line_items_and_restore_link(
    s: Server,
) {
    let a = s
        .shopify_ok("checkouts/create", "ev-1", SHOPIFY_CHECKOUT)
        .await;
    assert_eq!(
        (a["outcome"].as_str(), a["events"].as_u64()),
        (Some("stored"), Some(2)),
        "{a}"
    );

    // 421.88 USD is in the 50-500 tier of the shipped flow: one hour.
    s.advance_and_settle(Duration::minutes(59)).await;
    assert!(s.mails().is_empty());
    s.advance_and_settle(Duration::minutes(1)).await;
    let mails = s.mails();
    assert_eq!(mails.len(), 1, "one reminder");
    let mail = &mails[0];
    for needle in [
        "To: example@email.com",
        "Subject: John, your order is waiting",
        "IPod Nano - 8GB (Pink) x 1: $199.00",
        "Total: $421.88",
    ] {
        assert!(mail.contains(needle), "missing {needle:?} in\n{mail}");
    }
    let targets = common::link_targets(mail);
    assert!(
        targets.iter().any(|t| t.starts_with(
            "https://checkout.local/548380009/checkouts/123123123/recover?key=example-secret-token&utm_source=pronto"
        )),
        "the restore link, through the tracked redirect: {targets:?}\n{mail}"
    );
    assert_eq!(
        mail.matches("IPod Nano - 8GB (Pink) x 1: $199.00").count(),
        2,
        "both line items of the sample, in the text part:\n{mail}"
    );

    // The stored event keeps the body byte for byte.
    let contact = s.admin("/v1/contacts?email=example@email.com").await;
    let events = contact["events"].as_array().unwrap();
    let track = events
        .iter()
        .find(|e| e["name"] == "Checkout Started")
        .expect("the checkout event");
    assert_eq!(
        track["payload"]["context"]["shop"]["raw"]
            .as_str()
            .unwrap()
            .as_bytes(),
        SHOPIFY_CHECKOUT
    );
    assert_eq!(contact["traits"]["first_name"], "John");
    s.stop().await;
}

async fn a_shopify_order_ends_the_run_whether_it_comes_before_racing_or_after_the_checkout(
    s: Server,
) {
    // The sample order names no checkout; these name the sample checkout's token, as a real order does.
    let order = patched(
        SHOPIFY_ORDER,
        json!({"checkout_token": "123123123", "email": "example@email.com"}),
    );
    // After: the checkout, then its order ten minutes later.
    s.shopify_ok("checkouts/create", "ev-c", SHOPIFY_CHECKOUT)
        .await;
    s.advance_and_settle(Duration::minutes(10)).await;
    s.shopify_ok("orders/create", "ev-o", &order).await;
    // Before: another checkout whose order arrived first (webhooks come in any order).
    let second = patched(
        SHOPIFY_CHECKOUT,
        json!({"token": "456456456", "cart_token": "c-2"}),
    );
    let second_order = patched(
        SHOPIFY_ORDER,
        json!({"id": 999, "checkout_token": "456456456", "email": "other@email.com"}),
    );
    s.shopify_ok("orders/create", "ev-o2", &second_order).await;
    s.shopify_ok("checkouts/create", "ev-c2", &second).await;
    // Racing: a third checkout and its order delivered at the same moment, on two connections.
    let third = patched(
        SHOPIFY_CHECKOUT,
        json!({"token": "789789789", "cart_token": "c-3"}),
    );
    let third_order = patched(
        SHOPIFY_ORDER,
        json!({"id": 998, "checkout_token": "789789789", "email": "third@email.com"}),
    );
    let (c, o) = tokio::join!(
        s.shopify_ok("checkouts/create", "ev-c3", &third),
        s.shopify_ok("orders/create", "ev-o3", &third_order)
    );
    assert_eq!(
        (c["outcome"].as_str(), o["outcome"].as_str()),
        (Some("stored"), Some("stored"))
    );

    s.advance_and_settle(Duration::hours(30)).await;
    assert!(
        s.mails().is_empty(),
        "a buyer is never mailed: {:?}",
        s.mails()
    );
    let flow = s.flow("checkout-recovery").await;
    assert_eq!(
        flow["exited"]["Order Completed for the same checkout_id"], 3,
        "{flow}"
    );
    s.stop().await;
}

async fn a_forged_or_unknown_shop_delivery_is_refused_and_nothing_is_stored(s: Server) {
    let cases: Vec<(&str, reqwest::RequestBuilder, &str)> = vec![
        (
            "signed with another secret",
            s.http
                .post(format!("{}/v1/webhooks/shopify", s.base))
                .header("X-Shopify-Topic", "checkouts/create")
                .header("X-Shopify-Shop-Domain", "example.myshopify.com")
                .header(
                    "X-Shopify-Hmac-Sha256",
                    sign(b"not the secret", SHOPIFY_CHECKOUT),
                ),
            "X-Shopify-Hmac-Sha256",
        ),
        (
            "unsigned",
            s.http
                .post(format!("{}/v1/webhooks/shopify", s.base))
                .header("X-Shopify-Topic", "checkouts/create")
                .header("X-Shopify-Shop-Domain", "example.myshopify.com"),
            "X-Shopify-Hmac-Sha256",
        ),
        (
            "a shop that is not configured",
            s.http
                .post(format!("{}/v1/webhooks/shopify", s.base))
                .header("X-Shopify-Topic", "checkouts/create")
                .header("X-Shopify-Shop-Domain", "evil.myshopify.com")
                .header(
                    "X-Shopify-Hmac-Sha256",
                    sign(SHOPIFY_SECRET.as_bytes(), SHOPIFY_CHECKOUT),
                ),
            "X-Shopify-Shop-Domain",
        ),
        (
            "the body changed after signing",
            s.http
                .post(format!("{}/v1/webhooks/woocommerce", s.base))
                .header("X-WC-Webhook-Topic", "order.created")
                .header("X-WC-Webhook-Source", "https://example.com/")
                .header("X-WC-Webhook-Signature", sign(WOO_SECRET.as_bytes(), b"{}")),
            "X-WC-Webhook-Signature",
        ),
    ];
    for (case, request, header) in cases {
        let body = if header.starts_with("X-WC") {
            WOO_ORDER
        } else {
            SHOPIFY_CHECKOUT
        };
        let r = request.body(body.to_vec()).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{case}");
        let err: Value = r.json().await.unwrap();
        assert_eq!(err["errors"][0]["field"], header, "{case}: {err}");
    }
    for who in ["email=example@email.com", "email=john.doe@example.com"] {
        let r = s
            .http
            .get(format!("{}/v1/contacts?{who}", s.base))
            .bearer_auth(common::ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::NOT_FOUND,
            "nothing stored for {who}"
        );
    }
    assert_eq!(
        s.admin("/v1/webhooks/unmapped").await["deliveries"],
        json!([])
    );
    s.advance_and_settle(Duration::hours(5)).await;
    assert!(s.mails().is_empty());
    s.stop().await;
}

async fn a_redelivery_is_stored_once(s: Server) {
    let first = s
        .shopify_ok("checkouts/create", "ev-1", SHOPIFY_CHECKOUT)
        .await;
    let again = s
        .shopify_ok("checkouts/create", "ev-1", SHOPIFY_CHECKOUT)
        .await;
    assert_eq!(first["outcome"], "stored");
    assert_eq!(again["outcome"], "duplicate", "{again}");
    let woo = patched(WOO_ORDER, json!({"status": "pending"}));
    assert_eq!(s.woo("order.created", &woo).await["outcome"], "stored");
    // WooCommerce's delivery id changes on every attempt: the body recognises the retry.
    assert_eq!(s.woo("order.created", &woo).await["outcome"], "duplicate");
    let contact = s.admin("/v1/contacts?email=example@email.com").await;
    let names: Vec<&str> = contact["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["Checkout Started"], "{contact}");
    s.advance_and_settle(Duration::hours(1)).await;
    assert_eq!(
        s.mails().len(),
        2,
        "one reminder per checkout, not per delivery"
    );
    s.stop().await;
}

async fn a_signed_delivery_that_cannot_be_mapped_is_answered_2xx_and_kept_with_its_reason(
    s: Server,
) {
    let body = br#"{"email": "no-token@example.com", "line_items": []}"#;
    let a = s.shopify_ok("checkouts/create", "ev-bad", body).await;
    assert_eq!(a["outcome"], "kept", "{a}");
    assert!(a["reason"].as_str().unwrap().contains("token"), "{a}");
    // A retry of it is kept once.
    assert_eq!(
        s.shopify_ok("checkouts/create", "ev-bad", body).await["outcome"],
        "kept"
    );
    // Signed but empty: refused, naming the body, and not kept.
    let empty = s
        .shopify("checkouts/create", "ev-empty", b"", SHOPIFY_SECRET)
        .await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        empty.json::<Value>().await.unwrap()["errors"][0]["field"],
        "body"
    );
    // Signed, but a topic pronto does not use, and WooCommerce's unsigned ping: answered, nothing kept.
    assert_eq!(
        s.shopify_ok("app/uninstalled", "ev-app", b"{}").await["outcome"],
        "ignored"
    );
    let ping = s
        .http
        .post(format!("{}/v1/webhooks/woocommerce", s.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("webhook_id=42")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ping.status(),
        StatusCode::OK,
        "only an exact 200 keeps the webhook active"
    );

    let kept = s.admin("/v1/webhooks/unmapped").await;
    let list = kept["deliveries"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{kept}");
    assert_eq!(list[0]["platform"], "shopify");
    assert_eq!(list[0]["shop"], "example.myshopify.com");
    assert_eq!(list[0]["topic"], "checkouts/create");
    assert_eq!(list[0]["delivery_id"], "checkouts/create:ev-bad");
    assert_eq!(list[0]["body"].as_str().unwrap().as_bytes(), body);
    let metrics = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The recorder is the process's: other tests running beside this one count too.
    let unmapped: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                r#"pronto_shop_deliveries_total{platform="shopify",outcome="unmapped"} "#,
            )
        })
        .unwrap_or_else(|| panic!("no unmapped count in\n{metrics}"))
        .parse()
        .unwrap();
    assert!(unmapped >= 2.0, "{metrics}");
    s.stop().await;
}

async fn a_woocommerce_order_left_pending_is_recovered_and_paying_ends_the_run(s: Server) {
    let url =
        "https://example.com/checkout/order-pay/727/?pay_for_order=true&key=wc_order_58d2d042d1d";
    let pending = patched(WOO_ORDER, json!({"status": "pending", "payment_url": url}));
    let other = patched(
        WOO_ORDER,
        json!({"id": 728, "status": "pending", "billing": {"email": "ann@example.com", "first_name": "Ann"}}),
    );
    assert_eq!(s.woo("order.created", &pending).await["outcome"], "stored");
    assert_eq!(s.woo("order.created", &other).await["outcome"], "stored");
    s.advance_and_settle(Duration::minutes(5)).await;
    // Order 728 is paid (the sample as published is `processing`, the purchase).
    let paid = patched(
        WOO_ORDER,
        json!({"id": 728, "billing": {"email": "ann@example.com"}}),
    );
    assert_eq!(s.woo("order.updated", &paid).await["outcome"], "stored");
    // 29.35 USD: the ten-minute tier.
    s.advance_and_settle(Duration::minutes(5)).await;
    let mails = s.mails();
    assert_eq!(mails.len(), 1, "727 is reminded, 728 paid: {mails:?}");
    for needle in ["To: john.doe@example.com", "Woo Single #1 x 2: $6.00"] {
        assert!(
            mails[0].contains(needle),
            "missing {needle:?} in\n{}",
            mails[0]
        );
    }
    let targets = common::link_targets(&mails[0]);
    assert!(
        targets.iter().any(|t| t.starts_with(
            "https://example.com/checkout/order-pay/727/?pay_for_order=true&key=wc_order_58d2d042d1d&utm_source=pronto"
        )),
        "{targets:?}"
    );
    s.stop().await;
}

async fn a_flow_for_subscribers_mails_only_buyers_who_accepted_marketing_in_the_shop(s: Server) {
    // The sample checkout's buyer did not accept marketing; this one did.
    let subscribed = patched(
        SHOPIFY_CHECKOUT,
        json!({"token": "789789789", "email": "fan@email.com", "buyer_accepts_marketing": true, "customer": null}),
    );
    s.shopify_ok("checkouts/create", "ev-1", SHOPIFY_CHECKOUT)
        .await;
    s.shopify_ok("checkouts/create", "ev-2", &subscribed).await;
    s.advance_and_settle(Duration::hours(1)).await;
    let mails = s.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains("To: fan@email.com"), "{}", mails[0]);
    let flow = s.flow("checkout-recovery").await;
    assert_eq!(
        flow["exited"]["not a subscriber (the flow sends to contacts who accept marketing)"], 1,
        "{flow}"
    );
    s.stop().await;
}

/// Shopify's published product, as another product of the shop (named fields replaced).
fn shopify_product(id: u64, handle: &str, title: &str, kind: &str, status: &str) -> Vec<u8> {
    patched(
        SHOPIFY_PRODUCT,
        json!({"id": id, "handle": handle, "title": title, "product_type": kind, "status": status,
               "tags": handle, "updated_at": "2026-12-06T11:00:00-00:00"}),
    )
}

async fn a_recovery_email_shows_two_products_from_the_catalog_bought_with_the_cart_and_related_to_it(
    s: Server,
) {
    // The catalog, from products/create deliveries: the cart's own iPod (with an image), a case of the same type, earbuds
    // of another type, a dock of the same type that is a draft, and the sample T-shirt, unrelated.
    for (n, body) in [
        patched(
            &shopify_product(
                632910392,
                "ipod-nano",
                "IPod Nano - 8GB",
                "Music players",
                "active",
            ),
            json!({"image": {"src": "https://cdn.example/ipod-nano.png"}}),
        ),
        shopify_product(1001, "ipod-case", "IPod Case", "Music players", "active"),
        shopify_product(1002, "earbuds", "Earbuds", "Audio", "active"),
        shopify_product(1003, "ipod-dock", "IPod Dock", "Music players", "draft"),
        SHOPIFY_PRODUCT.to_vec(),
    ]
    .into_iter()
    .enumerate()
    {
        let a = s
            .shopify_ok("products/create", &format!("p-{n}"), &body)
            .await;
        assert_eq!(a["outcome"], "catalog", "{a}");
        assert_eq!(a["catalog"]["upserted"], 1, "{a}");
    }
    // Two past orders bought the iPod with the earbuds (the published order, with its lines replaced).
    let line = |product_id: u64, title: &str| {
        json!({"id": product_id + 7, "product_id": product_id, "title": title, "price": "10.00", "quantity": 1,
               "sku": null, "variant_id": null})
    };
    for (id, event) in [(9001_u64, "o-1"), (9002, "o-2")] {
        let order = patched(
            SHOPIFY_ORDER,
            json!({"id": id, "line_items": [line(632910392, "IPod Nano - 8GB"), line(1002, "Earbuds")]}),
        );
        let a = s.shopify_ok("orders/create", event, &order).await;
        assert_eq!(a["outcome"], "stored", "{a}");
    }

    s.shopify_ok("checkouts/create", "ev-1", SHOPIFY_CHECKOUT)
        .await;
    s.advance_and_settle(Duration::hours(1)).await;
    let mails = s.mails();
    assert_eq!(mails.len(), 1, "one reminder");
    let mail = &mails[0];
    let text = mail.split("Content-Type: text/html").next().unwrap();
    // Each recommendation's link goes through the tracked redirect, in the text part and the HTML part.
    let targets = common::link_targets(mail);
    let linked = |page: &str| {
        targets
            .iter()
            .filter(|t| {
                t.starts_with(&format!(
                    "https://example.myshopify.com/products/{page}?utm_source=pronto"
                ))
            })
            .count()
    };
    assert_eq!(
        (linked("earbuds"), linked("ipod-case")),
        (2, 2),
        "{targets:?}"
    );
    let earbuds = text.find("- Earbuds: $19.99 ");
    let case = text.find("- IPod Case: $19.99 ");
    assert!(
        matches!((earbuds, case), (Some(a), Some(b)) if a < b),
        "bought together first, then the same type, in\n{mail}"
    );
    for absent in ["IPod Dock", "Example T-Shirt"] {
        assert!(
            !mail.contains(absent),
            "{absent} is a draft or unrelated:\n{mail}"
        );
    }
    assert_eq!(
        text.matches("IPod Nano - 8GB (Pink) x 1: $199.00").count(),
        2,
        "the cart as it was, the item itself never recommended:\n{mail}"
    );
    // Shopify's checkout lines carry no image: the cart shows its catalog product's.
    assert_eq!(
        mail.matches("<img src=3D\"https:&#x2f;&#x2f;cdn.example&#x2f;ipod-nano.png\"")
            .count(),
        2,
        "both lines of the sample, in the HTML part:\n{mail}"
    );
    s.stop().await;
}

async fn a_woocommerce_product_webhook_keeps_the_catalog_and_a_deletion_removes_it(s: Server) {
    let a = s.woo("product.created", WOO_PRODUCT).await;
    assert_eq!(
        (a["outcome"].as_str(), a["catalog"]["upserted"].as_u64()),
        (Some("catalog"), Some(1)),
        "{a}"
    );
    // A late redelivery of the same version changes nothing; an older one is not applied.
    let older = patched(
        WOO_PRODUCT,
        json!({"date_modified_gmt": "2017-03-01T00:00:00", "name": "Old"}),
    );
    let a = s.woo("product.updated", &older).await;
    assert_eq!(a["catalog"]["stale"], 1, "{a}");
    let a = s.woo("product.deleted", br#"{"id":794}"#).await;
    assert_eq!(a["catalog"]["deleted"], 1, "{a}");
    let a = s.woo("product.deleted", br#"{"id":794}"#).await;
    assert_eq!(a["catalog"]["deleted"], 0, "already gone: {a}");
    s.stop().await;
}
