//! `pronto bench app`: the web app's pages over many stored leads, and live inboxes.
//!
//! Leads are stored through the store's own ingest (routed, alerted and acknowledged as in production, with
//! the shipped example config), spread over the past 400 days, then a shop's tracked events up to `--events`
//! over the same days; then `pronto serve`'s assembly runs on that database in this process and the bench times, over real HTTP with real session cookies:
//! - a rep's inbox (`/app/inbox`), a manager's board (`/app/board`: reps, unclaimed leads and the 30-day
//!   speed-to-lead report), the report's API, an admin's messages explorer and the shop owner's recovery
//!   page, each `--repeats` times;
//! - `--inboxes` open inboxes on live updates: each holds `/app/live` open and, as the page does, takes the
//!   cards a `cards` event carries or, on a `leads` event, fetches its inbox again; the time from a lead's 2xx
//!   to each inbox showing it is recorded.
//!
//! Before the server starts, every timer and SLA step already due is fired (leads stored with past times
//! would otherwise all escalate at once, a storm a running system never sees), and the kept run counts are
//! caught up with them (a running system's counter keeps up as runs happen); on PostgreSQL the tables are
//! then analyzed, as autovacuum would after such a load.
//!
//! Memory: the process's resident set before and after the live connections open (client and server share
//! this process, so per connection it is an upper bound).

use crate::bench_support::InProcess;
use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use clap::Args;
use pronto_domain::event::parse_message;
use pronto_domain::{EventType, Lead, ParseOptions};
use pronto_store::{IngestItem, NewSession, Store};
use std::sync::Arc;
use std::time::Instant;

#[derive(Args)]
pub struct AppArgs {
    /// sqlite://FILE or postgres://…. Default: a fresh SQLite file in a temp dir. A database that already
    /// holds leads (an earlier run's) is used as it is: nothing more is stored before the pages are timed.
    #[arg(long)]
    database_url: Option<String>,
    /// Leads stored before the pages are timed.
    #[arg(long, default_value_t = 1_000_000)]
    leads: usize,
    /// Events stored in all, each lead's own included (default: ten per lead, issue 16's ten million beside a
    /// million leads): the rest are tracked events from a shop's visitors (90% `Product Viewed`; 5%
    /// `Checkout Started`, each followed by its `Order Completed`), stored after the leads and spread over
    /// the same 400 days.
    #[arg(long)]
    events: Option<usize>,
    /// Times each page is fetched.
    #[arg(long, default_value_t = 100)]
    repeats: usize,
    /// Open inboxes on live updates.
    #[arg(long, default_value_t = 500)]
    inboxes: usize,
    /// Leads posted one second apart while the inboxes listen.
    #[arg(long, default_value_t = 10)]
    live_leads: usize,
}

const ADMIN: &str = "pk_admin_bench_app_000000001";
const WRITE: &str = "pk_write_bench_app_000000001";
const BATCH: usize = 1_000;

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let p = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (p(0.5), p(0.99), v[v.len() - 1])
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Stores `n` items through the store's ingest, `BATCH` at a time, spread over the past 400 days, oldest
/// first: `make(i, at)` builds item `i`, stored at `at`. `what` names them in the progress lines.
async fn store_spread(
    store: &Arc<dyn Store>,
    n: usize,
    what: &str,
    make: impl Fn(usize, DateTime<Utc>) -> anyhow::Result<IngestItem>,
) -> anyhow::Result<f64> {
    let ws = store.default_workspace().await?.id;
    let now = Utc::now();
    let t = Instant::now();
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        let at =
            now - Duration::seconds((400 * 86_400) as i64 * (n - end) as i64 / n.max(1) as i64);
        let items = (start..end)
            .map(|i| make(i, at))
            .collect::<anyhow::Result<Vec<_>>>()?;
        store.ingest(ws, items, at).await?;
        if end.is_multiple_of(100_000) {
            eprintln!(
                "  {end} {what} stored ({:.0}/s)",
                end as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Stores `n` leads, newest last, spread over the past 400 days.
async fn seed(store: &Arc<dyn Store>, n: usize) -> anyhow::Result<()> {
    let secs = store_spread(store, n, "leads", |i, _| {
        let body = serde_json::json!({
            "name": format!("Lead {i}"),
            "email": format!("lead{i}@bench.example"),
            "message": "Could you call me about a quote?",
            "source": "bench",
        });
        let lead = Lead::parse(body.as_object().expect("an object"), Default::default())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(IngestItem {
            event: lead.to_event(None),
            lead: Some(lead),
            action: None,
        })
    })
    .await?;
    println!(
        "  stored {n} leads in {secs:.1} s ({:.0}/s, routed, alerted and acknowledged)",
        n as f64 / secs
    );
    Ok(())
}

/// Stores `n` tracked events from 200,000 visitors, spread over the past 400 days, oldest first. Every
/// twentieth is a `Checkout Started` and the next its `Order Completed` (the checkout-recovery run that the
/// first opens, the second ends): the board's checkouts and orders per week count them.
async fn seed_events(store: &Arc<dyn Store>, n: usize) -> anyhow::Result<()> {
    let secs = store_spread(store, n, "events", |i, at| {
        let (name, checkout) = match i % 20 {
            0 => ("Checkout Started", i),
            1 => ("Order Completed", i - 1),
            _ => ("Product Viewed", i),
        };
        let msg = serde_json::json!({
            "userId": format!("visitor-{}", i % 200_000),
            "event": name,
            "timestamp": at.to_rfc3339(),
            "properties": {"checkout_id": format!("c{checkout}"), "order_id": format!("o{checkout}"),
                           "product_id": format!("p{}", i % 500), "total": 40 + i % 100,
                           "currency": "EUR"},
        });
        Ok(
            parse_message(msg, Some(EventType::Track), None, ParseOptions::default())
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .into(),
        )
    })
    .await?;
    println!(
        "  stored {n} tracked events in {secs:.1} s ({:.0}/s)",
        n as f64 / secs
    );
    Ok(())
}

/// Fires every timer and SLA step already due, as a server that had been running all along would have:
/// leads stored with past times would otherwise all escalate at once when the server starts, a storm no
/// running system sees, which the live figures would then measure instead.
async fn settle(store: &Arc<dyn Store>) -> anyhow::Result<()> {
    let t = Instant::now();
    let (mut runs, mut leads) = (0, 0);
    loop {
        let f = store.fire_due(Utc::now(), 1_000).await?;
        runs += f.runs;
        leads += f.leads;
        if f.runs == 0 && f.leads == 0 {
            break;
        }
    }
    println!(
        "  fired what was due before the server starts: {runs} flow steps, {leads} SLA steps, in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let rules = pronto_server::experiments::conversion_rules(&store.shared().program());
    let mut counted = 0;
    loop {
        // Bigger steps than the counter worker's: nothing else waits for the writer here.
        let f = store.fold_reports(&rules, 10_000).await?;
        counted += f.runs;
        if !f.more {
            break;
        }
    }
    println!(
        "  caught the kept run counts up: {counted} runs re-read in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A session cookie for `user`, opened in the store as a sign-in would.
async fn cookie(store: &Arc<dyn Store>, user: &str) -> anyhow::Result<String> {
    let ws = store.default_workspace().await?.id;
    let token = pronto_server::auth::new_token();
    let hash = pronto_server::auth::token_hash(&token);
    let now = Utc::now();
    store
        .start_session(
            ws,
            user,
            NewSession {
                token_hash: &hash,
                method: "bench",
                agent: None,
                now,
                expires_at: now + Duration::days(1),
            },
        )
        .await?;
    Ok(format!("{}={token}", pronto_server::auth::SESSION_COOKIE))
}

/// Fetches `url` `repeats` times with the header `auth` (a session cookie or the admin key), each answer
/// checked for `expect`: p50, p99 and max in milliseconds.
async fn time_page(
    http: &reqwest::Client,
    url: &str,
    auth: (&str, &str),
    repeats: usize,
    expect: &str,
) -> anyhow::Result<(f64, f64, f64)> {
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        let r = http.get(url).header(auth.0, auth.1).send().await?;
        anyhow::ensure!(r.status().is_success(), "{url} answered {}", r.status());
        let body = r.text().await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            body.contains(expect),
            "{url} does not show {expect:?}: {}",
            body.get(body.find("<main").unwrap_or(0)..)
                .unwrap_or(&body)
                .chars()
                .take(1500)
                .collect::<String>()
        );
    }
    Ok(percentiles(times))
}

pub async fn app(a: AppArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let url = a
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", tmp.path().join("bench.db").display()));
    let overrides = pronto_server::config::Overrides {
        database_url: Some(url.clone()),
        write_key: Some(WRITE.into()),
        admin_key: Some(ADMIN.into()),
        ..Default::default()
    };
    let settings = pronto_server::config::Settings::resolve(
        pronto_server::config::FileConfig::parse(pronto_server::config::EXAMPLE_CONFIG, "example")?,
        overrides.clone(),
        "example".into(),
    )?;
    let store = pronto_store::connect(&url, pronto_store::Options::default())
        .await
        .with_context(|| format!("open {url}"))?;
    store.shared().set_program(Arc::new(
        settings.program(store.secret("links").await?.into_bytes())?,
    ));
    let events = a.events.unwrap_or(a.leads.saturating_mul(10));
    println!(
        "pronto bench app: {} leads and {} events on {}, the shipped example config",
        a.leads,
        events.max(a.leads),
        store.backend()
    );
    let ws = store.default_workspace().await?.id;
    if store.lead_mark(ws).await?.newest_lead.is_some() {
        println!(
            "  the database holds leads already (an earlier run's): timing on them as they are"
        );
    } else {
        seed(&store, a.leads).await?;
        seed_events(&store, events.saturating_sub(a.leads)).await?;
    }
    settle(&store).await?;
    if url.starts_with("postgres") {
        // What autovacuum does after a load (this VM's PostgreSQL runs with it off): without statistics the
        // planner scanned every run for the recovery page's partial hours (120-180 ms a view at 100,000 leads).
        let t = Instant::now();
        let pool = sqlx::PgPool::connect(&url).await?;
        sqlx::query("ANALYZE").execute(&pool).await?;
        pool.close().await;
        println!(
            "  analyzed the tables, as autovacuum would: {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let ann = cookie(&store, "ann@example.com").await?;
    let bo = cookie(&store, "bo@example.com").await?;
    let owner = cookie(&store, pronto_domain::access::ADMIN_KEY_USER).await?;
    store.close().await;

    let server = InProcess::start(pronto_server::config::EXAMPLE_CONFIG, overrides).await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(a.inboxes.max(16))
        .build()?;
    // A lead's card on Bo's inbox (a rep of the team and its manager). Not the newest seeded lead by name,
    // nor on Ann's: on a file reused for an hour, escalations have handed the leads on to Bo, and earlier
    // runs' live leads are newer.
    let card = "<li class=\"card\"";
    // The first board after start loads the speed-to-lead report's leads into memory
    // (`pronto_server::lead_report`); the timed fetches below read them brought up to date.
    let (first, _, _) = time_page(
        &http,
        &format!("{}/app/board", server.base),
        ("cookie", &bo),
        1,
        "Speed to lead",
    )
    .await?;
    println!("  the first board after start (loads the kept report): {first:.0} ms");
    let admin = format!("Bearer {ADMIN}");
    for (name, path, auth, expect) in [
        (
            "a rep's inbox (/app/inbox, Bo's: he holds the most leads)",
            "/app/inbox",
            ("cookie", bo.as_str()),
            card,
        ),
        (
            "a manager's board with the 30-day report (/app/board)",
            "/app/board",
            ("cookie", bo.as_str()),
            "Speed to lead",
        ),
        (
            "the 30-day speed-to-lead report (GET /v1/reports/speed-to-lead)",
            "/v1/reports/speed-to-lead",
            ("authorization", admin.as_str()),
            "\"overall\"",
        ),
        (
            "the messages explorer (/app/messages, an admin's)",
            "/app/messages",
            ("cookie", owner.as_str()),
            "<h1>Messages</h1>",
        ),
        (
            "the shop owner's 30-day recovery page (/app/recovery, an admin's)",
            "/app/recovery",
            ("cookie", owner.as_str()),
            "<h1>Recovery</h1>",
        ),
    ] {
        let (p50, p99, max) = time_page(
            &http,
            &format!("{}{path}", server.base),
            auth,
            a.repeats,
            expect,
        )
        .await?;
        println!(
            "  {name}: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({} fetches)",
            a.repeats
        );
    }
    // Live inboxes.
    let before = rss_kib();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let mut listeners = Vec::new();
    for i in 0..a.inboxes {
        let (http, base, cookie, tx) = (http.clone(), server.base.clone(), ann.clone(), tx.clone());
        let mut stream = http
            .get(format!("{base}/app/live"))
            .header("cookie", &cookie)
            .send()
            .await?;
        anyhow::ensure!(
            stream.status().is_success(),
            "/app/live answered {}",
            stream.status()
        );
        listeners.push(tokio::spawn(async move {
            let mut seen = String::new();
            while let Ok(Some(chunk)) = stream.chunk().await {
                seen.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = seen.find("\n\n") {
                    let event: String = seen.drain(..end + 2).collect();
                    // As the page does: put the cards sent in place, or fetch the inbox again.
                    let body = if event.contains("event: cards") {
                        event
                    } else if event.contains("event: leads") {
                        let Ok(r) = http
                            .get(format!("{base}/app/inbox"))
                            .header("cookie", &cookie)
                            .send()
                            .await
                        else {
                            continue;
                        };
                        r.text().await.unwrap_or_default()
                    } else {
                        continue;
                    };
                    for n in body.match_indices("Live lead ").map(|(at, _)| {
                        body[at + 10..]
                            .chars()
                            .take_while(char::is_ascii_digit)
                            .collect::<String>()
                    }) {
                        if let Ok(n) = n.parse::<usize>() {
                            let _ = tx.send((i * 1_000_000 + n, Instant::now()));
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after = rss_kib();
    println!(
        "  {} live inboxes open: resident set {} MiB → {} MiB, {:.1} KiB per connection (client and server, this process)",
        a.inboxes,
        before / 1024,
        after / 1024,
        after.saturating_sub(before) as f64 / a.inboxes.max(1) as f64
    );
    let mut posted = Vec::new();
    for n in 0..a.live_leads {
        let r = http
            .post(format!("{}/v1/leads", server.base))
            .basic_auth(WRITE, Some(""))
            .json(&serde_json::json!({"name": format!("Live lead {n}"), "email": format!("live{n}@bench.example")}))
            .send()
            .await?;
        anyhow::ensure!(
            r.status().is_success(),
            "POST /v1/leads answered {}",
            r.status()
        );
        posted.push(Instant::now());
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    drop(tx);
    let mut first_seen = std::collections::HashMap::new();
    while let Ok((key, at)) = rx.try_recv() {
        first_seen.entry(key).or_insert(at);
    }
    let mut latencies = Vec::new();
    let mut missing = 0;
    for i in 0..a.inboxes {
        for (n, at) in posted.iter().enumerate() {
            match first_seen.get(&(i * 1_000_000 + n)) {
                Some(seen) if seen >= at => {
                    latencies.push(seen.duration_since(*at).as_secs_f64() * 1000.0)
                }
                // Seen before the 2xx reached the bench: the page showed it at once.
                Some(_) => latencies.push(0.0),
                None => missing += 1,
            }
        }
    }
    let (p50, p99, max) = percentiles(latencies);
    println!(
        "  lead stored (2xx) → shown on each of {} live inboxes: p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms \
         ({} leads one second apart; {missing} of {} never shown)",
        a.inboxes,
        a.live_leads,
        a.inboxes * a.live_leads
    );
    for l in listeners {
        l.abort();
    }
    server.stop().await?;
    Ok(())
}
