//! What the API answers that the service assembles, and what a message search asks (below the service and
//! the routes, so both may use it; it imports neither).

use crate::error::ApiError;
use chrono::{DateTime, Utc};
use pronto_domain::{Invalid, MessageId};
use pronto_store::{LogEntry, MessageQuery, MessageView, RunView};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A flow as configured, with live counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowView {
    pub id: String,
    /// Events that start (or refresh) a run.
    pub triggers: Vec<String>,
    /// The run key's path in the trigger event; absent: one run per contact.
    pub key: Option<String>,
    /// Exit rules as `event (same key|contact)`.
    pub exits: Vec<String>,
    pub steps: usize,
    /// `marketing` (needs consent, keeps to its send window) or `transactional`; absent for a flow no
    /// longer configured.
    pub purpose: Option<String>,
    /// Local hours in which its emails may send (`08:00-21:00`); absent: any hour.
    pub email_send_window: Option<String>,
    /// Runs in progress (each waits for its timer).
    pub active: i64,
    pub finished: i64,
    /// Ended runs by reason: the exit rule that ended them, consent, a removed flow.
    pub exited: BTreeMap<String, i64>,
    /// Skipped steps by reason (an exit found when the timer fired, frequency cap, no address).
    pub skipped: BTreeMap<String, i64>,
    /// Messages by state: queued, sent, failed.
    pub messages: BTreeMap<String, i64>,
    /// False for a flow that has runs but is no longer in the configuration.
    pub configured: bool,
}

/// One step of a run's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogView {
    pub at: DateTime<Utc>,
    /// 1-based, as in `pronto check`'s messages; absent for entries about the run as a whole.
    pub step: Option<i64>,
    /// started, waiting, refreshed, sent, skipped, failed, exited, finished, ignored.
    pub kind: String,
    /// Why, e.g. "Order Completed at 2026-11-24T12:03:00Z for the same checkout_id".
    pub detail: String,
}

impl From<LogEntry> for LogView {
    fn from(l: LogEntry) -> Self {
        Self {
            at: l.at,
            step: l.step.filter(|s| *s >= 0).map(|s| s + 1),
            kind: l.kind,
            detail: l.detail,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunResponse {
    #[schema(format = Uuid)]
    pub id: String,
    pub flow: String,
    pub key: String,
    #[schema(format = Uuid)]
    pub contact_id: String,
    /// active, exited or finished.
    pub state: String,
    /// When its timer fires, while active.
    pub due_at: Option<DateTime<Utc>>,
    /// When the trigger happened (client clock).
    pub started_at: DateTime<Utc>,
    pub outcome: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest trigger event, as sent: what the messages show.
    pub snapshot: Value,
    /// The flow's experiment when the run started (`experiment = { id, holdout }`), if it ran one.
    pub experiment: Option<String>,
    /// The run's group in it: `treatment` (gets the messages) or `holdout` (gets none, tracked alike).
    pub arm: Option<String>,
    pub log: Vec<LogView>,
}

impl From<RunView> for RunResponse {
    fn from(r: RunView) -> Self {
        Self {
            id: r.id.to_string(),
            flow: r.flow,
            key: r.key,
            contact_id: r.contact_id.to_string(),
            state: r.state,
            due_at: r.due_at,
            started_at: r.started_at,
            outcome: r.outcome,
            created_at: r.created_at,
            updated_at: r.updated_at,
            snapshot: r.snapshot,
            experiment: r.experiment,
            arm: r.arm,
            log: r.log.into_iter().map(Into::into).collect(),
        }
    }
}

/// One CSV field as RFC 4180 writes it: quoted, with quotes doubled, when it holds a comma, quote or newline.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Amounts by currency as the reports print them: `1200.00 EUR, 30.00 USD` (an amount with no currency named
/// has none after it).
pub fn amounts(by: &std::collections::BTreeMap<String, f64>) -> String {
    by.iter()
        .map(|(c, v)| format!("{v:.2} {c}").trim().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The states a message can be in, as the explorer offers them.
pub const MESSAGE_STATES: [&str; 4] = ["queued", "sent", "failed", "suppressed"];

/// A message's state as a filter: `""` (what a form's "any" sends) is no filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateFilter {
    #[default]
    #[serde(rename = "")]
    Any,
    Queued,
    Sent,
    Failed,
    Suppressed,
}

impl StateFilter {
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Self::Any => None,
            Self::Queued => Some("queued"),
            Self::Sent => Some("sent"),
            Self::Failed => Some("failed"),
            Self::Suppressed => Some("suppressed"),
        }
    }
}

/// What the explorer was asked for, as given in the query string.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageSearch {
    /// The address or phone number it went to (an email address in any case; a phone as sent, `+` and
    /// digits).
    pub to: Option<String>,
    pub flow: Option<String>,
    /// `queued`, `sent`, `failed` or `suppressed` (empty: any).
    pub state: Option<StateFilter>,
    /// The previous page's last message.
    #[param(format = Uuid)]
    pub before: Option<String>,
}

/// A blank filter field is no filter.
fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl MessageSearch {
    /// The store's query for this search, `limit` a page, or which field cannot be read.
    pub fn query(&self, limit: u32) -> Result<MessageQuery, ApiError> {
        let state = self.state.and_then(StateFilter::as_str).map(str::to_string);
        let before = self
            .before
            .as_deref()
            .map(|b| b.parse::<MessageId>())
            .transpose()
            .map_err(|_| Invalid::one("before", "is not a message id"))?;
        Ok(MessageQuery {
            // Email addresses are kept lower-cased; a phone number has no case.
            to: given(&self.to).map(|t| t.to_lowercase()),
            flow: given(&self.flow),
            state,
            before,
            ..MessageQuery::newest(limit)
        })
    }
}

/// A message as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageBody {
    #[schema(format = Uuid)]
    pub id: String,
    /// Unique per run and step; also the SMTP Message-ID (`<key@from-domain>`).
    pub idempotency_key: String,
    pub run_id: Option<String>,
    pub flow: Option<String>,
    /// The flow step that wrote it (0-based, as stored; `pronto check` counts from 1).
    pub step: Option<i64>,
    /// Whom it went to (`GET /v1/contacts/{id}`).
    #[schema(format = Uuid)]
    pub contact_id: String,
    pub channel: String,
    pub to: String,
    pub from: String,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// queued, sent, failed or suppressed (never attempted: its address is on the suppression list).
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last failure, in the server's words.
    pub last_error: Option<String>,
    /// smtp, or mailbox (the built-in dev mailbox, when no SMTP server is configured).
    pub transport: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<MessageView> for MessageBody {
    fn from(m: MessageView) -> Self {
        Self {
            id: m.id.to_string(),
            idempotency_key: m.idempotency_key,
            run_id: m.run_id.map(|r| r.to_string()),
            flow: m.flow,
            step: m.step,
            contact_id: m.contact_id.to_string(),
            channel: m.channel,
            to: m.to,
            from: m.from,
            reply_to: m.reply_to,
            subject: m.subject,
            text: m.text,
            html: m.html,
            state: m.state,
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
            last_error: m.last_error,
            transport: m.transport,
            created_at: m.created_at,
            sent_at: m.sent_at,
        }
    }
}
