//! A message as a decision leaves it: the outbox row the store writes, whoever decided it (a run's step, a
//! rep alert, an acknowledgement). Rendering happens before (see [`crate::program::compose`]); sending after,
//! by the delivery worker, which finds everything it needs here.
//!
//! # Layout
//! - this file: [`Outgoing`], the outbox row.
//! - [`links`]: the signed unsubscribe and claim links, made and checked in one place.

pub mod links;

use crate::{ContactId, LeadId, MessageId, RunId, WorkspaceId};
use chrono::{DateTime, Utc};

/// A message to write to the outbox. `key` is its idempotency key (also the SMTP Message-ID): a second row
/// with the same key is not written, so a decision taken twice sends once.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub id: MessageId,
    pub ws: WorkspaceId,
    pub key: String,
    pub run: Option<RunId>,
    pub flow: Option<String>,
    pub step: Option<i64>,
    /// For messages about a lead (rep alerts, acknowledgements, a cadence's steps).
    pub lead: Option<LeadId>,
    pub contact: ContactId,
    /// `email`, `sms` or `webhook`.
    pub channel: &'static str,
    pub to: String,
    pub from: String,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub unsubscribe_url: Option<String>,
    pub now: DateTime<Utc>,
}
