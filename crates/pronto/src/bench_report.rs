//! `pronto bench report`: the flows report (`GET /v1/reports/flows`) over many experiment runs.
//!
//! 1. `--runs` checkouts are ingested through the store (group commit, flow trigger) into a flow with a 10%
//!    holdout and two variants, their client timestamps spread over the last 20 days.
//! 2. Their timers fire through the production timer batches: every run not held out gets a message.
//! 3. `--orders` orders for as many of the checkouts are ingested (conversions, an hour after the checkout).
//! 4. One message in eight gets a click (written with one statement: the clicks table has no other
//!    writer to go through).
//! 5. The report over the last 30 days is built `--repeats` times as the endpoint builds it (the store's
//!    two statements, then the domain's counting); the time of each is reported.

use crate::bench_timers::{ingest_all, Make};
use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use clap::Args;
use pronto_domain::event::parse_message;
use pronto_domain::flow::FlowConfig;
use pronto_domain::program::{MessageSettings, Program};
use pronto_domain::template::TemplateConfig;
use pronto_domain::{EventType, ParseOptions};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

#[derive(Args, Clone)]
pub struct ReportArgs {
    /// sqlite://FILE or postgres://… (an empty database). Default: a fresh SQLite file in a temp dir.
    #[arg(long)]
    database_url: Option<String>,
    /// Experiment runs (checkouts).
    #[arg(long, default_value_t = 1_000_000)]
    runs: usize,
    /// Orders converting as many of them.
    #[arg(long, default_value_t = 200_000)]
    orders: usize,
    /// Times the report is built.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
}

const CONFIG: &str = r#"
[[flow]]
id = "checkout-recovery"
trigger = { event = "Checkout Started" }
key = "properties.checkout_id"
exit = [{ event = "Order Completed", same = "key" }]
experiment = { id = "bench", holdout = "10%", variants = [{ id = "a" }, { id = "b" }] }
[[flow.step]]
wait = "1m"
[[flow.step]]
send = { channel = "email", template = "t" }
variants = { b = { send = { channel = "email", template = "t2" } } }

[[template]]
name = "t"
subject = "{{ cart.id }}"
text = "{{ cart.total }}"

[[template]]
name = "t2"
subject = "{{ cart.id }}, still thinking?"
text = "{{ cart.total }}"
"#;

fn program() -> anyhow::Result<Program> {
    #[derive(serde::Deserialize)]
    struct File {
        flow: Vec<FlowConfig>,
        template: Vec<TemplateConfig>,
    }
    let f: File = toml::from_str(CONFIG)?;
    Program::build(&f.flow, &f.template, MessageSettings::default())
        .map_err(|e| anyhow::anyhow!(e.join("; ")))
}

fn event(name: &str, i: usize, at: DateTime<Utc>) -> anyhow::Result<pronto_store::IngestItem> {
    Ok(parse_message(
        json!({"userId": format!("u-{i}"), "event": name, "timestamp": at.to_rfc3339(),
               "context": {"traits": {"email": format!("u{i}@example.com")}},
               "properties": {"checkout_id": format!("r{i}"), "order_id": format!("o{i}"),
                              "value": 40 + i % 100, "total": 40 + i % 100, "currency": "EUR"}}),
        Some(EventType::Track),
        None,
        ParseOptions::default(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .into())
}

pub async fn report(a: ReportArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let url = a
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", tmp.path().join("bench.db").display()));
    let store = pronto_store::connect(&url, pronto_store::Options::default())
        .await
        .with_context(|| format!("open {url}"))?;
    let ws = store.default_workspace().await?.id;
    store.shared().set_program(Arc::new(program()?));
    println!(
        "pronto bench report: {} experiment runs, {} orders, on {}",
        a.runs,
        a.orders,
        store.backend()
    );
    let now = Utc::now();
    let runs = a.runs;
    // Checkout i happened (20 days × i / runs) ago; its order an hour later.
    let started = Arc::new(move |i: usize| {
        now - Duration::seconds((20 * 86_400) as i64 * (runs - i) as i64 / runs.max(1) as i64)
    });
    let t = Instant::now();
    let s = started.clone();
    let make: Make = Arc::new(move |i| event("Checkout Started", i, s(i)));
    ingest_all(&store, ws, (0..a.runs).collect(), make, now).await?;
    println!(
        "  ingested {} checkouts in {:.1} s",
        a.runs,
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let (mut fired, mut messages) = (0, 0);
    loop {
        let f = store.fire_due(now + Duration::minutes(2), 1_000).await?;
        fired += f.runs;
        messages += f.messages;
        if f.runs == 0 {
            break;
        }
    }
    println!(
        "  fired {fired} runs ({messages} messages) in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let step = (a.runs / a.orders.max(1)).max(1);
    let s = started.clone();
    let make: Make = Arc::new(move |i| event("Order Completed", i, s(i) + Duration::hours(1)));
    let buyers: Vec<usize> = (0..a.runs).step_by(step).take(a.orders).collect();
    ingest_all(&store, ws, buyers, make, now).await?;
    println!(
        "  ingested {} orders in {:.1} s",
        a.orders,
        t.elapsed().as_secs_f64()
    );

    let clicks = add_clicks(&url).await?;
    println!("  {clicks} clicks");

    let program = store.shared().program();
    let (from, to) = (now - Duration::days(30), now + Duration::minutes(5));
    let rules = pronto_server::experiments::conversion_rules(&program);
    let mut times = Vec::new();
    for _ in 0..a.repeats {
        let t = Instant::now();
        let outcomes = store.experiment_runs(ws, from, to, &rules).await?;
        let promotions = store.promotions(ws).await?;
        let r =
            pronto_server::experiments::build_report(&outcomes, &promotions, &program, from, to);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            r.experiments
                .first()
                .map(|e| e.groups.iter().map(|g| g.entered).sum::<u64>())
                == Some(a.runs as u64),
            "the report did not count every run"
        );
    }
    times.sort_by(f64::total_cmp);
    println!(
        "  report over {} runs: p50 {:.0} ms, max {:.0} ms ({} builds; the report's time is the store's two \
         statements and the counting)",
        a.runs,
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );
    store.close().await;
    Ok(())
}

/// One click on one message in eight (the last hex digit of the run id is 0 or 8).
async fn add_clicks(url: &str) -> anyhow::Result<u64> {
    let sql = "INSERT INTO clicks (workspace_id, message_key, url, clicked_at) \
               SELECT workspace_id, idempotency_key, 'https://shop.example/', created_at FROM messages \
               WHERE run_id IS NOT NULL AND step = 1 AND substr(idempotency_key, 36, 1) IN ('0', '8')";
    Ok(if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await?;
        sqlx::query(sql).execute(&pool).await?.rows_affected()
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        sqlx::query(sql).execute(&pool).await?.rows_affected()
    })
}
