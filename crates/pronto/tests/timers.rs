//! Durable timers as an operator meets them: real `pronto serve` processes, killed with SIGKILL mid-work and
//! started again, and two processes sharing one PostgreSQL database. These waits are real seconds (separate
//! processes cannot share an injected clock); the assertions are about what is stored and sent, never about
//! how long anything took.

mod common;

use common::{http, Serve};
use pronto_channels::sink::SmtpSink;
use pronto_store::testing::TestDb;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const WRITE: &str = "timers-write-key-123456";
const ADMIN: &str = "timers-admin-key-123456";

/// Carts under 50 wait 2 s, larger ones 6 s; one email each.
const CONFIG: &str = r#"
[messages]
from = "Shop <shop@example.com>"

[[flow]]
id = "checkout-recovery"
trigger = { event = "Checkout Started" }
key = "properties.checkout_id"
exit = [{ event = "Order Completed", same = "key" }]
[[flow.step]]
wait = { by = "properties.value", tiers = [[0, "2s"], [50, "6s"]] }
[[flow.step]]
send = { channel = "email", template = "reminder" }

[[template]]
name = "reminder"
subject = "Your cart {{ cart.id }}"
text = "Total {{ cart.total | money(cart.currency) }}"
"#;

fn carts(range: std::ops::Range<usize>, value: impl Fn(usize) -> f64) -> Value {
    let batch: Vec<Value> = range
        .map(|i| {
            json!({"type": "track", "userId": format!("u{i}"), "event": "Checkout Started",
                   "context": {"traits": {"email": format!("u{i}@example.com")}},
                   "properties": {"checkout_id": format!("c{i}"), "value": value(i), "currency": "EUR"}})
        })
        .collect();
    json!({ "batch": batch })
}

fn post_batch(url: &str, body: Value) {
    http(
        "POST",
        &format!("{url}/v1/batch"),
        None,
        Some((WRITE, body)),
    )
    .unwrap();
}

fn env<'a>(db: &'a TestDb, config: &'a str, smtp: Option<&'a str>) -> Vec<(&'static str, &'a str)> {
    let mut e = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("PRONTO_WRITE_KEY", WRITE),
        ("PRONTO_ADMIN_KEY", ADMIN),
        ("PRONTO_CONFIG", config),
    ];
    if let Some(s) = smtp {
        e.push(("PRONTO_SMTP_URL", s));
    }
    e
}

fn messages(url: &str) -> Vec<Value> {
    http(
        "GET",
        &format!("{url}/v1/messages?limit=1000"),
        Some(ADMIN),
        None,
    )
    .unwrap()["messages"]
        .as_array()
        .unwrap()
        .clone()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Message-ID → how many times the SMTP server received it.
fn by_message_id(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for m in sink.received() {
        let id = m
            .lines()
            .find(|l| l.starts_with("Message-ID:"))
            .unwrap_or("none")
            .to_string();
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

/// 300 carts; the server is killed while the first half's emails are being delivered and the second half's
/// timers are still pending. After a restart every cart has its email, each message under its own
/// Message-ID; the only repeats possible are the few messages on the wire at the kill, sent again under the
/// same Message-ID (a receiver recognises them).
fn kill_9_with_timers_pending_and_messages_half_delivered(backend: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::of(backend));
    let sink = rt.block_on(SmtpSink::start()).unwrap();
    sink.slow(Duration::from_millis(40));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pronto.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let smtp = sink.url();
    let env = env(&db, config.to_str().unwrap(), Some(&smtp));
    let mut s = Serve::start(dir.path(), &env);
    post_batch(
        &s.url,
        carts(0..300, |i| if i % 2 == 0 { 20.0 } else { 80.0 }),
    );
    wait_for("deliveries to start", Duration::from_secs(30), || {
        sink.received().len() >= 20
    });
    s.child.kill().unwrap();
    let _ = s.child.wait();
    let at_kill = sink.received().len();
    assert!(at_kill < 300, "killed mid-delivery ({at_kill} delivered)");

    let again = Serve::start(dir.path(), &env);
    wait_for("every cart's email", Duration::from_secs(180), || {
        by_message_id(&sink).len() >= 300
    });
    // On PostgreSQL a message a dead process held is retried when its lease (60 s) runs out: another process
    // might still be sending it. SQLite releases them at start.
    wait_for("the outbox to settle", Duration::from_secs(120), || {
        let m = messages(&again.url);
        m.len() == 300 && m.iter().all(|x| x["state"] == "sent")
    });
    std::thread::sleep(Duration::from_secs(1));
    let seen = by_message_id(&sink);
    assert_eq!(seen.len(), 300, "one distinct message per cart");
    let repeats: usize = seen.values().map(|n| n - 1).sum();
    let bound = pronto_server::workers::SEND_CONCURRENCY;
    assert!(
        repeats <= bound,
        "only messages on the wire or awaiting their record at the kill may repeat (same Message-ID): \
         at most {bound}, got {repeats}"
    );
    let subjects: HashSet<String> = sink
        .received()
        .iter()
        .filter_map(|m| {
            m.lines()
                .find(|l| l.starts_with("Subject:"))
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        subjects.len(),
        300,
        "every cart (c0..c299) got its own email"
    );
}

#[test]
fn kill_9_with_timers_pending_and_messages_half_delivered_loses_nothing_on_sqlite() {
    kill_9_with_timers_pending_and_messages_half_delivered("sqlite");
}

#[test]
fn kill_9_with_timers_pending_and_messages_half_delivered_loses_nothing_on_postgres() {
    kill_9_with_timers_pending_and_messages_half_delivered("postgres");
}

/// Two `pronto serve` processes on one PostgreSQL database, 5,000 timers due at about the same time (sent to
/// both): every run fires once and every message is created once.
#[test]
fn two_processes_on_one_postgres_database_fire_5000_timers_exactly_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::of("postgres"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pronto.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let env = env(&db, config.to_str().unwrap(), None);
    let a = Serve::start(dir.path(), &env);
    let b = Serve::start(dir.path(), &env);
    for chunk in 0..10 {
        let url = if chunk % 2 == 0 { &a.url } else { &b.url };
        post_batch(url, carts(chunk * 500..(chunk + 1) * 500, |_| 20.0));
    }
    let pool = rt.block_on(sqlx::PgPool::connect(&db.url)).unwrap();
    let count = |sql: &str| -> i64 {
        rt.block_on(sqlx::query_scalar(sql).fetch_one(&pool))
            .unwrap()
    };
    wait_for("5,000 messages", Duration::from_secs(120), || {
        count("SELECT count(*) FROM messages") >= 5000
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count("SELECT count(*) FROM messages"), 5000);
    assert_eq!(count("SELECT count(DISTINCT run_id) FROM messages"), 5000);
    assert_eq!(
        count("SELECT count(*) FROM run_log WHERE kind = 'sent'"),
        5000,
        "no run fired twice (a second firing would log a second send)"
    );
    assert_eq!(
        count("SELECT count(*) FROM runs WHERE state = 'finished'"),
        5000
    );
    // Both processes delivered (the dev mailbox) and agree on the outcome.
    wait_for("all delivered", Duration::from_secs(60), || {
        count("SELECT count(*) FROM messages WHERE state = 'sent'") == 5000
    });
    drop(a);
    drop(b);
}
