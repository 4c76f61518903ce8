//! What pronto holds on one person, for their access request (GDPR art. 15, CCPA "right to know"): the
//! contact with every identity and trait, every event, every flow run, every message sent or queued to
//! them, every lead they sent with its history (reps' notes included), and the suppression-list entries for
//! their addresses. `GET /v1/contacts/{id}/export` and `pronto contacts export ID` answer it as JSON.
//!
//! And erasing them (GDPR art. 17, CCPA deletion): `DELETE /v1/contacts/{id}` and `pronto contacts erase ID`
//! clean every row of theirs (`pronto_store::Store::erase_contact`; what is personal is decided by
//! `pronto_domain::erasure`), keep their addresses on the suppression list as hashes only, and record the
//! erasure in the audit log (`GET /v1/erasures`).

use crate::error::ApiError;
use crate::service::{ContactPage, Service};
use chrono::{DateTime, Utc};
use pronto_domain::suppression::{self, Medium, Suppression};
use pronto_domain::{ContactId, IdentityKind, Invalid, LeadId, WorkspaceId};
use pronto_store::{LeadView, MessageQuery, MessageView, Store, SuppressionQuery};

/// Events and messages read per statement while exporting.
const PAGE: u32 = 500;

/// Everything held on one contact.
#[derive(Debug)]
pub struct Export {
    pub exported_at: DateTime<Utc>,
    /// The contact, all of its events (newest first) and its runs.
    pub page: ContactPage,
    /// Newest first.
    pub messages: Vec<MessageView>,
    /// The leads it sent (from its `Lead Submitted` events), oldest first.
    pub leads: Vec<LeadView>,
    /// Entries for its email addresses and phone numbers.
    pub suppressions: Vec<Suppression>,
}

impl Service {
    /// Everything held on the contact `id` (a merged contact's id answers as the contact it became).
    pub async fn export_contact(&self, ws: WorkspaceId, id: &str) -> Result<Export, ApiError> {
        let id: ContactId = id
            .parse()
            .map_err(|_| Invalid::one("id", "is not a contact id (a UUID)"))?;
        export(&*self.store, ws, id, self.clock.now()).await
    }
}

impl Service {
    /// Erases the contact `id` (a merged contact's id erases the contact it became); `by` says who asked.
    pub async fn erase_contact(
        &self,
        ws: WorkspaceId,
        id: &str,
        by: &str,
    ) -> Result<pronto_store::Erasure, ApiError> {
        let id: ContactId = id
            .parse()
            .map_err(|_| Invalid::one("id", "is not a contact id (a UUID)"))?;
        erase(&*self.store, ws, id, by, self.clock.now()).await
    }
}

impl Service {
    /// The erasure audit log, newest first (`limit` 1-1000, default 100).
    pub async fn erasures(
        &self,
        ws: WorkspaceId,
        limit: Option<i64>,
    ) -> Result<Vec<pronto_store::ErasureRecord>, ApiError> {
        let limit = limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(Invalid::one("limit", "must be 1-1000").into());
        }
        Ok(self.store.erasures(ws, limit).await?)
    }
}

/// Erases the contact `id` in `store` (the API and the CLI).
pub async fn erase(
    store: &dyn Store,
    ws: WorkspaceId,
    id: ContactId,
    by: &str,
    now: DateTime<Utc>,
) -> Result<pronto_store::Erasure, ApiError> {
    let contact = store
        .contact(ws, id)
        .await?
        .ok_or(ApiError::NotFound("contact"))?;
    store
        .erase_contact(ws, contact.id, by, now)
        .await?
        .ok_or(ApiError::NotFound("contact"))
}

/// Everything held on the contact `id`, read from `store` (the API and the CLI).
pub async fn export(
    store: &dyn Store,
    ws: WorkspaceId,
    id: ContactId,
    now: DateTime<Utc>,
) -> Result<Export, ApiError> {
    let contact = store
        .contact(ws, id)
        .await?
        .ok_or(ApiError::NotFound("contact"))?;
    let mut events = Vec::new();
    loop {
        let before = events.last().map(|e: &pronto_store::StoredEvent| e.seq);
        let got = store.timeline(ws, contact.id, before, PAGE).await?;
        let done = got.len() < PAGE as usize;
        events.extend(got);
        if done {
            break;
        }
    }
    let runs = store.contact_runs(ws, contact.id).await?;
    let page = ContactPage {
        contact,
        events,
        next_before: None,
        runs,
    };
    let mut messages: Vec<MessageView> = Vec::new();
    loop {
        let q = MessageQuery {
            contact: Some(page.contact.id),
            before: messages.last().map(|m| m.id),
            ..MessageQuery::newest(PAGE)
        };
        let got = store.find_messages(ws, &q).await?;
        let done = got.len() < PAGE as usize;
        messages.extend(got);
        if done {
            break;
        }
    }
    let mut lead_ids: Vec<LeadId> = page
        .events
        .iter()
        .filter(|e| e.name.as_deref() == Some(pronto_domain::lead::LEAD_SUBMITTED))
        .filter_map(|e| {
            e.payload
                .pointer("/properties/lead_id")?
                .as_str()?
                .parse()
                .ok()
        })
        .collect();
    lead_ids.sort();
    lead_ids.dedup();
    let mut leads = Vec::with_capacity(lead_ids.len());
    for lead in lead_ids {
        if let Some(l) = store.lead(ws, lead).await? {
            leads.push(l);
        }
    }
    let mut suppressions = Vec::new();
    for identity in &page.contact.identities {
        let medium = match identity.kind {
            IdentityKind::Email => Medium::Email,
            IdentityKind::Phone => Medium::Sms,
            _ => continue,
        };
        let Ok(address) = suppression::address(medium, &identity.value) else {
            continue;
        };
        let q = SuppressionQuery {
            medium: Some(medium),
            address: Some(address),
            ..Default::default()
        };
        suppressions.extend(store.suppressions(ws, &q).await?);
    }
    Ok(Export {
        exported_at: now,
        page,
        messages,
        leads,
        suppressions,
    })
}
