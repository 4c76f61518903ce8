//! `pronto bench leads`: speed to lead, end to end, through `pronto serve`'s own assembly.
//!
//! For each rate, a fresh database and an in-process server run the shipped example config (two reps, a
//! round-robin team, the SLA chain, the acknowledgement and the lead cadence) with the reps' working hours
//! removed, so every lead is alerted at once whatever the hour the bench runs. Leads are posted to
//! `POST /v1/leads` on an open loop (sent on schedule whatever the answers do); a lead's time is from its
//! HTTP 2xx to the local SMTP server accepting its rep alert (`250` after `DATA`). The SMTP server is
//! [`pronto_channels::sink::SmtpSink`], which speaks the protocol over TCP as any relay would.

use anyhow::bail;
use clap::Args;
use hdrhistogram::Histogram;
use pronto_server::config::{Overrides, EXAMPLE_CONFIG};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args, Clone)]
pub struct LeadsArgs {
    /// sqlite (default: a fresh file in a temp dir per rate) or a postgres://… URL: a fresh database is
    /// created on that server for each rate and dropped afterwards.
    #[arg(long)]
    database_url: Option<String>,
    /// Leads per second, one run each.
    #[arg(long, value_delimiter = ',', default_values_t = [100u64, 1000])]
    rates: Vec<u64>,
    /// Seconds each rate is held.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// SQLite durability of a 2xx: full (fsync per group commit) or normal.
    #[arg(long, default_value = "full")]
    sqlite_sync: String,
    /// Only the rep alert: no acknowledgement to the lead, no cadence (to see what each part costs).
    #[arg(long)]
    alerts_only: bool,
}

/// The example config without working hours: every rep is on duty, so every lead is alerted at once.
/// `alerts_only` also turns off the acknowledgement and the lead cadence (one email per lead: the alert).
fn config(alerts_only: bool) -> String {
    // The load comes from one IP: its per-IP lead limit is off (each lead names its own address, so the
    // per-recipient limit and the acknowledgement cap stay as shipped).
    let c = EXAMPLE_CONFIG
        .lines()
        .filter(|l| !l.starts_with("hours = "))
        .collect::<Vec<_>>()
        .join("\n")
        .replace(
            "leads_per_ip_per_minute = 60",
            "leads_per_ip_per_minute = 0",
        );
    if alerts_only {
        c.replace("enabled = true", "enabled = false").replace(
            "trigger = { event = \"Lead Submitted\" }",
            "trigger = { event = \"bench: never\" }",
        )
    } else {
        c
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub async fn leads(a: LeadsArgs) -> anyhow::Result<()> {
    println!(
        "pronto bench leads: POST /v1/leads (HTTP 2xx) → rep alert accepted by a local SMTP server; {} s per rate, {}",
        a.seconds,
        match &a.database_url {
            Some(u) if u.starts_with("postgres") => "PostgreSQL".to_string(),
            _ => format!("SQLite (sync {})", a.sqlite_sync),
        }
    );
    for &rate in &a.rates {
        let db = crate::bench_support::Db::create(a.database_url.as_deref(), rate).await?;
        let result = run(&db.url, &a, rate).await;
        db.drop().await?;
        result?;
    }
    Ok(())
}

async fn run(url: &str, a: &LeadsArgs, rate: u64) -> anyhow::Result<()> {
    let sink = pronto_channels::sink::SmtpSink::start().await?;
    let (write, admin) = ("bench-leads-write-key-0001", "bench-leads-admin-key-0001");
    let server = crate::bench_support::InProcess::start(
        &config(a.alerts_only),
        Overrides {
            database_url: Some(url.to_string()),
            write_key: Some(write.into()),
            admin_key: Some(admin.into()),
            smtp_url: Some(sink.url()),
            sqlite_sync: Some(a.sqlite_sync.clone()),
            ..Default::default()
        },
    )
    .await?;
    let base = server.base.clone();

    let n = (rate * a.seconds) as usize;
    let emails_per_lead = if a.alerts_only { 1 } else { 2 };
    let client = reqwest::Client::new();
    let acked: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut http = Histogram::<u64>::new(3)?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    for i in 0..n {
        tick.tick().await;
        let (client, base, acked) = (client.clone(), base.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({"name": format!("L{i}"), "email": format!("l{i}@bench.example"),
                "company": "Bench Co", "message": "Please call me about 40 chairs", "source": "bench"});
            let sent = Instant::now();
            let r = client
                .post(format!("{base}/v1/leads"))
                .basic_auth(write, Some(""))
                .json(&body)
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("HTTP {}: {}", r.status(), r.text().await.unwrap_or_default());
            }
            let at = Instant::now();
            acked.lock().unwrap().insert(format!("L{i}"), at);
            anyhow::Ok(at - sent)
        }));
    }
    let send_span = started.elapsed().as_secs_f64();
    for t in tasks {
        http.record(t.await??.as_micros() as u64)?;
    }
    // Every lead gets a rep alert and (unless --alerts-only) an acknowledgement.
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.received().len() < emails_per_lead * n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut alert = Histogram::<u64>::new(3)?;
    let acked = acked.lock().unwrap().clone();
    let mut acks = 0;
    for (at, mail) in sink.received_at() {
        let subject = mail
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or("");
        match subject.strip_prefix("New lead: ") {
            Some(name) => {
                let name = name.split(' ').next().unwrap_or("");
                if let Some(ack) = acked.get(name) {
                    alert.record(at.saturating_duration_since(*ack).as_micros() as u64)?;
                }
            }
            None => acks += 1,
        }
    }
    println!(
        "  {rate:>5} leads/s ({n} leads sent in {send_span:.1} s): HTTP 2xx p50 {:.1} ms, p99 {:.1} ms; \
         rep alert accepted by SMTP after the 2xx: {} of {n}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         acknowledgements {acks} of {n}",
        ms(&http, 0.5),
        ms(&http, 0.99),
        alert.len(),
        ms(&alert, 0.5),
        ms(&alert, 0.99),
        alert.max() as f64 / 1000.0,
    );
    server.stop().await?;
    if (alert.len() as usize) < n {
        bail!("{} of {n} rep alerts arrived within 120 s", alert.len());
    }
    Ok(())
}
