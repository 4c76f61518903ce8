//! `pronto bench timers`: durable timers at scale, through the production code paths.
//!
//! 1. Schedule: N `Checkout Started` events are ingested through the store (group commit, flow trigger,
//!    run + timer in the same transaction). Their due times are spread over `--window` seconds by cart value
//!    (one wait tier per second).
//! 2. Cancel: half the carts get an `Order Completed` before they are due (the buyer case).
//! 3. Fire: the production scheduler and delivery worker ([`pronto_server::workers::Workers`]) run with a clock
//!    shifted so the first timer is due two seconds after this phase starts; they sleep until the next due
//!    time and claim in batches, exactly as `pronto serve` does. Lateness is the fire time (the outbox row's
//!    `created_at`, the scheduler's clock) minus the due time; throughput is fired timers over the span of the
//!    fires. RSS is sampled throughout.
//! 4. Burst: `--burst` more timers all due at one instant.
//! 5. End to end: `--e2e` carts posted over HTTP to an in-process server whose flow sends at once; each cart's
//!    time is from its 200 to the local SMTP server accepting its email.

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Args;
use hdrhistogram::Histogram;
use pronto_domain::event::parse_message;
use pronto_domain::flow::FlowConfig;
use pronto_domain::program::{MessageSettings, Program};
use pronto_domain::template::TemplateConfig;
use pronto_domain::{Clock, EventType, ParseOptions, WorkspaceId};
use pronto_store::{IngestItem, Store};
use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Clone)]
pub struct TimersArgs {
    /// sqlite://FILE or postgres://… (an empty database). Default: a fresh SQLite file in a temp dir.
    #[arg(long)]
    database_url: Option<String>,
    /// Timers to schedule.
    #[arg(long, default_value_t = 1_000_000)]
    timers: usize,
    /// Their due times spread over this many seconds.
    #[arg(long, default_value_t = 120)]
    window: u64,
    /// Cancel every second cart with an order before it is due.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    cancel_half: bool,
    /// Timers due at one single instant, after the spread ones.
    #[arg(long, default_value_t = 10_000)]
    burst: usize,
    /// Carts sent over HTTP for the end-to-end time to an SMTP server (0: skip).
    #[arg(long, default_value_t = 2_000)]
    e2e: usize,
    /// Carts per second in the end-to-end run (open loop: sent on schedule whatever the answers do).
    #[arg(long, default_value_t = 200)]
    e2e_rate: u64,
    /// Run the flow as an experiment: a 10% holdout (those runs write no message) and two variants, the
    /// second sending another template; measures what assignment adds.
    #[arg(long)]
    experiment: bool,
    /// The send shows a unique code from an offer pool stocked with one code per timer (code allocation in
    /// the timer transaction).
    #[arg(long)]
    offers: bool,
}

/// The real clock shifted by a settable amount: the scheduler lives in "virtual" time in which the timers
/// were scheduled, while its sleeps are real.
struct Shifted(AtomicI64);

impl Clock for Shifted {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() - chrono::Duration::microseconds(self.0.load(Ordering::Relaxed))
    }
}

fn program(window: u64, experiment: bool, offers: bool) -> anyhow::Result<Program> {
    // One tier per 100 ms of the window: due times spread evenly, not in whole-second bursts.
    let tiers: Vec<String> = (0..window.max(1) * 10)
        .map(|t| format!("[{t}, \"{}ms\"]", 1000 + t * 100))
        .collect();
    let text = format!(
        r#"
[[flow]]
id = "bench"
trigger = {{ event = "Checkout Started" }}
key = "properties.checkout_id"
exit = [{{ event = "Order Completed", same = "key" }}]
{}
[[flow.step]]
wait = {{ by = "properties.value", tiers = [{}] }}
[[flow.step]]
send = {{ channel = "email", template = "t"{} }}
{}

[[template]]
name = "t"
subject = "{{{{ cart.id }}}}"
text = "{{{{ cart.total }}}} {{{{ offer.code }}}}"

[[template]]
name = "t2"
subject = "{{{{ cart.id }}}}, still thinking?"
text = "{{{{ cart.total }}}}"
"#,
        if experiment {
            r#"experiment = { id = "bench", holdout = "10%", variants = [{ id = "a" }, { id = "b" }] }"#
        } else {
            ""
        },
        tiers.join(", "),
        if offers { r#", offer = "bench""# } else { "" },
        if experiment {
            r#"variants = { b = { send = { channel = "email", template = "t2" } } }"#
        } else {
            ""
        },
    );
    #[derive(serde::Deserialize)]
    struct File {
        flow: Vec<FlowConfig>,
        template: Vec<TemplateConfig>,
    }
    let f: File = toml::from_str(&text)?;
    let mut p = Program::build(&f.flow, &f.template, MessageSettings::default())
        .map_err(|e| anyhow::anyhow!(e.join("; ")))?;
    if offers {
        let pool: Vec<pronto_domain::offer::OfferConfig> =
            toml::from_str::<std::collections::HashMap<String, Vec<_>>>(
                "offer = [{ id = \"bench\" }]",
            )?
            .remove("offer")
            .unwrap_or_default();
        p.offers =
            pronto_domain::offer::Offers::check(&pool).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    Ok(p)
}

fn track(event: &str, key: &str, value: u64) -> anyhow::Result<IngestItem> {
    Ok(parse_message(
        json!({"userId": format!("u-{key}"), "event": event,
               "context": {"traits": {"email": format!("{key}@example.com")}},
               "properties": {"checkout_id": key, "value": value, "total": value}}),
        Some(EventType::Track),
        None,
        ParseOptions::default(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .into())
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub(crate) type Make = Arc<dyn Fn(usize) -> anyhow::Result<IngestItem> + Send + Sync>;

/// Ingests the item `make(i)` for every `i` in `ids`, in batches of 1,000 through 4 concurrent requests, as
/// clients would; items are built per batch so the bench's own memory stays small.
pub(crate) async fn ingest_all(
    store: &Arc<dyn Store>,
    ws: WorkspaceId,
    ids: Vec<usize>,
    make: Make,
    at: DateTime<Utc>,
) -> anyhow::Result<f64> {
    let n = ids.len();
    let started = Instant::now();
    let chunks: Vec<Vec<usize>> = ids.chunks(1000).map(<[_]>::to_vec).collect();
    let queue = Arc::new(tokio::sync::Mutex::new(chunks));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (store, queue, make) = (store.clone(), queue.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(chunk) = queue.lock().await.pop() else {
                    return anyhow::Ok(());
                };
                let items = chunk
                    .into_iter()
                    .map(|i| make(i))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                store.ingest(ws, items, at).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Fire times (virtual, µs since the epoch) of the runs whose keys start with `prefix`, by key: when their
/// message was written, or for a held-out run (`--experiment`), when its send was skipped.
async fn fires(url: &str, prefix: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let like = format!("{prefix}%");
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT r.run_key, m.created_at FROM messages m JOIN runs r ON r.id = m.run_id WHERE r.run_key LIKE ?1 \
             UNION ALL SELECT r.run_key, l.at FROM run_log l JOIN runs r ON r.id = l.run_id \
             WHERE l.kind = 'skipped' AND l.reason = 'holdout' AND r.run_key LIKE ?1",
        )
        .bind(&like)
        .fetch_all(&pool)
        .await?;
        rows.into_iter()
            .map(|(k, t)| Ok((k, DateTime::parse_from_rfc3339(&t)?.timestamp_micros())))
            .collect()
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT r.run_key, m.created_at FROM messages m JOIN runs r ON r.id = m.run_id WHERE r.run_key LIKE $1 \
             UNION ALL SELECT r.run_key, l.at FROM run_log l JOIN runs r ON r.id = l.run_id \
             WHERE l.kind = 'skipped' AND l.reason = 'holdout' AND r.run_key LIKE $1",
        )
        .bind(&like)
        .fetch_all(&pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(k, t)| (k, t.timestamp_micros()))
            .collect())
    }
}

struct Phase {
    fired: usize,
    wrongly_fired: usize,
    lateness: Histogram<u64>,
    /// From the first fire to the last.
    span: f64,
    peak_rss_kib: u64,
}

/// Runs the workers until `expect` timers of `prefix` fired (and no more are due) and the outbox is empty,
/// sampling RSS.
#[allow(clippy::too_many_arguments)]
async fn fire_phase(
    store: &Arc<dyn Store>,
    url: &str,
    clock: &Arc<Shifted>,
    prefix: &str,
    due_of: impl Fn(&str) -> Option<i64>,
    cancelled: impl Fn(&str) -> bool,
    expect: usize,
) -> anyhow::Result<Phase> {
    let workers = pronto_server::workers::Workers::start(
        store.clone(),
        clock.clone(),
        Default::default(),
        Default::default(),
    );
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak = peak.max(rss_kib("VmRSS:"));
        // Done when every timer fired and its message left the outbox: on PostgreSQL the end-to-end phase
        // runs on this same database, and messages still queued here would be sent ahead of its carts.
        let done = store.next_due().await?.is_none() && store.next_message_due().await?.is_none();
        if done || Instant::now() > deadline {
            break;
        }
    }
    workers.stop().await;
    let rows = fires(url, prefix).await?;
    let mut lateness = Histogram::<u64>::new(3)?;
    let (mut first, mut last, mut wrong) = (i64::MAX, i64::MIN, 0);
    for (key, at) in &rows {
        if cancelled(key) {
            wrong += 1;
        }
        if let Some(due) = due_of(key) {
            lateness.record((at - due).max(0) as u64)?;
        }
        first = first.min(*at);
        last = last.max(*at);
    }
    if rows.len() != expect {
        eprintln!("warning: {} timers fired, {expect} expected", rows.len());
    }
    Ok(Phase {
        fired: rows.len(),
        wrongly_fired: wrong,
        lateness,
        span: ((last - first).max(1)) as f64 / 1e6,
        peak_rss_kib: peak,
    })
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub async fn timers(a: TimersArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let url = a
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", tmp.path().join("bench.db").display()));
    let store = pronto_store::connect(&url, pronto_store::Options::default())
        .await
        .with_context(|| format!("open {url}"))?;
    let ws = store.default_workspace().await?.id;
    store
        .shared()
        .set_program(Arc::new(program(a.window, a.experiment, a.offers)?));
    if a.offers {
        let codes: Vec<String> = (0..a.timers + a.burst)
            .map(|i| format!("BENCH-{i:08}"))
            .collect();
        store
            .add_offer_codes(ws, "bench", &codes, Utc::now())
            .await?;
    }
    println!(
        "pronto bench timers: {} timers over {} s on {} ({}), {} cancelled; burst {}",
        a.timers,
        a.window,
        store.backend(),
        pronto_server::app::redact(&url),
        if a.cancel_half { a.timers / 2 } else { 0 },
        a.burst
    );

    // 1. Schedule, in virtual time v0; the first wait tier is 1 s.
    let v0 = Utc::now();
    let slots = a.window.max(1) * 10;
    let rss_before = rss_kib("VmRSS:");
    let make: Make =
        Arc::new(move |i| track("Checkout Started", &format!("s{i}"), i as u64 % slots));
    let rate = ingest_all(&store, ws, (0..a.timers).collect(), make, v0).await?;
    println!(
        "  scheduled {} timers: {rate:.0} /s (ingest + run + timer, one transaction per group)",
        a.timers
    );
    // 2. Cancel every second cart.
    if a.cancel_half {
        let make: Make = Arc::new(|i| track("Order Completed", &format!("s{i}"), 1));
        let ids = (0..a.timers).filter(|i| i % 2 == 1).collect();
        let rate = ingest_all(&store, ws, ids, make, v0).await?;
        println!("  cancelled {} by an order: {rate:.0} /s", a.timers / 2);
    }
    let rss_scheduled = rss_kib("VmRSS:");

    // 3. Fire: shift the clock so the first timer (v0 + 1 s) is due 2 s from now.
    let first_due = v0 + chrono::Duration::seconds(1);
    let shift = (Utc::now() + chrono::Duration::seconds(2) - first_due)
        .num_microseconds()
        .unwrap_or(0);
    let clock = Arc::new(Shifted(AtomicI64::new(shift)));
    let v0us = v0.timestamp_micros();
    let due_of = move |key: &str| -> Option<i64> {
        let i: u64 = key.strip_prefix('s')?.parse().ok()?;
        Some(v0us + 1_000_000 + (i % slots) as i64 * 100_000)
    };
    let cancelled = |key: &str| {
        a.cancel_half
            && key
                .strip_prefix('s')
                .and_then(|k| k.parse::<usize>().ok())
                .is_some_and(|i| i % 2 == 1)
    };
    let expect = if a.cancel_half {
        a.timers - a.timers / 2
    } else {
        a.timers
    };
    let p = fire_phase(&store, &url, &clock, "s", due_of, cancelled, expect).await?;
    println!(
        "  spread: fired {} (cancelled fired: {}), lateness p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.0} fires/s over the fires' span",
        p.fired,
        p.wrongly_fired,
        ms(&p.lateness, 0.5),
        ms(&p.lateness, 0.99),
        p.lateness.max() as f64 / 1000.0,
        p.fired as f64 / p.span
    );
    println!(
        "  RSS: {} MiB before scheduling, {} MiB with {} pending, peak {} MiB while firing; VmHWM {} MiB",
        rss_before / 1024,
        rss_scheduled / 1024,
        expect,
        p.peak_rss_kib / 1024,
        rss_kib("VmHWM:") / 1024
    );

    // 4. Burst: all due at one instant.
    if a.burst > 0 {
        let vb = Utc::now() - chrono::Duration::microseconds(shift);
        let make: Make = Arc::new(|i| track("Checkout Started", &format!("b{i}"), 0));
        ingest_all(&store, ws, (0..a.burst).collect(), make, vb).await?;
        let due = vb + chrono::Duration::seconds(1);
        let shift_b = (Utc::now() + chrono::Duration::seconds(2) - due)
            .num_microseconds()
            .unwrap_or(0);
        clock.0.store(shift_b, Ordering::Relaxed);
        let dus = due.timestamp_micros();
        let p = fire_phase(&store, &url, &clock, "b", |_| Some(dus), |_| false, a.burst).await?;
        println!(
            "  burst: {} due at one instant: lateness p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; drained at {:.0} fires/s",
            p.fired,
            ms(&p.lateness, 0.5),
            ms(&p.lateness, 0.99),
            p.lateness.max() as f64 / 1000.0,
            p.fired as f64 / p.span
        );
    }
    store.close().await;

    if a.e2e > 0 {
        e2e(a.e2e, a.e2e_rate, a.database_url.is_some().then_some(&url)).await?;
    }
    Ok(())
}

/// Carts in over HTTP → emails accepted by a local SMTP server, through `pronto serve`'s own assembly.
async fn e2e(n: usize, rate: u64, pg: Option<&String>) -> anyhow::Result<()> {
    use pronto_server::config::Overrides;
    let sink = pronto_channels::sink::SmtpSink::start().await?;
    let tmp = tempfile::tempdir()?;
    let url = match pg {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", tmp.path().join("e2e.db").display()),
    };
    let (write, admin) = ("bench-e2e-write-key-0001", "bench-e2e-admin-key-0001");
    let config = r#"
[[flow]]
id = "instant"
trigger = { event = "Checkout Started" }
key = "properties.checkout_id"
[[flow.step]]
send = { channel = "email", template = "t" }
[[template]]
name = "t"
subject = "cart {{ cart.id }}"
text = "{% for p in cart.products %}{{ p.name }} {{ p.line_total | money(cart.currency) }}\n{% endfor %}{{ cart.restore_url }}"
"#;
    let server = crate::bench_support::InProcess::start(
        config,
        Overrides {
            database_url: Some(url),
            write_key: Some(write.into()),
            admin_key: Some(admin.into()),
            smtp_url: Some(sink.url()),
            ..Default::default()
        },
    )
    .await?;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let acked = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    for i in 0..n {
        tick.tick().await;
        let (client, base, acked) = (client.clone(), base.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"userId": format!("e{i}"), "event": "Checkout Started",
                "context": {"traits": {"email": format!("e{i}@example.com")}},
                "properties": {"checkout_id": format!("e{i}"), "currency": "EUR",
                    "checkout_url": format!("https://shop.example/c/e{i}"),
                    "products": [{"name": "Mug", "price": 12.5, "quantity": 2}]}});
            let r = client
                .post(format!("{base}/v1/track"))
                .basic_auth(write, Some(""))
                .json(&body)
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("HTTP {}", r.status());
            }
            acked
                .lock()
                .unwrap()
                .insert(format!("cart e{i}"), Instant::now());
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while sink.received().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = started.elapsed().as_secs_f64();
    let mut h = Histogram::<u64>::new(3)?;
    let acked = acked.lock().unwrap().clone();
    for (at, mail) in sink.received_at() {
        let subject = mail
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or("");
        if let Some(ack) = acked.get(subject) {
            h.record(at.saturating_duration_since(*ack).as_micros() as u64)?;
        }
    }
    println!(
        "  end to end at {rate} carts/s: {} of {n} carts' emails accepted by the SMTP server in {total:.1} s; per cart (HTTP 200 → SMTP 250) p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        h.len(),
        ms(&h, 0.5),
        ms(&h, 0.99),
        h.max() as f64 / 1000.0
    );
    server.stop().await?;
    Ok(())
}
