//! Speed to lead over HTTP: reps (admin), a lead's history, claims and contact attempts (admin, or a rep's
//! signed link), the speed-to-lead report, and the inbound webhooks (Twilio-style SMS and voice, inbound
//! email).

use super::pages::{escape, page};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Admin, Body, InboundAuth};
use crate::sales::{report_csv, AttemptRequest, RepList, SpeedToLead, TaskList};
use crate::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use pronto_domain::{Identity, Invalid};
use pronto_store::LeadView;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// A JSON body as `T`, refusing text no backend can store (NUL) with the field named.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Invalid::one("body", e.to_string()))?;
    pronto_domain::check_json(&v, "")?;
    serde_json::from_value(v).map_err(|e| Invalid::one("body", e.to_string()).into())
}

/// An urlencoded body's pairs, refusing NUL in any name or value with the field named.
fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| Invalid::one("body", format!("is not an urlencoded form: {e}")))?;
    for (k, v) in &pairs {
        pronto_domain::check_text(k, k)?;
        pronto_domain::check_text(k, v)?;
    }
    Ok(pairs)
}

/// Configured reps with their live state (away, on duty, open leads) and the teams.
#[utoipa::path(get, path = "/v1/reps", tag = "leads",
    responses((status = 200, body = RepList), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn list_reps(
    State(s): State<AppState>,
    Admin(ws): Admin,
) -> Result<Json<RepList>, ApiError> {
    Ok(Json(s.service.reps(ws).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepPatch {
    /// Away reps get no new leads (and no reassignments) until they are back.
    pub away: bool,
}

/// Sets a rep's away flag.
#[utoipa::path(patch, path = "/v1/reps/{id}", tag = "leads", request_body = RepPatch,
    params(("id" = String, Path)),
    responses((status = 200, body = RepList), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn patch_rep(
    State(s): State<AppState>,
    Admin(ws): Admin,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<RepList>, ApiError> {
    let patch: RepPatch = json_body(&body.0)?;
    s.service.set_away(ws, &id, patch.away).await?;
    Ok(Json(s.service.reps(ws).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeadQuery {
    /// Only leads in this state.
    #[param(value_type = Option<String>, pattern = "^(open|claimed|contacted|won|lost)$")]
    pub status: Option<String>,
    /// Only leads this rep owns now.
    pub owner: Option<String>,
    /// Only leads of this team.
    pub team: Option<String>,
    /// Only leads older than this one (the previous page's `next_before`).
    #[param(format = Uuid)]
    pub before: Option<String>,
    /// Leads per page, 1-200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// Leads, newest first, optionally only those in a state, of an owner or of a team; paged with `before`.
#[utoipa::path(get, path = "/v1/leads", tag = "leads", params(LeadQuery),
    responses((status = 200, body = crate::sales::LeadPage), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn list_leads(
    State(s): State<AppState>,
    Admin(ws): Admin,
    q: Result<Query<LeadQuery>, QueryRejection>,
) -> Result<Json<crate::sales::LeadPage>, ApiError> {
    let Query(q) = q.map_err(|e| Invalid::one("query", e.body_text()))?;
    let listing = crate::sales::LeadListing {
        status: q.status.as_deref(),
        owner: q.owner.as_deref(),
        team: q.team.as_deref(),
        before: q.before.as_deref(),
        limit: super::contacts::page_size(q.limit, 200)?,
    };
    Ok(Json(s.service.leads(ws, listing).await?))
}

/// A lead with its owner, SLA state, every step taken on it (routed, alerted, acknowledged, escalated,
/// claimed, attempts, replies) and its contact attempts.
#[utoipa::path(get, path = "/v1/leads/{id}", tag = "leads",
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = LeadView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn get_lead(
    State(s): State<AppState>,
    Admin(ws): Admin,
    Path(id): Path<String>,
) -> Result<Json<LeadView>, ApiError> {
    Ok(Json(s.service.lead_view(ws, &id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub rep: String,
}

/// A rep takes the lead ("I'm on it"): it becomes theirs and its SLA clock stops. Idempotent.
#[utoipa::path(post, path = "/v1/leads/{id}/claim", tag = "leads", request_body = ClaimRequest,
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = LeadView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn claim_lead(
    State(s): State<AppState>,
    Admin(ws): Admin,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<LeadView>, ApiError> {
    let req: ClaimRequest = json_body(&body.0)?;
    Ok(Json(s.service.claim(ws, &id, &req.rep).await?))
}

/// Logs a contact attempt and its outcome. The first attempt is the lead's first-contact time (what the
/// speed-to-lead report measures) and stops the SLA clock; won, lost and not interested close the lead and
/// end its cadence.
#[utoipa::path(post, path = "/v1/leads/{id}/attempts", tag = "leads", request_body = AttemptRequest,
    params(("id" = String, Path, format = Uuid)),
    responses((status = 201, body = LeadView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn log_attempt(
    State(s): State<AppState>,
    Admin(ws): Admin,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<LeadView>), ApiError> {
    let req: AttemptRequest = json_body(&body.0)?;
    Ok((
        StatusCode::CREATED,
        Json(s.service.attempt(ws, &id, req).await?),
    ))
}

fn lead_summary(v: &LeadView) -> String {
    let l = &v.lead;
    let mut out = format!(
        "<h1>{}</h1>",
        escape(
            l.name
                .as_deref()
                .or(l.email.as_deref())
                .or(l.phone.as_deref())
                .unwrap_or("Lead")
        )
    );
    if let Some(p) = &l.phone {
        out.push_str(&format!(
            "<p><a class=\"call\" href=\"tel:{0}\">Call {0}</a></p>",
            escape(p)
        ));
    }
    if let Some(e) = &l.email {
        out.push_str(&format!("<p><a href=\"mailto:{0}\">{0}</a></p>", escape(e)));
    }
    if let Some(m) = &l.message {
        out.push_str(&format!("<blockquote>{}</blockquote>", escape(m)));
    }
    out
}

/// The page behind a rep's "I'm on it" link: the lead and one button. A GET claims nothing, because mail and
/// chat link scanners open links; a claim made by a scanner would stop the SLA clock with nobody calling.
#[utoipa::path(get, path = "/c/{workspace}/{lead}/{rep}/{token}", tag = "leads",
    params(("workspace" = String, Path), ("lead" = String, Path), ("rep" = String, Path), ("token" = String, Path)),
    responses((status = 200, description = "The lead and a claim button", content_type = "text/html"),
              (status = 404, description = "The link is not valid or has expired", content_type = "text/html")))]
pub async fn claim_page(
    State(s): State<AppState>,
    Path((ws, lead, rep, token)): Path<(String, String, String, String)>,
) -> Response {
    match s.service.check_claim_link(&ws, &lead, &rep, &token).await {
        Ok(v) => {
            let state = match (&v.lead.claimed_by, v.lead.claimed_at) {
                (Some(by), Some(_)) if *by == rep => "<p>You are on it.</p>".to_string(),
                (Some(by), Some(_)) => {
                    format!("<p>{} has already claimed this lead.</p>", escape(by))
                }
                _ => format!(
                    "<form method=\"post\" action=\"/c/{}/{}/{}/{}\">\
                     <button class=\"primary\" type=\"submit\">I'm on it</button></form>",
                    escape(&ws),
                    escape(&lead),
                    escape(&rep),
                    escape(&token)
                ),
            };
            Html(page("Lead", &format!("{}{state}", lead_summary(&v)))).into_response()
        }
        Err(e) => (
            StatusCode::NOT_FOUND,
            Html(page("Lead", &format!("<p>{}</p>", escape(&e)))),
        )
            .into_response(),
    }
}

/// The claim itself (the page's button): the lead becomes the rep's and its SLA clock stops.
#[utoipa::path(post, path = "/c/{workspace}/{lead}/{rep}/{token}", tag = "leads",
    params(("workspace" = String, Path), ("lead" = String, Path), ("rep" = String, Path), ("token" = String, Path)),
    responses((status = 200, description = "Claimed (or already claimed)", content_type = "text/html"),
              (status = 404, description = "The link is not valid or has expired", content_type = "text/html")))]
pub async fn claim_by_link(
    State(s): State<AppState>,
    Path((ws, lead, rep, token)): Path<(String, String, String, String)>,
) -> Response {
    let v = match s.service.check_claim_link(&ws, &lead, &rep, &token).await {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::NOT_FOUND,
                Html(page("Lead", &format!("<p>{}</p>", escape(&e)))),
            )
                .into_response()
        }
    };
    match s.service.claim(v.lead.workspace_id, &lead, &rep).await {
        Ok(v) => {
            let note = match &v.lead.claimed_by {
                Some(by) if *by != rep => {
                    format!("<p>{} had already claimed this lead.</p>", escape(by))
                }
                _ => "<p><b>It's yours.</b> The clock has stopped; call now.</p>".to_string(),
            };
            Html(page("Claimed", &format!("{note}{}", lead_summary(&v)))).into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    /// Only the tasks of leads this rep owns (default: every rep's).
    pub rep: Option<String>,
    /// `open` (default) or `all` (done ones too).
    pub state: Option<String>,
}

/// The call tasks cadences opened (`call` steps), earliest due first, each with its call script, the lead's
/// phone as a `tel:` link and whether it is overdue. A task belongs to the lead's owner now; logging a call
/// attempt on the lead (`POST /v1/leads/{id}/attempts`) closes it.
#[utoipa::path(get, path = "/v1/tasks", tag = "leads", params(TaskQuery),
    responses((status = 200, body = TaskList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn list_tasks(
    State(s): State<AppState>,
    Admin(ws): Admin,
    q: Result<Query<TaskQuery>, QueryRejection>,
) -> Result<Json<TaskList>, ApiError> {
    let Query(q) = q.map_err(|e| Invalid::one("query", e.body_text()))?;
    let all = match q.state.as_deref() {
        None | Some("open") => false,
        Some("all") => true,
        Some(other) => {
            return Err(Invalid::one("state", format!("is `{other}`; use open or all")).into())
        }
    };
    Ok(Json(s.service.tasks(ws, q.rep.as_deref(), all).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Start of the period: an RFC 3339 time, or a date (`2026-12-01`: its midnight in the business's time
    /// zone). Default 30 days before `to`.
    pub from: Option<String>,
    /// End of the period, exclusive: an RFC 3339 time, or a date (`2026-12-07`: that whole day included).
    /// Default now.
    pub to: Option<String>,
    /// json (default) or csv.
    pub format: Option<String>,
}

/// Speed to lead for a period, overall and by source, rep, team and hour of week: leads, the share first
/// contacted within 5 min, 5-60 min, 1-24 h, over 24 h and never (leads under 24 h old and not yet
/// contacted are `open`, kept apart), mean/median/p90 response time, SLA breaches, won-rate and won revenue
/// (by currency) per bucket.
#[utoipa::path(get, path = "/v1/reports/speed-to-lead", tag = "leads", params(ReportQuery),
    responses((status = 200, description = "The report: JSON by default, CSV with `format=csv`",
               content((SpeedToLead = "application/json"), (String = "text/csv"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn speed_to_lead(
    State(s): State<AppState>,
    Admin(ws): Admin,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| Invalid::one("query", e.body_text()))?;
    let report = s
        .service
        .speed_to_lead(ws, q.from.as_deref(), q.to.as_deref())
        .await?;
    report_response(&report, q.format.as_deref(), report_csv)
}

/// A report as its `format` asks: JSON (default) or CSV.
pub(super) fn report_response<T: serde::Serialize>(
    report: &T,
    format: Option<&str>,
    csv: impl Fn(&T) -> String,
) -> Result<Response, ApiError> {
    match format {
        None | Some("json") => Ok(Json(report).into_response()),
        Some("csv") => Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            csv(report),
        )
            .into_response()),
        Some(_) => Err(Invalid::one("format", "must be json or csv").into()),
    }
}

fn twilio_checked(
    s: &AppState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    pairs: &[(String, String)],
) -> Result<(), ApiError> {
    let sig = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    if s.service.twilio_signed(path, pairs, sig) {
        Ok(())
    } else {
        Err(ApiError::BadSignature)
    }
}

/// A Twilio webhook's form, once its signature is checked: a request that is not signed is refused (403)
/// before anything in it is judged.
fn signed_pairs(
    s: &AppState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    let parsed = form_pairs(body);
    let pairs = parsed.as_ref().map(Vec::as_slice).unwrap_or(&[]);
    twilio_checked(s, uri, headers, pairs)?;
    parsed
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

const TWIML: [(header::HeaderName, &str); 1] = [(header::CONTENT_TYPE, "text/xml; charset=utf-8")];

/// Inbound SMS, Twilio's messaging webhook (form fields `From`, `Body`; `X-Twilio-Signature` checked with the
/// [sms] auth token against `server.public_url` + this path). STOP, UNSUBSCRIBE, CANCEL, END, QUIT opt the
/// sender out of every SMS; START, YES, UNSTOP opt back in; HELP, INFO get the help text; anything else is
/// a reply: recorded on their latest lead, forwarded to its owner, and automated follow-up stops.
#[utoipa::path(post, path = "/v1/inbound/sms", tag = "inbound",
    request_body(content = std::collections::HashMap<String, String>, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "TwiML", content_type = "text/xml"),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn inbound_sms(
    State(s): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let pairs = signed_pairs(&s, &uri, &headers, &body.0)?;
    let from = field(&pairs, "From").ok_or_else(|| Invalid::one("From", "is required"))?;
    let text = field(&pairs, "Body").unwrap_or("");
    let twiml = s.service.inbound_sms(from, text).await?;
    Ok((TWIML, twiml).into_response())
}

/// A call to the web-only number, Twilio's voice webhook (`From`, `To`, `CallSid`; signature checked as for
/// SMS). Records a lead with source "web phone" (a retried webhook for the same call records nothing new),
/// routed and alerted like any lead, and answers TwiML that connects the caller to the lead's owner.
#[utoipa::path(post, path = "/v1/inbound/voice", tag = "inbound",
    request_body(content = std::collections::HashMap<String, String>, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "TwiML", content_type = "text/xml"),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn inbound_voice(
    State(s): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let pairs = signed_pairs(&s, &uri, &headers, &body.0)?;
    let from = field(&pairs, "From").ok_or_else(|| Invalid::one("From", "is required"))?;
    let call = field(&pairs, "CallSid")
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| Invalid::one("CallSid", "is required"))?;
    let twiml = s
        .service
        .inbound_call(from, field(&pairs, "To"), call)
        .await?;
    Ok((TWIML, twiml).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct InboundEmail {
    /// The sender (`Ann <ann@example.com>` or a bare address).
    pub from: String,
    pub subject: Option<String>,
    /// The plain-text body.
    pub text: Option<String>,
}

/// An inbound email from an inbound-mail webhook (JSON `{from, subject, text}`, or the same fields
/// urlencoded). Authenticated with `[inbound] email_secret`: a Standard Webhooks signature
/// (`webhook-id`, `webhook-timestamp`, `webhook-signature`; a redelivery of the same `webhook-id` is a no-op)
/// or the secret as the HTTP Basic password; never the write key. Recorded on the sender's latest lead,
/// forwarded to its owner; automated follow-up stops. An email to the `List-Unsubscribe` mailbox
/// (`unsubscribe <workspace>/<contact>/<token>` in its subject, as the header's `mailto:` wrote it)
/// unsubscribes that contact instead.
#[utoipa::path(post, path = "/v1/inbound/email", tag = "inbound", request_body = InboundEmail,
    responses((status = 202, description = "Recorded"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("inboundSignature" = []), ("inboundBasic" = [])))]
pub async fn inbound_email(
    State(s): State<AppState>,
    auth: InboundAuth,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let delivery = s.service.inbound_email_auth(&auth, &body.0)?;
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let mail: InboundEmail = if form {
        let pairs = form_pairs(&body.0)?;
        InboundEmail {
            from: field(&pairs, "from").unwrap_or_default().to_string(),
            subject: field(&pairs, "subject").map(str::to_string),
            text: field(&pairs, "text").map(str::to_string),
        }
    } else {
        json_body(&body.0)?
    };
    let ws = s.service.default_workspace;
    let address = mail
        .from
        .rsplit_once('<')
        .map(|(_, a)| a.trim_end_matches('>').trim())
        .unwrap_or(mail.from.trim());
    let email =
        pronto_domain::Email::parse(address).map_err(|m| Invalid::one("from", m.to_string()))?;
    let text = match (&mail.subject, &mail.text) {
        (Some(sub), Some(t)) => format!("{sub}\n\n{t}"),
        (Some(sub), None) => sub.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => String::new(),
    };
    if s.service.unsubscribe_by_mail(&text).await? {
        return Ok(StatusCode::ACCEPTED);
    }
    let delivery = delivery.map(|id| crate::service::Keyed::delivery("inbound-email", id));
    s.service
        .reply(ws, Identity::email(&email), "email", &text, delivery)
        .await?;
    Ok(StatusCode::ACCEPTED)
}
