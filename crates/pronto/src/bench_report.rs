//! `pronto bench report`: the flows report (`GET /v1/reports/flows`) over many experiment runs.
//!
//! 1. `--runs` checkouts are ingested through the store (group commit, flow trigger) into a flow with a 10%
//!    holdout and two variants, their client timestamps spread over the last 20 days.
//! 2. Their timers fire through the production timer batches: every run not held out gets a message.
//! 3. `--orders` orders for as many of the checkouts are ingested (conversions, an hour after the checkout).
//! 4. One message in eight gets a click (written with one statement: the clicks table has no other
//!    writer to go through).
//! 5. After each of those, the counts the report reads are caught up as the counter worker keeps them (its
//!    time is reported: what keeping them costs, per run, message, order and click).
//! 6. The report over the last 30 days is built `--repeats` times as the endpoint builds it (the counts as of
//!    now, the whole hours' summed, read the runs of the partial hours at the ends); then, for comparison, by
//!    reading every run as it did before the counts were kept (`--scans` times), which must give the same
//!    report. (In that order: on SQLite a read of every run holds the write-ahead log un-checkpointed for
//!    its 30 s, and the first read after it pays for the log the counts grew meanwhile.)
//! 7. The owner's recovery page (`/app/recovery`) is built `--repeats` times as the page builds it, from
//!    every flow's kept counts (before step 6's reads of every run); then `--scans` times by reading every
//!    run of every flow in the period as it is (as it did before those counts were kept), which must show the
//!    same funnels.

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
    #[arg(long, default_value_t = 20)]
    repeats: usize,
    /// Times the report is built by reading every run instead (0: not at all).
    #[arg(long, default_value_t = 2)]
    scans: usize,
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
    anyhow::ensure!(a.repeats > 0, "--repeats must be at least 1");
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
    let rules = pronto_server::experiments::conversion_rules(&store.shared().program());
    catch_up(&*store, &rules, "the runs").await?;

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
    catch_up(&*store, &rules, "the messages").await?;

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
    catch_up(&*store, &rules, "the orders").await?;

    let clicks = add_clicks(&url).await?;
    println!("  {clicks} clicks");
    catch_up(&*store, &rules, "the clicks").await?;

    let program = store.shared().program();
    let (from, to) = (now - Duration::days(30), now + Duration::minutes(5));
    let entered = |r: &pronto_server::experiments::FlowsReport| {
        r.experiments
            .first()
            .map(|e| e.groups.iter().map(|g| g.entered).sum::<u64>())
    };
    let mut kept = None;
    let mut times = Vec::new();
    for _ in 0..a.repeats {
        let t = Instant::now();
        let r = pronto_server::experiments::flows_report(&*store, &program, ws, from, to).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            entered(&r) == Some(a.runs as u64),
            "the report did not count every run"
        );
        kept = Some(r);
    }
    // The owner's recovery page (`/app/recovery`): from every flow's kept counts, as the page builds it, then
    // (`--scans` times, for comparison, after the report's reads of every run: on SQLite the first read after
    // one pays for the log it held back) by reading every run of every flow in the period, as it did before
    // those counts were kept. Both must show the same funnels.
    let recovery_of = |counts| {
        let flows = pronto_domain::experiment::recovery::recovery(&counts, &program.flows);
        let entered: i64 = flows
            .iter()
            .map(|f| f.funnel.entered + f.holdout.as_ref().map_or(0, |h| h.entered))
            .sum();
        (flows, entered)
    };
    let mut recoveries = Vec::new();
    let mut kept_page = None;
    for _ in 0..a.repeats {
        let t = Instant::now();
        let counts = pronto_server::experiments::counts_between(
            &*store,
            ws,
            (from, to),
            &rules,
            pronto_store::RunsOf::EveryFlow,
        )
        .await?;
        let (flows, entered) = recovery_of(counts);
        recoveries.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            entered == a.runs as i64,
            "the recovery page did not count every run"
        );
        kept_page = Some(flows);
    }
    let mut scanned = None;
    let mut scans = Vec::new();
    for _ in 0..a.scans {
        let t = Instant::now();
        let outcomes = store
            .run_outcomes(ws, pronto_store::RunsOf::Experiments, from, to, &rules)
            .await?;
        let promotions = store.promotions(ws).await?;
        let counts = pronto_domain::experiment::results::counts_of(&outcomes);
        let r = pronto_server::experiments::build_report(counts, &promotions, &program, from, to);
        scans.push(t.elapsed().as_secs_f64() * 1000.0);
        if let Some(k) = &kept {
            anyhow::ensure!(
                format!("{:.6?}", k.experiments) == format!("{:.6?}", r.experiments),
                "the kept counts and a read of every run disagree"
            );
        }
        scanned = Some(r);
    }
    let mut recovery_scans = Vec::new();
    for _ in 0..a.scans {
        let t = Instant::now();
        let outcomes = store
            .run_outcomes(ws, pronto_store::RunsOf::EveryFlow, from, to, &rules)
            .await?;
        let (flows, _) = recovery_of(pronto_domain::experiment::results::counts_of(&outcomes));
        recovery_scans.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            kept_page.as_ref().map(|k| format!("{k:.6?}")) == Some(format!("{flows:.6?}")),
            "the recovery page from the kept counts and from a read of every run disagree"
        );
    }
    for (times, how) in [
        (&mut recoveries, "from the kept counts"),
        (&mut recovery_scans, "reading every run of every flow"),
    ] {
        times.sort_by(f64::total_cmp);
        if !times.is_empty() {
            println!(
                "  recovery page over {} runs {how}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} builds)",
                a.runs,
                times[times.len() / 2],
                times[(times.len() * 99).div_ceil(100).saturating_sub(1)],
                times[times.len() - 1],
                times.len()
            );
        }
    }
    println!(
        "  each build from the kept counts, in order: {} ms",
        times
            .iter()
            .map(|t| format!("{t:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    times.sort_by(f64::total_cmp);
    scans.sort_by(f64::total_cmp);
    if !scans.is_empty() {
        println!(
            "  report over {} runs reading every run: p50 {:.0} ms, max {:.0} ms ({} builds)",
            a.runs,
            scans[scans.len() / 2],
            scans[scans.len() - 1],
            scans.len()
        );
    }
    println!(
        "  report over {} runs from the kept counts: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} builds; \
         each catches the counts up, sums the whole hours and reads the runs of the partial hours){}",
        a.runs,
        times[times.len() / 2],
        times[(times.len() * 99).div_ceil(100).saturating_sub(1)],
        times[times.len() - 1],
        times.len(),
        if scanned.is_some() {
            "; equal to reading every run"
        } else {
            ""
        }
    );
    store.close().await;
    Ok(())
}

/// Brings the kept counts up to date as the counter worker does, and says how long it took.
async fn catch_up(
    store: &dyn pronto_store::Store,
    rules: &[pronto_domain::experiment::results::ConversionRule],
    what: &str,
) -> anyhow::Result<()> {
    let t = Instant::now();
    let mut runs = 0;
    loop {
        let f = store
            .fold_reports(rules, pronto_server::experiments::FOLD_BATCH)
            .await?;
        runs += f.runs;
        if !f.more {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  counted {what}: {runs} runs re-read in {secs:.1} s ({:.0} runs/s)",
        runs as f64 / secs.max(1e-9)
    );
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
