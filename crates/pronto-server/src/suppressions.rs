//! The suppression list as admins manage it (`/v1/suppressions`, `pronto suppressions`): read, add (one at a
//! time or as CSV), remove, export. The delivery worker lists addresses by itself (hard bounces, carrier
//! opt-outs, repeated soft bounces); `pronto_domain::suppression` checks what an admin gives and says what
//! each refusal means.

use crate::error::ApiError;
use crate::service::Service;
use pronto_domain::suppression::provider::{self, Action, ProviderError, ProviderEvent};
use pronto_domain::suppression::Verdict;
use pronto_domain::suppression::{self, Medium, Reason, Suppression};
use pronto_domain::{Invalid, WorkspaceId};
use pronto_store::{MessageQuery, SuppressionQuery};

/// The most entries one page lists.
pub const MAX_PAGE: i64 = 1000;

impl Service {
    /// A page of the workspace's list, newest first. `address` is read for its medium (or for either when
    /// none is given) as the list spells it.
    pub async fn suppressions(
        &self,
        ws: WorkspaceId,
        medium: Option<Medium>,
        address: Option<&str>,
        reason: Option<Reason>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<Vec<Suppression>, ApiError> {
        let limit = limit.unwrap_or(100);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Invalid::one("limit", format!("must be 1-{MAX_PAGE}")).into());
        }
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            return Err(Invalid::one("offset", "must be 0 or more").into());
        }
        let (medium, address) = match address {
            None => (medium, None),
            Some(a) => {
                let m = medium.unwrap_or_else(|| Medium::of_address(a));
                // An address that cannot be listed lists nothing.
                let Ok(a) = suppression::address(m, a) else {
                    return Ok(Vec::new());
                };
                (Some(m), Some(a))
            }
        };
        let query = SuppressionQuery {
            medium,
            address,
            reason,
            limit: Some(limit),
            offset,
        };
        Ok(self.store.suppressions(ws, &query).await?)
    }

    /// Lists one address given by an admin; answers the entry as listed now and whether it changed.
    pub async fn suppress(
        &self,
        ws: WorkspaceId,
        entry: Suppression,
    ) -> Result<(Suppression, bool), ApiError> {
        let changed = self
            .store
            .suppress(ws, std::slice::from_ref(&entry))
            .await?
            > 0;
        let query = SuppressionQuery {
            medium: Some(entry.medium),
            address: Some(entry.address.clone()),
            limit: Some(1),
            ..Default::default()
        };
        let now = self
            .store
            .suppressions(ws, &query)
            .await?
            .into_iter()
            .next()
            .unwrap_or(entry);
        Ok((now, changed))
    }

    /// Lists every entry of a CSV (all or none); answers how many were added or changed.
    pub async fn import_suppressions(&self, ws: WorkspaceId, csv: &str) -> Result<u64, ApiError> {
        let entries = suppression::from_csv(csv, "csv", self.clock.now())?;
        Ok(self.store.suppress(ws, &entries).await?)
    }

    /// The whole list as CSV.
    pub async fn export_suppressions(&self, ws: WorkspaceId) -> Result<String, ApiError> {
        let all = self
            .store
            .suppressions(ws, &SuppressionQuery::default())
            .await?;
        Ok(suppression::to_csv(&all))
    }

    /// Takes an address off the list; 404 when it was not on it.
    pub async fn unsuppress(
        &self,
        ws: WorkspaceId,
        medium: Medium,
        address: &str,
    ) -> Result<(), ApiError> {
        // An address that cannot be spelt as the list spells it cannot be on it.
        let Ok(address) = suppression::address(medium, address) else {
            return Err(ApiError::NotFound("suppression"));
        };
        if self.store.unsuppress(ws, medium, &address).await? {
            Ok(())
        } else {
            Err(ApiError::NotFound("suppression"))
        }
    }
}

/// What a bounce or complaint that arrived by mail changed.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct InboundReport {
    /// `dsn` (a delivery status notification), `feedback` (a feedback report), or `none`.
    pub report: &'static str,
    /// Addresses put on the suppression list (hard bounces, complaints).
    pub listed: Vec<String>,
    /// Addresses a soft bounce was counted for.
    pub soft_bounces: Vec<String>,
    /// Contacts unsubscribed from all marketing by a complaint.
    pub unsubscribed: usize,
    /// The Message-ID of the message it is about, when the report carries it (pronto's are
    /// `<run.step@domain>` or `<lead.….ack.email@domain>`: the run and step that sent it).
    pub original_message_id: Option<String>,
}

impl Service {
    /// A bounce or complaint posted raw by a mailbox forwarder (authenticated as inbound email is): what it
    /// reports is judged by `pronto_domain::suppression::report`; hard bounces and complaints are listed at
    /// once, soft bounces counted; a complaint also unsubscribes the contact with that address from all
    /// marketing (`unsubscribed: true`, as the unsubscribe link does). Anything else is answered `none`
    /// and changes nothing.
    pub async fn inbound_report(&self, raw: &[u8]) -> Result<InboundReport, ApiError> {
        use pronto_domain::suppression::report::{read, verdicts, Report};
        let report = read(raw);
        let source = match report {
            Report::Feedback { .. } => "arf",
            _ => "dsn",
        };
        let mut out = InboundReport {
            report: report.kind(),
            listed: Vec::new(),
            soft_bounces: Vec::new(),
            unsubscribed: 0,
            original_message_id: match &report {
                Report::Delivery {
                    original_message_id,
                    ..
                }
                | Report::Feedback {
                    original_message_id,
                    ..
                } => original_message_id.clone(),
                Report::Other => None,
            },
        };
        let message = match out.original_message_id.as_deref() {
            Some(id) => self.sent_message(id).await?.map(|m| m.id),
            None => None,
        };
        let applied = self
            .apply_reported(
                source,
                verdicts(&report)
                    .into_iter()
                    .map(|(a, v)| (a, Action::Judge(v), message))
                    .collect(),
            )
            .await?;
        out.listed = applied.listed;
        out.soft_bounces = applied.soft_bounces;
        out.unsubscribed = applied.unsubscribed;
        Ok(out)
    }
}

/// What [`Service::apply_reported`] changed.
struct Applied {
    listed: Vec<String>,
    soft_bounces: Vec<String>,
    unsubscribed: usize,
}

/// What a sending service's event webhook changed.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ProviderReport {
    /// Events that said something about their address (bounces, drops, complaints, unsubscribes); deliveries,
    /// opens and clicks are left out.
    pub events: usize,
    /// Addresses put on the suppression list (hard bounces, complaints).
    pub listed: Vec<String>,
    /// Addresses a soft bounce was counted for.
    pub soft_bounces: Vec<String>,
    /// Contacts unsubscribed from all marketing (by a complaint or the provider's unsubscribe link).
    pub unsubscribed: usize,
    /// The messages the events are about that pronto sent, found by their Message-ID.
    pub matched: Vec<MatchedMessage>,
}

/// A message an event is about, and what sent it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct MatchedMessage {
    /// As the event gave it, with angle brackets.
    pub message_id: String,
    /// The outbox message (`GET /v1/messages`).
    #[schema(value_type = String, format = Uuid)]
    pub id: pronto_domain::MessageId,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub run_id: Option<pronto_domain::RunId>,
    pub flow: Option<String>,
    pub step: Option<i64>,
}

/// How a provider's webhook authenticated itself.
pub enum ProviderAuth<'a> {
    /// `X-Twilio-Email-Event-Webhook-Timestamp` and `-Signature`.
    SendGrid {
        timestamp: Option<&'a str>,
        signature: Option<&'a str>,
    },
    /// Inside the body.
    Mailgun,
}

impl Service {
    /// Lists, counts and unsubscribes as reported bounces and complaints say, in one store transaction for
    /// the list; a complaint or an unsubscribe also sets `unsubscribed: true` on the contact with that address
    /// (as the unsubscribe link does), so all marketing to them stops at once.
    async fn apply_reported(
        &self,
        source: &'static str,
        items: Vec<(String, Action, Option<pronto_domain::MessageId>)>,
    ) -> Result<Applied, ApiError> {
        let ws = self.default_workspace;
        let now = self.clock.now();
        let mut out = Applied {
            listed: Vec::new(),
            soft_bounces: Vec::new(),
            unsubscribed: 0,
        };
        let mut bounces = Vec::new();
        let mut unsubscribe = Vec::new();
        for (raw_address, action, message) in items {
            let Ok(address) = suppression::address(Medium::Email, &raw_address) else {
                continue;
            };
            let verdict = match action {
                Action::Unsubscribe => {
                    unsubscribe.push(address);
                    continue;
                }
                Action::Judge(Verdict::Keep) => continue,
                Action::Judge(v) => v,
            };
            let kind = match &verdict {
                Verdict::Suppress {
                    reason: Reason::Complaint,
                    ..
                } => {
                    unsubscribe.push(address.clone());
                    out.listed.push(address.clone());
                    "complaint"
                }
                Verdict::Suppress { .. } => {
                    out.listed.push(address.clone());
                    "hard"
                }
                _ => {
                    out.soft_bounces.push(address.clone());
                    "soft"
                }
            };
            metrics::counter!("pronto_bounces_total", "medium" => "email", "kind" => kind)
                .increment(1);
            bounces.push(pronto_store::Bounce {
                workspace: ws,
                medium: Medium::Email,
                address,
                verdict,
                source,
                message,
            });
        }
        if !bounces.is_empty() {
            self.store.record_bounces(&bounces, now).await?;
        }
        let mut patch = serde_json::Map::new();
        patch.insert("unsubscribed".into(), serde_json::Value::Bool(true));
        unsubscribe.sort();
        unsubscribe.dedup();
        for address in unsubscribe {
            let Ok(email) = pronto_domain::Email::parse(&address) else {
                continue;
            };
            let identity = pronto_domain::Identity::email(&email);
            if let Some(contact) = self.store.find_contact(ws, &identity).await? {
                if self
                    .store
                    .patch_traits(ws, contact, &patch, &format!("{source} report"), now)
                    .await?
                {
                    out.unsubscribed += 1;
                }
            }
        }
        Ok(out)
    }

    /// A sending service's event webhook (`sendgrid`, `mailgun`): the signature is checked with the
    /// configured key before the body is read (401 without a key or with a wrong signature), then each
    /// bounce, complaint and unsubscribe is applied as one that came by mail is, and the messages they are
    /// about are found by Message-ID (pronto's are `<idempotency key@domain>`).
    pub async fn provider_events(
        &self,
        auth: ProviderAuth<'_>,
        body: &[u8],
    ) -> Result<ProviderReport, ApiError> {
        let unauthorized =
            |provider: &'static str, message: String| ApiError::ProviderAuth { provider, message };
        // A Mailgun token is held as used while its event is applied, and given back if that fails (the
        // retry must not be refused as a replay).
        let mut held_token: Option<String> = None;
        let (source, events) = match auth {
            ProviderAuth::SendGrid {
                timestamp,
                signature,
            } => {
                let Some(key) = self.provider_keys.sendgrid.as_deref() else {
                    return Err(unauthorized(
                        "sendgrid",
                        "SendGrid events are not taken: set [inbound] sendgrid_public_key".into(),
                    ));
                };
                provider::sendgrid_signature(key, timestamp, signature, body)
                    .map_err(|e| unauthorized("sendgrid", e.to_string()))?;
                (
                    "sendgrid",
                    provider::sendgrid_events(body).map_err(invalid)?,
                )
            }
            ProviderAuth::Mailgun => {
                let Some(key) = self.provider_keys.mailgun.as_deref() else {
                    return Err(unauthorized(
                        "mailgun",
                        "Mailgun events are not taken: set PRONTO_MAILGUN_SIGNING_KEY".into(),
                    ));
                };
                let hook = provider::mailgun_webhook(body).map_err(|e| match e {
                    ProviderError::Signature(m) => unauthorized("mailgun", m),
                    other => invalid(other),
                })?;
                provider::mailgun_signature(key, &hook.timestamp, &hook.token, &hook.signature)
                    .map_err(|e| unauthorized("mailgun", e.to_string()))?;
                let now = self.clock.now().timestamp();
                let at = provider::mailgun_fresh(&hook.timestamp, now)
                    .map_err(|e| unauthorized("mailgun", e.to_string()))?;
                {
                    let mut seen = self
                        .provider_keys
                        .mailgun_tokens
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    seen.retain(|_, t| (now - *t).abs() <= provider::MAILGUN_WINDOW_SECS);
                    if seen.insert(hook.token.clone(), at).is_some() {
                        return Err(unauthorized(
                            "mailgun",
                            "this signature's token was used before (a replay)".into(),
                        ));
                    }
                }
                held_token = Some(hook.token.clone());
                let event = provider::mailgun_event(&hook.event_data).map_err(invalid)?;
                ("mailgun", event.into_iter().collect())
            }
        };
        let applied = self.apply_events(source, events).await;
        if let (Err(_), Some(token)) = (&applied, held_token) {
            self.provider_keys
                .mailgun_tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&token);
        }
        applied
    }

    async fn apply_events(
        &self,
        source: &'static str,
        events: Vec<ProviderEvent>,
    ) -> Result<ProviderReport, ApiError> {
        let mut matched: Vec<MatchedMessage> = Vec::new();
        for message_id in events.iter().filter_map(|e| e.message_id.as_deref()) {
            if matched.iter().any(|m| m.message_id == message_id) {
                continue;
            }
            if let Some(m) = self.sent_message(message_id).await? {
                matched.push(MatchedMessage {
                    message_id: message_id.to_string(),
                    id: m.id,
                    run_id: m.run_id,
                    flow: m.flow,
                    step: m.step,
                });
            }
        }
        let count = events.len();
        let applied = self
            .apply_reported(
                source,
                events
                    .into_iter()
                    .map(|e| {
                        let message = matched
                            .iter()
                            .find(|m| Some(m.message_id.as_str()) == e.message_id.as_deref())
                            .map(|m| m.id);
                        (e.address, e.action, message)
                    })
                    .collect(),
            )
            .await?;
        Ok(ProviderReport {
            events: count,
            listed: applied.listed,
            soft_bounces: applied.soft_bounces,
            unsubscribed: applied.unsubscribed,
            matched,
        })
    }
}

impl Service {
    /// The message pronto sent with this Message-ID (`<idempotency key@domain>`), if it is one of ours.
    async fn sent_message(
        &self,
        message_id: &str,
    ) -> Result<Option<pronto_store::MessageView>, ApiError> {
        let Some((key, _)) = message_id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .rsplit_once('@')
        else {
            return Ok(None);
        };
        let q = MessageQuery {
            key: Some(key.to_string()),
            ..MessageQuery::newest(1)
        };
        Ok(self
            .store
            .find_messages(self.default_workspace, &q)
            .await?
            .pop())
    }
}

/// A signed payload that is not the provider's documented shape: a 400 naming the field.
fn invalid(e: ProviderError) -> ApiError {
    match e {
        ProviderError::Payload { field, message } => Invalid::one(field, message).into(),
        ProviderError::Signature(m) => Invalid::one("body", m).into(),
    }
}
