//! The shop owner's pages (`/app/recovery`, `/app/messages`, `/app/contacts/{id}`): admins only, GETs
//! only (nothing here changes anything, so there is no form to protect).

use super::app::{viewer, Period, WebError};
use crate::error::ApiError;
use crate::owner::{MessageSearch, MESSAGES_PAGE};
use crate::state::AppState;
use crate::web::owner;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use pronto_domain::Invalid;

/// A message's HTML may style itself and show images, and nothing else: no script, no form, no frame, no
/// request to pronto; `sandbox` gives it an origin of its own.
const MESSAGE_HTML_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; \
font-src https: data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'; sandbox";

/// Recovery at a glance: per flow the runs that got its messages, what they bought and for how much, the
/// holdout beside them, each message step; the experiments' results with their intervals.
#[utoipa::path(get, path = "/app/recovery", tag = "app", params(Period),
    responses((status = 200, description = "The page", content_type = "text/html"),
              (status = 303, description = "Not signed in: to the sign-in page"),
              (status = 400, description = "A period bound that cannot be read", content_type = "text/html"),
              (status = 403, description = "Not an admin", content_type = "text/html")))]
pub async fn recovery(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(p): Query<Period>,
) -> Result<Response, WebError> {
    let v = viewer(&state, &jar).await?;
    let r = state
        .service
        .recovery(&v, p.from.as_deref(), p.to.as_deref())
        .await
        .map_err(WebError::with(&v))?;
    Ok(Html(owner::recovery_page(&v, &r)).into_response())
}

/// The messages explorer: by recipient, flow and state, newest first, 50 a page.
#[utoipa::path(get, path = "/app/messages", tag = "app", params(MessageSearch),
    responses((status = 200, description = "The page", content_type = "text/html"),
              (status = 303, description = "Not signed in: to the sign-in page"),
              (status = 400, description = "A state or page mark that cannot be read", content_type = "text/html"),
              (status = 403, description = "Not an admin", content_type = "text/html")))]
pub async fn messages(
    State(state): State<AppState>,
    jar: CookieJar,
    search: Result<Query<MessageSearch>, QueryRejection>,
) -> Result<Response, WebError> {
    // A query that cannot be read is refused as such, signed in or not.
    let Query(search) =
        search.map_err(|e| WebError::from(ApiError::from(Invalid::one("query", e.body_text()))))?;
    search.query(MESSAGES_PAGE)?;
    let v = viewer(&state, &jar).await?;
    let m = state
        .service
        .explore_messages(&v, search)
        .await
        .map_err(WebError::with(&v))?;
    Ok(Html(owner::messages_page(&v, &m)).into_response())
}

/// One message as it was sent: headers, state, attempts, its text.
#[utoipa::path(get, path = "/app/messages/{id}", tag = "app",
    params(("id" = String, Path)),
    responses((status = 200, description = "The page", content_type = "text/html"),
              (status = 303, description = "Not signed in: to the sign-in page"),
              (status = 400, description = "Not a message id", content_type = "text/html"),
              (status = 403, description = "Not an admin", content_type = "text/html"),
              (status = 404, description = "No such message", content_type = "text/html")))]
pub async fn message(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let v = viewer(&state, &jar).await?;
    let (_, zone, m) = state
        .service
        .message_as_sent(&v, &id)
        .await
        .map_err(WebError::with(&v))?;
    Ok(Html(owner::message_page(&v, zone, &m)).into_response())
}

/// A message's HTML exactly as sent, under a policy of its own: its styles and images, no scripts, sandboxed.
#[utoipa::path(get, path = "/app/messages/{id}/html", tag = "app",
    params(("id" = String, Path)),
    responses((status = 200, description = "The HTML as sent", content_type = "text/html"),
              (status = 303, description = "Not signed in: to the sign-in page"),
              (status = 400, description = "Not a message id", content_type = "text/html"),
              (status = 403, description = "Not an admin", content_type = "text/html"),
              (status = 404, description = "No such message, or it has no HTML", content_type = "text/html")))]
pub async fn message_html(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let v = viewer(&state, &jar).await?;
    let (_, _, m) = state
        .service
        .message_as_sent(&v, &id)
        .await
        .map_err(WebError::with(&v))?;
    let Some(html) = m.html else {
        return Err(WebError::with(&v)(ApiError::NotFound("message HTML")));
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, MESSAGE_HTML_POLICY),
        ],
        html,
    )
        .into_response())
}

/// A contact's timeline: identities, traits, events, runs and messages, newest first.
#[utoipa::path(get, path = "/app/contacts/{id}", tag = "app",
    params(("id" = String, Path)),
    responses((status = 200, description = "The page", content_type = "text/html"),
              (status = 303, description = "Not signed in: to the sign-in page"),
              (status = 400, description = "Not a contact id", content_type = "text/html"),
              (status = 403, description = "Not an admin", content_type = "text/html"),
              (status = 404, description = "No such contact", content_type = "text/html")))]
pub async fn contact(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let v = viewer(&state, &jar).await?;
    let c = state
        .service
        .contact_story(&v, &id)
        .await
        .map_err(WebError::with(&v))?;
    Ok(Html(owner::contact_page(&v, &c)).into_response())
}
