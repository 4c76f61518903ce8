//! The suppression list over HTTP (admin key): list it (JSON, or the whole list as CSV), add an address,
//! import a CSV, take an address off.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Admin, Body};
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pronto_domain::suppression::{self, Medium, Reason, Suppression};
use pronto_domain::Invalid;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuppressionSearch {
    /// Only entries of this medium.
    pub medium: Option<Medium>,
    /// One address or phone number, in any spelling the list would read it in (an address that cannot be
    /// listed lists nothing).
    pub address: Option<String>,
    pub reason: Option<Reason>,
    /// Newest first, 1-1000 (default 100). Ignored with `format=csv`, which answers the whole list.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Entries to skip (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// json (default) or csv.
    pub format: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionList {
    pub suppressions: Vec<Suppression>,
}

/// An address to list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSuppression {
    /// An email address or a phone number (E.164, or as typed: read as a US number without `+`); one that
    /// does not parse for its medium is a 400.
    #[schema(min_length = 1)]
    pub address: String,
    /// email or sms; default: email when the address has an `@`, else sms.
    pub medium: Option<Medium>,
    /// Default `manual`.
    pub reason: Option<Reason>,
    /// A note (at most 500 characters).
    #[schema(max_length = 500)]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionAdded {
    /// The entry as listed now (an address already listed for good keeps its entry: see `changed`).
    pub suppression: Suppression,
    /// Whether the list changed.
    pub changed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionsImported {
    /// Entries added or changed.
    pub listed: u64,
}

/// The workspace's suppression list, newest first: addresses and numbers nothing is sent to, with why,
/// since when, until when (soft bounces) and where it came from. The delivery worker adds hard bounces,
/// carrier opt-outs and repeated soft bounces by itself; every message to a listed address is skipped
/// (`suppressed` in `GET /v1/messages`, with the reason).
#[utoipa::path(get, path = "/v1/suppressions", tag = "admin", params(SuppressionSearch),
    responses((status = 200, description = "The list: JSON by default, the whole list as CSV with `format=csv`",
               content((SuppressionList = "application/json"), (String = "text/csv"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn list_suppressions(
    State(s): State<AppState>,
    Admin(ws): Admin,
    search: Result<Query<SuppressionSearch>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = search.map_err(|e| Invalid::one("query", e.body_text()))?;
    if let Some(a) = &q.address {
        pronto_domain::check_text("address", a)?;
    }
    match q.format.as_deref() {
        Some("csv") => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            s.service.export_suppressions(ws).await?,
        )
            .into_response()),
        None | Some("json") => {
            let list = s
                .service
                .suppressions(
                    ws,
                    q.medium,
                    q.address.as_deref(),
                    q.reason,
                    q.limit,
                    q.offset,
                )
                .await?;
            Ok(Json(SuppressionList { suppressions: list }).into_response())
        }
        Some(_) => Err(Invalid::one("format", "must be json or csv").into()),
    }
}

/// Lists an address (source `api`). An address already listed for good is not shortened; listing it again
/// with another reason replaces the entry.
#[utoipa::path(post, path = "/v1/suppressions", tag = "admin", request_body = NewSuppression,
    responses((status = 200, body = SuppressionAdded), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn add_suppression(
    State(s): State<AppState>,
    Admin(ws): Admin,
    body: Body,
) -> Result<Json<SuppressionAdded>, ApiError> {
    let req: NewSuppression = super::sales::json_body(&body.0)?;
    let entry = suppression::given(
        &req.address,
        req.medium,
        req.reason,
        req.detail.as_deref(),
        "api",
        None,
        s.service.clock.now(),
    )?;
    let (suppression, changed) = s.service.suppress(ws, entry).await?;
    Ok(Json(SuppressionAdded {
        suppression,
        changed,
    }))
}

/// Lists every row of a CSV (the columns `GET /v1/suppressions?format=csv` writes; only `address` is
/// required): all rows or none, a bad row answered 400 naming its line and field.
#[utoipa::path(post, path = "/v1/suppressions/import", tag = "admin",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = SuppressionsImported), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn import_suppressions(
    State(s): State<AppState>,
    Admin(ws): Admin,
    body: Body,
) -> Result<Json<SuppressionsImported>, ApiError> {
    let text =
        std::str::from_utf8(&body.0).map_err(|_| Invalid::one("body", "is not UTF-8 text"))?;
    pronto_domain::check_text("body", text)?;
    let listed = s.service.import_suppressions(ws, text).await?;
    Ok(Json(SuppressionsImported { listed }))
}

/// Takes an address off the list (and forgets its soft bounces): messages to it are sent again.
#[utoipa::path(delete, path = "/v1/suppressions/{medium}/{address}", tag = "admin",
    params(("medium" = Medium, Path, description = "email or sms"),
           ("address" = String, Path, description = "The address or number, in any spelling the list reads")),
    responses((status = 204, description = "Taken off the list"), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn remove_suppression(
    State(s): State<AppState>,
    Admin(ws): Admin,
    Path((medium, address)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let medium = match medium.as_str() {
        "email" => Medium::Email,
        "sms" => Medium::Sms,
        _ => return Err(ApiError::NotFound("suppression")),
    };
    s.service.unsuppress(ws, medium, &address).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A bounce or a complaint that arrived by mail, posted raw (the whole message, as the mailbox received it,
/// whatever the request's Content-Type says: `text/plain`, `message/rfc822`) by a mailbox forwarder: an
/// RFC 3464 delivery status notification or an RFC 5965 feedback report. An empty body is a 400.
/// Authenticated as inbound email is (`[inbound] email_secret`: a Standard Webhooks signature or the HTTP
/// Basic password). A failed recipient is judged by its status (`5.1.1` is listed, `5.2.2` is a soft
/// bounce, `5.7.x` keeps the address); an abuse report lists the address as a complaint and unsubscribes
/// its contact from all marketing. Any other message changes nothing (`report: none`).
#[utoipa::path(post, path = "/v1/inbound/bounces", tag = "inbound",
    request_body(content = String, content_type = "text/plain"),
    responses((status = 200, body = crate::suppressions::InboundReport), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)),
    security(("inboundSignature" = []), ("inboundBasic" = [])))]
pub async fn inbound_bounce(
    State(s): State<AppState>,
    auth: crate::extract::InboundAuth,
    body: Body,
) -> Result<Json<crate::suppressions::InboundReport>, ApiError> {
    s.service.inbound_email_auth(&auth, &body.0)?;
    // Whitespace as the document's pattern (`\S`, ECMAScript's) counts it: Unicode's, and the BOM.
    if String::from_utf8_lossy(&body.0)
        .chars()
        .all(|c| c.is_whitespace() || c == '\u{feff}')
    {
        return Err(Invalid::one("body", "is empty: post the whole message as received").into());
    }
    Ok(Json(s.service.inbound_report(&body.0).await?))
}

/// SendGrid's Event Webhook (Settings → Mail Settings → Event Webhook, with "Signed Event Webhook" on): a JSON
/// array of events, signed with ECDSA P-256 over `X-Twilio-Email-Event-Webhook-Timestamp` and the raw body,
/// checked with `[inbound] sendgrid_public_key` before anything is read (401 without the key or with a wrong
/// signature). A bounce is judged by its status (SendGrid's permanent bounce lists the address unless it is a
/// 5.7.x; a `blocked` one as a refusal at send time), a drop of a bounced or invalid address lists it, a spam
/// report is a complaint (listed, and the contact unsubscribed), an unsubscribe unsubscribes the contact
/// without listing the address; other events are left out. Every event must name its `event` and `email`.
#[utoipa::path(post, path = "/v1/inbound/events/sendgrid", tag = "inbound",
    request_body(content = Vec<SendGridEvent>, description = "The events, exactly as SendGrid sent them"),
    params(
        ("X-Twilio-Email-Event-Webhook-Timestamp" = Option<String>, Header,
         description = "The Unix time SendGrid signed at, part of what is signed"),
    ),
    responses((status = 200, body = crate::suppressions::ProviderReport),
              (status = 400, description = "Signed, but not SendGrid's event array", body = ErrorBody),
              (status = 401, description = "Not signed with the configured verification key, or none configured", body = ErrorBody)),
    security(("sendgridSignature" = [])))]
pub async fn sendgrid_events(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Json<crate::suppressions::ProviderReport>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let auth = crate::suppressions::ProviderAuth::SendGrid {
        timestamp: header("x-twilio-email-event-webhook-timestamp"),
        signature: header("x-twilio-email-event-webhook-signature"),
    };
    Ok(Json(s.service.provider_events(auth, &body.0).await?))
}

/// Mailgun's webhooks (Sending → Webhooks: permanent failure, spam complaints, unsubscribes): one event per
/// request, `{"signature": {timestamp, token, signature}, "event-data": {…}}`, where `signature` is the hex
/// HMAC-SHA256 of `timestamp` followed by `token` under the HTTP webhook signing key
/// (`PRONTO_MAILGUN_SIGNING_KEY`), checked before the event is read (401 without the key or with a wrong
/// signature). A permanent failure is judged by its delivery status (Mailgun's `suppress-bounce` lists, its
/// `suppress-complaint` is a complaint); a temporary one, which Mailgun retries, changes nothing; a complaint
/// lists the address and unsubscribes the contact; an unsubscribe unsubscribes without listing.
#[utoipa::path(post, path = "/v1/inbound/events/mailgun", tag = "inbound",
    request_body(content = MailgunWebhookBody, description = "The webhook's JSON body, exactly as Mailgun sent it"),
    responses((status = 200, body = crate::suppressions::ProviderReport),
              (status = 400, description = "Signed, but not Mailgun's event shape", body = ErrorBody),
              (status = 401, description = "Not signed with the configured signing key, or none configured", body = ErrorBody)))]
pub async fn mailgun_events(
    State(s): State<AppState>,
    body: Body,
) -> Result<Json<crate::suppressions::ProviderReport>, ApiError> {
    let auth = crate::suppressions::ProviderAuth::Mailgun;
    Ok(Json(s.service.provider_events(auth, &body.0).await?))
}

/// One SendGrid event; the other fields SendGrid sends (`reason`, `status`, `type`, `smtp-id`, …) are read
/// when present.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SendGridEvent {
    /// `bounce`, `dropped`, `spamreport`, `unsubscribe`, `group_unsubscribe`, or another (left out).
    #[schema(min_length = 1)]
    pub event: String,
    /// The recipient.
    #[schema(min_length = 1)]
    pub email: String,
}

/// A Mailgun webhook body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MailgunWebhookBody {
    pub signature: MailgunSignature,
    #[serde(rename = "event-data")]
    #[schema(rename = "event-data")]
    pub event_data: MailgunEventData,
}

/// Mailgun's signature of a webhook.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MailgunSignature {
    #[schema(min_length = 1)]
    pub timestamp: String,
    #[schema(min_length = 1)]
    pub token: String,
    /// Hex HMAC-SHA256 of `timestamp` + `token` under the signing key.
    #[schema(min_length = 1)]
    pub signature: String,
}

/// One Mailgun event; the other fields Mailgun sends (`severity`, `reason`, `delivery-status`, `message`) are
/// read when present.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MailgunEventData {
    /// `failed`, `complained`, `unsubscribed`, or another (left out).
    #[schema(min_length = 1)]
    pub event: String,
    #[schema(min_length = 1)]
    pub recipient: String,
}
