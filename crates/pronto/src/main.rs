//! The `pronto` binary: `serve`, `check`, `migrate`, `messages`, `keys`, `report`, `import`, `bench`.
//!
//! # Layout
//! - `main.rs`: the command line (clap), logging setup, and each command's thin glue.
//! - `bench_timers.rs`: `pronto bench timers` (durable timers through the production scheduler).
//! - `bench_leads.rs`: `pronto bench leads` (lead accepted → rep alert at an SMTP server, per rate).
//! - `bench_shops.rs`: `pronto bench shops` (signed Shopify checkout deliveries into recovery runs; delivery →
//!   recovery email at an SMTP server).
//! - `bench_support.rs`: what the benches share (a fresh database per run, the server in process); it imports
//!   none of them.
//! - `bench.rs`: `pronto bench ingest` (HTTP load against a running or spawned server) and `pronto bench raw`
//!   (the database's own insert limit at the same durability, for the ratio).

mod bench;
mod bench_app;
mod bench_leads;
mod bench_report;
mod bench_shops;
mod bench_support;
mod bench_timers;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use pronto_server::config::{Overrides, Settings};
use pronto_server::App;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "pronto",
    version,
    about = "Answer every online lead and abandoned cart within minutes."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API, the scheduler and the delivery worker. SIGHUP reloads flows and templates.
    Serve(ServeArgs),
    /// Show the latest outbox messages (the dev mailbox when no SMTP server is configured).
    Messages {
        #[command(flatten)]
        args: ServeArgs,
        /// How many, newest first.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print each message's full text.
        #[arg(long)]
        full: bool,
    },
    /// Reports, printed as terminal tables.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Check a config file and exit 1 listing every problem if it is invalid (secrets and overrides are read
    /// from the environment and flags, as `serve` reads them).
    Check {
        /// The file to check (default: $PRONTO_CONFIG, else ./pronto.toml, else the built-in example).
        file: Option<PathBuf>,
        #[command(flatten)]
        args: ServeArgs,
    },
    /// API keys: list them, create one (shown once), revoke one (at once, on every node).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Import data into the store.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Offer pools' unique codes: how many are left, add codes from a file, generate codes.
    #[command(subcommand)]
    Offers(OffersCommand),
    /// The suppression list: addresses and numbers nothing is sent to (hard bounces, complaints, carrier
    /// opt-outs, repeated soft bounces, and what admins list).
    #[command(subcommand)]
    Suppressions(SuppressionsCommand),
    /// Contacts: everything held on one person.
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// Flow experiments: promote a winner.
    #[command(subcommand)]
    Experiments(ExperimentsCommand),
    /// Print a one-time link that signs USER (a configured rep's or [[user]]'s email) in to the web app:
    /// for a server that cannot mail links (no SMTP server configured). It works once, within
    /// `[app] sign_in_link`.
    SignInLink {
        email: String,
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Read a password from standard input and print its argon2 hash, for `[[user]] password_hash`.
    PasswordHash,
    /// Apply database migrations and exit.
    Migrate {
        #[arg(long, env = "DATABASE_URL", default_value = pronto_server::config::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
    /// Measure throughput and latency (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Subcommand)]
enum ImportCommand {
    /// A shop's product CSV export (Shopify: Products → Export; WooCommerce: Products → Export), told apart
    /// by its header, into the catalog recommendations are chosen from. Re-importing updates in place.
    Products {
        /// The CSV file.
        file: PathBuf,
        /// The shop whose catalog it is, as configured in [[shop]] (default: the one [[shop]] of the file's
        /// platform; with none configured, the catalog of carts sent through the Segment API).
        #[arg(long)]
        shop: Option<String>,
        #[command(flatten)]
        args: ServeArgs,
    },
}

#[derive(Subcommand)]
enum ExperimentsCommand {
    /// Records VARIANT as the winner of FLOW's experiment EXPERIMENT: new runs not held out take it (the
    /// holdout goes on). Running servers apply it at their next reload (kill -HUP, POST /v1/admin/reload)
    /// or start; POST /v1/admin/experiments/promote applies it at once on the node that answers.
    Promote {
        flow: String,
        experiment: String,
        variant: String,
        #[command(flatten)]
        args: ServeArgs,
    },
}

#[derive(Subcommand)]
enum OffersCommand {
    /// Each pool's unused and used codes (configured pools without codes too).
    List {
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Adds the codes of a file (one per line, or a CSV whose first column is the code) to a configured pool;
    /// a code already in the pool is left as it is.
    Import {
        /// The pool, as configured in [[offer]].
        offer: String,
        file: PathBuf,
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Makes new codes from a pattern (each X a random capital or digit), adds them to the pool and prints
    /// them, one per line, for upload to the shop (Shopify: Discounts → bulk codes; WooCommerce: coupons).
    Generate {
        offer: String,
        /// E.g. SAVE10-XXXXXXXX (at least six X).
        #[arg(long)]
        pattern: String,
        #[arg(long)]
        count: usize,
        #[command(flatten)]
        args: ServeArgs,
    },
}

#[derive(Subcommand)]
enum ContactsCommand {
    /// Prints everything held on contact ID as JSON (as GET /v1/contacts/{id}/export answers): identities,
    /// traits, every event, flow runs, messages, leads with their history, suppression-list entries.
    Export {
        id: String,
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Erases contact ID (as DELETE /v1/contacts/{id} does): their personal data cleaned from every row, their
    /// addresses kept on the suppression list as hashes only, recorded in the audit log. Prints what it did.
    Erase {
        id: String,
        #[command(flatten)]
        args: ServeArgs,
    },
}

#[derive(Subcommand)]
enum SuppressionsCommand {
    /// The list, newest first: medium, address, reason, source, since, until, detail.
    List {
        /// Print the whole list as CSV (the columns `import` reads).
        #[arg(long)]
        csv: bool,
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Lists ADDRESS (an email address, or a phone number) so nothing more is sent to it.
    Add {
        address: String,
        /// hard_bounce, soft_bounces, complaint, unsubscribed or manual (default).
        #[arg(long)]
        reason: Option<String>,
        /// A note.
        #[arg(long)]
        detail: Option<String>,
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Takes ADDRESS off the list (and forgets its soft bounces).
    Remove {
        address: String,
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Lists every row of a CSV file (a header naming at least `address`; the columns `list --csv`
    /// prints): all rows or none.
    Import {
        file: PathBuf,
        #[command(flatten)]
        args: ServeArgs,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Every key of the workspace: id, kind, origin, label, created, revoked. Keys themselves are stored
    /// only as hashes and never shown again.
    List {
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Creates a key and prints it once.
    Create {
        /// write (Segment writeKey, /v1/leads) or admin (Authorization: Bearer).
        #[arg(long)]
        kind: String,
        /// A note saying who or what uses it.
        #[arg(long)]
        label: Option<String>,
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Revokes the key with this id (from `pronto keys list`).
    Revoke {
        id: String,
        #[command(flatten)]
        args: ServeArgs,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// How fast leads were first contacted: share within 5 min, 5-60 min, 1-24 h, over 24 h, never (open ones
    /// apart), response times, SLA breaches and won-rate, overall and by source, rep, team and hour of week.
    SpeedToLead {
        /// The server's flags and environment: its database, and its config (for the business time zone of
        /// the hour of week).
        #[command(flatten)]
        args: ServeArgs,
        /// Days back from now (default 30).
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Print CSV instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// Flows' experiments: per group (treatment, holdout) runs entered, messaged and converted, conversion
    /// rate with its 95% interval, revenue, the uplift with an always-valid 95% interval, incremental revenue,
    /// and a sample-ratio mismatch warning.
    Flows {
        #[command(flatten)]
        args: ServeArgs,
        /// Runs started this many days back from now (default 30).
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Print CSV instead of a table.
        #[arg(long)]
        csv: bool,
    },
}

/// What `serve` reads from flags and the environment; the other commands read the same, so that they find
/// the server's database and accept the same secrets.
#[derive(Args, Clone, Default)]
struct ServeArgs {
    /// Config file (default ./pronto.toml if present, else the built-in example).
    #[arg(long, env = "PRONTO_CONFIG")]
    config: Option<PathBuf>,
    /// sqlite://FILE or postgres://… (default sqlite://pronto.db).
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// PostgreSQL: a read replica the reports and the app's report pages read from.
    #[arg(long, env = "DATABASE_READ_URL")]
    database_read_url: Option<String>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "PRONTO_LISTEN")]
    listen: Option<String>,
    /// Accept this write key instead of generating one.
    #[arg(long, env = "PRONTO_WRITE_KEY", hide_env_values = true)]
    write_key: Option<String>,
    /// Accept this admin key instead of generating one.
    #[arg(long, env = "PRONTO_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// Outgoing mail server, lettre URL form (smtp://, smtps://).
    #[arg(long, env = "PRONTO_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// SQLite durability: full (survives power loss) or normal (survives a crash of pronto).
    #[arg(long, env = "PRONTO_SQLITE_SYNC")]
    sqlite_sync: Option<String>,
    /// The SMS provider's auth token (Twilio-compatible; [sms] in the config names the account).
    #[arg(long, env = "PRONTO_SMS_AUTH_TOKEN", hide_env_values = true)]
    sms_auth_token: Option<String>,
    /// The secret inbound-email webhooks are signed with ([inbound] email_secret).
    #[arg(long, env = "PRONTO_INBOUND_EMAIL_SECRET", hide_env_values = true)]
    inbound_email_secret: Option<String>,
    /// Mailgun's HTTP webhook signing key ([inbound] mailgun_signing_key).
    #[arg(long, env = "PRONTO_MAILGUN_SIGNING_KEY", hide_env_values = true)]
    mailgun_signing_key: Option<String>,
    /// A demo: every flow wait 60 times shorter (a checkout is mailed within a minute), its own database
    /// (sqlite://pronto-demo.db unless DATABASE_URL says otherwise), and a sign-in link for a rep printed.
    #[arg(long)]
    demo: bool,
}

impl From<ServeArgs> for Overrides {
    fn from(a: ServeArgs) -> Self {
        Overrides {
            config: a.config,
            database_url: a.database_url,
            database_read_url: a.database_read_url,
            listen: a.listen,
            write_key: a.write_key,
            admin_key: a.admin_key,
            smtp_url: a.smtp_url,
            sqlite_sync: a.sqlite_sync,
            sms_auth_token: a.sms_auth_token,
            inbound_email_secret: a.inbound_email_secret,
            mailgun_signing_key: a.mailgun_signing_key,
            demo: a.demo,
        }
    }
}

/// Logs go to stderr: human-readable by default, one JSON object per line with `PRONTO_LOG_FORMAT=json` (for
/// log shippers). Nothing at info level carries an email, phone or name.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("PRONTO_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.with_target(false).init();
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Check { file, args } => check(file, args),
        Command::Keys(cmd) => keys(cmd).await,
        Command::Migrate { database_url } => migrate(&database_url).await,
        Command::SignInLink { email, args } => sign_in_link(&email, args).await,
        Command::PasswordHash => password_hash(),
        Command::Import(ImportCommand::Products { file, shop, args }) => {
            import_products(&file, shop.as_deref(), args).await
        }
        Command::Offers(cmd) => offers(cmd).await,
        Command::Suppressions(cmd) => suppressions(cmd).await,
        Command::Contacts(ContactsCommand::Export { id, args }) => export_contact(&id, args).await,
        Command::Contacts(ContactsCommand::Erase { id, args }) => erase_contact(&id, args).await,
        Command::Experiments(ExperimentsCommand::Promote {
            flow,
            experiment,
            variant,
            args,
        }) => promote(&flow, &experiment, &variant, args).await,
        Command::Messages { args, limit, full } => messages(args, limit, full).await,
        Command::Bench(cmd) => bench::run(cmd).await,
        Command::Report(ReportCommand::SpeedToLead { args, days, csv }) => {
            speed_to_lead(args, days, csv).await
        }
        Command::Report(ReportCommand::Flows { args, days, csv }) => {
            flows_report(args, days, csv).await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::load(args.into()).context("invalid configuration")?;
    let listen = settings.listen;
    let database = pronto_server::app::redact(&settings.database_url);
    let source = settings.source.clone();
    let smtp = settings
        .smtp_url
        .as_deref()
        .map(pronto_channels::email::redact);
    let demo = settings.demo;
    let app = App::build(settings, Arc::new(pronto_domain::SystemClock)).await?;
    let listener = pronto_server::app::bind(listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!("pronto {} is running at {url}", env!("CARGO_PKG_VERSION"));
    println!("  app:      {url}/app  (reps sign in by a mailed link; admins with the admin key)");
    println!(
        "  database: {database} ({})",
        app.state.service.store.backend()
    );
    println!("  config:   {source}");
    println!("  API:      {url}/openapi.json   health: {url}/readyz   metrics: {url}/metrics");
    let program = app.state.service.store.shared().program();
    let flows: Vec<&str> = program.flows.iter().map(|f| f.id.as_str()).collect();
    println!(
        "  flows:    {} ({url}/v1/flows)",
        if flows.is_empty() {
            "none".to_string()
        } else {
            flows.join(", ")
        }
    );
    match &smtp {
        Some(u) => println!("  email:    via {u}"),
        None => println!(
            "  email:    dev mailbox (no PRONTO_SMTP_URL): {url}/v1/messages or `pronto messages`"
        ),
    }
    if app.new_keys.write.is_some() || app.new_keys.admin.is_some() {
        println!("  Keys generated on this first start. They are stored hashed and shown only now: copy them.");
        if let Some(k) = &app.new_keys.write {
            println!("    write key (Segment writeKey, /v1/leads):        {k}");
        }
        if let Some(k) = &app.new_keys.admin {
            println!("    admin key (Authorization: Bearer …):            {k}");
        }
    }
    if demo {
        println!(
            "  demo:     every flow wait {}x shorter: a checkout under 50 is mailed after 10 s, up to 500 after a minute",
            pronto_server::config::DEMO_SPEEDUP
        );
        let service = &app.state.service;
        let users = service.users();
        if let Some(rep) = users.all().iter().find(|u| u.rep.is_some()) {
            let link = service.sign_in_link(rep).await?;
            println!(
                "  sign in as {} (rep), once, within minutes: {link}",
                rep.name
            );
        }
    }
    #[cfg(unix)]
    {
        let service = app.state.service.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hup.recv().await.is_some() {
                if let Err(e) = service.reload().await {
                    tracing::error!(error = %e, "reload refused; the previous configuration stays");
                }
            }
        });
    }
    app.serve(listener, pronto_server::app::shutdown_signal())
        .await?;
    println!("pronto stopped cleanly");
    Ok(())
}

fn check(file: Option<PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    let mut overrides: Overrides = args.into();
    if file.is_some() {
        overrides.config = file;
    }
    let settings = Settings::load(overrides)?;
    println!(
        "{}: ok ({} form(s), {} flow(s), {} template(s))",
        settings.source,
        settings.form_list.len(),
        settings.flows.len(),
        settings.templates.len()
    );
    Ok(())
}

async fn messages(args: ServeArgs, limit: u32, full: bool) -> anyhow::Result<()> {
    let store = open_store(args).await?;
    let ws = store.default_workspace().await?.id;
    let list = store.messages(ws, limit.clamp(1, 1000)).await?;
    if list.is_empty() {
        println!("no messages yet");
    }
    for m in &list {
        println!(
            "{}  {:<7} {:<7} to {}  \"{}\"  ({}, attempts {}){}",
            m.created_at.format("%Y-%m-%d %H:%M:%S"),
            m.state,
            m.transport.as_deref().unwrap_or("-"),
            m.to,
            m.subject,
            m.flow.as_deref().unwrap_or("-"),
            m.attempts,
            m.last_error
                .as_deref()
                .map(|e| format!("  last error: {e}"))
                .unwrap_or_default()
        );
        if full {
            println!("{}\n", m.text);
        }
    }
    store.close().await;
    Ok(())
}

async fn sign_in_link(email: &str, args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::load(args.clone().into()).context("invalid configuration")?;
    let program = settings.program(Vec::new())?;
    let users = settings.users(&program.sales)?;
    let Some(user) = users.get(email) else {
        anyhow::bail!(
            "`{email}` is no user: sign-in is for [[rep]]s with an email and [[user]]s of {}",
            settings.source
        );
    };
    let store = open_store(args).await?;
    let ws = store.default_workspace().await?.id;
    let ttl = chrono::Duration::from_std(settings.sign_in_ttl)?;
    let link = pronto_server::auth::new_sign_in_link(
        &*store,
        ws,
        &user,
        &settings.messages.public_url,
        ttl,
        chrono::Utc::now(),
    )
    .await?;
    eprintln!(
        "A link that signs {} in once, within {}:",
        user.name,
        humantime::format_duration(settings.sign_in_ttl)
    );
    println!("{link}");
    store.close().await;
    Ok(())
}

fn password_hash() -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(
        password.chars().count() >= 12,
        "use a password of at least 12 characters"
    );
    let hash = pronto_server::auth::hash_password(password).map_err(anyhow::Error::msg)?;
    println!("{hash}");
    Ok(())
}

/// The store a server with these settings uses. Reading commands never create a database: on SQLite the file
/// must exist (the server creates it).
async fn open_store(args: ServeArgs) -> anyhow::Result<Arc<dyn pronto_store::Store>> {
    let settings = Settings::load(args.into()).context("invalid configuration")?;
    let url = &settings.database_url;
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        anyhow::ensure!(
            std::path::Path::new(path).exists(),
            "no database at {url}: start `pronto serve` first, or point DATABASE_URL / --database-url at its database"
        );
    }
    Ok(pronto_store::connect(url, pronto_store::Options::default()).await?)
}

async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    use pronto_server::keys;
    match cmd {
        KeysCommand::List { args } => {
            let store = open_store(args).await?;
            let ws = store.default_workspace().await?.id;
            println!(
                "{:<18} {:<6} {:<10} {:<20} {:<20} label",
                "id", "kind", "origin", "created", "revoked"
            );
            for k in store.keys(ws).await? {
                println!(
                    "{:<18} {:<6} {:<10} {:<20} {:<20} {}",
                    k.id,
                    k.kind.as_str(),
                    k.origin.as_str(),
                    k.created_at.format("%Y-%m-%d %H:%M:%S"),
                    k.revoked_at
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_else(|| "-".into()),
                    k.label.as_deref().unwrap_or("")
                );
            }
            store.close().await;
        }
        KeysCommand::Create { kind, label, args } => {
            let kind: pronto_store::KeyKind = kind.parse().map_err(anyhow::Error::msg)?;
            let store = open_store(args).await?;
            let ws = store.default_workspace().await?.id;
            let (key, info) = keys::create(&*store, ws, kind, label.as_deref()).await?;
            println!(
                "{} key {} created; it is shown only now, copy it:",
                kind.as_str(),
                info.id
            );
            println!("{key}");
            store.close().await;
        }
        KeysCommand::Revoke { id, args } => {
            let store = open_store(args).await?;
            let ws = store.default_workspace().await?.id;
            match store.revoke_key(ws, &id, chrono::Utc::now()).await? {
                Some(k) => println!(
                    "{} key {} revoked; every node refuses it within {} s",
                    k.kind.as_str(),
                    k.id,
                    keys::KEY_CACHE_TTL.as_secs()
                ),
                None => anyhow::bail!("no key with id {id} (see `pronto keys list`)"),
            }
            store.close().await;
        }
    }
    Ok(())
}

async fn import_products(
    file: &std::path::Path,
    shop: Option<&str>,
    args: ServeArgs,
) -> anyhow::Result<()> {
    let settings = Settings::load(args.into()).context("invalid configuration")?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    // The platform first (from the header), so the default shop is the one of that platform.
    let platform = pronto_domain::catalog::import::platform(&bytes)
        .with_context(|| format!("{} is not a product export", file.display()))?;
    let shop = settings
        .catalog_shop(shop, platform)
        .map_err(anyhow::Error::msg)?;
    let (_, products) = pronto_domain::catalog::import::read(&shop, &bytes)?;
    let store =
        pronto_store::connect(&settings.database_url, pronto_store::Options::default()).await?;
    let ws = store.default_workspace().await?.id;
    let changes: Vec<pronto_domain::catalog::Change> = products
        .into_iter()
        .map(pronto_domain::catalog::Change::Upsert)
        .collect();
    let mut total = pronto_domain::catalog::Applied::default();
    // A transaction per thousand products: a large catalog does not hold the writer for long.
    for chunk in changes.chunks(1000) {
        let done = store.apply_catalog(ws, &shop, chunk).await?;
        total.upserted += done.upserted;
        total.stale += done.stale;
    }
    store.close().await;
    let available = changes
        .iter()
        .filter(|c| matches!(c, pronto_domain::catalog::Change::Upsert(p) if p.available))
        .count();
    println!(
        "imported {} {} products into the catalog of {} ({} available, {} written)",
        changes.len(),
        platform.as_str(),
        if shop.is_empty() {
            "carts from the Segment API"
        } else {
            &shop
        },
        available,
        total.upserted
    );
    Ok(())
}

async fn promote(
    flow: &str,
    experiment: &str,
    variant: &str,
    args: ServeArgs,
) -> anyhow::Result<()> {
    let settings = Settings::load(args.clone().into()).context("invalid configuration")?;
    let mut program = settings.program(Vec::new())?;
    program
        .promote(flow, experiment, variant)
        .map_err(|(field, m)| anyhow::anyhow!("{field}: {m}"))?;
    let store = open_store(args).await?;
    let ws = store.default_workspace().await?.id;
    let promotion = pronto_domain::experiment::Promotion {
        flow: flow.to_string(),
        experiment: experiment.to_string(),
        variant: variant.to_string(),
        promoted_at: chrono::Utc::now(),
        source: "cli".into(),
    };
    store.record_promotion(ws, &promotion).await?;
    store.close().await;
    println!(
        "promoted `{variant}` in {flow} / {experiment}; running servers apply it at their next reload \
         (kill -HUP <pid>, or POST /v1/admin/reload) or start"
    );
    Ok(())
}

async fn offers(cmd: OffersCommand) -> anyhow::Result<()> {
    let args = match &cmd {
        OffersCommand::List { args }
        | OffersCommand::Import { args, .. }
        | OffersCommand::Generate { args, .. } => args.clone(),
    };
    let settings = Settings::load(args.clone().into()).context("invalid configuration")?;
    let program = settings.program(Vec::new())?;
    let configured = |offer: &str| -> anyhow::Result<()> {
        if program.offers.get(offer).is_none() {
            anyhow::bail!("no [[offer]] with id `{offer}` in the configuration");
        }
        Ok(())
    };
    let now = chrono::Utc::now();
    match cmd {
        OffersCommand::List { .. } => {
            let store = open_store(args).await?;
            let ws = store.default_workspace().await?.id;
            let stock = store.offer_stock(ws).await?;
            store.close().await;
            let mut ids: Vec<&str> = program.offers.iter().map(|o| o.id.as_str()).collect();
            ids.extend(stock.iter().map(|s| s.offer.as_str()));
            ids.sort();
            ids.dedup();
            println!("{:<24} {:>10} {:>10}  note", "offer", "unused", "used");
            for id in ids {
                let s = stock.iter().find(|s| s.offer == id);
                let (unused, used) = s.map_or((0, 0), |s| (s.unused, s.used));
                let note = match program.offers.get(id) {
                    None => "no longer configured".to_string(),
                    Some(o) if unused < u64::from(o.low_at) => format!("low (under {})", o.low_at),
                    Some(_) => String::new(),
                };
                println!("{id:<24} {unused:>10} {used:>10}  {note}");
            }
        }
        OffersCommand::Import { offer, file, .. } => {
            configured(&offer)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let codes = pronto_domain::offer::parse_codes(&text)
                .map_err(|m| anyhow::anyhow!("{}: {m}", file.display()))?;
            let store = open_store(args).await?;
            let ws = store.default_workspace().await?.id;
            let added = store.add_offer_codes(ws, &offer, &codes, now).await?;
            store.close().await;
            println!(
                "{} codes read, {added} added to `{offer}` ({} were already in it)",
                codes.len(),
                codes.len() as u64 - added
            );
        }
        OffersCommand::Generate {
            offer,
            pattern,
            count,
            ..
        } => {
            configured(&offer)?;
            let mut buf = [0u8; 256];
            let mut at = buf.len();
            let codes = pronto_domain::offer::generate(&pattern, count, || {
                if at == buf.len() {
                    getrandom::fill(&mut buf).expect("the OS random source works");
                    at = 0;
                }
                at += 1;
                buf[at - 1]
            })
            .map_err(anyhow::Error::msg)?;
            let store = open_store(args).await?;
            let ws = store.default_workspace().await?.id;
            let added = store.add_offer_codes(ws, &offer, &codes, now).await?;
            store.close().await;
            // Every code printed is in the pool (a code that was already there, a one-in-a-million chance by
            // the pattern's length, is printed too: uploading it again is harmless).
            for c in &codes {
                println!("{c}");
            }
            eprintln!("{added} codes added to `{offer}`; upload them to the shop");
        }
    }
    Ok(())
}

async fn suppressions(cmd: SuppressionsCommand) -> anyhow::Result<()> {
    use pronto_domain::suppression::{self, Medium, Reason};
    let args = match &cmd {
        SuppressionsCommand::List { args, .. }
        | SuppressionsCommand::Add { args, .. }
        | SuppressionsCommand::Remove { args, .. }
        | SuppressionsCommand::Import { args, .. } => args.clone(),
    };
    let now = chrono::Utc::now();
    let field_errors = |e: pronto_domain::Invalid| {
        anyhow::anyhow!(e
            .0
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "))
    };
    // Checked before the store is opened, so a mistake costs no connection.
    let entries = match &cmd {
        SuppressionsCommand::Add {
            address,
            reason,
            detail,
            ..
        } => {
            let reason = reason
                .as_deref()
                .map(|r| {
                    Reason::parse(r).ok_or_else(|| {
                        anyhow::anyhow!(
                            "--reason: `{r}` is not one of {}",
                            Reason::ALL.map(Reason::as_str).join(", ")
                        )
                    })
                })
                .transpose()?;
            vec![
                suppression::given(address, None, reason, detail.as_deref(), "cli", None, now)
                    .map_err(field_errors)?,
            ]
        }
        SuppressionsCommand::Import { file, .. } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            suppression::from_csv(&text, "csv", now)
                .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), field_errors(e)))?
        }
        _ => Vec::new(),
    };
    let removal = match &cmd {
        SuppressionsCommand::Remove { address, .. } => {
            let medium = Medium::of_address(address);
            let spelt = suppression::address(medium, address)
                .map_err(|m| anyhow::anyhow!("`{address}` {m}"))?;
            Some((medium, spelt))
        }
        _ => None,
    };
    let store = open_store(args).await?;
    let ws = store.default_workspace().await?.id;
    let done = match cmd {
        SuppressionsCommand::List { csv, .. } => {
            let all = store
                .suppressions(ws, &pronto_store::SuppressionQuery::default())
                .await;
            all.map(|all| {
                if csv {
                    print!("{}", suppression::to_csv(&all));
                } else {
                    println!(
                        "{:<6} {:<32} {:<13} {:<8} {:<17} {:<17} detail",
                        "medium", "address", "reason", "source", "since", "until"
                    );
                    let t =
                        |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M").to_string();
                    for s in &all {
                        println!(
                            "{:<6} {:<32} {:<13} {:<8} {:<17} {:<17} {}",
                            s.medium.as_str(),
                            s.address,
                            s.reason.as_str(),
                            s.source,
                            t(s.since),
                            s.until.map(t).unwrap_or_default(),
                            s.detail.as_deref().unwrap_or("")
                        );
                    }
                    eprintln!("{} listed", all.len());
                }
            })
        }
        SuppressionsCommand::Add { .. } | SuppressionsCommand::Import { .. } => {
            store.suppress(ws, &entries).await.map(|n| {
                println!(
                    "{} read, {n} added or changed ({} already listed as they are)",
                    entries.len(),
                    entries.len() as u64 - n
                )
            })
        }
        SuppressionsCommand::Remove { .. } => {
            let (medium, a) = removal.unwrap_or((Medium::Email, String::new()));
            store.unsuppress(ws, medium, &a).await.map(|was| {
                if was {
                    println!("{a} taken off the list");
                } else {
                    println!("{a} was not listed");
                }
            })
        }
    };
    store.close().await;
    Ok(done?)
}

async fn export_contact(id: &str, args: ServeArgs) -> anyhow::Result<()> {
    let id: pronto_domain::ContactId = id
        .parse()
        .map_err(|_| anyhow::anyhow!("`{id}` is not a contact id (a UUID)"))?;
    let store = open_store(args).await?;
    let ws = store.default_workspace().await?.id;
    let got = pronto_server::privacy::export(&*store, ws, id, chrono::Utc::now()).await;
    store.close().await;
    let export: pronto_server::routes::contacts::ContactExport = match got {
        Ok(e) => e.into(),
        Err(pronto_server::error::ApiError::NotFound(_)) => anyhow::bail!("no contact {id}"),
        Err(e) => return Err(e.into()),
    };
    println!("{}", serde_json::to_string_pretty(&export)?);
    Ok(())
}

async fn erase_contact(id: &str, args: ServeArgs) -> anyhow::Result<()> {
    let id: pronto_domain::ContactId = id
        .parse()
        .map_err(|_| anyhow::anyhow!("`{id}` is not a contact id (a UUID)"))?;
    let store = open_store(args).await?;
    let ws = store.default_workspace().await?.id;
    let got = pronto_server::privacy::erase(&*store, ws, id, "cli", chrono::Utc::now()).await;
    store.close().await;
    let erased: pronto_server::routes::contacts::ErasureBody = match got {
        Ok(e) => e.into(),
        Err(pronto_server::error::ApiError::NotFound(_)) => anyhow::bail!("no contact {id}"),
        Err(e) => return Err(e.into()),
    };
    println!("{}", serde_json::to_string_pretty(&erased)?);
    Ok(())
}

async fn migrate(url: &str) -> anyhow::Result<()> {
    let store = pronto_store::connect(url, pronto_store::Options::default()).await?;
    store.close().await;
    println!("migrations applied to {}", pronto_server::app::redact(url));
    Ok(())
}

async fn flows_report(args: ServeArgs, days: u32, csv: bool) -> anyhow::Result<()> {
    let settings = Settings::load(args.clone().into()).context("invalid configuration")?;
    let program = settings.program(Vec::new())?;
    let store = open_store(args).await?;
    let ws = store.default_workspace().await?.id;
    let to = chrono::Utc::now();
    let from = to - chrono::Duration::days(i64::from(days));
    let r = pronto_server::experiments::flows_report(&*store, &program, ws, from, to).await?;
    if csv {
        print!("{}", pronto_server::experiments::report_csv(&r));
    } else {
        print!("{}", pronto_server::experiments::report_table(&r));
    }
    store.close().await;
    Ok(())
}

async fn speed_to_lead(args: ServeArgs, days: u32, csv: bool) -> anyhow::Result<()> {
    let settings = Settings::load(args.clone().into()).context("invalid configuration")?;
    let tz = settings.program(Vec::new())?.sales.timezone;
    let store = open_store(args).await?;
    let ws = store.default_workspace().await?.id;
    let to = chrono::Utc::now();
    let from = to - chrono::Duration::days(i64::from(days));
    let leads = pronto_server::lead_report::load(&store, ws, from, to).await?;
    let leads: Vec<_> = leads.iter().collect();
    let r = pronto_domain::report::build(&leads, from, to, to, tz);
    if csv {
        print!("{}", pronto_server::sales::report_csv(&r));
    } else {
        print!("{}", pronto_server::sales::report_table(&r));
    }
    Ok(())
}
