//! The suppression list as admins manage it (`/v1/suppressions`, `pronto suppressions`): read, add (one at a
//! time or as CSV), remove, export. The delivery worker lists addresses by itself (hard bounces, carrier
//! opt-outs, repeated soft bounces); `pronto_domain::suppression` checks what an admin gives and says what
//! each refusal means.

use crate::error::ApiError;
use crate::service::Service;
use pronto_domain::suppression::{self, Medium, Reason, Suppression};
use pronto_domain::{Invalid, WorkspaceId};
use pronto_store::SuppressionQuery;

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
        use pronto_domain::suppression::Verdict;
        let ws = self.default_workspace;
        let now = self.clock.now();
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
        let mut bounces = Vec::new();
        let mut complained = Vec::new();
        for (raw_address, verdict) in verdicts(&report) {
            let Ok(address) = suppression::address(Medium::Email, &raw_address) else {
                continue;
            };
            match &verdict {
                Verdict::Suppress {
                    reason: Reason::Complaint,
                    ..
                } => {
                    complained.push(address.clone());
                    out.listed.push(address.clone());
                }
                Verdict::Suppress { .. } => out.listed.push(address.clone()),
                Verdict::SoftBounce { .. } => out.soft_bounces.push(address.clone()),
                Verdict::Keep => continue,
            }
            metrics::counter!("pronto_bounces_total", "medium" => "email", "kind" => match &verdict {
                Verdict::Suppress { reason: Reason::Complaint, .. } => "complaint",
                Verdict::Suppress { .. } => "hard",
                _ => "soft",
            })
            .increment(1);
            bounces.push(pronto_store::Bounce {
                workspace: ws,
                medium: Medium::Email,
                address,
                verdict,
                source,
            });
        }
        if !bounces.is_empty() {
            self.store.record_bounces(&bounces, now).await?;
        }
        let mut patch = serde_json::Map::new();
        patch.insert("unsubscribed".into(), serde_json::Value::Bool(true));
        for address in complained {
            let Ok(email) = pronto_domain::Email::parse(&address) else {
                continue;
            };
            let identity = pronto_domain::Identity::email(&email);
            if let Some(contact) = self.store.find_contact(ws, &identity).await? {
                if self.store.patch_traits(ws, contact, &patch, now).await? {
                    out.unsubscribed += 1;
                }
            }
        }
        Ok(out)
    }
}
