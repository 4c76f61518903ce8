//! Benchmarks, run by hand and reported in BENCHMARKS.md (never as timed tests).
//!
//! `pronto bench ingest` drives a server over real HTTP: a closed loop (N clients, each sending as fast as its
//! answers come back) measures throughput; an open loop (`--rate`, requests started on a fixed schedule whatever
//! the answers do) measures latency without coordinated omission: latency counts from the scheduled start.
//! Without `--url` it spawns `pronto serve` as a child process on a fresh database, so client and server are
//! separate processes as in production.
//!
//! `pronto bench retention` runs the same open-loop ingestion twice over a database holding a million events
//! older than a year: once kept, once while `[retention]` deletes them, and compares the latency.
//!
//! `pronto bench raw` measures the database's own limit at the same durability: single-row (or N-row)
//! INSERT+COMMIT transactions, the way pgbench's insert script does.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// HTTP ingestion throughput and latency.
    Ingest(IngestArgs),
    /// The database's raw durable-insert limit (for the ratio in BENCHMARKS.md).
    Raw(RawArgs),
    /// Durable timers: schedule, cancel half, fire (lateness, throughput, RSS), a burst, and end to end.
    Timers(crate::bench_timers::TimersArgs),
    /// Speed to lead: lead accepted (HTTP 2xx) → rep alert accepted by an SMTP server, at several rates.
    Leads(crate::bench_leads::LeadsArgs),
    /// Shops: signed Shopify checkout deliveries into recovery runs, and delivery → recovery email at SMTP.
    Shops(crate::bench_shops::ShopsArgs),
    /// The flows report over many experiment runs, orders and clicks.
    Report(crate::bench_report::ReportArgs),
    /// The web app over many leads: inbox, board and report page times; live inboxes, lead → shown.
    App(crate::bench_app::AppArgs),
    /// Ingestion latency while retention deletes a million old events, against the same load without.
    Retention(RetentionArgs),
}

#[derive(Args, Clone)]
pub struct IngestArgs {
    /// A running server (e.g. http://127.0.0.1:8080). Without it a server is spawned on --database-url.
    #[arg(long)]
    url: Option<String>,
    /// The write key of the running server (--url).
    #[arg(long, env = "PRONTO_WRITE_KEY")]
    write_key: Option<String>,
    /// Database for the spawned server; default: a fresh SQLite file in a temp dir. Give PostgreSQL an empty
    /// database.
    #[arg(long)]
    database_url: Option<String>,
    /// SQLite durability for the spawned server: full or normal.
    #[arg(long, default_value = "full")]
    sqlite_sync: String,
    /// Events per request: 1 posts to /v1/track, more posts /v1/batch.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Concurrent clients (closed loop), or the most requests in flight (open loop).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Open loop: start this many requests per second. Without it: closed loop, as fast as possible.
    #[arg(long)]
    rate: Option<u64>,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Distinct visitors the events are spread over.
    #[arg(long, default_value_t = 10_000)]
    visitors: u64,
    /// The configuration file of the spawned server (default: the shipped example).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[derive(Args, Clone)]
pub struct RetentionArgs {
    /// Default: a SQLite file in a temp dir. A postgres://…/db URL: a fresh database is made on that server
    /// for each run.
    #[arg(long)]
    database_url: Option<String>,
    /// Events older than the retention seeded before each run.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// `/v1/track` requests started per second (open loop).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long, default_value_t = 30)]
    seconds: u64,
}

#[derive(Args, Clone)]
pub struct RawArgs {
    /// sqlite://FILE or postgres://… (a table `bench_raw` is created there).
    #[arg(long)]
    database_url: Option<String>,
    /// SQLite: full or normal.
    #[arg(long, default_value = "full")]
    sqlite_sync: String,
    #[arg(long, default_value_t = 1)]
    clients: usize,
    #[arg(long, default_value_t = 1)]
    rows_per_commit: usize,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Ingest(a) => ingest(a).await.map(|_| ()),
        BenchCommand::Retention(a) => retention(a).await,
        BenchCommand::Raw(a) => raw(a).await,
        BenchCommand::Timers(a) => crate::bench_timers::timers(a).await,
        BenchCommand::Leads(a) => crate::bench_leads::leads(a).await,
        BenchCommand::Shops(a) => crate::bench_shops::shops(a).await,
        BenchCommand::Report(a) => crate::bench_report::report(a).await,
        BenchCommand::App(a) => crate::bench_app::app(a).await,
    }
}

/// A spawned `pronto serve`, killed on drop.
struct Child {
    proc: tokio::process::Child,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.proc.start_kill();
    }
}

async fn spawn_server(a: &IngestArgs, key: &str) -> anyhow::Result<(String, Child)> {
    let (dir, db) = match &a.database_url {
        Some(url) => (None, url.clone()),
        None => {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            (Some(dir), url)
        }
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let proc = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .env("DATABASE_URL", &db)
        .env("PRONTO_LISTEN", format!("127.0.0.1:{port}"))
        .env("PRONTO_WRITE_KEY", key)
        .env("PRONTO_ADMIN_KEY", format!("{key}-admin"))
        .env("PRONTO_SQLITE_SYNC", &a.sqlite_sync)
        .env("RUST_LOG", "warn")
        .env_remove("PRONTO_CONFIG")
        .envs(a.config.iter().map(|c| ("PRONTO_CONFIG", c.as_os_str())))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("spawning pronto serve")?;
    let child = Child { proc, _dir: dir };
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{url}/readyz")).send().await {
            if r.status().is_success() {
                println!(
                    "spawned pronto serve on {url} ({})",
                    pronto_server::app::redact(&db)
                );
                return Ok((url, child));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the spawned server did not become ready")
}

fn event(visitor: u64, n: u64) -> serde_json::Value {
    serde_json::json!({
        "type": "track",
        "event": "Checkout Started",
        "anonymousId": format!("visitor-{visitor}"),
        "messageId": uuid::Uuid::now_v7().to_string(),
        "timestamp": "2026-11-24T12:00:00.000Z",
        "properties": {
            "checkout_id": format!("chk-{visitor}-{n}"), "value": 42.5, "currency": "USD",
            "products": [{"product_id": "p-1", "name": "Mug", "variant": "blue", "price": 12.5, "quantity": 2},
                         {"product_id": "p-2", "name": "Tea", "price": 17.5, "quantity": 1}]
        },
        "context": {"library": {"name": "pronto-bench", "version": env!("CARGO_PKG_VERSION")}}
    })
}

struct Load {
    url: String,
    key: String,
    batch: usize,
    visitors: u64,
    client: reqwest::Client,
}

impl Load {
    /// Sends one request; `Ok(events)` when it was accepted.
    async fn send(&self, n: u64) -> anyhow::Result<usize> {
        let visitor = n.wrapping_mul(2_654_435_761) % self.visitors.max(1);
        let (path, body) = if self.batch <= 1 {
            let mut ev = event(visitor, n);
            ev.as_object_mut().map(|o| o.remove("type"));
            ("/v1/track", ev)
        } else {
            let items: Vec<_> = (0..self.batch as u64)
                .map(|i| event((visitor + i) % self.visitors.max(1), n))
                .collect();
            ("/v1/batch", serde_json::json!({ "batch": items }))
        };
        let res = self
            .client
            .post(format!("{}{path}", self.url))
            .basic_auth(&self.key, Some(""))
            .json(&body)
            .send()
            .await?;
        if !res.status().is_success() {
            bail!(
                "status {}: {}",
                res.status(),
                res.text().await.unwrap_or_default()
            );
        }
        Ok(self.batch.max(1))
    }
}

/// What one ingestion run measured.
struct Summary {
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    failed: u64,
}

async fn ingest(a: IngestArgs) -> anyhow::Result<Summary> {
    let generated = format!("bench-{}", uuid::Uuid::now_v7().simple());
    let (url, _child, key) = match &a.url {
        Some(u) => {
            let key = a
                .write_key
                .clone()
                .context("--write-key (or PRONTO_WRITE_KEY) is needed with --url")?;
            (u.trim_end_matches('/').to_string(), None, key)
        }
        None => {
            let (u, c) = spawn_server(&a, &generated).await?;
            (u, Some(c), generated)
        }
    };
    let load = Arc::new(Load {
        url,
        key,
        batch: a.batch,
        visitors: a.visitors,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(a.concurrency.max(1))
            .build()?,
    });
    // Warm up connections and caches so the first second does not count connection set-up.
    for i in 0..a.concurrency.min(32) as u64 {
        load.send(u64::MAX - i)
            .await
            .context("warm-up request failed")?;
    }
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let started = Instant::now();

    let record = {
        let (hist, failures, accepted, first_error) = (
            hist.clone(),
            failures.clone(),
            accepted.clone(),
            first_error.clone(),
        );
        move |since: Instant, r: anyhow::Result<usize>| match r {
            Ok(n) => {
                accepted.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                let us = since.elapsed().as_micros().max(1) as u64;
                let _ = hist.lock().unwrap().record(us.min(60_000_000));
            }
            Err(e) => {
                failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                first_error
                    .lock()
                    .unwrap()
                    .get_or_insert_with(|| e.to_string());
            }
        }
    };

    match a.rate {
        None => {
            let mut tasks = Vec::new();
            for _ in 0..a.concurrency.max(1) {
                let (load, counter, record) = (load.clone(), counter.clone(), record.clone());
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let t = Instant::now();
                        let r = load.send(n).await;
                        record(t, r);
                    }
                }));
            }
            for t in tasks {
                t.await?;
            }
        }
        Some(rate) => {
            let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
            let permits = Arc::new(tokio::sync::Semaphore::new(a.concurrency.max(1)));
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let scheduled = tick.tick().await.into_std();
                let permit = permits.clone().acquire_owned().await?;
                let (load, record) = (load.clone(), record.clone());
                n += 1;
                tasks.push(tokio::spawn(async move {
                    let r = load.send(n).await;
                    record(scheduled, r);
                    drop(permit);
                }));
            }
            for t in tasks {
                t.await?;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let h = hist.lock().unwrap();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let events = accepted.load(std::sync::atomic::Ordering::Relaxed);
    let fails = failures.load(std::sync::atomic::Ordering::Relaxed);
    let mode = match a.rate {
        Some(r) => format!("open loop at {r} req/s (≤{} in flight)", a.concurrency),
        None => format!("closed loop, {} clients", a.concurrency),
    };
    let endpoint = if a.batch <= 1 {
        "/v1/track".to_string()
    } else {
        format!("/v1/batch of {}", a.batch)
    };
    println!("bench ingest: {endpoint}, {mode}, {:.1} s", elapsed);
    println!(
        "  accepted: {events} events in {} requests = {:.0} events/s, {:.0} requests/s; failed requests: {fails}",
        h.len(),
        events as f64 / elapsed,
        h.len() as f64 / elapsed
    );
    println!(
        "  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    );
    if let Some(e) = first_error.lock().unwrap().as_ref() {
        println!("  first failure: {e}");
    }
    Ok(Summary {
        requests_per_s: h.len() as f64 / elapsed,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        failed: fails,
    })
}

/// When the seeded events were received: well past a 400-day retention.
const SEEDED_DAYS_AGO: i64 = 500;

async fn retention(a: RetentionArgs) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for (run, pruning) in [(0, false), (1, true)] {
        let db = crate::bench_support::Db::create(a.database_url.as_deref(), run).await?;
        let started = Instant::now();
        seed_old_events(&db.url, a.rows).await?;
        println!(
            "seeded {} events received {SEEDED_DAYS_AGO} days ago in {:.1} s",
            a.rows,
            started.elapsed().as_secs_f64()
        );
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("pronto.toml");
        let extra = if pruning {
            "\n[retention]\nevents = \"400d\"\nmessages = \"400d\"\n"
        } else {
            ""
        };
        std::fs::write(
            &config,
            format!("{}{extra}", pronto_server::config::EXAMPLE_CONFIG),
        )?;
        let summary = ingest(IngestArgs {
            url: None,
            write_key: None,
            database_url: Some(db.url.clone()),
            sqlite_sync: "full".into(),
            batch: 1,
            concurrency: 64,
            rate: Some(a.rate),
            seconds: a.seconds,
            visitors: 10_000,
            config: Some(config),
        })
        .await?;
        let left = old_events(&db.url).await?;
        rows.push((pruning, summary, a.rows.saturating_sub(left)));
        db.drop().await?;
    }
    println!(
        "bench retention: /v1/track open loop at {} req/s for {} s over {} events {SEEDED_DAYS_AGO} days old",
        a.rate, a.seconds, a.rows
    );
    println!("  | run | requests/s | p50 ms | p99 ms | p99.9 ms | failed | old events deleted during the run |");
    for (pruning, s, deleted) in rows {
        println!(
            "  | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {deleted} |",
            if pruning {
                "[retention] events = 400d"
            } else {
                "no retention"
            },
            s.requests_per_s,
            s.p50_ms,
            s.p99_ms,
            s.p999_ms,
            s.failed
        );
    }
    Ok(())
}

/// Migrates `url` and writes `rows` events for one contact, received [`SEEDED_DAYS_AGO`] days ago, in
/// one statement.
async fn seed_old_events(url: &str, rows: u64) -> anyhow::Result<()> {
    let store = pronto_store::connect(url, pronto_store::Options::default()).await?;
    let ws = store.default_workspace().await?.id;
    store.close().await;
    let contact = uuid::Uuid::now_v7();
    let at = chrono::Utc::now() - chrono::Duration::days(SEEDED_DAYS_AGO);
    let stamp = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    if url.starts_with("postgres") {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await?;
        sqlx::query(
            "INSERT INTO contacts (id, workspace_id, traits, created_at, updated_at) VALUES ($1, $2, '{}', $3, $3)",
        )
        .bind(contact)
        .bind(ws.0)
        .bind(at)
        .execute(&mut c)
        .await?;
        sqlx::query(
            "INSERT INTO events (id, workspace_id, contact_id, type, name, payload, received_at) \
             SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(x), 12, '0'))::uuid, $1, $2, 'track', 'Page Viewed', \
             '{\"type\":\"track\",\"event\":\"Page Viewed\"}'::json, $3 FROM generate_series(1, $4) AS x",
        )
        .bind(ws.0)
        .bind(contact)
        .bind(at)
        .bind(rows as i64)
        .execute(&mut c)
        .await?;
    } else {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query(
            "INSERT INTO contacts (id, workspace_id, traits, created_at, updated_at) VALUES (?1, ?2, '{}', ?3, ?3)",
        )
        .bind(contact.to_string())
        .bind(ws.to_string())
        .bind(&stamp)
        .execute(&mut c)
        .await?;
        sqlx::query(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?4) \
             INSERT INTO events (id, workspace_id, contact_id, type, name, payload, received_at) \
             SELECT printf('00000000-0000-7000-8000-%012x', x), ?1, ?2, 'track', 'Page Viewed', \
             '{\"type\":\"track\",\"event\":\"Page Viewed\"}', ?3 FROM n",
        )
        .bind(ws.to_string())
        .bind(contact.to_string())
        .bind(&stamp)
        .bind(rows as i64)
        .execute(&mut c)
        .await?;
    }
    Ok(())
}

/// How many events older than 400 days `url` still holds.
async fn old_events(url: &str) -> anyhow::Result<u64> {
    use sqlx::Connection;
    let cutoff = chrono::Utc::now() - chrono::Duration::days(400);
    let n: i64 = if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await?;
        sqlx::query_scalar("SELECT count(*) FROM events WHERE received_at < $1")
            .bind(cutoff)
            .fetch_one(&mut c)
            .await?
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query_scalar("SELECT count(*) FROM events WHERE received_at < ?1")
            .bind(cutoff.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .fetch_one(&mut c)
            .await?
    };
    Ok(n as u64)
}

/// Runs `clients` tasks, each repeating `commit_once` until the deadline, and counts the commits.
async fn drive<F, Fut>(clients: usize, deadline: Instant, commit_once: F) -> anyhow::Result<u64>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), sqlx::Error>> + Send,
{
    let commits = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (commits, commit_once) = (commits.clone(), commit_once.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                commit_once().await?;
                commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok::<_, sqlx::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(commits.load(std::sync::atomic::Ordering::Relaxed))
}

async fn raw(a: RawArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = a
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("raw.db").display()));
    let payload: Arc<str> = "x".repeat(400).into();
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let rows = a.rows_per_commit;
    let started = Instant::now();
    let commits = if url.starts_with("sqlite:") {
        use sqlx::sqlite::{
            SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
        };
        use std::str::FromStr;
        let sync = match a.sqlite_sync.as_str() {
            "normal" => SqliteSynchronous::Normal,
            _ => SqliteSynchronous::Full,
        };
        let opts = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(a.clients as u32)
            .connect_with(opts)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS bench_raw (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)",
        )
        .execute(&pool)
        .await?;
        drive(a.clients, deadline, move || {
            let (pool, payload) = (pool.clone(), payload.clone());
            async move {
                let mut tx = pool.begin().await?;
                for _ in 0..rows {
                    sqlx::query("INSERT INTO bench_raw (payload) VALUES (?1)")
                        .bind(&*payload)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }
        })
        .await?
    } else {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(a.clients as u32)
            .connect(&url)
            .await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS bench_raw (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload TEXT NOT NULL)")
            .execute(&pool)
            .await?;
        let cleanup = pool.clone();
        let n = drive(a.clients, deadline, move || {
            let (pool, payload) = (pool.clone(), payload.clone());
            async move {
                let mut tx = pool.begin().await?;
                for _ in 0..rows {
                    sqlx::query("INSERT INTO bench_raw (payload) VALUES ($1)")
                        .bind(&*payload)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }
        })
        .await?;
        sqlx::query("DROP TABLE bench_raw")
            .execute(&cleanup)
            .await?;
        n
    };
    let secs = started.elapsed().as_secs_f64();
    let c = commits as f64;
    println!(
        "bench raw: {} ({}), {} client(s), {} row(s)/commit: {:.0} commits/s, {:.0} rows/s",
        pronto_server::app::redact(&url),
        if url.starts_with("sqlite:") {
            format!("synchronous={}", a.sqlite_sync)
        } else {
            "synchronous_commit=on".into()
        },
        a.clients,
        a.rows_per_commit,
        c / secs,
        c * a.rows_per_commit as f64 / secs
    );
    Ok(())
}
