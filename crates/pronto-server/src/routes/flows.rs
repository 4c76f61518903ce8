//! Flows, runs and the outbox (admin key), config reload, and the unsubscribe link (signed, no key).

use super::pages::{escape, page};
use super::sales::{report_response, ReportQuery};
use crate::error::{ApiError, ErrorBody};
use crate::experiments::FlowsReport;
use crate::extract::{Admin, Body};
use crate::state::AppState;
pub use crate::views::{FlowView, LogView, MessageBody, RunResponse};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{Html, Response};
use axum::Json;
use pronto_domain::experiment::Promotion;
use pronto_domain::{Invalid, RunId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct FlowList {
    pub flows: Vec<FlowView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    pub messages: Vec<MessageBody>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Limit {
    /// Newest first, 1-1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Reloaded {
    /// The flows now running.
    pub flows: Vec<String>,
}

/// Every configured flow (and any with runs but no longer configured) with live counts.
#[utoipa::path(get, path = "/v1/flows", tag = "admin",
    responses((status = 200, body = FlowList), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn list_flows(
    State(s): State<AppState>,
    Admin(ws): Admin,
) -> Result<Json<FlowList>, ApiError> {
    Ok(Json(FlowList {
        flows: s.service.flows(ws).await?,
    }))
}

/// A run with each step taken and why.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "admin",
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, body = RunResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)
    ),
    security(("adminKey" = [])))]
pub async fn get_run(
    State(s): State<AppState>,
    Admin(ws): Admin,
    Path(id): Path<String>,
) -> Result<Json<RunResponse>, ApiError> {
    let id: RunId = id
        .parse()
        .map_err(|_| Invalid::one("id", "is not a run id (a UUID)"))?;
    Ok(Json(s.service.run(ws, id).await?.into()))
}

/// The outbox, newest first. With no SMTP server configured this is the dev mailbox: every email lands here
/// (transport `mailbox`) instead of leaving the machine. `to`, `flow` and `state` narrow it; `before` pages.
#[utoipa::path(get, path = "/v1/messages", tag = "admin",
    params(Limit, crate::views::MessageSearch),
    responses((status = 200, body = MessageList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn list_messages(
    State(s): State<AppState>,
    Admin(ws): Admin,
    limit: Result<Query<Limit>, QueryRejection>,
    search: Result<Query<crate::views::MessageSearch>, QueryRejection>,
) -> Result<Json<MessageList>, ApiError> {
    let Query(l) = limit.map_err(|e| Invalid::one("query", e.body_text()))?;
    let Query(search) = search.map_err(|e| Invalid::one("query", e.body_text()))?;
    let limit = super::contacts::page_size(l.limit, 1000)?;
    let messages = s.service.messages(ws, &search, limit).await?;
    Ok(Json(MessageList {
        messages: messages.into_iter().map(Into::into).collect(),
    }))
}

/// Re-reads the configuration file and swaps in its flows, templates and message settings (as SIGHUP does).
/// Runs in progress keep their key, snapshot and step position; see `pronto.example.toml`. An invalid file
/// changes nothing and answers 400 with every problem.
#[utoipa::path(post, path = "/v1/admin/reload", tag = "admin",
    responses((status = 200, body = Reloaded), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn reload(
    State(s): State<AppState>,
    Admin(_ws): Admin,
) -> Result<Json<Reloaded>, ApiError> {
    Ok(Json(Reloaded {
        flows: s.service.reload().await?,
    }))
}

/// The page behind an unsubscribe link: a button, because mail scanners follow links (a GET must not
/// unsubscribe anyone).
#[utoipa::path(get, path = "/u/{workspace}/{contact}/{token}", tag = "ingest",
    params(("workspace" = String, Path), ("contact" = String, Path), ("token" = String, Path)),
    responses((status = 200, description = "A confirmation page", content_type = "text/html"),
              (status = 404, description = "The link is not valid", content_type = "text/html")))]
pub async fn unsubscribe_page(
    State(s): State<AppState>,
    Path((ws, contact, token)): Path<(String, String, String)>,
) -> (axum::http::StatusCode, Html<String>) {
    match s.service.check_unsubscribe(&ws, &contact, &token) {
        Ok(_) => (
            axum::http::StatusCode::OK,
            Html(page(
                "Unsubscribe",
                &format!(
                    "<form method=\"post\" action=\"/u/{}/{}/{}\"><p>Stop receiving these emails?</p>\
                     <button class=\"primary\" type=\"submit\">Unsubscribe</button></form>",
                    escape(&ws),
                    escape(&contact),
                    escape(&token)
                ),
            )),
        ),
        Err(e) => (
            axum::http::StatusCode::NOT_FOUND,
            Html(page("Unsubscribe", &format!("<p>{}</p>", escape(&e.to_string())))),
        ),
    }
}

/// One-click unsubscribe (RFC 8058 `List-Unsubscribe-Post`, and the page's button): marks the contact
/// `unsubscribed`, which every flow's guard honours from then on.
#[utoipa::path(post, path = "/u/{workspace}/{contact}/{token}", tag = "ingest",
    params(("workspace" = String, Path), ("contact" = String, Path), ("token" = String, Path)),
    responses((status = 200, description = "Unsubscribed", content_type = "text/html"),
              (status = 404, description = "The link is not valid", content_type = "text/html")))]
pub async fn unsubscribe(
    State(s): State<AppState>,
    Path((ws, contact, token)): Path<(String, String, String)>,
) -> Result<Html<String>, (axum::http::StatusCode, Html<String>)> {
    s.service
        .unsubscribe(&ws, &contact, &token, "unsubscribe link")
        .await
        .map(|_| {
            Html(page(
                "Unsubscribed",
                "<p>You are unsubscribed. You will get no more of these emails.</p>",
            ))
        })
        .map_err(|e| {
            let text = match e.status() {
                axum::http::StatusCode::NOT_FOUND => "This link is not valid.",
                _ => "We could not record this just now; please try again in a minute.",
            };
            (
                e.status(),
                Html(page("Unsubscribe", &format!("<p>{text}</p>"))),
            )
        })
}

/// The variant to promote as its experiment's winner.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    pub flow: String,
    /// The experiment's id, as configured on the flow (a guard against promoting into a newer experiment).
    pub experiment: String,
    pub variant: String,
}

/// Promotes a variant as the winner of a flow's experiment: recorded, and applied on this node at once:
/// every new run not held out takes the variant, the holdout goes on measuring what the flow earns, runs
/// under way keep their group. Other nodes apply it at their next reload or start.
#[utoipa::path(post, path = "/v1/admin/experiments/promote", tag = "admin", request_body = PromoteRequest,
    responses((status = 200, body = Promotion), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn promote(
    State(s): State<AppState>,
    Admin(ws): Admin,
    body: Body,
) -> Result<Json<Promotion>, ApiError> {
    let r: PromoteRequest = super::sales::json_body(&body.0)?;
    Ok(Json(
        s.service
            .promote(ws, &r.flow, &r.experiment, &r.variant, "api")
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClickQuery {
    /// The address the link was made for (signed into its token).
    pub to: String,
}

/// A tracked link from a flow message: records the click and redirects (302) to `to`; an expired link
/// redirects to the root of `to`'s site and records nothing; a link not made for this message and address is
/// refused (404), so pronto is never an open redirect. A HEAD (a link scanner) is answered alike, uncounted.
#[utoipa::path(get, path = "/r/{workspace}/{message}/{token}", tag = "ingest",
    params(("workspace" = String, Path), ("message" = String, Path, description = "The message's outbox key"),
           ("token" = String, Path), ClickQuery),
    responses((status = 302, description = "Redirect to the link's address (`Location`)"),
              (status = 400, body = ErrorBody),
              (status = 404, description = "The link is not valid", content_type = "text/html")))]
pub async fn follow_click(
    State(s): State<AppState>,
    method: axum::http::Method,
    Path((ws, message, token)): Path<(String, String, String)>,
    q: Result<Query<ClickQuery>, QueryRejection>,
) -> Result<Response, Response> {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let Query(q) =
        q.map_err(|e| ApiError::from(Invalid::one("to", e.body_text())).into_response())?;
    // A HEAD is a link scanner checking the address, not a person: it is answered but not counted.
    let record = method != axum::http::Method::HEAD;
    match s
        .service
        .follow_click(&ws, &message, &token, &q.to, record)
        .await
    {
        Ok(to) => Ok((
            StatusCode::FOUND,
            [
                (header::LOCATION, to),
                (header::CACHE_CONTROL, "no-store".into()),
                (header::REFERRER_POLICY, "no-referrer".into()),
            ],
        )
            .into_response()),
        Err(ApiError::NotFound(_)) => Err((
            StatusCode::NOT_FOUND,
            Html(page("Link", "<p>This link is not valid.</p>")),
        )
            .into_response()),
        Err(e) => Err(e.into_response()),
    }
}

/// Flows' experiments for a period: per flow, experiment and group (the holdout, the treatment or each
/// variant) — runs entered, messaged, clicked and converted (by default an `Order Completed`/`Lead Won` meeting
/// the flow's exit rules within 7 days; a flow's `conversion` names its own events and window), the conversion rate with its Wilson 95% interval, revenue and revenue per run by
/// currency; each group's uplift over the control (the holdout, else the first variant) with a 95% asymptotic
/// confidence sequence (valid however often it is looked at), the incremental revenue, and a sample-ratio
/// mismatch check (chi-square, flagged below p = 0.001); and per step and group, runs messaged and clicked and
/// the conversions whose last touch (a click, else a send, within 5 days) was that step's message.
#[utoipa::path(get, path = "/v1/reports/flows", tag = "flows", params(ReportQuery),
    responses((status = 200, description = "The report: JSON by default, CSV with `format=csv`",
               content((FlowsReport = "application/json"), (String = "text/csv"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn flows_report(
    State(s): State<AppState>,
    Admin(ws): Admin,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| Invalid::one("query", e.body_text()))?;
    let report = s
        .service
        .flows_report(ws, q.from.as_deref(), q.to.as_deref())
        .await?;
    report_response(&report, q.format.as_deref(), crate::experiments::report_csv)
}
