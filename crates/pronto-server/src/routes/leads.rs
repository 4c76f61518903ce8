//! Leads without a CDP: `POST /v1/leads` (JSON, write key) and `POST /f/{form}` (a plain HTML form).

use super::docs::LeadRequest;
use super::pages::{escape, page};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Body, ClientIp, IdempotencyKey, WriteKey};
use crate::service::LeadAccepted;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;

/// Records a lead (and a `Lead Submitted` event on its contact).
#[utoipa::path(post, path = "/v1/leads", tag = "ingest", request_body = LeadRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key answers the same ids")),
    responses(
        (status = 201, description = "Lead committed", body = LeadAccepted),
        (status = 200, description = "A retry of a committed lead (same Idempotency-Key)", body = LeadAccepted),
        (status = 400, description = "Bad field, or neither email nor phone", body = ErrorBody),
        (status = 401, description = "Missing or unknown write key", body = ErrorBody),
        (status = 413, description = "Over the per-event limit", body = ErrorBody)
    ),
    security(("writeKey" = [])))]
pub async fn create_lead(
    State(s): State<AppState>,
    key: WriteKey,
    idem: IdempotencyKey,
    ClientIp(ip): ClientIp,
    body: Body,
) -> Result<(StatusCode, Json<LeadAccepted>), ApiError> {
    let done = s
        .service
        .lead_json(key.0.as_deref(), idem.0, ip, &body.0)
        .await?;
    let status = if done.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(done)))
}

/// A plain HTML form post (urlencoded, no JavaScript needed). Redirects to the form's thank-you URL, or shows a
/// thank-you page. A post that fills the honeypot field gets the same answer and is dropped.
#[utoipa::path(post, path = "/f/{form}", tag = "ingest",
    params(("form" = String, Path, description = "A form declared in the config ([[form]] name)")),
    request_body(content = std::collections::HashMap<String, String>, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 201, description = "Stored, and the client accepts JSON (`Accept: application/json`): the lead's ids", body = LeadAccepted),
        (status = 303, description = "Stored; redirect to the form's thank-you URL"),
        (status = 200, description = "Stored; a plain thank-you page", content_type = "text/html"),
        (status = 400, description = "A field is wrong; an HTML page (JSON if the client accepts it) names it"),
        (status = 404, description = "No such form", body = ErrorBody),
        (status = 429, description = "Too many posts from this IP; see Retry-After", body = ErrorBody)
    ))]
pub async fn post_form(
    State(s): State<AppState>,
    Path(name): Path<String>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let form = s.forms.get(&name).ok_or(ApiError::NotFound("form"))?;
    s.service.admit_ip(ip, "form").await?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body.0).map_err(|e| {
        pronto_domain::Invalid::one("body", format!("is not an urlencoded form: {e}"))
    })?;
    match s.service.lead_form(form, pairs).await {
        // A client that asks for JSON (a site's own script, `curl -H 'Accept: application/json'`) learns the
        // lead's id, to look it up or act on it.
        Ok(Some(done)) if wants_json(&headers) => {
            Ok((StatusCode::CREATED, Json(done)).into_response())
        }
        Ok(_) => Ok(match &form.redirect {
            Some(url) => Redirect::to(url).into_response(),
            None => Html(thank_you()).into_response(),
        }),
        Err(ApiError::Invalid(inv)) if !wants_json(&headers) => {
            Ok((StatusCode::BAD_REQUEST, Html(error_page(&inv))).into_response())
        }
        Err(e) => Err(e),
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

fn thank_you() -> String {
    page(
        "Thank you",
        "<h1>Thank you!</h1><p>We have your message and will be in touch shortly.</p>",
    )
}

fn error_page(inv: &pronto_domain::Invalid) -> String {
    let items: String = inv
        .0
        .iter()
        .map(|f| {
            format!(
                "<li><b>{}</b> {}</li>",
                escape(&f.field),
                escape(&f.message)
            )
        })
        .collect();
    page(
        "Please check the form",
        &format!(
            "<h1>Please check the form</h1><ul>{items}</ul>\
             <p>Go back with your browser's back button to correct it.</p>"
        ),
    )
}
