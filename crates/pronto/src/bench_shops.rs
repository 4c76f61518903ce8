//! `pronto bench shops`: signed Shopify `checkouts/create` deliveries into recovery runs, and delivery →
//! recovery email at SMTP.
//!
//! Both parts run `pronto serve`'s own assembly in process on a fresh database, with the shipped example config
//! and a `[[shop]]`. The body is Shopify's published `checkouts/create` sample
//! (tests/fixtures/shops/shopify-checkouts-create.json) with a token, cart token and email of its own per
//! delivery, signed as Shopify signs (base64 HMAC-SHA256 of the body), so the server checks a real signature
//! on every request.
//! 1. Throughput: a closed loop of `--concurrency` clients for `--seconds`; afterwards the flow must hold one
//!    active run per accepted delivery.
//! 2. Latency: an open loop at `--rate` deliveries/s for `--seconds` against the example's checkout flow with its
//!    wait removed (the email is due at once); a delivery's time runs from its HTTP 2xx to the local SMTP
//!    server accepting its email (`250` after `DATA`). With `--catalog N` the shop first gets N products and
//!    N/10 orders, so each email's recommendations are chosen from a real catalog (and checked to be there).

use crate::bench_support::{Db, InProcess};
use anyhow::{bail, Context};
use clap::Args;
use hdrhistogram::Histogram;
use pronto_server::config::{Overrides, EXAMPLE_CONFIG};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SAMPLE: &str = include_str!("../../../tests/fixtures/shops/shopify-checkouts-create.json");
const PRODUCT: &str = include_str!("../../../tests/fixtures/shops/shopify-products-create.json");
const ORDER: &str = include_str!("../../../tests/fixtures/shops/shopify-orders-create.json");
/// The product id of the checkout sample's line items.
const CART_PRODUCT: u64 = 632910392;
const SHOP: &str = "bench.myshopify.com";
const SECRET: &str = "bench-shopify-secret-0001";
const ADMIN: &str = "bench-shops-admin-key-0001";

#[derive(Args, Clone)]
pub struct ShopsArgs {
    /// sqlite (default: a fresh file in a temp dir per part) or a postgres://… URL: a fresh database is
    /// created on that server for each part and dropped afterwards.
    #[arg(long)]
    database_url: Option<String>,
    /// Seconds each part runs.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Clients of the throughput part.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Deliveries per second of the latency part.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// SQLite durability of a 2xx: full (fsync per group commit) or normal.
    #[arg(long, default_value = "full")]
    sqlite_sync: String,
    /// Before the latency part, this many products (signed products/create deliveries of Shopify's sample,
    /// one of them the checkout's own item, in 20 product types) and a tenth as many orders buying the
    /// checkout's item with another, so every recovery email carries two recommendations (checked).
    #[arg(long, default_value_t = 0)]
    catalog: u64,
}

/// The example config with the bench's shop; `at_once` removes the checkout flow's first wait, so its
/// email is due when the run starts.
fn config(at_once: bool) -> String {
    let mut c = EXAMPLE_CONFIG.to_string();
    if at_once {
        let before = c.len();
        c = c.replacen(
            "[[flow.step]]\nwait = { by = \"properties.value\", tiers = [[0, \"10m\"], [50, \"1h\"], [500, \"4h\"]] }\n",
            "",
            1,
        );
        assert_ne!(
            before,
            c.len(),
            "the example's checkout flow starts with its tiered wait"
        );
    }
    format!("{c}\n[[shop]]\nplatform = \"shopify\"\nshop = \"{SHOP}\"\nsecret = \"{SECRET}\"\n")
}

/// Delivery `n`: the sample with its own checkout and buyer, and the signature of exactly these bytes.
fn delivery(sample: &Value, n: u64) -> (Vec<u8>, String) {
    let mut v = sample.clone();
    v["token"] = json!(format!("bench-{n}"));
    v["cart_token"] = json!(format!("cart-{n}"));
    v["email"] = json!(format!("buyer{n}@bench.example"));
    v["customer"]["id"] = json!(1_000_000 + n);
    v["customer"]["email"] = json!(format!("buyer{n}@bench.example"));
    let body = serde_json::to_vec(&v).expect("a JSON value serialises");
    let sig = pronto_domain::shop::sign(SECRET.as_bytes(), &body);
    (body, sig)
}

/// The bench's server: `config(at_once)` on `url`, mail to `smtp`.
async fn serve(url: &str, a: &ShopsArgs, at_once: bool, smtp: &str) -> anyhow::Result<InProcess> {
    InProcess::start(
        &config(at_once),
        Overrides {
            database_url: Some(url.to_string()),
            write_key: Some("bench-shops-write-key-0001".into()),
            admin_key: Some(ADMIN.into()),
            smtp_url: Some(smtp.to_string()),
            sqlite_sync: Some(a.sqlite_sync.clone()),
            ..Default::default()
        },
    )
    .await
}

async fn post(
    client: &reqwest::Client,
    base: &str,
    n: u64,
    body: Vec<u8>,
    sig: String,
) -> anyhow::Result<()> {
    post_topic(
        client,
        base,
        "checkouts/create",
        &format!("bench-event-{n}"),
        body,
        sig,
        "stored",
    )
    .await
}

async fn post_topic(
    client: &reqwest::Client,
    base: &str,
    topic: &str,
    event: &str,
    body: Vec<u8>,
    sig: String,
    outcome: &str,
) -> anyhow::Result<()> {
    let r = client
        .post(format!("{base}/v1/webhooks/shopify"))
        .header("Content-Type", "application/json")
        .header("X-Shopify-Topic", topic)
        .header("X-Shopify-Shop-Domain", SHOP)
        .header("X-Shopify-Event-Id", event)
        .header("X-Shopify-Hmac-Sha256", sig)
        .body(body)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!(
            "HTTP {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    let answer: Value = r.json().await?;
    if answer["outcome"] != outcome {
        bail!("{topic}: not {outcome}: {answer}");
    }
    Ok(())
}

/// `n` products (product 0 is the checkout's item; types cycle through 20) and `n / 10` orders, each buying
/// the checkout's item with product `1 + i % 50`, all as signed Shopify deliveries.
async fn fill_catalog(client: &reqwest::Client, base: &str, n: u64) -> anyhow::Result<()> {
    let product: Value = serde_json::from_str(PRODUCT)?;
    let order: Value = serde_json::from_str(ORDER)?;
    let sign = |v: &Value| {
        let body = serde_json::to_vec(v).expect("a JSON value serialises");
        let sig = pronto_domain::shop::sign(SECRET.as_bytes(), &body);
        (body, sig)
    };
    let id = |i: u64| if i == 0 { CART_PRODUCT } else { 10_000 + i };
    for i in 0..n {
        let mut p = product.clone();
        p["id"] = json!(id(i));
        p["handle"] = json!(format!("bench-product-{i}"));
        p["title"] = json!(format!("Bench product {i}"));
        p["product_type"] = json!(format!("type-{}", i % 20));
        p["tags"] = json!(format!("tag-{}, tag-{}", i % 7, i % 11));
        let (body, sig) = sign(&p);
        post_topic(
            client,
            base,
            "products/create",
            &format!("bench-product-{i}"),
            body,
            sig,
            "catalog",
        )
        .await?;
    }
    let partners = n.saturating_sub(1).clamp(1, 50);
    for i in 0..n / 10 {
        let mut o = order.clone();
        o["id"] = json!(50_000_000 + i);
        o["email"] = json!(format!("orderer{i}@bench.example"));
        o["customer"]["id"] = json!(2_000_000 + i);
        o["customer"]["email"] = json!(format!("orderer{i}@bench.example"));
        o["line_items"] = json!([
            {"id": 1, "product_id": CART_PRODUCT, "title": "Bench product 0", "price": "1.00", "quantity": 1},
            {"id": 2, "product_id": id(1 + i % partners), "title": "other", "price": "1.00", "quantity": 1},
        ]);
        let (body, sig) = sign(&o);
        post_topic(
            client,
            base,
            "orders/create",
            &format!("bench-order-{i}"),
            body,
            sig,
            "stored",
        )
        .await?;
    }
    Ok(())
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub async fn shops(a: ShopsArgs) -> anyhow::Result<()> {
    let backend = match &a.database_url {
        Some(u) if u.starts_with("postgres") => "PostgreSQL".to_string(),
        _ => format!("SQLite (sync {})", a.sqlite_sync),
    };
    println!("pronto bench shops: signed Shopify checkouts/create deliveries, {backend}");
    let sample: Value = serde_json::from_str(SAMPLE)?;
    let sink = pronto_channels::sink::SmtpSink::start().await?;

    // 1. Throughput into recovery runs.
    let db = Db::create(a.database_url.as_deref(), 1).await?;
    let result = throughput(&db.url, &a, &sample, &sink.url()).await;
    db.drop().await?;
    result?;

    // 2. Delivery → recovery email at SMTP.
    let sink = pronto_channels::sink::SmtpSink::start().await?;
    let db = Db::create(a.database_url.as_deref(), 2).await?;
    let result = latency(&db.url, &a, &sample, &sink).await;
    db.drop().await?;
    result
}

async fn throughput(url: &str, a: &ShopsArgs, sample: &Value, smtp: &str) -> anyhow::Result<()> {
    let server = serve(url, a, false, smtp).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency)
        .build()?;
    let next = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency.max(1) {
        let (client, base, sample) = (client.clone(), server.base.clone(), sample.clone());
        let (next, accepted, hist) = (next.clone(), accepted.clone(), hist.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let (body, sig) = delivery(&sample, n);
                let t = Instant::now();
                post(&client, &base, n, body, sig).await?;
                hist.lock()
                    .unwrap()
                    .record(t.elapsed().as_micros() as u64)?;
                accepted.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = accepted.load(Ordering::Relaxed);
    let flows: Value = client
        .get(format!("{}/v1/flows", server.base))
        .bearer_auth(ADMIN)
        .send()
        .await?
        .json()
        .await?;
    let active = flows["flows"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["id"] == "checkout-recovery"))
        .and_then(|f| f["active"].as_u64())
        .context("GET /v1/flows has no checkout-recovery")?;
    let h = hist.lock().unwrap().clone();
    println!(
        "  throughput: {accepted} deliveries in {elapsed:.1} s = {:.0} deliveries/s ({} clients, HMAC checked on each); \
         HTTP p50 {:.1} ms, p99 {:.1} ms; recovery runs started: {active}",
        accepted as f64 / elapsed,
        a.concurrency,
        ms(&h, 0.5),
        ms(&h, 0.99),
    );
    server.stop().await?;
    if active != accepted {
        bail!("{accepted} deliveries were accepted but {active} runs started");
    }
    Ok(())
}

async fn latency(
    url: &str,
    a: &ShopsArgs,
    sample: &Value,
    sink: &pronto_channels::sink::SmtpSink,
) -> anyhow::Result<()> {
    let server = serve(url, a, true, &sink.url()).await?;
    let client = reqwest::Client::new();
    if a.catalog > 0 {
        let t = Instant::now();
        fill_catalog(&client, &server.base, a.catalog).await?;
        println!(
            "  catalog: {} products and {} orders delivered in {:.1} s",
            a.catalog,
            a.catalog / 10,
            t.elapsed().as_secs_f64()
        );
    }
    let n = a.rate * a.seconds;
    let acked: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / a.rate.max(1) as f64));
    let mut tasks = Vec::with_capacity(n as usize);
    let started = Instant::now();
    for i in 0..n {
        tick.tick().await;
        let (body, sig) = delivery(sample, i);
        let (client, base, acked) = (client.clone(), server.base.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            post(&client, &base, i, body, sig).await?;
            acked
                .lock()
                .unwrap()
                .insert(format!("buyer{i}@bench.example"), Instant::now());
            anyhow::Ok(())
        }));
    }
    let span = started.elapsed().as_secs_f64();
    for t in tasks {
        t.await??;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while (sink.received().len() as u64) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acked = acked.lock().unwrap().clone();
    let mut h = Histogram::<u64>::new(3)?;
    let mut recommending = 0;
    for (at, mail) in sink.received_at() {
        recommending += u64::from(mail.contains("Often bought with it"));
        let to = mail
            .lines()
            .find_map(|l| l.strip_prefix("To: "))
            .unwrap_or("");
        if let Some(ack) = acked.get(to.trim()) {
            h.record(at.saturating_duration_since(*ack).as_micros() as u64)?;
        }
    }
    println!(
        "  latency at {} deliveries/s ({n} sent in {span:.1} s), wait removed: delivery 2xx → recovery email \
         accepted by SMTP: {} of {n}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        a.rate,
        h.len(),
        ms(&h, 0.5),
        ms(&h, 0.99),
        h.max() as f64 / 1000.0,
    );
    server.stop().await?;
    if h.len() < n {
        bail!("{} of {n} recovery emails arrived within 120 s", h.len());
    }
    if a.catalog > 1 && recommending < n {
        bail!("{recommending} of {n} recovery emails carried recommendations");
    }
    if a.catalog > 1 {
        println!("  every recovery email carried its recommendations ({recommending})");
    }
    Ok(())
}
