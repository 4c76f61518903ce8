//! Contacts with their timelines (admin key).

use crate::error::{ApiError, ErrorBody};
use crate::extract::Admin;
use crate::service::{ContactPage, ContactQuery};
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use pronto_domain::{ContactId, Invalid};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Events per page, newest first (1-500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Only events older than this `seq` (the previous page's `next_before`).
    pub before: Option<i64>,
}

/// Exactly one identifier (the document models the four as one `lookup` object of one property).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Lookup {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub before: Option<i64>,
}

/// A page size in `1..=max` (default 50): out of range is a 400 naming `limit`, not silently clamped.
pub(crate) fn page_size(limit: Option<u32>, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(50.min(max)),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(Invalid::one("limit", format!("is {n}; it must be 1 to {max}")).into()),
    }
}

/// A contact, its identities and one page of its timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactResponse {
    #[schema(format = Uuid)]
    pub id: String,
    pub traits: Map<String, Value>,
    pub identities: Vec<IdentityView>,
    /// Contacts merged into this one (their ids still answer, as this contact).
    pub merged_from: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub events: Vec<EventView>,
    /// Pass as `before` for the next, older page; absent on the last page.
    pub next_before: Option<i64>,
    /// The contact's flow runs, newest first, with each step taken and why.
    pub runs: Vec<crate::views::RunResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityView {
    /// user_id, anonymous_id, email or phone (E.164).
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    #[schema(format = Uuid)]
    pub id: String,
    /// Commit order.
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    pub message_id: Option<String>,
    /// When it happened, per the client.
    pub timestamp: Option<DateTime<Utc>>,
    /// When pronto committed it.
    pub received_at: DateTime<Utc>,
    /// The message exactly as sent.
    #[schema(value_type = Object)]
    pub payload: Value,
}

impl From<ContactPage> for ContactResponse {
    fn from(p: ContactPage) -> Self {
        let c = p.contact;
        Self {
            id: c.id.to_string(),
            traits: c.traits,
            identities: c
                .identities
                .into_iter()
                .map(|i| IdentityView {
                    kind: i.kind.as_str().into(),
                    value: i.value,
                })
                .collect(),
            merged_from: c.merged_from.iter().map(ToString::to_string).collect(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            events: p
                .events
                .into_iter()
                .map(|e| EventView {
                    id: e.id.to_string(),
                    seq: e.seq,
                    kind: e.kind,
                    name: e.name,
                    message_id: e.message_id,
                    timestamp: e.timestamp,
                    received_at: e.received_at,
                    payload: e.payload,
                })
                .collect(),
            next_before: p.next_before,
            runs: p.runs.into_iter().map(Into::into).collect(),
        }
    }
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| Invalid::one("query", e.body_text()).into())
}

/// A contact by id (a merged contact's id answers as the contact it became).
#[utoipa::path(get, path = "/v1/contacts/{id}", tag = "admin",
    params(("id" = String, Path, format = Uuid), Paging),
    responses(
        (status = 200, body = ContactResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)
    ),
    security(("adminKey" = [])))]
pub async fn get_contact(
    State(s): State<AppState>,
    Admin(ws): Admin,
    Path(id): Path<String>,
    paging: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<ContactResponse>, ApiError> {
    let paging = query(paging)?;
    let id: ContactId = id
        .parse()
        .map_err(|_| Invalid::one("id", "is not a contact id (a UUID)"))?;
    let page = s
        .service
        .contact_page(ws, id, paging.before, page_size(paging.limit, 500)?)
        .await?;
    Ok(Json(page.into()))
}

/// The contact with exactly one of these identifiers (email and phone are normalised first).
#[utoipa::path(get, path = "/v1/contacts", tag = "admin",
    params(Lookup),
    responses(
        (status = 200, body = ContactResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)
    ),
    security(("adminKey" = [])))]
pub async fn find_contact(
    State(s): State<AppState>,
    Admin(ws): Admin,
    lookup: Result<Query<Lookup>, QueryRejection>,
) -> Result<Json<ContactResponse>, ApiError> {
    let l = query(lookup)?;
    let q = ContactQuery {
        email: l.email,
        phone: l.phone,
        user_id: l.user_id,
        anonymous_id: l.anonymous_id,
    };
    let id = s.service.find_contact(ws, &q).await?;
    let page = s
        .service
        .contact_page(ws, id, l.before, page_size(l.limit, 500)?)
        .await?;
    Ok(Json(page.into()))
}

/// Everything pronto holds on one person, as JSON (an access request: GDPR art. 15).
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactExport {
    pub exported_at: DateTime<Utc>,
    /// The contact, every identity and trait, all of its events (newest first; `next_before` is absent) and
    /// its flow runs.
    pub contact: ContactResponse,
    /// Every message sent or queued to it, newest first.
    pub messages: Vec<crate::views::MessageBody>,
    /// The leads it sent, each with its history (reps' notes included).
    pub leads: Vec<pronto_store::LeadView>,
    /// Suppression-list entries for its email addresses and phone numbers.
    pub suppressions: Vec<pronto_domain::suppression::Suppression>,
}

/// Everything held on a contact (a merged contact's id answers as the contact it became): identities,
/// traits, every event, flow runs, messages, leads with their history, suppression-list entries.
#[utoipa::path(get, path = "/v1/contacts/{id}/export", tag = "admin",
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, body = ContactExport),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)
    ),
    security(("adminKey" = [])))]
pub async fn export_contact(
    State(s): State<AppState>,
    Admin(ws): Admin,
    Path(id): Path<String>,
) -> Result<Json<ContactExport>, ApiError> {
    Ok(Json(s.service.export_contact(ws, &id).await?.into()))
}

impl From<crate::privacy::Export> for ContactExport {
    fn from(e: crate::privacy::Export) -> Self {
        Self {
            exported_at: e.exported_at,
            contact: e.page.into(),
            messages: e.messages.into_iter().map(Into::into).collect(),
            leads: e.leads,
            suppressions: e.suppressions,
        }
    }
}

/// What an erasure did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureBody {
    #[schema(value_type = String, format = Uuid)]
    pub contact: pronto_domain::ContactId,
    pub erased_at: DateTime<Utc>,
    /// Who asked (`admin key`, `cli`).
    pub by: String,
    /// Rows cleaned, deleted or stopped, by table.
    pub rows: std::collections::BTreeMap<String, u64>,
    /// The suppression-list entries the person's addresses now stand under (`sha256:…`).
    pub listed: Vec<String>,
}

impl From<pronto_store::Erasure> for ErasureBody {
    fn from(e: pronto_store::Erasure) -> Self {
        Self {
            contact: e.contact,
            erased_at: e.erased_at,
            by: e.by,
            rows: e.rows,
            listed: e.listed,
        }
    }
}

/// Erases a person (GDPR art. 17): their personal data is cleaned from every row of theirs (contact traits,
/// identities, event payloads, runs, messages, leads and their history, tasks) and from kept webhook bodies
/// that name them; rows stay, cleaned, so reports' counts are unchanged; queued messages to them are not
/// sent; their addresses stay on the suppression list as SHA-256 hashes only; the erasure is recorded in
/// the audit log (`GET /v1/erasures`). A merged contact's id erases the contact it became.
#[utoipa::path(delete, path = "/v1/contacts/{id}", tag = "admin",
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, body = ErasureBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)
    ),
    security(("adminKey" = [])))]
pub async fn erase_contact(
    State(s): State<AppState>,
    Admin(ws): Admin,
    Path(id): Path<String>,
) -> Result<Json<ErasureBody>, ApiError> {
    Ok(Json(
        s.service.erase_contact(ws, &id, "admin key").await?.into(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ErasuresQuery {
    /// At most this many (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// One entry of the erasure audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureEntry {
    #[schema(value_type = String, format = Uuid)]
    pub contact: pronto_domain::ContactId,
    pub erased_at: DateTime<Utc>,
    pub by: String,
    /// `{rows: {table: count}, listed: [hash]}`.
    pub summary: serde_json::Value,
}

/// The erasure audit log, newest first: which contact, when, who asked, how many rows of each table.
#[utoipa::path(get, path = "/v1/erasures", tag = "admin",
    params(ErasuresQuery),
    responses((status = 200, body = Vec<ErasureEntry>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn list_erasures(
    State(s): State<AppState>,
    Admin(ws): Admin,
    q: Result<Query<ErasuresQuery>, QueryRejection>,
) -> Result<Json<Vec<ErasureEntry>>, ApiError> {
    let Query(q) = q.map_err(|e| Invalid::one("query", e.body_text()))?;
    let rows = s.service.erasures(ws, q.limit).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| ErasureEntry {
                contact: r.contact,
                erased_at: r.erased_at,
                by: r.by,
                summary: r.summary,
            })
            .collect(),
    ))
}
