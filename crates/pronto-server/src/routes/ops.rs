//! Health, readiness, metrics and the OpenAPI document.

use crate::error::ErrorBody;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz(State(s): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        backend: s.service.backend(),
    })
}

/// The longest `/readyz` takes: a load balancer's health check must get an answer even when the database
/// does not give one.
pub const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// The store answers queries and accepts writes (after a failed commit, such as a full disk, a probe write
/// must commit again); load balancers route here. Answers within a second.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Health),
              (status = 503, description = "Not ready: the database does not answer, or writes fail (the message says why)", body = ErrorBody,
               headers(("Retry-After" = u64, description = "Seconds to wait before asking again")))))]
pub async fn readyz(State(s): State<AppState>) -> axum::response::Response {
    match s.service.ready(READY_WITHIN).await {
        Ok(()) => Json(Health {
            status: "ready",
            backend: s.service.backend(),
        })
        .into_response(),
        Err(why) => crate::error::ApiError::NotReady(why).into_response(),
    }
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.openapi.to_string(),
    )
}

/// The app (`/app`): everyone signs in there, admins with the admin key. (This was an admin-key page of flow
/// counts and messages; the app's recovery and messages pages show both, and the key never stays in a page.)
#[utoipa::path(get, path = "/", tag = "ops",
    responses((status = 303, description = "To the app, `/app`")))]
pub async fn root() -> axum::response::Redirect {
    axum::response::Redirect::to("/app")
}
