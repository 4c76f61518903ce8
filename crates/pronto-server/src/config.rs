//! Configuration: `pronto.toml` (or the shipped example), overridden by environment variables and CLI flags.
//!
//! Precedence, highest first: CLI flag, environment variable, config file, built-in default. The environment
//! names are fixed (tools and docs rely on them): `DATABASE_URL`, `PRONTO_LISTEN`, `PRONTO_CONFIG`,
//! `PRONTO_WRITE_KEY`, `PRONTO_ADMIN_KEY`, `PRONTO_SMTP_URL`, `PRONTO_SQLITE_SYNC`.
//!
//! The file is parsed strictly (unknown keys are errors), so a typo is reported at start instead of being
//! silently ignored.

use pronto_domain::access::{UserConfig, Users};
use pronto_domain::flow::FlowConfig;
use pronto_domain::offer::{OfferConfig, Offers};
use pronto_domain::program::{MessageSettings, Program};
use pronto_domain::sales::{LeadsConfig, RepConfig, RouteConfig, Sales, TeamConfig};
use pronto_domain::template::TemplateConfig;
use pronto_domain::Region;
use pronto_store::SqliteSync;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The example configuration shipped in the binary; used when no `pronto.toml` is present.
pub const EXAMPLE_CONFIG: &str = include_str!("../../../pronto.example.toml");

pub const DEFAULT_DATABASE_URL: &str = "sqlite://pronto.db";
/// Where `pronto serve --demo` keeps its data unless told otherwise: never the real database.
pub const DEMO_DATABASE_URL: &str = "sqlite://pronto-demo.db";
/// How many times shorter a demo's flow waits are: an hour is a minute.
pub const DEMO_SPEEDUP: u32 = 60;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    /// Every problem found, each naming its setting (or the flow, step and field, or template and part).
    #[error("{} problem(s) in the configuration:\n  {}", .0.len(), .0.join("\n  "))]
    Problems(Vec<String>),
}

/// The file's shape.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub ingest: IngestSection,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub forms: FormsSection,
    #[serde(default)]
    pub smtp: SmtpSection,
    #[serde(default, rename = "form")]
    pub forms_list: Vec<FormConfig>,
    #[serde(default)]
    pub messages: MessagesSection,
    #[serde(default, rename = "flow")]
    pub flows: Vec<FlowConfig>,
    #[serde(default, rename = "template")]
    pub templates: Vec<TemplateConfig>,
    #[serde(default, rename = "rep")]
    pub reps: Vec<RepConfig>,
    #[serde(default, rename = "team")]
    pub teams: Vec<TeamConfig>,
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub leads: LeadsConfig,
    #[serde(default)]
    pub sms: SmsSection,
    #[serde(default)]
    pub inbound: InboundSection,
    #[serde(default)]
    pub limits: LimitsSection,
    /// `[consent]`: where marketing needs recorded consent.
    #[serde(default)]
    pub consent: pronto_domain::consent::ConsentConfig,
    /// `[retention]`: how long events and messages are kept.
    #[serde(default)]
    pub retention: RetentionSection,
    #[serde(default, rename = "shop")]
    pub shops: Vec<ShopConfig>,
    #[serde(default, rename = "offer")]
    pub offers: Vec<OfferConfig>,
    #[serde(default, rename = "user")]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub app: AppSection,
}

/// `[app]`: the web app's sign-in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppSection {
    /// How long a browser stays signed in (`30d`); signing out or an admin's revocation ends it sooner.
    pub session: String,
    /// How long a mailed sign-in link works (`15m`); it works once.
    pub sign_in_link: String,
}

impl Default for AppSection {
    fn default() -> Self {
        Self {
            session: "30d".into(),
            sign_in_link: "15m".into(),
        }
    }
}

/// `[[shop]]`: a Shopify or WooCommerce store whose webhooks pronto takes (`POST /v1/webhooks/shopify`,
/// `POST /v1/webhooks/woocommerce`). The signing secret is better in the environment (`secret_env` names the
/// variable) than in the file (`secret`); exactly one of them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopConfig {
    /// `shopify` or `woocommerce`.
    pub platform: String,
    /// Shopify: the shop's `*.myshopify.com` domain (`X-Shopify-Shop-Domain`). WooCommerce: the site URL
    /// (`X-WC-Webhook-Source`, e.g. `https://shop.example/`).
    pub shop: String,
    pub secret: Option<String>,
    pub secret_env: Option<String>,
}

/// A shop as the server checks its deliveries.
#[derive(Clone)]
pub struct ShopSettings {
    pub platform: pronto_domain::shop::Platform,
    /// As [`pronto_domain::shop::shop_name`] writes it.
    pub shop: String,
    pub secret: String,
}

impl Settings {
    /// The catalog a product import goes to: `asked` (as [`pronto_domain::shop::shop_name`] writes it), else
    /// the one configured `[[shop]]` of the file's platform, else the default catalog (`""`, the one carts
    /// from the Segment API use) when no shop of that platform is configured.
    pub fn catalog_shop(
        &self,
        asked: Option<&str>,
        platform: pronto_domain::shop::Platform,
    ) -> Result<String, String> {
        if let Some(a) = asked {
            return Ok(pronto_domain::shop::shop_name(a));
        }
        let mine: Vec<&ShopSettings> = self
            .shops
            .iter()
            .filter(|s| s.platform == platform)
            .collect();
        match mine[..] {
            [] => Ok(String::new()),
            [one] => Ok(one.shop.clone()),
            _ => Err(format!(
                "{} [[shop]]s of platform {} are configured ({}): say which with --shop",
                mine.len(),
                platform.as_str(),
                mine.iter()
                    .map(|s| s.shop.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

impl std::fmt::Debug for ShopSettings {
    /// Never the secret: settings are logged at start.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopSettings")
            .field("platform", &self.platform)
            .field("shop", &self.shop)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// `[limits]`: how many leads pronto takes before answering 429, counted in fixed windows, shared by every
/// process on PostgreSQL. Each lead may acknowledge its sender with text the sender chose, so without limits
/// the public write key or a form is a mail relay. 0 turns a limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// `POST /v1/leads` per client IP per minute (forms have `forms.rate_limit_per_minute`).
    pub leads_per_ip_per_minute: u32,
    /// Leads naming the same email or phone per hour (API and forms).
    pub leads_per_recipient_per_hour: u32,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            leads_per_ip_per_minute: 60,
            leads_per_recipient_per_hour: 10,
        }
    }
}

/// `[inbound]`: webhooks that bring replies in. Each is authenticated the way its sender signs, never with the
/// write key (which web pages publish).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundSection {
    /// The secret `POST /v1/inbound/email` is authenticated with: a Standard Webhooks signature made with it
    /// (`webhook-id`, `webhook-timestamp`, `webhook-signature`), or it as the HTTP Basic password (the form
    /// Postmark, SendGrid and Mailgun inbound routes take: `https://pronto:SECRET@host/v1/inbound/email`).
    /// Better in `PRONTO_INBOUND_EMAIL_SECRET` than in the file. Without it the endpoint answers 401.
    pub email_secret: Option<String>,
    /// SendGrid's verification key (public; Mail Settings → Event Webhook → Signed Event Webhook), which
    /// `POST /v1/inbound/events/sendgrid` checks signatures with. Without it the endpoint answers 401.
    pub sendgrid_public_key: Option<String>,
    /// Mailgun's HTTP webhook signing key, which `POST /v1/inbound/events/mailgun` checks signatures with.
    /// Better in `PRONTO_MAILGUN_SIGNING_KEY`. Without it the endpoint answers 401.
    pub mailgun_signing_key: Option<String>,
    /// A mailbox whose mail reaches `POST /v1/inbound/email` (through the same forwarder as replies): named
    /// as a `mailto:` in marketing mail's `List-Unsubscribe`, beside the one-click URL.
    pub unsubscribe_address: Option<String>,
}

/// `[sms]`: a Twilio-compatible REST API. Without `account_sid`, no SMS is sent (and none is queued).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSection {
    /// Default `https://api.twilio.com`.
    pub base_url: Option<String>,
    pub account_sid: Option<String>,
    /// Better in `PRONTO_SMS_AUTH_TOKEN` than in the file.
    pub auth_token: Option<String>,
    /// The sending number (E.164) or sender id.
    pub from: Option<String>,
}

/// `[messages]`: how flow messages are addressed and limited.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesSection {
    /// `From:` of every email; default `pronto <pronto@localhost>`.
    pub from: Option<String>,
    /// `Reply-To:`: a mailbox a real person reads.
    pub reply_to: Option<String>,
    /// `{ max = 3, per = "24h" }`: at most `max` flow emails per contact in that window; further sends are
    /// skipped with the reason recorded.
    pub email_cap: Option<CapConfig>,
    /// Links in flow messages (the cart's restore link, product and recommendation links) go through
    /// pronto's signed redirect `/r/…`, which records the click for the flows report; default true.
    pub track_clicks: Option<bool>,
    /// `{ max = 3, within = "7d", suppress_for = "7d" }` (the default): that many soft bounces of one
    /// address (a full mailbox) within the window put it on the suppression list for `suppress_for`;
    /// `max = 0` turns the rule off.
    pub soft_bounces: Option<SoftBouncesConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftBouncesConfig {
    pub max: u32,
    pub within: String,
    pub suppress_for: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapConfig {
    pub max: u32,
    pub per: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: Option<String>,
    /// The URL people reach this server at, for links in messages (unsubscribe); default `http://<listen>`.
    pub public_url: Option<String>,
    pub database_url: Option<String>,
    /// PostgreSQL: a read replica for the reports and the app's report pages.
    pub database_read_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSection {
    /// Largest single event, in bytes (Segment's limit: 32 KB).
    pub max_event_bytes: usize,
    /// Largest batch request, in bytes (Segment's limit: 500 KB).
    pub max_batch_bytes: usize,
    /// ISO 3166 region that phone numbers without `+country` are read in.
    pub default_region: String,
}

impl Default for IngestSection {
    fn default() -> Self {
        Self {
            max_event_bytes: 32 * 1024,
            max_batch_bytes: 500 * 1024,
            default_region: "US".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// SQLite: `full` (a 2xx survives power loss) or `normal` (a 2xx survives a crash of pronto).
    pub sqlite_sync: String,
    /// PostgreSQL: parallel group-commit writers.
    pub pg_writers: usize,
    /// PostgreSQL: the longest a request waits for a database connection before it is answered 503
    /// (`3s`): an unreachable database fails requests fast instead of holding them.
    pub pg_acquire_timeout: String,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self {
            sqlite_sync: "full".into(),
            pg_writers: 2,
            pg_acquire_timeout: "3s".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FormsSection {
    /// Form posts accepted per client IP per minute; more answer 429.
    pub rate_limit_per_minute: u32,
    /// Take the client IP from `X-Forwarded-For` (only behind a proxy you run).
    pub trust_forwarded_for: bool,
}

impl Default for FormsSection {
    fn default() -> Self {
        Self {
            rate_limit_per_minute: 20,
            trust_forwarded_for: false,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSection {
    /// lettre URL form, e.g. `smtps://user:pass@smtp.example.com`.
    pub url: Option<String>,
    /// `[[smtp.dkim]]`: every message is signed with each key (RSA and Ed25519 may sign together).
    #[serde(default)]
    pub dkim: Vec<DkimFileConfig>,
    /// `{ "gmail.com" = 600 }`: at most so many emails a minute to a domain; the rest wait for the next minute.
    #[serde(default)]
    pub per_domain_per_minute: std::collections::HashMap<String, u32>,
}

/// `[retention]` as written: durations like `400d`; absent: kept for good.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    pub events: Option<String>,
    pub messages: Option<String>,
}

/// One DKIM key: its public half is published at `selector._domainkey.domain`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimFileConfig {
    pub domain: String,
    pub selector: String,
    /// The private key's file (relative to the working directory), as OpenSSL or dkimpy wrote it.
    pub key_file: String,
}

/// A public HTML form, posted to `/f/{name}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormConfig {
    pub name: String,
    /// Where the browser goes after a successful post; a plain thank-you page when absent.
    pub redirect: Option<String>,
    /// A field humans leave empty (hide it with CSS); a post that fills it is dropped silently.
    #[serde(default = "default_honeypot")]
    pub honeypot: String,
    /// The lead's `source` when the form does not send one.
    pub source: Option<String>,
}

fn default_honeypot() -> String {
    "website".into()
}

/// What the command line and environment say (clap fills it, reading the env names above).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub database_url: Option<String>,
    pub database_read_url: Option<String>,
    pub listen: Option<String>,
    pub write_key: Option<String>,
    pub admin_key: Option<String>,
    pub smtp_url: Option<String>,
    pub sqlite_sync: Option<String>,
    pub sms_auth_token: Option<String>,
    pub inbound_email_secret: Option<String>,
    pub mailgun_signing_key: Option<String>,
    /// `--demo`: flow waits [`DEMO_SPEEDUP`] times shorter, and its own database by default.
    pub demo: bool,
}

/// The resolved, checked settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database_url: String,
    /// PostgreSQL: where the reports read (`DATABASE_READ_URL`); none: the primary.
    pub database_read_url: Option<String>,
    pub write_key: Option<String>,
    pub admin_key: Option<String>,
    pub smtp_url: Option<String>,
    /// The keys every outgoing email is signed with.
    pub dkim: Arc<[pronto_channels::dkim::DkimKey]>,
    /// Emails a minute per receiving domain (`[smtp] per_domain_per_minute`).
    pub per_domain_per_minute: Vec<(String, u32)>,
    pub sqlite_sync: SqliteSync,
    pub pg_writers: usize,
    pub pg_acquire_timeout: std::time::Duration,
    pub region: Region,
    pub max_event_bytes: usize,
    pub max_batch_bytes: usize,
    pub forms: FormsSection,
    pub form_list: Vec<FormConfig>,
    pub flows: Vec<FlowConfig>,
    pub templates: Vec<TemplateConfig>,
    /// `[[offer]]`: pools of unique codes.
    pub offers: Vec<OfferConfig>,
    /// `[consent]`, checked with the flows.
    pub consent: pronto_domain::consent::ConsentConfig,
    /// How long events and messages are kept.
    pub retention: crate::workers::Retention,
    pub reps: Vec<RepConfig>,
    pub teams: Vec<TeamConfig>,
    pub routes: Vec<RouteConfig>,
    pub leads: LeadsConfig,
    /// The SMS provider, when one is configured.
    pub sms: Option<pronto_channels::sms::TwilioConfig>,
    /// What `POST /v1/inbound/email` is authenticated with.
    pub inbound_email_secret: Option<String>,
    /// SendGrid's verification key, read: the P-256 point its event webhook signatures are checked with.
    pub sendgrid_key: Option<Vec<u8>>,
    /// What Mailgun's webhook signatures are checked with.
    pub mailgun_signing_key: Option<String>,
    /// `List-Unsubscribe`'s `mailto:` mailbox.
    pub unsubscribe_address: Option<String>,
    pub limits: LimitsSection,
    /// The shops whose webhooks are taken.
    pub shops: Vec<ShopSettings>,
    /// Message settings; the link secret is filled in from the database at start.
    pub messages: MessageSettings,
    /// `[[user]]`: the web app's managers and admins (reps with an email are users too).
    pub users: Vec<UserConfig>,
    /// How long a web app session lasts.
    pub session_ttl: std::time::Duration,
    /// How long a mailed sign-in link works.
    pub sign_in_ttl: std::time::Duration,
    /// Running as `pronto serve --demo` (flow waits shortened, its own database).
    pub demo: bool,
    /// What this was loaded with, so a reload loads the same way.
    pub overrides: Overrides,
    /// Where the configuration came from, for the start-up message.
    pub source: String,
}

impl FileConfig {
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })
    }
}

impl Settings {
    /// Loads the file named by `overrides.config`, else `./pronto.toml` if present, else the shipped example;
    /// then applies the overrides and checks everything.
    pub fn load(overrides: Overrides) -> Result<Self, ConfigError> {
        let (file, source) = match &overrides.config {
            Some(path) => (read(path)?, path.display().to_string()),
            None if Path::new("pronto.toml").exists() => {
                (read(Path::new("pronto.toml"))?, "pronto.toml".into())
            }
            None => (
                FileConfig::parse(EXAMPLE_CONFIG, "pronto.example.toml (built in)")?,
                "the built-in example (pronto.example.toml)".into(),
            ),
        };
        Self::resolve(file, overrides, source)
    }

    /// Applies the overrides and checks everything, reporting every problem at once (each naming its field),
    /// not just the first.
    pub fn resolve(file: FileConfig, o: Overrides, source: String) -> Result<Self, ConfigError> {
        let overrides = o.clone();
        let mut problems: Vec<String> = Vec::new();
        let mut bad = |field: &str, message: String| problems.push(format!("{field}: {message}"));
        let listen_text = o
            .listen
            .or(file.server.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen_text.parse().unwrap_or_else(|_| {
            bad(
                "server.listen / PRONTO_LISTEN",
                format!("`{listen_text}` is not an address like 127.0.0.1:8080"),
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        // A demo keeps its data apart from the configured database unless told where to put it.
        let file_database = if o.demo {
            Some(DEMO_DATABASE_URL.to_string())
        } else {
            file.server.database_url
        };
        let database_url = o
            .database_url
            .or(file_database)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
        if !["sqlite:", "postgres:", "postgresql:"]
            .iter()
            .any(|p| database_url.starts_with(p))
        {
            bad(
                "server.database_url / DATABASE_URL",
                "must start with sqlite:// or postgres://".into(),
            );
        }
        let database_read_url = o.database_read_url.or(file.server.database_read_url);
        if let Some(read) = &database_read_url {
            let postgres = |u: &str| u.starts_with("postgres:") || u.starts_with("postgresql:");
            if !postgres(read) || !postgres(&database_url) {
                bad(
                    "server.database_read_url / DATABASE_READ_URL",
                    "is a PostgreSQL read replica, for a PostgreSQL database_url".into(),
                );
            }
        }
        let sync_text = o.sqlite_sync.unwrap_or(file.storage.sqlite_sync);
        let sqlite_sync = sync_text.parse().unwrap_or_else(|m| {
            bad("storage.sqlite_sync / PRONTO_SQLITE_SYNC", m);
            SqliteSync::Full
        });
        let mut app_duration = |field: &str, text: &str, min: u64, max: u64| {
            humantime::parse_duration(text)
                .ok()
                .filter(|d| d.as_secs() >= min && d.as_secs() <= max)
                .unwrap_or_else(|| {
                    bad(
                        field,
                        format!(
                            "`{text}` is not a duration between {} and {}",
                            humantime::format_duration(std::time::Duration::from_secs(min)),
                            humantime::format_duration(std::time::Duration::from_secs(max))
                        ),
                    );
                    std::time::Duration::from_secs(min)
                })
        };
        let session_ttl = app_duration("app.session", &file.app.session, 3600, 400 * 86_400);
        let sign_in_ttl = app_duration("app.sign_in_link", &file.app.sign_in_link, 60, 86_400);
        let pg_acquire_timeout = humantime::parse_duration(&file.storage.pg_acquire_timeout)
            .ok()
            .filter(|d| {
                *d >= std::time::Duration::from_millis(100)
                    && *d <= std::time::Duration::from_secs(60)
            })
            .unwrap_or_else(|| {
                bad(
                    "storage.pg_acquire_timeout",
                    format!(
                        "`{}` is not a duration between 100ms and 60s",
                        file.storage.pg_acquire_timeout
                    ),
                );
                std::time::Duration::from_secs(3)
            });
        let region = file.ingest.default_region.parse().unwrap_or_else(|m| {
            bad("ingest.default_region", m);
            Region::default()
        });
        if file.ingest.max_event_bytes < 1024
            || file.ingest.max_batch_bytes < file.ingest.max_event_bytes
        {
            bad(
                "ingest.max_event_bytes",
                "must be at least 1024 and at most ingest.max_batch_bytes".into(),
            );
        }
        if file.forms.rate_limit_per_minute == 0 {
            bad("forms.rate_limit_per_minute", "must be at least 1".into());
        }
        for key in [&o.write_key, &o.admin_key].into_iter().flatten() {
            if key.len() < 16 {
                bad(
                    "PRONTO_WRITE_KEY / PRONTO_ADMIN_KEY",
                    "a key must be at least 16 characters".into(),
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, f) in file.forms_list.iter().enumerate() {
            let field = format!("form[{i}]");
            let ok_name = !f.name.is_empty()
                && f.name.len() <= 64
                && f.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok_name {
                bad(
                    &format!("{field}.name"),
                    "must be 1-64 letters, digits, - or _".into(),
                );
            } else if !seen.insert(f.name.clone()) {
                bad(
                    &format!("{field}.name"),
                    format!("form `{}` is declared twice", f.name),
                );
            }
            if let Some(r) = &f.redirect {
                if !(r.starts_with('/') || r.starts_with("https://") || r.starts_with("http://")) {
                    bad(
                        &format!("{field}.redirect"),
                        "must be a path (/thanks) or an http(s) URL".into(),
                    );
                }
            }
            if f.honeypot.is_empty() {
                bad(&format!("{field}.honeypot"), "must name a field".into());
            }
        }
        let mut messages = MessageSettings {
            public_url: file
                .server
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{listen}")),
            ..MessageSettings::default()
        };
        if let Some(from) = file.messages.from {
            messages.from = from;
        }
        messages.reply_to = file.messages.reply_to;
        messages.track_clicks = file.messages.track_clicks.unwrap_or(true);
        for (field, addr) in [
            ("messages.from", Some(&messages.from)),
            ("messages.reply_to", messages.reply_to.as_ref()),
        ] {
            if let Some(a) = addr {
                if let Err(e) = pronto_channels::email::check_mailbox(a) {
                    bad(
                        field,
                        format!("`{a}` is not an address like Shop <shop@example.com> ({e})"),
                    );
                }
            }
        }
        let mut keep = |field: &str, text: &Option<String>| {
            let text = text.as_deref()?;
            match humantime::parse_duration(text)
                .ok()
                .and_then(|d| chrono::Duration::from_std(d).ok())
            {
                Some(d) if d >= chrono::Duration::days(1) => Some(d),
                _ => {
                    bad(
                        &format!("retention.{field}"),
                        format!("`{text}` is not a duration of a day or more, like 400d"),
                    );
                    None
                }
            }
        };
        let retention = crate::workers::Retention {
            events: keep("events", &file.retention.events),
            messages: keep("messages", &file.retention.messages),
        };
        let dkim = dkim_keys(&file.smtp.dkim, &messages.from, &mut bad);
        for (domain, m) in pronto_domain::pace::Pace::check(&file.smtp.per_domain_per_minute) {
            bad(&format!("smtp.per_domain_per_minute.\"{domain}\""), m);
        }
        if let Some(cap) = file.messages.email_cap {
            match humantime::parse_duration(&cap.per) {
                Err(e) => bad("messages.email_cap.per", format!("`{}`: {e}", cap.per)),
                Ok(_) if cap.max == 0 => bad(
                    "messages.email_cap.max",
                    "must be at least 1 (remove the cap to have none)".into(),
                ),
                Ok(per) => messages.email_cap = Some((cap.max, per)),
            }
        }
        if let Some(soft) = file.messages.soft_bounces {
            let mut span = |field: &str, text: &str| match humantime::parse_duration(text)
                .ok()
                .and_then(|d| chrono::Duration::from_std(d).ok())
            {
                Some(d) if d > chrono::Duration::zero() => Some(d),
                _ => {
                    bad(
                        &format!("messages.soft_bounces.{field}"),
                        format!("`{text}` is not a duration like 7d or 36h"),
                    );
                    None
                }
            };
            let within = span("within", &soft.within);
            let suppress_for = span("suppress_for", &soft.suppress_for);
            if let (Some(within), Some(suppress_for)) = (within, suppress_for) {
                messages.soft_bounces = pronto_domain::suppression::SoftBounces {
                    max: soft.max,
                    within,
                    suppress_for,
                };
            }
        }
        let sms = match (
            file.sms.account_sid,
            o.sms_auth_token.or(file.sms.auth_token),
            file.sms.from,
        ) {
            (None, _, _) => None,
            (Some(sid), Some(token), Some(from)) => Some(pronto_channels::sms::TwilioConfig {
                base_url: file
                    .sms
                    .base_url
                    .unwrap_or_else(|| "https://api.twilio.com".into()),
                account_sid: sid,
                auth_token: token,
                from,
            }),
            (Some(_), token, from) => {
                if token.is_none() {
                    bad(
                        "sms.auth_token / PRONTO_SMS_AUTH_TOKEN",
                        "is required with sms.account_sid".into(),
                    );
                }
                if from.is_none() {
                    bad("sms.from", "is required with sms.account_sid".into());
                }
                None
            }
        };
        messages.sms = sms.is_some();
        let inbound_email_secret = o.inbound_email_secret.or(file.inbound.email_secret);
        if inbound_email_secret.as_ref().is_some_and(|s| s.len() < 16) {
            bad(
                "inbound.email_secret / PRONTO_INBOUND_EMAIL_SECRET",
                "must be at least 16 characters".into(),
            );
        }
        let sendgrid_key = file.inbound.sendgrid_public_key.as_deref().and_then(|k| {
            pronto_domain::suppression::provider::sendgrid_public_key(k)
                .map_err(|e| bad("inbound.sendgrid_public_key", e))
                .ok()
        });
        let mailgun_signing_key = o.mailgun_signing_key.or(file.inbound.mailgun_signing_key);
        if mailgun_signing_key
            .as_ref()
            .is_some_and(|s| s.trim().is_empty())
        {
            bad(
                "inbound.mailgun_signing_key / PRONTO_MAILGUN_SIGNING_KEY",
                "is empty".into(),
            );
        }
        let unsubscribe_address = file.inbound.unsubscribe_address.clone();
        if let Some(a) = &unsubscribe_address {
            if pronto_domain::Email::parse(a).is_err() {
                bad(
                    "inbound.unsubscribe_address",
                    format!("`{a}` is not a bare email address like unsubscribe@in.example.com"),
                );
            }
            if inbound_email_secret.is_none() {
                bad(
                    "inbound.unsubscribe_address",
                    "needs inbound.email_secret (PRONTO_INBOUND_EMAIL_SECRET): its mail reaches pronto \
                     at POST /v1/inbound/email"
                        .into(),
                );
            }
        }
        let mut shops: Vec<ShopSettings> = Vec::new();
        for (i, c) in file.shops.iter().enumerate() {
            let field = |name: &str| format!("shop[{i}].{name}");
            let platform = match c.platform.parse::<pronto_domain::shop::Platform>() {
                Ok(p) => Some(p),
                Err(e) => {
                    bad(&field("platform"), e);
                    None
                }
            };
            let shop = pronto_domain::shop::shop_name(&c.shop);
            if shop.is_empty() {
                bad(
                    &field("shop"),
                    "is required (the shop's domain or site URL)".into(),
                );
            }
            let secret = match (&c.secret, &c.secret_env) {
                (Some(s), None) => Some(s.clone()),
                (None, Some(var)) => match std::env::var(var) {
                    Ok(s) if !s.is_empty() => Some(s),
                    _ => {
                        bad(
                            &field("secret_env"),
                            format!("the environment variable `{var}` is not set"),
                        );
                        None
                    }
                },
                (Some(_), Some(_)) => {
                    bad(
                        &field("secret"),
                        "give secret or secret_env, not both".into(),
                    );
                    None
                }
                (None, None) => {
                    bad(
                        &field("secret_env"),
                        "is required (or secret): the webhook signing secret".into(),
                    );
                    None
                }
            };
            if let (Some(platform), Some(secret)) = (platform, secret) {
                if shops
                    .iter()
                    .any(|s| s.platform == platform && s.shop == shop)
                {
                    bad(&field("shop"), format!("`{shop}` is configured twice"));
                }
                shops.push(ShopSettings {
                    platform,
                    shop,
                    secret,
                });
            }
        }
        let settings = Self {
            listen,
            database_url,
            database_read_url,
            write_key: o.write_key,
            admin_key: o.admin_key,
            smtp_url: o.smtp_url.or(file.smtp.url),
            dkim: dkim.into(),
            per_domain_per_minute: file
                .smtp
                .per_domain_per_minute
                .clone()
                .into_iter()
                .collect(),
            sqlite_sync,
            pg_writers: file.storage.pg_writers.clamp(1, 64),
            pg_acquire_timeout,
            region,
            max_event_bytes: file.ingest.max_event_bytes,
            max_batch_bytes: file.ingest.max_batch_bytes,
            forms: file.forms,
            form_list: file.forms_list,
            flows: if o.demo {
                file.flows
                    .into_iter()
                    .map(|f| f.shortened(DEMO_SPEEDUP))
                    .collect()
            } else {
                file.flows
            },
            templates: file.templates,
            offers: file.offers,
            consent: file.consent,
            retention,
            reps: file.reps,
            teams: file.teams,
            routes: file.routes,
            leads: file.leads,
            sms,
            inbound_email_secret,
            sendgrid_key,
            mailgun_signing_key,
            unsubscribe_address,
            limits: file.limits,
            shops,
            messages,
            users: file.users,
            session_ttl,
            sign_in_ttl,
            demo: o.demo,
            overrides,
            source,
        };
        match settings.program(Vec::new()) {
            Err(ConfigError::Problems(more)) => problems.extend(more),
            Ok(program) => {
                if let Err(ConfigError::Problems(more)) = settings.users(&program.sales) {
                    problems.extend(more);
                }
            }
            Err(_) => {}
        }
        if let Err(ConfigError::Problems(more)) = settings.offer_codes() {
            problems.extend(more);
        }
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError::Problems(problems))
        }
    }

    /// The flows and templates compiled and checked, with the link secret; every problem of the flows,
    /// templates and speed-to-lead settings at once.
    pub fn program(&self, link_secret: Vec<u8>) -> Result<Program, ConfigError> {
        let mut messages = self.messages.clone();
        messages.link_secret = link_secret;
        let built = Program::build(&self.flows, &self.templates, messages);
        let names: Vec<String> = match &built {
            Ok(p) => p
                .templates
                .names()
                .into_iter()
                .map(str::to_string)
                .collect(),
            // The sales settings are still checked, against the templates as configured.
            Err(_) => pronto_domain::sales::builtin_templates()
                .iter()
                .map(|t| t.name.clone())
                .chain(self.templates.iter().map(|t| t.name.clone()))
                .collect(),
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let sales = Sales::check(&self.reps, &self.teams, &self.routes, &self.leads, &names);
        let offers = Offers::check(&self.offers).map_err(|es| {
            es.into_iter()
                .map(|(field, m)| format!("{field}: {m}"))
                .collect::<Vec<_>>()
        });
        let consent = pronto_domain::consent::Policy::check(&self.consent).map_err(|es| {
            es.into_iter()
                .map(|(field, m)| format!("{field}: {m}"))
                .collect::<Vec<_>>()
        });
        match (built, sales, offers, consent) {
            (Ok(mut program), Ok(sales), Ok(offers), Ok(consent)) => {
                program.sales = sales;
                program.offers = offers;
                program.consent = consent;
                Ok(program)
            }
            (built, sales, offers, consent) => Err(ConfigError::Problems(
                built
                    .err()
                    .unwrap_or_default()
                    .into_iter()
                    .chain(sales.err().unwrap_or_default())
                    .chain(offers.err().unwrap_or_default())
                    .chain(consent.err().unwrap_or_default())
                    .collect(),
            )),
        }
    }

    /// Everyone who may sign in to the web app: the reps with an email and the `[[user]]`s, checked
    /// against the reps and teams.
    pub fn users(&self, sales: &Sales) -> Result<Users, ConfigError> {
        Users::build(&self.users, sales).map_err(|e| {
            ConfigError::Problems(
                e.0.into_iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect(),
            )
        })
    }

    /// The codes of each `[[offer]]` with a `codes_file`, read and checked (a path is relative to the
    /// working directory); every unreadable file or bad line at once.
    pub fn offer_codes(&self) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for (i, o) in self.offers.iter().enumerate() {
            let Some(path) = &o.codes_file else { continue };
            match std::fs::read_to_string(path) {
                Err(e) => problems.push(format!("offer[{i}].codes_file: cannot read {path}: {e}")),
                Ok(text) => match pronto_domain::offer::parse_codes(&text) {
                    Ok(codes) => out.push((o.id.clone(), codes)),
                    Err(m) => problems.push(format!("offer[{i}].codes_file: {path}: {m}")),
                },
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(ConfigError::Problems(problems))
        }
    }
}

/// Reads each `[[smtp.dkim]]` key, and checks that one of them signs for the From domain: DMARC passes on a
/// DKIM signature only when its domain is the From domain or shares its parent (relaxed alignment).
fn dkim_keys(
    keys: &[DkimFileConfig],
    from: &str,
    bad: &mut impl FnMut(&str, String),
) -> Vec<pronto_channels::dkim::DkimKey> {
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let field = format!("smtp.dkim[{i}]");
        match std::fs::read_to_string(&k.key_file) {
            Err(e) => bad(
                &format!("{field}.key_file"),
                format!("cannot read {}: {e}", k.key_file),
            ),
            Ok(text) => match pronto_channels::dkim::DkimKey::new(&k.domain, &k.selector, &text) {
                Ok(key) => out.push(key),
                Err(e) => bad(&field, format!("{}: {e}", k.key_file)),
            },
        }
    }
    let from_domain = from
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').trim().to_ascii_lowercase());
    if let (Some(from_domain), false) = (from_domain, out.is_empty()) {
        let aligned = |d: &str| {
            d == from_domain
                || from_domain.ends_with(&format!(".{d}"))
                || d.ends_with(&format!(".{from_domain}"))
        };
        if !out.iter().any(|k| aligned(k.domain())) {
            bad(
                "smtp.dkim",
                format!(
                    "no key signs for `{from_domain}`, the domain of messages.from: receivers' DMARC checks \
                     pass only on a signature for that domain or one under the same parent"
                ),
            );
        }
    }
    out
}

fn read(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    FileConfig::parse(&text, &path.display().to_string())
}

impl Settings {
    /// The SMTP sender for `smtp_url`, signing with the DKIM keys; none without a URL.
    pub fn smtp_sender(
        &self,
    ) -> Result<Option<pronto_channels::email::SmtpSender>, pronto_channels::email::SmtpUrlError>
    {
        self.smtp_url
            .as_deref()
            .map(|u| {
                pronto_channels::email::SmtpSender::from_url(u)
                    .map(|s| s.with_dkim(self.dkim.clone()))
            })
            .transpose()
    }
}

/// The web app's sign-in settings, as the service holds them.
pub struct AppAuth {
    /// Where sign-in links are mailed through; without it the sign-in page says so.
    pub smtp: Option<pronto_channels::email::SmtpSender>,
    pub session_ttl: chrono::Duration,
    pub sign_in_ttl: chrono::Duration,
}

impl AppAuth {
    pub fn new(settings: &Settings) -> Self {
        let dur = |d: std::time::Duration| {
            chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(1))
        };
        Self {
            smtp: settings.smtp_sender().ok().flatten(),
            session_ttl: dur(settings.session_ttl),
            sign_in_ttl: dur(settings.sign_in_ttl),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_loads_and_declares_the_contact_form() {
        let file = FileConfig::parse(EXAMPLE_CONFIG, "example").unwrap();
        let s = Settings::resolve(file, Overrides::default(), "example".into()).unwrap();
        assert!(s.form_list.iter().any(|f| f.name == "contact"));
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(s.max_event_bytes, 32 * 1024);
    }

    #[test]
    fn the_examples_commented_shops_and_their_flows_pass_the_check_once_uncommented() {
        // The commented TOML of the shops section (prose lines are sentences, not `key = …`), uncommented as a
        // user would, with the secrets inline instead of in the environment.
        let start = EXAMPLE_CONFIG.find("# [[shop]]").unwrap();
        let end = start + EXAMPLE_CONFIG[start..].find("# ------").unwrap();
        let toml_line = |l: &str| {
            let t = l.trim_start_matches("# ");
            t.starts_with('[')
                || t.starts_with("  {")
                || t == "]"
                || t.split_once(" = ")
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        };
        let block: String = EXAMPLE_CONFIG[start..end]
            .lines()
            .map(|l| {
                if l.starts_with("# ") && toml_line(l) {
                    &l[2..]
                } else {
                    l
                }
            })
            .map(|l| match l.split_once("secret_env = ") {
                Some(_) => "secret = \"s\"".to_string(),
                None => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let text = format!(
            "{}{block}\n{}",
            &EXAMPLE_CONFIG[..start],
            &EXAMPLE_CONFIG[end..]
        );
        let file = FileConfig::parse(&text, "example, uncommented").unwrap();
        let s = Settings::resolve(file, Overrides::default(), "example".into()).unwrap();
        assert_eq!(s.shops.len(), 2);
        let program = s.program(b"k".to_vec()).expect("flows and templates check");
        let ids: Vec<&str> = program.flows.iter().map(|f| f.id.as_str()).collect();
        for id in [
            "shopify-checkout-recovery",
            "woocommerce-order-recovery",
            "checkout-recovery",
        ] {
            assert!(ids.contains(&id), "{id} in {ids:?}");
        }
    }

    #[test]
    fn overrides_win_over_the_file() {
        let file = FileConfig::parse(
            "[server]\nlisten = \"127.0.0.1:9000\"\ndatabase_url = \"sqlite://a.db\"",
            "t",
        )
        .unwrap();
        let o = Overrides {
            listen: Some("0.0.0.0:7000".into()),
            ..Default::default()
        };
        let s = Settings::resolve(file, o, "t".into()).unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:7000");
        assert_eq!(s.database_url, "sqlite://a.db");
    }

    #[test]
    fn a_demo_shortens_every_flow_wait_and_keeps_its_own_database_unless_told() {
        let demo = |database_url: Option<&str>| {
            let o = Overrides {
                demo: true,
                database_url: database_url.map(str::to_string),
                ..Default::default()
            };
            Settings::resolve(
                FileConfig::parse(EXAMPLE_CONFIG, "t").unwrap(),
                o,
                "t".into(),
            )
            .unwrap()
        };
        let s = demo(None);
        assert_eq!(
            s.database_url, DEMO_DATABASE_URL,
            "not the example's sqlite://pronto.db"
        );
        assert!(s.demo);
        let checkout = s
            .flows
            .iter()
            .find(|f| f.id == "checkout-recovery")
            .unwrap();
        match &checkout.steps[0].wait {
            Some(pronto_domain::flow::WaitConfig::Tiered { tiers, .. }) => assert_eq!(
                tiers.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
                ["10s", "1m", "4m"]
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            demo(Some("sqlite://mine.db")).database_url,
            "sqlite://mine.db"
        );
    }

    #[test]
    fn each_bad_setting_is_refused_naming_it() {
        let cases: &[(&str, Overrides, &str)] = &[
            (
                "[server]\nlisten = \"nowhere\"",
                Overrides::default(),
                "server.listen",
            ),
            (
                "[server]\ndatabase_url = \"mysql://x\"",
                Overrides::default(),
                "server.database_url",
            ),
            (
                "[server]\ndatabase_read_url = \"postgres://replica/pronto\"",
                Overrides::default(),
                "server.database_read_url",
            ),
            (
                "[server]\ndatabase_url = \"postgres://primary/pronto\"",
                Overrides {
                    database_read_url: Some("sqlite://copy.db".into()),
                    ..Overrides::default()
                },
                "server.database_read_url",
            ),
            (
                "[storage]\nsqlite_sync = \"off\"",
                Overrides::default(),
                "storage.sqlite_sync",
            ),
            (
                "[ingest]\ndefault_region = \"XX\"",
                Overrides::default(),
                "ingest.default_region",
            ),
            (
                "[[form]]\nname = \"a b\"",
                Overrides::default(),
                "form[0].name",
            ),
            (
                "[[form]]\nname = \"a\"\n[[form]]\nname = \"a\"",
                Overrides::default(),
                "form[1].name",
            ),
            (
                "[[form]]\nname = \"a\"\nredirect = \"javascript:x\"",
                Overrides::default(),
                "form[0].redirect",
            ),
            (
                "[retention]\nevents = \"12h\"",
                Overrides::default(),
                "retention.events: `12h` is not a duration of a day or more",
            ),
            (
                "[smtp]\nper_domain_per_minute = { \"gmail.com\" = 0 }",
                Overrides::default(),
                "smtp.per_domain_per_minute.\"gmail.com\": must be at least 1",
            ),
            (
                "[inbound]\nunsubscribe_address = \"unsubscribe@in.example.com\"",
                Overrides::default(),
                "inbound.unsubscribe_address: needs inbound.email_secret",
            ),
            (
                "[inbound]\nemail_secret = \"0123456789abcdef\"\nunsubscribe_address = \"Shop <u@x.example>\"",
                Overrides::default(),
                "inbound.unsubscribe_address: `Shop",
            ),
            (
                "[inbound]\nsendgrid_public_key = \"AAAA\"",
                Overrides::default(),
                "inbound.sendgrid_public_key: not a public key",
            ),
            (
                "[inbound]\nmailgun_signing_key = \" \"",
                Overrides::default(),
                "inbound.mailgun_signing_key / PRONTO_MAILGUN_SIGNING_KEY: is empty",
            ),
            (
                "[[shop]]\nplatform = \"magento\"\nshop = \"a\"\nsecret = \"s\"",
                Overrides::default(),
                "shop[0].platform",
            ),
            (
                "[[shop]]\nplatform = \"shopify\"\nshop = \"a.myshopify.com\"",
                Overrides::default(),
                "shop[0].secret_env",
            ),
            (
                "[[shop]]\nplatform = \"shopify\"\nshop = \"a\"\nsecret_env = \"PRONTO_TEST_UNSET_SHOP_SECRET\"",
                Overrides::default(),
                "shop[0].secret_env",
            ),
            (
                "[[shop]]\nplatform = \"shopify\"\nshop = \"a\"\nsecret = \"s\"\n\
                 [[shop]]\nplatform = \"shopify\"\nshop = \"https://A/\"\nsecret = \"t\"",
                Overrides::default(),
                "shop[1].shop",
            ),
            (
                "",
                Overrides {
                    write_key: Some("short".into()),
                    ..Default::default()
                },
                "PRONTO_WRITE_KEY",
            ),
            (
                "[messages]\nsoft_bounces = { max = 3, within = \"a week\", suppress_for = \"7d\" }",
                Overrides::default(),
                "messages.soft_bounces.within",
            ),
            (
                "[messages]\nsoft_bounces = { max = 3, within = \"7d\", suppress_for = \"0s\" }",
                Overrides::default(),
                "messages.soft_bounces.suppress_for",
            ),
        ];
        for (text, o, field) in cases {
            let file = FileConfig::parse(text, "t").unwrap();
            let err = Settings::resolve(file, o.clone(), "t".into())
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_soft_bounce_rule_is_read_from_the_example_and_defaults_to_three_in_a_week() {
        let example = Settings::resolve(
            FileConfig::parse(EXAMPLE_CONFIG, "t").unwrap(),
            Overrides::default(),
            "t".into(),
        )
        .unwrap();
        let program = example.program(Vec::new()).unwrap();
        assert_eq!(
            program.messages.soft_bounces,
            pronto_domain::suppression::SoftBounces::default()
        );
        let off = Settings::resolve(
            FileConfig::parse(
                "[messages]\nsoft_bounces = { max = 0, within = \"36h\", suppress_for = \"2d\" }",
                "t",
            )
            .unwrap(),
            Overrides::default(),
            "t".into(),
        )
        .unwrap();
        let soft = off.program(Vec::new()).unwrap().messages.soft_bounces;
        assert_eq!(
            (
                soft.max,
                soft.within.num_hours(),
                soft.suppress_for.num_hours()
            ),
            (0, 36, 48)
        );
    }

    #[test]
    fn dkim_keys_are_read_at_start_and_each_problem_names_its_key() {
        let fixture = |f: &str| {
            format!(
                "{}/../pronto-channels/tests/fixtures/dkim/{f}",
                env!("CARGO_MANIFEST_DIR")
            )
        };
        let config = |from: &str, keys: &[(&str, &str)]| {
            let mut t = format!("[messages]\nfrom = \"Shop <{from}>\"\n");
            for (domain, file) in keys {
                t += &format!(
                    "[[smtp.dkim]]\ndomain = \"{domain}\"\nselector = \"s1\"\nkey_file = \"{}\"\n",
                    fixture(file)
                );
            }
            Settings::resolve(
                FileConfig::parse(&t, "t").unwrap(),
                Overrides::default(),
                "t".into(),
            )
        };
        let both = config(
            "shop@mail.example.com",
            &[
                ("example.com", "ed25519.pem"),
                ("example.com", "rsa-pkcs8.pem"),
            ],
        )
        .unwrap();
        assert_eq!(both.dkim.len(), 2);
        assert!(!format!("{both:?}").contains("PRIVATE KEY"));
        let cases = [
            (
                "example.com",
                "missing.pem",
                "smtp.dkim[0].key_file: cannot read",
            ),
            ("example.com", "rsa.dns", "smtp.dkim[0]: "),
            (
                "sendgrid.net",
                "rsa-pkcs1.pem",
                "smtp.dkim: no key signs for `example.com`",
            ),
        ];
        for (domain, file, want) in cases {
            let err = config("shop@example.com", &[(domain, file)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{domain} {file}: {err}");
        }
    }

    #[test]
    fn offer_pools_and_their_code_files_are_checked_with_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("ten.txt");
        std::fs::write(&good, "code\nTEN-1\nTEN-2\n").unwrap();
        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, "OK-1\nnot ok\n").unwrap();
        let text = format!(
            "[[offer]]\nid = \"ten\"\ncodes_file = \"{}\"\nfallback = \"FREESHIP\"\n\
             [[offer]]\nid = \"bad\"\ncodes_file = \"{}\"\n\
             [[offer]]\nid = \"gone\"\ncodes_file = \"{}\"\n\
             [[offer]]\nid = \"loop\"\nfallback = \"loop\"\n",
            good.display(),
            bad.display(),
            dir.path().join("missing.txt").display()
        );
        let file = FileConfig::parse(&text, "pronto.toml").unwrap();
        let Err(ConfigError::Problems(problems)) =
            Settings::resolve(file, Overrides::default(), "pronto.toml".into())
        else {
            panic!("three problems expected")
        };
        let want = [
            "offer[3].fallback: `loop` falls back to itself",
            "offer[1].codes_file:",
            "offer[2].codes_file: cannot read",
        ];
        assert_eq!(problems.len(), want.len(), "{problems:?}");
        for w in want {
            assert!(
                problems.iter().any(|p| p.starts_with(w)),
                "{w}: {problems:?}"
            );
        }
        assert!(
            problems.iter().any(|p| p.contains("line 2")),
            "{problems:?}"
        );
        // The good pool alone passes, with its codes read.
        let text = format!(
            "[[offer]]\nid = \"ten\"\ncodes_file = \"{}\"\n",
            good.display()
        );
        let s = Settings::resolve(
            FileConfig::parse(&text, "pronto.toml").unwrap(),
            Overrides::default(),
            "pronto.toml".into(),
        )
        .unwrap();
        assert_eq!(
            s.offer_codes().unwrap(),
            vec![(
                "ten".to_string(),
                vec!["TEN-1".to_string(), "TEN-2".to_string()]
            )]
        );
        assert!(s.program(Vec::new()).unwrap().offers.get("ten").is_some());
    }

    #[test]
    fn an_unknown_key_is_an_error_not_ignored() {
        let err = FileConfig::parse("[server]\nlisen = \"x\"", "pronto.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
    }
}
