//! pronto's storage: one [`Store`] trait, implemented for SQLite (the embedded default) and PostgreSQL
//! (production, several nodes). The backend is chosen by the URL's scheme, as atuin's server does.
//!
//! # Layout
//! Imports point one way, down this list (no module imports one above it):
//! - [`Store`] and the types it speaks (this file).
//! - `writer`: group commit. Writes queue to writer tasks that commit whatever is waiting in one transaction
//!   and only then answer, so a 2xx always means "committed" and a commit costs about the same for 1 or 100
//!   requests. SQLite has exactly one writer (its single-writer rule); PostgreSQL a few. It knows
//!   `apply::ingest` only, and `Begin` (a transaction with every concern's statements) lives here rather
//!   than in `tx`, because it names the leaves' traits.
//! - `apply/`: one unit of work end to end, written once for both backends: `apply::ingest` one group (dedupe,
//!   resolve identities, merge, append, then the group's events through the flows and its leads through
//!   sales), `apply::timers` one timer batch (due runs with the guard re-checked in the transaction that
//!   writes the outbox, then due escalation steps), `apply::reports` one step of keeping the flows report's
//!   counts (the runs changed since the cursor re-counted by the domain), `apply::outbox` a claim of due
//!   messages (those to a listed address become `suppressed`) and a batch of delivery outcomes (their bounces
//!   listed or counted), `apply::erase` a person erased (every row of theirs cleaned as
//!   `pronto_domain::erasure` says, their addresses listed as hashes, the audit log). Each loads in bulk, lets
//!   the domain decide, writes in bulk.
//! - The leaves, what a backend implements per concern: `contacts` (contacts, identities, events:
//!   `IngestTx`), `catalog` (products, their terms, what orders bought together: `CatalogTx`), `offers`
//!   (offer pools' codes, claimed and marked used with their messages: `OffersTx`), `reports` (the flows
//!   report's counts kept per hour, with the cursor that says how far they have read: `ReportsTx`), `outbox`
//!   (claims, outcomes, the suppression list and soft bounces: `OutboxTx`), `text` (statements
//!   as text in either dialect, every bind a string cast in SQL, for erasure and retention: `TextTx`), `sales` (leads, routing
//!   rows, tasks, attempts: `SalesTx`; it loads what a lead action,
//!   a new lead or an escalation step needs, lets `pronto_domain::sales::{lead, routing, sla, alerts}` decide,
//!   and writes what they answer), `flows` (runs, exit marks, timers, the outbox: `FlowTx`). Their traits
//!   stack (`IngestTx: SalesTx: FlowTx: CatalogTx + OffersTx + ReportsTx + OutboxTx`). No product decision is made here: the guard, the frequency cap,
//!   the SMS skip rule, a lead's initial state and transitions, routing counters, acknowledgements and SLA
//!   steps are the domain's (`engine::fire`, `engine::group`, `sales::*`).
//! - `sessions`: the web app's sign-in links and browser sessions (only tokens' hashes are kept), the
//!   mark an open inbox watches for lead changes, and the statements behind the board's checkouts and
//!   orders and their mark.
//! - `tx`: the bottom: transaction errors, what a write touched, outbox and quarantine rows, a queued
//!   request, `Commit`.
//! - `rows`: row decoding, written once: a column codec (`Cols`, for SQLite's TEXT ids/timestamps/JSON and
//!   PostgreSQL's uuid/timestamptz/jsonb/int4) and one decoder per row type (runs, messages, logs, leads,
//!   exit marks, due runs, keys, events), used by both backends.
//! - `store/`: the one [`Store`] (and [`Sessions`]) implementation, written once over `store::Backend`: every
//!   unit of work in `apply/` and every statement that reads or writes alike on both databases. A backend
//!   gives its pools, its writer and only the methods whose statements differ in dialect.
//! - `db`: the bind half of the column codec (ids, times and JSON bound as each database stores them) and
//!   how a statement runs on a pool or in a transaction, for code written once (`$N` placeholders, which
//!   both drivers read).
//! - `sqlite/`, `postgres/`: each backend's pool setup, its `Backend` (pools, dialect-specific methods),
//!   `IngestTx` and the leaves' bulk statements; migrations live in `migrations/sqlite` and
//!   `migrations/postgres`, embedded in the binary and applied at start.
//! - [`testing`] (feature `testing`): throw-away databases for the conformance suite and the server's tests.
//! - `tests/conformance.rs`: ONE suite, run against both backends.

mod apply;
pub use apply::erase::{Erasure, ErasureRecord};
pub use apply::reports::Folded;
pub use apply::retention::{PruneCursor, Pruned};
mod catalog;
mod contacts;
mod db;
mod flows;
mod offers;
mod outbox;
mod postgres;
mod reports;
mod rows;
mod sales;
mod sessions;
mod sqlite;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod text;
mod tx;
mod writer;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pronto_domain::program::Program;
use pronto_domain::{
    ContactId, EventId, Identity, Lead, LeadId, MessageId, NewEvent, RunId, WorkspaceId,
};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::RwLock;
use tokio::sync::Notify;

pub use apply::timers::Fired;
pub use postgres::PostgresStore;
pub use reports::RunsOf;
pub use sales::{AttemptRow, LeadAction, LeadLog, LeadState, Task, TaskLead};
pub use sessions::{LeadMark, NewSession, Session, Sessions};
pub use sqlite::{SqliteStore, SqliteSync};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL `{0}`: use sqlite://FILE or postgres://…")]
    UnsupportedUrl(String),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    /// A value that does not decode is the row's fault, not the database's: retrying cannot help, so it is not
    /// the retryable `Database` (503) but `Corrupt`.
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                Self::Corrupt(e.to_string())
            }
            e => Self::Database(e),
        }
    }
}

/// An offer pool's codes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OfferStock {
    pub offer: String,
    pub unused: u64,
    pub used: u64,
}

/// A row set aside because it could not be read (see `GET /v1/admin/quarantine`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quarantined {
    /// `run`, `lead` or `message`.
    pub kind: String,
    pub id: String,
    /// Why it could not be read.
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// A shop webhook delivery that was signed but could not be mapped to events, kept as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnmappedDelivery {
    /// `shopify` or `woocommerce`.
    pub platform: String,
    pub shop: String,
    /// What identifies it across the platform's retries.
    pub delivery_id: String,
    pub topic: String,
    /// Why it could not be mapped.
    pub reason: String,
    /// The body as received (bytes that are not UTF-8 are replaced).
    pub body: String,
    pub received_at: DateTime<Utc>,
}

/// Which door a key opens: `write` sends events (public, goes into web pages), `admin` reads and manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Write,
    Admin,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for KeyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            other => Err(format!("`{other}` is not a key kind (write, admin)")),
        }
    }
}

/// Where a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyOrigin {
    /// Made on a first start (one live generated key per kind and workspace).
    Generated,
    /// `PRONTO_WRITE_KEY` / `PRONTO_ADMIN_KEY`: a restart with another value revokes the previous one.
    Env,
    /// `pronto keys create` or `POST /v1/admin/keys`.
    Api,
    /// Stored before origins were recorded.
    Legacy,
}

impl KeyOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generated => "generated",
            Self::Env => "env",
            Self::Api => "api",
            Self::Legacy => "legacy",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "generated" => Self::Generated,
            "env" => Self::Env,
            "api" => Self::Api,
            "legacy" => Self::Legacy,
            other => return Err(StoreError::Corrupt(format!("key origin `{other}`"))),
        })
    }
}

/// A key as `pronto keys list` shows it: never the key itself, which is stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// The start of the key's hash: names the key without revealing it.
    pub id: String,
    pub kind: KeyKind,
    pub origin: KeyOrigin,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    pub(crate) fn decode(
        id: String,
        kind: &str,
        origin: &str,
        label: Option<String>,
        created_at: DateTime<Utc>,
        revoked_at: Option<DateTime<Utc>>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            id,
            kind: kind.parse().map_err(StoreError::Corrupt)?,
            origin: KeyOrigin::parse(origin)?,
            label,
            created_at,
            revoked_at,
        })
    }
}

/// The public id of the key with this hash.
pub fn key_id(key_hash: &str) -> String {
    key_hash.chars().take(16).collect()
}

/// Checkouts and orders per hour: `(hour, event name, how many)`, by hour.
pub type CommerceHours = Vec<(DateTime<Utc>, String, i64)>;

/// One thing to ingest: an event and, for leads, the lead it records.
#[derive(Debug, Clone)]
pub struct IngestItem {
    pub event: NewEvent,
    pub lead: Option<Lead>,
    /// A rep's or the lead's action the event records (claim, attempt, reply).
    pub action: Option<LeadAction>,
}

impl From<NewEvent> for IngestItem {
    fn from(event: NewEvent) -> Self {
        Self {
            event,
            lead: None,
            action: None,
        }
    }
}

/// What became of one [`IngestItem`]. For a retry (`duplicate`), the ids are those of the first delivery, so the
/// retry answers exactly what the first one did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ingested {
    pub event_id: EventId,
    pub seq: i64,
    pub contact_id: ContactId,
    pub lead_id: Option<LeadId>,
    pub duplicate: bool,
    /// For a repeat of a keyed request: the hash the first delivery was stored with (the service refuses a
    /// key reused for a different request).
    #[serde(skip)]
    pub request_hash: Option<String>,
}

/// A contact with its traits and identities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contact {
    pub id: ContactId,
    pub traits: Map<String, Value>,
    pub identities: Vec<Identity>,
    /// Contacts that were merged into this one.
    pub merged_from: Vec<ContactId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    pub id: EventId,
    /// The ordering sequence: increases with every accepted event; timelines page on it. On SQLite it is the
    /// commit order; on PostgreSQL with several writers, events committed at the same moment may commit in a
    /// slightly different order than their seq.
    pub seq: i64,
    pub contact_id: ContactId,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub message_id: Option<String>,
    /// When the client says it happened.
    pub timestamp: Option<DateTime<Utc>>,
    /// When pronto accepted it.
    pub received_at: DateTime<Utc>,
    /// The message exactly as sent.
    pub payload: Value,
}

/// The workspace a fresh database starts with, and whether keys exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultWorkspace {
    pub id: WorkspaceId,
    pub created: bool,
}

/// What the store shares with the workers of this process: the program flows run with (swapped whole on a
/// reload) and the wake-ups that tell the scheduler and the delivery worker something changed. Commits of
/// this process and, on PostgreSQL, `NOTIFY`s of other processes ring them.
pub struct Shared {
    program: RwLock<Arc<Program>>,
    /// Rung when the scheduler should look again: a timer was set ([`Shared::timer_set`] says when it is
    /// due), or time moved, or the program changed (then it looks at once).
    pub timers: Notify,
    /// The earliest due time set since the scheduler last asked ([`Shared::take_timer_set`]).
    timer_set: std::sync::Mutex<Option<DateTime<Utc>>>,
    /// Rung when messages were queued.
    pub outbox: Notify,
    /// Why this process's writes fail, while they do (set by a failed commit, cleared by the next one that
    /// succeeds): what `/readyz` reports.
    write_failure: std::sync::Mutex<Option<String>>,
    /// When this process last committed an ingest group, in milliseconds after `born` (0: never): background
    /// work that shares the writer yields while ingestion is busy ([`Shared::since_ingest`]).
    ingested: std::sync::atomic::AtomicU64,
    born: std::time::Instant,
}

impl Shared {
    pub fn new() -> Self {
        Self {
            program: RwLock::new(Arc::new(Program::empty())),
            timers: Notify::new(),
            timer_set: std::sync::Mutex::new(None),
            outbox: Notify::new(),
            write_failure: std::sync::Mutex::new(None),
            ingested: std::sync::atomic::AtomicU64::new(0),
            born: std::time::Instant::now(),
        }
    }

    /// An ingest group was committed now.
    pub(crate) fn ingest_committed(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.ingested
            .store(ms.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// How long ago this process last committed an ingest group (`None`: never).
    pub fn since_ingest(&self) -> Option<std::time::Duration> {
        match self.ingested.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            ms => Some(
                self.born
                    .elapsed()
                    .saturating_sub(std::time::Duration::from_millis(ms)),
            ),
        }
    }

    /// A write transaction failed because of the database (a full disk, a lost server), not because of the
    /// data: remembered until a commit succeeds, and logged when it starts (not once per request while it
    /// lasts). Conflicts between writers are not failures.
    pub(crate) fn write_failed(&self, e: &StoreError) {
        metrics::counter!("pronto_store_write_failures_total").increment(1);
        if matches!(e, StoreError::Database(_)) {
            let mut slot = self.write_failure.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                tracing::error!(error = %e, "writes fail; requests are answered 503 until a commit succeeds (see /readyz)");
            }
            *slot = Some(e.to_string());
        } else {
            tracing::warn!(error = %e, "a write transaction failed");
        }
    }

    pub(crate) fn write_ok(&self) {
        let mut slot = self.write_failure.lock().unwrap_or_else(|e| e.into_inner());
        if slot.take().is_some() {
            tracing::info!("writes succeed again");
        }
    }

    /// Why writes are failing now, if they are.
    pub fn write_failure(&self) -> Option<String> {
        self.write_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn program(&self) -> Arc<Program> {
        self.program
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A committed write set a timer due at `at`: rings the scheduler, which need not look before then.
    pub fn timer_set(&self, at: DateTime<Utc>) {
        {
            let mut e = self.timer_set.lock().unwrap_or_else(|e| e.into_inner());
            *e = Some(e.map_or(at, |x| x.min(at)));
        }
        self.timers.notify_one();
    }

    /// The earliest due time set since the last call; `None` when the ring was not for a timer set (time moved,
    /// the program changed, another process's commit without a time): then the scheduler looks at once.
    pub fn take_timer_set(&self) -> Option<DateTime<Utc>> {
        self.timer_set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Runs in progress keep their position; see `pronto.example.toml` on what a changed flow does to them.
    pub fn set_program(&self, p: Arc<Program>) {
        *self.program.write().unwrap_or_else(|e| e.into_inner()) = p;
        self.timers.notify_one();
    }
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}

/// A lead as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeadView {
    #[serde(flatten)]
    pub lead: LeadState,
    pub log: Vec<LeadLog>,
    pub attempts: Vec<AttemptRow>,
}

/// Which leads [`Store::leads`] lists (every condition given must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadFilter {
    pub status: Option<pronto_domain::sales::lead::LeadStatus>,
    /// The rep who owns it now.
    pub owner: Option<String>,
    pub team: Option<String>,
    /// Only leads older than this one (the previous page's last).
    pub before: Option<LeadId>,
}

/// Which messages [`Store::find_messages`] lists, newest first (every condition given must hold).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageQuery {
    /// The address or phone number it went to, exactly as sent.
    pub to: Option<String>,
    pub flow: Option<String>,
    /// `queued`, `sent` or `failed`.
    pub state: Option<String>,
    pub contact: Option<ContactId>,
    /// This one message.
    pub id: Option<MessageId>,
    /// The message with this idempotency key (its Message-ID's local part).
    pub key: Option<String>,
    /// Only messages older than this one (the previous page's last).
    pub before: Option<MessageId>,
    pub limit: u32,
}

impl MessageQuery {
    /// The newest `limit` messages of the workspace, whatever they are.
    pub fn newest(limit: u32) -> Self {
        Self {
            to: None,
            flow: None,
            state: None,
            contact: None,
            id: None,
            key: None,
            before: None,
            limit,
        }
    }
}

/// Reps' run-time state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepStatus {
    /// Flags set through the API; a rep missing here has its configured flag.
    pub away: Vec<(String, bool)>,
    pub open: Vec<(String, i64)>,
}

/// A run of a flow, with what happened to it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunView {
    pub id: RunId,
    pub flow: String,
    pub key: String,
    pub contact_id: ContactId,
    /// `active` (waiting for its timer), `exited` (an exit rule, consent, or a removed flow ended it) or
    /// `finished` (no steps left).
    pub state: String,
    pub step: i64,
    pub due_at: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub outcome: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub snapshot: Value,
    /// The flow's experiment when the run started, and the run's group in it (`treatment`, `holdout`).
    pub experiment: Option<String>,
    pub arm: Option<String>,
    pub log: Vec<LogEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    pub at: DateTime<Utc>,
    /// 0-based step index, when the entry concerns a step.
    pub step: Option<i64>,
    /// started, waiting, refreshed, sent, skipped, failed, exited, finished, ignored.
    pub kind: String,
    pub detail: String,
}

/// A message claimed for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct OutMessage {
    pub id: MessageId,
    /// Whose suppression list applies.
    pub workspace: WorkspaceId,
    pub idempotency_key: String,
    pub channel: String,
    pub to: String,
    pub from: String,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub unsubscribe_url: Option<String>,
    /// Attempts including this one.
    pub attempts: i64,
    /// The message was still leased by a worker whose lease ran out (a process that died or hung mid-send):
    /// this claim takes it over.
    pub taken_over: bool,
}

/// A message as the outbox shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageView {
    pub id: MessageId,
    pub idempotency_key: String,
    pub run_id: Option<RunId>,
    pub flow: Option<String>,
    pub step: Option<i64>,
    pub contact_id: ContactId,
    pub channel: String,
    pub to: String,
    pub from: String,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// `queued`, `sent`, `failed`, or `suppressed` (never attempted: the address is on the suppression list;
    /// `last_error` says why).
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// `smtp`, or `mailbox` for the built-in dev mailbox.
    pub transport: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Sent {
        transport: &'static str,
    },
    /// A temporary failure: try again at `at`.
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    /// Not tried: held by the per-domain pace until `at`; not counted as an attempt.
    Paced {
        at: DateTime<Utc>,
    },
    /// Permanent: the server's words; `bounce`, when the failure says something about the address.
    Failed {
        error: String,
        bounce: Option<Bounce>,
    },
}

/// What a failed delivery means for its address (`pronto_domain::suppression::after_refusal` decided it):
/// listed now, or one more soft bounce.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounce {
    pub workspace: WorkspaceId,
    pub medium: pronto_domain::suppression::Medium,
    /// As `pronto_domain::suppression::address` spells it.
    pub address: String,
    /// `Suppress` or `SoftBounce` (`Keep` records nothing).
    pub verdict: pronto_domain::suppression::Verdict,
    /// Where it was learnt: `smtp`, `sms`, `outbox`.
    pub source: &'static str,
    /// The message it is about, when known: its flow's deliverability counts it.
    pub message: Option<MessageId>,
}

/// Which suppression-list entries to read, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SuppressionQuery {
    pub medium: Option<pronto_domain::suppression::Medium>,
    /// One address (as `pronto_domain::suppression::address` spells it).
    pub address: Option<String>,
    pub reason: Option<pronto_domain::suppression::Reason>,
    /// At most this many (`None`: all).
    pub limit: Option<i64>,
    pub offset: i64,
}

impl Delivery {
    /// The columns a recorded outcome sets: state, transport, next attempt, error, and the attempts to give
    /// back (the claim counted one; a paced message was not tried).
    pub(crate) fn columns(
        &self,
    ) -> (
        &'static str,
        Option<&'static str>,
        Option<DateTime<Utc>>,
        Option<String>,
        i64,
    ) {
        match self {
            Self::Sent { transport } => ("sent", Some(transport), None, None, 0),
            Self::Retry { at, error } => ("queued", None, Some(*at), Some(error.clone()), 0),
            Self::Paced { at } => ("queued", None, Some(*at), None, 1),
            Self::Failed { error, .. } => ("failed", None, None, Some(error.clone()), 0),
        }
    }
}

/// Live counts of one flow.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FlowStats {
    pub flow: String,
    /// Runs in progress (all wait for a timer).
    pub active: i64,
    pub finished: i64,
    /// Ended runs by reason (the exit rule and event, consent, …).
    pub exited: BTreeMap<String, i64>,
    /// Steps skipped by reason (frequency cap, no address, an exit found by the guard).
    pub skipped: BTreeMap<String, i64>,
    /// Outbox messages by state.
    pub messages: BTreeMap<String, i64>,
}

/// Everything pronto persists goes through this trait (and [`Sessions`], the web app's sign-in, which each
/// backend implements in its own file); the server never sees SQL.
#[async_trait]
pub trait Store: Sessions + Send + Sync + 'static {
    /// Which backend this is (`sqlite`, `postgres`), for logs and `/readyz`.
    fn backend(&self) -> &'static str;

    /// Durably commits the items (all or none) and answers for each in order. Items whose `message_id` was
    /// seen before in the workspace are not written again and answer as their first delivery did.
    async fn ingest(
        &self,
        workspace: WorkspaceId,
        items: Vec<IngestItem>,
        received_at: DateTime<Utc>,
    ) -> Result<Vec<Ingested>, StoreError>;

    /// The default workspace, created on first start.
    async fn default_workspace(&self) -> Result<DefaultWorkspace, StoreError>;

    /// Registers keys (by their hashes) for a workspace, all or none, in one transaction; answers whether this
    /// call stored them. A hash already registered, or a second live `generated` key of a kind, stores
    /// nothing: of two first starts racing on an empty database, exactly one stores its pair.
    async fn add_keys(
        &self,
        workspace: WorkspaceId,
        keys: &[(KeyKind, &str)],
        origin: KeyOrigin,
        label: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Whether the workspace has any live (unrevoked) key of this kind.
    async fn has_key(&self, workspace: WorkspaceId, kind: KeyKind) -> Result<bool, StoreError>;

    /// The key with this hash, revoked or not.
    async fn key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;

    /// The workspace a key hash belongs to, if it is a live key of this kind.
    async fn key_workspace(
        &self,
        kind: KeyKind,
        key_hash: &str,
    ) -> Result<Option<WorkspaceId>, StoreError>;

    /// Every key of the workspace, oldest first.
    async fn keys(&self, workspace: WorkspaceId) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes the key with this id (at once, for every process: no process caches a key for more than a
    /// second). Answers the key as it is now; `None` when there is no such key.
    async fn revoke_key(
        &self,
        workspace: WorkspaceId,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKey>, StoreError>;

    /// Revokes the workspace's live `env` keys of `kind` other than `keep`: a restart with a new
    /// `PRONTO_*_KEY` retires the previous one. Answers how many were revoked.
    async fn revoke_env_keys_except(
        &self,
        workspace: WorkspaceId,
        kind: KeyKind,
        keep: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// A contact by id. A contact that was merged answers as the contact it was merged into.
    async fn contact(
        &self,
        workspace: WorkspaceId,
        id: ContactId,
    ) -> Result<Option<Contact>, StoreError>;

    /// The live contact that owns an identity.
    async fn find_contact(
        &self,
        workspace: WorkspaceId,
        identity: &Identity,
    ) -> Result<Option<ContactId>, StoreError>;

    /// The contact's events newest first, those with `seq < before` when given, at most `limit`.
    async fn timeline(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// The program and wake-ups shared with this process's workers.
    fn shared(&self) -> &Arc<Shared>;

    /// When the earliest timer is due, if any.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Fires up to `limit` runs due at `now` in one transaction (guard, outbox, next wait).
    async fn fire_due(&self, now: DateTime<Utc>, limit: i64) -> Result<Fired, StoreError>;

    /// Claims up to `limit` queued messages due at `now`: each gets one more attempt and is leased until
    /// `lease_until` (a worker that dies mid-send leaves it to be retried then). Those whose address is on
    /// their workspace's suppression list are not answered: they become `suppressed`, with the reason, in
    /// the same transaction.
    async fn claim_messages(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<OutMessage>, StoreError>;

    /// Makes every message held by a worker claimable again at once. Only for a process that owns the
    /// database alone (SQLite) and only at start: then no worker can still be sending, and a message a killed
    /// process was sending is retried now instead of when its lease runs out (at most the messages in flight
    /// at the kill are sent twice, with the same Message-ID).
    async fn release_claims(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// When the earliest queued message may next be attempted.
    async fn next_message_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Records attempts' outcomes, in one transaction (one commit for a whole batch of sends). A message
    /// already sent stays sent. A failure's bounce lists its address, or counts a soft bounce (and lists
    /// the address for a while when the program's `soft_bounces` rule says so), in the same transaction.
    async fn record_deliveries(
        &self,
        outcomes: &[(MessageId, Delivery)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Erases a person: every row of theirs cleaned of their personal data, their identities deleted, their
    /// queued messages stopped, their addresses kept on the suppression list as hashes only, all in one
    /// transaction, and recorded in the audit log. `None`: no such contact.
    async fn erase_contact(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Erasure>, StoreError>;

    /// Deletes one batch (at most `batch` rows of each table) of events received before `events_before` and
    /// messages created before `messages_before` (`None`: kept), walking from `cursor`; an event a lead was
    /// made from and a queued message are kept.
    async fn prune(
        &self,
        events_before: Option<DateTime<Utc>>,
        messages_before: Option<DateTime<Utc>>,
        cursor: &PruneCursor,
        batch: i64,
    ) -> Result<Pruned, StoreError>;

    /// Email deliverability over the hours from `from`'s to `to`'s: `(flow, kind, count)`, flow empty for
    /// mail no flow sent; kinds `sent`, `hard`, `soft`, `complaint`.
    async fn delivery_counts(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(String, String, i64)>, StoreError>;

    /// The audit log of erasures, newest first.
    async fn erasures(
        &self,
        workspace: WorkspaceId,
        limit: i64,
    ) -> Result<Vec<ErasureRecord>, StoreError>;

    /// Lists or counts what bounces learnt outside a delivery attempt say (a delivery status notification,
    /// a feedback report), as `record_deliveries` does with its failures' bounces, in one transaction.
    async fn record_bounces(
        &self,
        bounces: &[Bounce],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The workspace's suppression list, newest first.
    async fn suppressions(
        &self,
        workspace: WorkspaceId,
        query: &SuppressionQuery,
    ) -> Result<Vec<pronto_domain::suppression::Suppression>, StoreError>;

    /// Lists addresses (an entry already there is kept or replaced as
    /// `pronto_domain::suppression::merge` says); answers how many entries were added or changed.
    async fn suppress(
        &self,
        workspace: WorkspaceId,
        entries: &[pronto_domain::suppression::Suppression],
    ) -> Result<u64, StoreError>;

    /// Takes an address off the list (its soft bounces too); answers whether it was listed.
    async fn unsuppress(
        &self,
        workspace: WorkspaceId,
        medium: pronto_domain::suppression::Medium,
        address: &str,
    ) -> Result<bool, StoreError>;

    /// The workspace's messages, newest first.
    async fn messages(
        &self,
        workspace: WorkspaceId,
        limit: u32,
    ) -> Result<Vec<MessageView>, StoreError> {
        self.find_messages(workspace, &MessageQuery::newest(limit))
            .await
    }

    /// The workspace's messages that meet `q`, newest first.
    async fn find_messages(
        &self,
        workspace: WorkspaceId,
        q: &MessageQuery,
    ) -> Result<Vec<MessageView>, StoreError>;

    /// Live counts for every flow that has runs.
    async fn flow_stats(&self, workspace: WorkspaceId) -> Result<Vec<FlowStats>, StoreError>;

    /// A run with its log.
    async fn run(&self, workspace: WorkspaceId, id: RunId) -> Result<Option<RunView>, StoreError>;

    /// A contact's runs, newest first, with their logs.
    async fn contact_runs(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
    ) -> Result<Vec<RunView>, StoreError>;

    /// Merges `patch` into the contact's traits (`null` removes one), as the unsubscribe link does; a change
    /// of a consent trait is recorded in its history with `source` (`pronto_domain::consent`).
    async fn patch_traits(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        patch: &Map<String, Value>,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records a click on a tracked link of the message keyed `message` (its outbox key), committed before
    /// the redirect answers.
    async fn record_click(
        &self,
        workspace: WorkspaceId,
        message: &str,
        url: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Adds codes to an offer pool (a code already in it is left as it is); answers how many were new.
    async fn add_offer_codes(
        &self,
        workspace: WorkspaceId,
        offer: &str,
        codes: &[String],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Unused and used codes per offer pool.
    async fn offer_stock(&self, workspace: WorkspaceId) -> Result<Vec<OfferStock>, StoreError>;

    /// Records a variant promoted as its experiment's winner.
    async fn record_promotion(
        &self,
        workspace: WorkspaceId,
        promotion: &pronto_domain::experiment::Promotion,
    ) -> Result<(), StoreError>;

    /// Every recorded promotion of the workspace, oldest first.
    async fn promotions(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Vec<pronto_domain::experiment::Promotion>, StoreError>;

    /// A random secret generated once per database under `name` (32 bytes, hex).
    async fn secret(&self, name: &str) -> Result<String, StoreError>;

    /// A lead with every step taken on it and its contact attempts.
    async fn lead(
        &self,
        workspace: WorkspaceId,
        id: LeadId,
    ) -> Result<Option<LeadView>, StoreError>;

    /// One page of leads, newest first (by id: UUID v7, so in arrival order), at most `limit`.
    async fn leads(
        &self,
        workspace: WorkspaceId,
        filter: &LeadFilter,
        limit: i64,
    ) -> Result<Vec<LeadState>, StoreError>;

    /// Leads that arrived in `[from, to)`, oldest first: the speed-to-lead report's input.
    async fn leads_between(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<LeadState>, StoreError>;

    /// Checkouts and orders (`Checkout Started` and `Order Completed` events) per hour of their time (the
    /// client's, else when pronto received them) in `[from, to)`, of those stored up to the commerce mark
    /// `upto` ([`Store::commerce_mark`]; `i64::MAX` for all): `(hour, event name, how many)`, by hour.
    async fn commerce_by_hour(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        upto: i64,
    ) -> Result<CommerceHours, StoreError>;

    /// How far the workspace's checkouts and orders go: the `seq` of the last one stored (0 for none). Read
    /// before [`Store::commerce_by_hour`] with it as `upto`, then [`Store::commerce_since`] from it, each
    /// event is counted once.
    async fn commerce_mark(&self, workspace: WorkspaceId) -> Result<i64, StoreError>;

    /// The checkouts and orders stored after the commerce mark `after`, per hour as
    /// [`Store::commerce_by_hour`] counts them (whatever their time), and the mark they bring it to (`after`
    /// when none was stored). On PostgreSQL an event whose `seq` was taken before, but committed after, a
    /// later one's is not seen by a read from a mark past it.
    async fn commerce_since(
        &self,
        workspace: WorkspaceId,
        after: i64,
    ) -> Result<(CommerceHours, i64), StoreError>;

    /// The values logged with won attempts since `since` (`Lead Won` events carrying `value`), as
    /// `(lead, currency, value)`, oldest first (so a later win of a lead replaces an earlier one).
    async fn lead_wins(
        &self,
        workspace: WorkspaceId,
        since: DateTime<Utc>,
    ) -> Result<Vec<(LeadId, String, f64)>, StoreError>;

    /// Who owned each lead that arrived in `[from, to)` from when: every routing, reassignment and claim, in
    /// order, as `(lead, at, rep)`.
    async fn ownership_between(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(LeadId, DateTime<Utc>, String)>, StoreError>;

    /// [`Store::ownership_between`] for the given leads of the workspace (by key, whenever they arrived):
    /// what the kept report reads for the few leads that changed.
    async fn ownership_of(
        &self,
        workspace: WorkspaceId,
        leads: &[LeadId],
    ) -> Result<Vec<(LeadId, DateTime<Utc>, String)>, StoreError>;

    /// Away flags set at run time, and open leads per rep.
    async fn rep_status(
        &self,
        workspace: WorkspaceId,
        reps: &[String],
    ) -> Result<RepStatus, StoreError>;

    /// Tasks (a cadence's call steps) of the leads `rep` owns now (every rep's when `None`), earliest due
    /// first; only open ones when `open_only`. At most 1,000.
    async fn tasks(
        &self,
        workspace: WorkspaceId,
        rep: Option<&str>,
        open_only: bool,
    ) -> Result<Vec<Task>, StoreError>;

    /// Sets a rep's away flag (it overrides the config's).
    async fn set_away(
        &self,
        workspace: WorkspaceId,
        rep: &str,
        away: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Counts one hit on each `(bucket, window)` rate-limit counter (fixed windows aligned to the epoch) and
    /// answers each counter's hits in its current window, this one included. Shared by every process on
    /// PostgreSQL (one statement for all buckets); on SQLite, which one process owns, kept in memory.
    async fn count_hits(
        &self,
        buckets: &[(String, std::time::Duration)],
        now: DateTime<Utc>,
    ) -> Result<Vec<u64>, StoreError>;

    /// Rows set aside because they could not be read: of this workspace, or of none that could be read.
    async fn quarantined(&self, workspace: WorkspaceId) -> Result<Vec<Quarantined>, StoreError>;

    /// Keeps a shop delivery that could not be mapped; false when that delivery was kept before.
    async fn keep_unmapped(
        &self,
        workspace: WorkspaceId,
        delivery: &UnmappedDelivery,
    ) -> Result<bool, StoreError>;

    /// The latest unmapped deliveries (at most 100), newest first.
    async fn unmapped(&self, workspace: WorkspaceId) -> Result<Vec<UnmappedDelivery>, StoreError>;

    /// The runs started in `[from, to)` (`of`: those of flows' experiments, or of every flow, a run without an
    /// experiment read as experiment `""` in group `treatment`), each with its group, its messages (with their
    /// first click) and its conversion: the first exit mark of one of `rules`' events for its flow (the rules of
    /// flow `""` for a flow none names) within that rule's window of its start, meeting one of the flow's exit
    /// rules (its key whenever it happened, or its contact after the run started).
    async fn run_outcomes(
        &self,
        workspace: WorkspaceId,
        of: RunsOf,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rules: &[pronto_domain::experiment::results::ConversionRule],
    ) -> Result<Vec<pronto_domain::experiment::results::RunOutcome>, StoreError>;

    /// One step of keeping every flow's run counts (the flows report's and the recovery page's): re-counts
    /// the runs changed since the last step (reading at most about `batch` rows of each table), in one transaction. `rules` are the flows'
    /// conversion rules; counts made with other rules are made again from the start. Run until
    /// [`Folded::more`] is false to catch up.
    async fn fold_reports(
        &self,
        rules: &[pronto_domain::experiment::results::ConversionRule],
        batch: i64,
    ) -> Result<Folded, StoreError>;

    /// The kept counts of the runs started in the whole hours of `[from, to)` (both on the hour), per hour,
    /// flow and experiment (`""` outside any), as of the last [`Store::fold_reports`] step.
    async fn report_counts(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<
        Vec<(
            pronto_domain::experiment::results::BucketKey,
            pronto_domain::experiment::results::Counts,
        )>,
        StoreError,
    >;

    /// Whether any run of the workspace started in `[from, to)` (one index probe): a report's last hour is
    /// read from the kept counts when none started after its period's end.
    async fn runs_started_in(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// [`Store::report_counts`] exact as of now without writing: in one read-only snapshot, the kept counts
    /// of the whole hours of `[from, to)` with the buckets of the runs changed since the last step
    /// re-counted in memory. Nothing is written (on SQLite nothing waits for the one writer). `None` when
    /// the kept counts were made with other conversion rules than `rules`, or when more than about `batch`
    /// rows of a table wait to be counted: the caller then catches them up with [`Store::fold_reports`].
    async fn report_counts_now(
        &self,
        workspace: WorkspaceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        rules: &[pronto_domain::experiment::results::ConversionRule],
        batch: i64,
    ) -> Result<
        Option<
            Vec<(
                pronto_domain::experiment::results::BucketKey,
                pronto_domain::experiment::results::Counts,
            )>,
        >,
        StoreError,
    >;

    /// Applies product changes (a product webhook, an import) to the catalog of `shop`, in one
    /// transaction; a change older than the stored product is not applied.
    async fn apply_catalog(
        &self,
        workspace: WorkspaceId,
        shop: &str,
        changes: &[pronto_domain::catalog::Change],
    ) -> Result<pronto_domain::catalog::Applied, StoreError>;

    /// What the recommendations for a cart with these items would be chosen from (the products related to
    /// them and what was bought together); `pronto_domain::catalog::recommend` picks.
    async fn related_products(
        &self,
        workspace: WorkspaceId,
        shop: &str,
        items: &[String],
    ) -> Result<pronto_domain::catalog::Related, StoreError>;

    /// Succeeds when the database answers a query and, while writes are failing (see
    /// [`Shared::write_failure`]), when a write commits again: a full disk is not ready even though reads work.
    /// A probe write that commits clears the condition.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Finishes queued writes and closes the pools.
    async fn close(&self);
}

/// Connection options that are not in the URL.
#[derive(Debug, Clone)]
pub struct Options {
    /// SQLite only: what a commit waits for. See [`SqliteSync`].
    pub sqlite_sync: SqliteSync,
    /// PostgreSQL only: the longest a request waits for a connection (an unreachable server fails requests
    /// after this, with 503, instead of holding them).
    pub pg_acquire_timeout: std::time::Duration,
    /// PostgreSQL only: how many writer tasks commit in parallel.
    pub pg_writers: usize,
    /// Most events one group commit takes.
    pub max_group_events: usize,
    /// PostgreSQL only: a read replica (`DATABASE_READ_URL`) for the reports' reads (the speed-to-lead report,
    /// the board, the recovery page, the flows report's partial hours), so a busy team's screens never slow
    /// ingestion. What they read may then lag the primary by the replica's delay.
    pub pg_read_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sqlite_sync: SqliteSync::Full,
            pg_acquire_timeout: std::time::Duration::from_secs(3),
            pg_writers: 2,
            max_group_events: 2000,
            pg_read_url: None,
        }
    }
}

/// Opens the store named by `url` (`sqlite://pronto.db`, `postgres://…`) and applies its migrations.
pub async fn connect(url: &str, opts: Options) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, opts).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresStore::open(url, opts).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}

/// The properties of a lead row, as both backends write them.
pub(crate) struct LeadRow<'a> {
    pub id: LeadId,
    pub lead: &'a Lead,
}

impl<'a> LeadRow<'a> {
    pub fn new(lead: &'a Lead) -> Self {
        Self { id: lead.id, lead }
    }
}

impl LeadRow<'_> {
    /// The lead as speed to lead starts from (see [`LeadState::arrived`]).
    pub(crate) fn state(
        &self,
        ws: WorkspaceId,
        contact: ContactId,
        at: DateTime<Utc>,
    ) -> LeadState {
        LeadState::arrived(self.lead, self.id, ws, contact, at)
    }
}

/// Reports a row quarantined for the first time: once, with its reason.
pub(crate) fn quarantined(r: &tx::BadRow) {
    metrics::counter!("pronto_quarantined_total", "kind" => r.kind).increment(1);
    tracing::warn!(kind = r.kind, id = %r.id, reason = %r.reason,
        "a stored row cannot be read; it is quarantined (GET /v1/admin/quarantine) and its timer cleared");
}

/// The hour `t` falls in: what `delivery_counts` rows are keyed by, and where a period read from them starts.
pub(crate) fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::DurationRound;
    t.duration_trunc(chrono::Duration::hours(1)).unwrap_or(t)
}

/// The start of the fixed window of length `window` that `now` falls in (Unix seconds).
pub fn window_start(now: DateTime<Utc>, window: std::time::Duration) -> i64 {
    let w = window.as_secs().max(1) as i64;
    now.timestamp().div_euclid(w) * w
}

/// Rate-limit counters kept in this process (SQLite: one process owns the database).
#[derive(Default)]
pub(crate) struct LocalHits(std::sync::Mutex<std::collections::HashMap<(String, i64), u64>>);

impl LocalHits {
    pub fn count(&self, buckets: &[(String, std::time::Duration)], now: DateTime<Utc>) -> Vec<u64> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 100_000 {
            // Forget windows that ended: at most a day's worth of counters is ever needed.
            let day_ago = now.timestamp() - 86_400;
            m.retain(|(_, start), _| *start > day_ago);
        }
        buckets
            .iter()
            .map(|(b, w)| {
                let n = m.entry((b.clone(), window_start(now, *w))).or_default();
                *n += 1;
                *n
            })
            .collect()
    }
}

/// 32 random bytes, hex: for secrets generated once per database.
pub(crate) fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
