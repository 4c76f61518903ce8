//! The web app's routes (`/app/…`): sign-in, the inbox, a lead, actions on a lead, live updates, sessions.
//!
//! Every form post is checked twice before anything else is read: its `Origin` (when the browser sends
//! one) must be this server's, and its `csrf` field must match the session's token (signed-in forms) or the
//! sign-in cookie's (the sign-in forms, which have no session yet). A post that fails either answers 403
//! and changes nothing. Session cookies are `HttpOnly`, `Secure` and `SameSite=Lax`; browsers keep `Secure`
//! cookies from `http://localhost` too, so the app works locally without TLS, and elsewhere only over HTTPS.

use crate::auth::{same_secret, LinkSent, SignedIn, Viewer, PRE_SESSION_COOKIE, SESSION_COOKIE};
use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::live;
use crate::state::AppState;
use crate::web::{inbox, sign_in};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::ToSchema;

/// What a page answers instead of itself.
#[derive(Debug)]
pub enum WebError {
    /// No live session: GETs go to the sign-in page.
    SignedOut,
    /// A post without the right CSRF token or from another origin.
    Csrf,
    /// Anything the service refused, shown as a page with the same status the API would answer.
    Api(ApiError, Option<Box<Viewer>>),
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        Self::Api(e, None)
    }
}

impl WebError {
    pub(crate) fn with(viewer: &Viewer) -> impl FnOnce(ApiError) -> WebError + '_ {
        move |e| WebError::Api(e, Some(Box::new(viewer.clone())))
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            Self::SignedOut => Redirect::to("/app/sign-in").into_response(),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                Html(sign_in::error_page(
                    None,
                    "Form expired",
                    "This form was not sent from a page of this app (or the page is too old). Go back, \
                     reload it and try again.",
                )),
            )
                .into_response(),
            Self::Api(e, viewer) => {
                let status = e.status();
                let title = match status {
                    StatusCode::FORBIDDEN => "Not yours to see",
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::TOO_MANY_REQUESTS => "Too many tries",
                    s if s.is_server_error() => "Try again shortly",
                    _ => "That did not work",
                };
                let message = match &e {
                    ApiError::Invalid(inv) => inv
                        .0
                        .iter()
                        .map(|f| format!("{}: {}", f.field, f.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                    ApiError::Store(_) => "The database is not answering right now.".to_string(),
                    other => other.to_string(),
                };
                let mut res =
                    (status, Html(sign_in::error_page(viewer.as_deref(), title, &message)))
                        .into_response();
                if let ApiError::RateLimited { retry_after_secs } = e {
                    if let Ok(v) = retry_after_secs.to_string().parse() {
                        res.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                }
                res
            }
        }
    }
}

/// The signed-in person, from the session cookie.
pub(crate) async fn viewer(state: &AppState, jar: &CookieJar) -> Result<Viewer, WebError> {
    let token = jar.get(SESSION_COOKIE).map(|c| c.value().to_string());
    state
        .service
        .viewer(token.as_deref())
        .await?
        .ok_or(WebError::SignedOut)
}

/// A post must come from this server's own pages: a browser's `Origin`, when sent, names this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest == host)
}

/// Reads a form body into `T`; a body that does not parse names what is wrong.
fn form<T: DeserializeOwned>(body: &Bytes) -> Result<T, WebError> {
    serde_urlencoded::from_bytes(body).map_err(|e| {
        WebError::from(ApiError::Invalid(pronto_domain::Invalid::one(
            "form",
            e.to_string(),
        )))
    })
}

/// Only the CSRF field, read before the rest of a form so a forged post learns nothing from the form's
/// errors.
#[derive(Deserialize)]
struct CsrfOnly {
    csrf: Option<String>,
}

/// The signed-in viewer of a post whose origin and CSRF token check out.
async fn poster(
    state: &AppState,
    jar: &CookieJar,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Viewer, WebError> {
    let v = viewer(state, jar).await.map_err(|_| WebError::Csrf)?;
    let sent: CsrfOnly = serde_urlencoded::from_bytes(body).unwrap_or(CsrfOnly { csrf: None });
    match sent.csrf {
        Some(c) if same_origin(headers) && same_secret(&c, &v.csrf) => Ok(v),
        _ => Err(WebError::Csrf),
    }
}

/// A sign-in form's post: the token must match the sign-in cookie's.
fn check_pre_session(jar: &CookieJar, headers: &HeaderMap, body: &Bytes) -> Result<(), WebError> {
    let sent: CsrfOnly = serde_urlencoded::from_bytes(body).unwrap_or(CsrfOnly { csrf: None });
    match (sent.csrf, jar.get(PRE_SESSION_COOKIE)) {
        (Some(c), Some(cookie)) if same_origin(headers) && same_secret(&c, cookie.value()) => {
            Ok(())
        }
        _ => Err(WebError::Csrf),
    }
}

fn secure_cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    max_age: std::time::Duration,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Lax)
        .max_age(cookie_age(max_age))
        .build()
}

fn cookie_age(d: std::time::Duration) -> cookie::time::Duration {
    cookie::time::Duration::seconds(d.as_secs().min(i64::MAX as u64) as i64)
}

/// The sign-in cookie: kept, or a new one.
fn pre_session(jar: CookieJar) -> (CookieJar, String) {
    if let Some(c) = jar.get(PRE_SESSION_COOKIE) {
        if c.value().len() == 43 {
            let v = c.value().to_string();
            return (jar, v);
        }
    }
    let token = crate::auth::new_token();
    let mut cookie = secure_cookie(
        PRE_SESSION_COOKIE,
        token.clone(),
        "/app",
        std::time::Duration::from_secs(3600),
    );
    cookie.set_same_site(SameSite::Strict);
    (jar.add(cookie), token)
}

/// Sets the session cookie and goes to the inbox.
fn start(jar: CookieJar, signed_in: SignedIn) -> Response {
    let jar = jar
        .remove(Cookie::build(PRE_SESSION_COOKIE).path("/app"))
        .add(secure_cookie(
            SESSION_COOKIE,
            signed_in.token,
            "/",
            signed_in.max_age,
        ));
    (jar, Redirect::to("/app")).into_response()
}

fn agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|a| a.chars().take(200).collect())
}

/// The app's front door when signed in: a rep's inbox; for someone who is not a rep, a manager's board or an
/// admin's recovery page. Else the sign-in page.
#[utoipa::path(get, path = "/app", tag = "app",
    responses((status = 303, description = "To the inbox, board or recovery page, or to the sign-in page")))]
pub async fn home(State(state): State<AppState>, jar: CookieJar) -> Response {
    use pronto_domain::access::Role;
    match viewer(&state, &jar).await {
        Ok(v) => Redirect::to(match (&v.user.rep, v.user.role) {
            (Some(_), _) => "/app/inbox",
            (None, Role::Admin) => "/app/recovery",
            (None, Role::Manager) => "/app/board",
            (None, Role::Rep) => "/app/inbox",
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The sign-in page.
#[utoipa::path(get, path = "/app/sign-in", tag = "app",
    responses((status = 200, description = "The sign-in forms", content_type = "text/html")))]
pub async fn sign_in_page(State(state): State<AppState>, jar: CookieJar) -> Response {
    let (jar, csrf) = pre_session(jar);
    let mail = state.service.app.smtp.is_some();
    (jar, Html(sign_in::sign_in_page(&csrf, None, mail))).into_response()
}

/// The sign-in form: `email` alone mails a link; with `password`, signs in at once.
#[derive(Deserialize, ToSchema)]
pub struct SignInForm {
    /// The token the sign-in page's form carries.
    pub csrf: String,
    pub email: String,
    pub password: Option<String>,
}

/// Mails a sign-in link (or, with a password, signs in).
#[utoipa::path(post, path = "/app/sign-in", tag = "app",
    request_body(content = SignInForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The link is on its way (if the address is a user's)", content_type = "text/html"),
              (status = 303, description = "Signed in with a password: to the inbox"),
              (status = 400, description = "The email is not an address", content_type = "text/html"),
              (status = 403, description = "The form's CSRF token is missing or wrong", content_type = "text/html"),
              (status = 429, description = "Too many sign-in attempts from this address or for this email", content_type = "text/html"),
              (status = 503, description = "The link could not be mailed", content_type = "text/html")))]
pub async fn sign_in(
    State(state): State<AppState>,
    jar: CookieJar,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    check_pre_session(&jar, &headers, &body)?;
    let f: SignInForm = form(&body)?;
    let s = &state.service;
    match f.password.filter(|p| !p.is_empty()) {
        Some(password) => {
            match s
                .password_sign_in(&f.email, &password, agent(&headers).as_deref(), ip)
                .await?
            {
                Some(signed_in) => Ok(start(jar, signed_in)),
                None => {
                    let (jar, csrf) = pre_session(jar);
                    let page = sign_in::sign_in_page(
                        &csrf,
                        Some("That email and password do not match a user with a password."),
                        s.app.smtp.is_some(),
                    );
                    Ok((jar, Html(page)).into_response())
                }
            }
        }
        None => match s.mail_sign_in_link(&f.email, ip).await? {
            LinkSent::Mailed => Ok(Html(sign_in::link_sent_page(&f.email)).into_response()),
            LinkSent::NoMailServer => {
                let (jar, csrf) = pre_session(jar);
                let page = sign_in::sign_in_page(
                    &csrf,
                    Some("No mail server is configured, so no link was sent."),
                    false,
                );
                Ok((jar, Html(page)).into_response())
            }
        },
    }
}

/// The admin-key form.
#[derive(Deserialize, ToSchema)]
pub struct AdminKeyForm {
    pub csrf: String,
    /// The admin key (`pk_admin_…`): used once to open a session, never stored in the browser.
    pub key: String,
}

/// Opens an admin session with the admin key.
#[utoipa::path(post, path = "/app/sign-in/admin-key", tag = "app",
    request_body(content = AdminKeyForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "The key is wrong: the sign-in page again", content_type = "text/html"),
              (status = 303, description = "Signed in: to the inbox"),
              (status = 400, description = "The form does not parse", content_type = "text/html"),
              (status = 403, description = "The form's CSRF token is missing or wrong", content_type = "text/html"),
              (status = 429, description = "Too many sign-in attempts from this address", content_type = "text/html")))]
pub async fn sign_in_with_admin_key(
    State(state): State<AppState>,
    jar: CookieJar,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    check_pre_session(&jar, &headers, &body)?;
    let f: AdminKeyForm = form(&body)?;
    let s = &state.service;
    match s
        .admin_key_sign_in(&f.key, agent(&headers).as_deref(), ip)
        .await?
    {
        Some(signed_in) => Ok(start(jar, signed_in)),
        None => {
            let (jar, csrf) = pre_session(jar);
            let page = sign_in::sign_in_page(
                &csrf,
                Some("That is not a live admin key."),
                s.app.smtp.is_some(),
            );
            Ok((jar, Html(page)).into_response())
        }
    }
}

/// The page behind a mailed sign-in link: who it signs in, and one button (opening it signs nobody in).
#[utoipa::path(get, path = "/app/sign-in/{token}", tag = "app",
    params(("token" = String, Path)),
    responses((status = 200, description = "A sign-in button", content_type = "text/html"),
              (status = 404, description = "The link is used, expired or unknown", content_type = "text/html")))]
pub async fn link_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    match state.service.sign_in_link_user(&token).await? {
        Some(user) => {
            let (jar, csrf) = pre_session(jar);
            Ok((jar, Html(sign_in::confirm_page(&user, &token, &csrf))).into_response())
        }
        None => Ok((StatusCode::NOT_FOUND, Html(sign_in::link_invalid_page())).into_response()),
    }
}

/// The sign-in button's post.
#[derive(Deserialize, ToSchema)]
pub struct CsrfForm {
    pub csrf: String,
}

/// Uses a sign-in link: the browser gets its session cookie.
#[utoipa::path(post, path = "/app/sign-in/{token}", tag = "app",
    params(("token" = String, Path)),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Signed in: to the inbox"),
              (status = 403, description = "The form's CSRF token is missing or wrong", content_type = "text/html"),
              (status = 404, description = "The link is used, expired or unknown", content_type = "text/html")))]
pub async fn use_link(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    check_pre_session(&jar, &headers, &body)?;
    match state
        .service
        .redeem_sign_in_link(&token, agent(&headers).as_deref())
        .await?
    {
        Some(signed_in) => Ok(start(jar, signed_in)),
        None => Ok((StatusCode::NOT_FOUND, Html(sign_in::link_invalid_page())).into_response()),
    }
}

/// Signs out: the session ends on every server and the cookie is removed.
#[utoipa::path(post, path = "/app/sign-out", tag = "app",
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Signed out: to the sign-in page"),
              (status = 403, description = "Not signed in, or the form's CSRF token is missing or wrong", content_type = "text/html")))]
pub async fn sign_out(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let v = poster(&state, &jar, &headers, &body).await?;
    state
        .service
        .sign_out(&v)
        .await
        .map_err(WebError::with(&v))?;
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, Redirect::to("/app/sign-in")).into_response())
}

/// A rep's inbox: new leads first with their SLA countdowns, today's calls, leads being worked.
#[utoipa::path(get, path = "/app/inbox", tag = "app",
    responses((status = 200, description = "The inbox", content_type = "text/html"),
              (status = 303, description = "Not signed in: to the sign-in page")))]
pub async fn inbox_page(
    State(state): State<AppState>,
    jar: CookieJar,
) -> Result<Response, WebError> {
    let v = viewer(&state, &jar).await?;
    let inbox = state.service.inbox(&v).await.map_err(WebError::with(&v))?;
    Ok(Html(inbox::inbox_page(&v, &inbox)).into_response())
}

/// A lead's whole story.
#[utoipa::path(get, path = "/app/leads/{id}", tag = "app",
    params(("id" = String, Path)),
    responses((status = 200, description = "The lead", content_type = "text/html"),
              (status = 303, description = "Not signed in: to the sign-in page"),
              (status = 400, description = "Not a lead id", content_type = "text/html"),
              (status = 403, description = "Another team's lead", content_type = "text/html"),
              (status = 404, description = "No such lead", content_type = "text/html")))]
pub async fn lead_page(
    State(state): State<AppState>,
    jar: CookieJar,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let v = viewer(&state, &jar).await?;
    let story = state
        .service
        .lead_story(&v, &id)
        .await
        .map_err(WebError::with(&v))?;
    Ok(Html(inbox::lead_page(&v, &story)).into_response())
}

/// Back to where the form was, or the inbox.
fn back(headers: &HeaderMap, id: &str) -> Redirect {
    let from_lead = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|r| r.contains("/app/leads/"));
    if from_lead {
        Redirect::to(&format!("/app/leads/{id}"))
    } else {
        Redirect::to(&format!("/app/inbox#lead-{id}"))
    }
}

/// "I'm on it": the lead becomes the viewer's and its SLA clock stops.
#[utoipa::path(post, path = "/app/leads/{id}/claim", tag = "app",
    params(("id" = String, Path)),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Claimed: back to the inbox"),
              (status = 400, description = "Not a lead id", content_type = "text/html"),
              (status = 403, description = "Not signed in, not a rep, another team's lead, or a bad CSRF token", content_type = "text/html"),
              (status = 404, description = "No such lead", content_type = "text/html")))]
pub async fn claim(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let v = poster(&state, &jar, &headers, &body).await?;
    state
        .service
        .claim_as(&v, &id)
        .await
        .map_err(WebError::with(&v))?;
    Ok(back(&headers, &id).into_response())
}

/// A call's outcome, from the inbox's two taps.
#[derive(Deserialize, ToSchema)]
pub struct CallForm {
    pub csrf: String,
    /// reached, no_answer, voicemail, won or lost.
    pub outcome: String,
    pub note: Option<String>,
}

/// Logs a call the viewer made: the first stops the SLA clock; won and lost close the lead.
#[utoipa::path(post, path = "/app/leads/{id}/calls", tag = "app",
    params(("id" = String, Path)),
    request_body(content = CallForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Logged: back to the inbox"),
              (status = 400, description = "Not a lead id, or an outcome that is not one", content_type = "text/html"),
              (status = 403, description = "Not signed in, not a rep, another team's lead, or a bad CSRF token", content_type = "text/html"),
              (status = 404, description = "No such lead", content_type = "text/html")))]
pub async fn log_call(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let v = poster(&state, &jar, &headers, &body).await?;
    let f: CallForm = form(&body)?;
    state
        .service
        .log_call(&v, &id, &f.outcome, f.note)
        .await
        .map_err(WebError::with(&v))?;
    Ok(back(&headers, &id).into_response())
}

/// Away or back.
#[derive(Deserialize, ToSchema)]
pub struct AwayForm {
    pub csrf: String,
    /// `true`: routing skips the viewer from the next lead on; `false`: back.
    pub away: bool,
}

/// Sets the viewer away or back.
#[utoipa::path(post, path = "/app/away", tag = "app",
    request_body(content = AwayForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Set: back to the inbox"),
              (status = 400, description = "The form does not parse", content_type = "text/html"),
              (status = 403, description = "Not signed in, not a rep, or a bad CSRF token", content_type = "text/html")))]
pub async fn away(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let v = poster(&state, &jar, &headers, &body).await?;
    let f: AwayForm = form(&body)?;
    state
        .service
        .set_own_away(&v, f.away)
        .await
        .map_err(WebError::with(&v))?;
    Ok(Redirect::to("/app/inbox").into_response())
}

/// The board's period.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct Period {
    /// First day (`2026-11-01`, in the business's time zone) or an RFC 3339 time; default 30 days before `to`.
    pub from: Option<String>,
    /// Last day included, or an RFC 3339 time (excluded); default now.
    pub to: Option<String>,
}

/// The signed-in viewer and their board for the period.
async fn board_of(
    state: &AppState,
    jar: &CookieJar,
    p: &Period,
) -> Result<(Viewer, crate::inbox::Board), WebError> {
    let v = viewer(state, jar).await?;
    let board = state
        .service
        .board(&v, p.from.as_deref(), p.to.as_deref())
        .await
        .map_err(WebError::with(&v))?;
    Ok((v, board))
}

/// A manager's team board: reps' state, unclaimed leads (past their SLA first) with a hand-off, and speed to
/// lead over a period as a chart and tables.
#[utoipa::path(get, path = "/app/board", tag = "app", params(Period),
    responses((status = 200, description = "The board", content_type = "text/html"),
              (status = 303, description = "Not signed in: to the sign-in page"),
              (status = 400, description = "A period bound that cannot be read", content_type = "text/html"),
              (status = 403, description = "Not a manager or admin", content_type = "text/html")))]
pub async fn board(
    State(state): State<AppState>,
    jar: CookieJar,
    axum::extract::Query(p): axum::extract::Query<Period>,
) -> Result<Response, WebError> {
    let (v, board) = board_of(&state, &jar, &p).await?;
    Ok(Html(crate::web::board::board_page(&v, &board)).into_response())
}

/// The board's speed-to-lead report as CSV (one row overall, then per source, rep, team, week and hour of
/// week), for the same period and the same teams.
#[utoipa::path(get, path = "/app/board.csv", tag = "app", params(Period),
    responses((status = 200, description = "The report", content_type = "text/csv"),
              (status = 303, description = "Not signed in: to the sign-in page"),
              (status = 400, description = "A period bound that cannot be read", content_type = "text/html"),
              (status = 403, description = "Not a manager or admin", content_type = "text/html")))]
pub async fn board_csv(
    State(state): State<AppState>,
    jar: CookieJar,
    axum::extract::Query(p): axum::extract::Query<Period>,
) -> Result<Response, WebError> {
    let (_, board) = board_of(&state, &jar, &p).await?;
    let name = format!(
        "attachment; filename=\"speed-to-lead-{}-{}.csv\"",
        board.from, board.to
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        crate::sales::report_csv(&board.report),
    )
        .into_response())
}

/// The hand-off form.
#[derive(Deserialize, ToSchema)]
pub struct ReassignForm {
    pub csrf: String,
    /// The rep to hand the lead to (a member of its team).
    pub rep: String,
}

/// A manager hands a lead to a rep of its team; the rep is alerted.
#[utoipa::path(post, path = "/app/leads/{id}/reassign", tag = "app",
    params(("id" = String, Path)),
    request_body(content = ReassignForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Reassigned: back to the board"),
              (status = 400, description = "Not a lead id, or not a rep of its team", content_type = "text/html"),
              (status = 403, description = "Not signed in, not a manager of its team, or a bad CSRF token", content_type = "text/html"),
              (status = 404, description = "No such lead", content_type = "text/html")))]
pub async fn reassign(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let v = poster(&state, &jar, &headers, &body).await?;
    let f: ReassignForm = form(&body)?;
    state
        .service
        .reassign_as(&v, &id, &f.rep)
        .await
        .map_err(WebError::with(&v))?;
    Ok(Redirect::to("/app/board").into_response())
}

/// Live updates for an open inbox (server-sent events): when leads arrive or change, a `cards` event with the
/// viewer's cards of those they may see (`[{id, section, html}]`, `section` being `new`, `working` or `gone`),
/// which the page puts in place; a `leads` event when it should draw itself again instead (a change it
/// missed, or too many at once).
#[utoipa::path(get, path = "/app/live", tag = "app",
    responses((status = 200, description = "An event stream", content_type = "text/event-stream"),
              (status = 303, description = "Not signed in: to the sign-in page")))]
pub async fn live(State(state): State<AppState>, jar: CookieJar) -> Result<Response, WebError> {
    let v = viewer(&state, &jar).await?;
    let service = state.service.clone();
    let rx = service
        .live
        .subscribe(&service.store, v.session.workspace_id);
    let seen = rx.borrow().version;
    let closed = Box::pin(service.live.closed());
    let zone = service.zone_of(&v.user);
    let stream =
        futures_util::stream::unfold((rx, closed, seen), move |(mut rx, mut closed, mut seen)| {
            let (v, service) = (v.clone(), service.clone());
            async move {
                loop {
                    tokio::select! {
                        changed = rx.changed() => changed.ok()?,
                        _ = &mut closed => return None,
                    }
                    let change = rx.borrow_and_update().clone();
                    let skipped = change.version != seen + 1;
                    seen = change.version;
                    let redraw = Event::default().event("leads").data(seen.to_string());
                    let event = match (&change.leads, skipped) {
                        (Some(leads), false) => {
                            let visible: Vec<_> =
                                leads.iter().filter(|l| v.user.may_see(l)).collect();
                            if visible.is_empty() {
                                continue;
                            }
                            let cards = change.drawn_for(&v.user.id, || {
                                if visible.len() > live::CARDS {
                                    return None;
                                }
                                let now = service.clock.now();
                                let anyone = Viewer {
                                    csrf: live::CSRF_PLACEHOLDER.into(),
                                    ..v.clone()
                                };
                                let cards: Vec<inbox::LiveCard> = visible
                                    .iter()
                                    .map(|l| inbox::live_card(l, &anyone, zone, now))
                                    .collect();
                                serde_json::to_string(&cards).ok()
                            });
                            match cards {
                                Some(json) => Event::default()
                                    .event("cards")
                                    .data(json.replace(live::CSRF_PLACEHOLDER, &v.csrf)),
                                None => redraw,
                            }
                        }
                        _ => redraw,
                    };
                    return Some((Ok::<_, std::convert::Infallible>(event), (rx, closed, seen)));
                }
            }
        });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Everyone signed in now (admins).
#[utoipa::path(get, path = "/app/sessions", tag = "app",
    responses((status = 200, description = "The live sessions", content_type = "text/html"),
              (status = 303, description = "Not signed in: to the sign-in page"),
              (status = 403, description = "Not an admin", content_type = "text/html")))]
pub async fn sessions(State(state): State<AppState>, jar: CookieJar) -> Result<Response, WebError> {
    let v = viewer(&state, &jar).await?;
    let list = state
        .service
        .sessions(&v)
        .await
        .map_err(WebError::with(&v))?;
    let users = state.service.users();
    Ok(Html(sign_in::sessions_page(&v, &list, users.all())).into_response())
}

/// Ends someone's session at once (admins).
#[utoipa::path(post, path = "/app/sessions/{id}/revoke", tag = "app",
    params(("id" = String, Path)),
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Revoked: back to the sessions"),
              (status = 403, description = "Not signed in, not an admin, or a bad CSRF token", content_type = "text/html"),
              (status = 404, description = "No such session", content_type = "text/html")))]
pub async fn revoke_session(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let v = poster(&state, &jar, &headers, &body).await?;
    state
        .service
        .revoke_session(&v, &id)
        .await
        .map_err(WebError::with(&v))?;
    Ok(Redirect::to("/app/sessions").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_is_same_origin_only_when_its_origin_names_this_host() {
        let cases = [
            (None, "127.0.0.1:8080", true),
            (Some("http://127.0.0.1:8080"), "127.0.0.1:8080", true),
            (
                Some("https://pronto.example.com"),
                "pronto.example.com",
                true,
            ),
            (Some("https://evil.example"), "pronto.example.com", false),
            (Some("http://127.0.0.1:8081"), "127.0.0.1:8080", false),
            (Some("null"), "127.0.0.1:8080", false),
        ];
        for (origin, host, same) in cases {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, host.parse().unwrap());
            if let Some(o) = origin {
                h.insert(header::ORIGIN, o.parse().unwrap());
            }
            assert_eq!(same_origin(&h), same, "{origin:?} to {host}");
        }
    }
}
