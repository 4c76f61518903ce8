//! The workspace's API keys (list, create — shown once —, revoke) and the rows set aside as unreadable.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Admin, Body};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use pronto_domain::Invalid;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A key as listed: never the key itself (it is stored only as a hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// The start of the key's hash: names the key without revealing it.
    pub id: String,
    #[schema(value_type = String, example = "write")]
    pub kind: &'static str,
    /// generated (first start), env (PRONTO_WRITE_KEY / PRONTO_ADMIN_KEY), api (`pronto keys create` or this
    /// API) or legacy.
    #[schema(value_type = String)]
    pub origin: &'static str,
    pub label: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<pronto_store::ApiKey> for KeyView {
    fn from(k: pronto_store::ApiKey) -> Self {
        Self {
            id: k.id,
            kind: k.kind.as_str(),
            origin: k.origin.as_str(),
            label: k.label,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    /// write or admin.
    #[schema(value_type = String, example = "write")]
    pub kind: String,
    /// Who or what uses it.
    pub label: Option<String>,
}

/// A created key: the only time the key itself is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewKey {
    pub key: String,
    #[serde(flatten)]
    pub info: KeyView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantineList {
    /// Rows a worker could not read, set aside once with the reason (their timers cleared).
    pub rows: Vec<pronto_store::Quarantined>,
}

/// Every key of the workspace, oldest first, revoked ones too.
#[utoipa::path(get, path = "/v1/admin/keys", tag = "admin",
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn list_keys(
    State(s): State<AppState>,
    Admin(ws): Admin,
) -> Result<Json<KeyList>, ApiError> {
    let keys = s.service.keys(ws).await?;
    Ok(Json(KeyList {
        keys: keys.into_iter().map(KeyView::from).collect(),
    }))
}

/// Creates a key; the answer is the only time it is shown.
#[utoipa::path(post, path = "/v1/admin/keys", tag = "admin", request_body = NewKeyRequest,
    responses((status = 201, body = NewKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn create_key(
    State(s): State<AppState>,
    Admin(ws): Admin,
    body: Body,
) -> Result<(StatusCode, Json<NewKey>), ApiError> {
    let req: NewKeyRequest = super::sales::json_body(&body.0)?;
    let kind = req
        .kind
        .parse()
        .map_err(|m: String| Invalid::one("kind", m))?;
    if let Some(l) = &req.label {
        if l.chars().count() > 200 {
            return Err(Invalid::one("label", "must be at most 200 characters").into());
        }
    }
    let (key, info) = s.service.create_key(ws, kind, req.label.as_deref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewKey {
            key,
            info: info.into(),
        }),
    ))
}

/// Revokes a key: refused at once by this process, by every other within a second. The workspace's last live
/// admin key cannot be revoked here (`pronto keys revoke` can, from the machine).
#[utoipa::path(delete, path = "/v1/admin/keys/{id}", tag = "admin",
    params(("id" = String, Path, description = "A key id from GET /v1/admin/keys")),
    responses((status = 200, body = KeyView), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn revoke_key(
    State(s): State<AppState>,
    Admin(ws): Admin,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    Ok(Json(s.service.revoke_key(ws, &id).await?.into()))
}

/// Rows set aside because a worker could not read them (corrupt, or written by a newer version): each once,
/// with the reason; their timers are cleared so no batch meets them again.
#[utoipa::path(get, path = "/v1/admin/quarantine", tag = "admin",
    responses((status = 200, body = QuarantineList), (status = 401, body = ErrorBody)),
    security(("adminKey" = [])))]
pub async fn quarantine(
    State(s): State<AppState>,
    Admin(ws): Admin,
) -> Result<Json<QuarantineList>, ApiError> {
    Ok(Json(QuarantineList {
        rows: s.service.quarantined(ws).await?,
    }))
}
