//! The API's errors and how each maps to a status and a JSON body that names the field.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pronto_domain::{BodyError, FieldError, Invalid};
use pronto_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("{field} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        field: String,
        size: usize,
        limit: usize,
    },
    #[error("missing or unknown write key (send it as the HTTP Basic username, or as `writeKey` in the body)")]
    BadWriteKey,
    #[error("missing or unknown admin key (send `Authorization: Bearer <admin key>`)")]
    BadAdminKey,
    #[error("the request's signature is missing or wrong")]
    BadSignature,
    #[error("inbound email must be signed with the inbound secret (Standard Webhooks headers) or send it as the HTTP Basic password; the write key is not accepted")]
    BadInboundAuth,
    /// A shop webhook that is not signed by a configured shop: `header` names what is missing or wrong.
    #[error("{message}")]
    ShopAuth {
        header: &'static str,
        message: String,
    },
    /// A sending service's event webhook that is not signed with its configured key (or none is configured).
    #[error("{message}")]
    ProviderAuth {
        provider: &'static str,
        message: String,
    },
    /// Signed in, but not allowed (another team's lead, an admin's page).
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state (the message says how).
    #[error("{0}")]
    Conflict(String),
    #[error("this Idempotency-Key was already used for a different request; use a new key for a new request")]
    IdempotencyReused,
    #[error("unsupported content encoding `{0}` (send identity or gzip)")]
    UnsupportedEncoding(String),
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// `/readyz`: why this process cannot take writes now.
    #[error("not ready: {0}")]
    NotReady(String),
}

/// What a 503 tells clients to wait before retrying.
pub const RETRY_AFTER_SECS: u64 = 2;

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Invalid(inv) => Self::Invalid(inv),
            BodyError::TooLarge { field, size, limit } => Self::TooLarge { field, size, limit },
        }
    }
}

/// Every error answer has this shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `invalid`, `too_large`, `unauthorized`, `not_found`, `rate_limited`, `unavailable`, …
    pub error: &'static str,
    /// A sentence for humans.
    pub message: String,
    /// For `invalid` and `too_large`: each field and what is wrong with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<FieldErrorBody>)]
    pub errors: Vec<FieldError>,
}

/// One field and what is wrong with it (`batch[3].userId`: "userId or anonymousId is required").
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldErrorBody {
    pub field: String,
    pub message: String,
}

impl ApiError {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            Self::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::BadWriteKey
            | Self::BadAdminKey
            | Self::BadInboundAuth
            | Self::ShopAuth { .. }
            | Self::ProviderAuth { .. } => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::BadSignature => (StatusCode::FORBIDDEN, "bad_signature"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::IdempotencyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::UnsupportedEncoding(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_encoding")
            }
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            // The store being down or closing is temporary: 503 tells SDKs to retry, which is safe (messageId).
            Self::Store(
                StoreError::Unavailable(_) | StoreError::Closed | StoreError::Database(_),
            ) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Self::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }

    pub fn body(&self) -> ErrorBody {
        let (_, code) = self.parts();
        let errors = match self {
            Self::Invalid(inv) => inv.0.clone(),
            Self::ShopAuth { header, message } => vec![FieldError::new(*header, message.clone())],
            Self::ProviderAuth { provider, message } => {
                vec![FieldError::new(
                    format!("{provider} signature"),
                    message.clone(),
                )]
            }
            Self::IdempotencyReused => vec![FieldError::new(
                "Idempotency-Key",
                "was used before with a different request body",
            )],
            Self::TooLarge { field, size, limit } => {
                vec![FieldError::new(
                    field.clone(),
                    format!("is {size} bytes, over the {limit}-byte limit"),
                )]
            }
            _ => Vec::new(),
        };
        let message = match self {
            Self::Store(_) => {
                "the database is unavailable; the request was not stored, retry it".to_string()
            }
            other => other.to_string(),
        };
        ErrorBody {
            error: code,
            message,
            errors,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.parts();
        // The store logs a failing database once, when it starts failing; the requests it fails are counted
        // in http_requests_total, not logged one by one.
        if let Self::Store(e) = &self {
            tracing::debug!(error = %e, "storage error");
        }
        let mut res = (status, Json(self.body())).into_response();
        let h = res.headers_mut();
        match &self {
            Self::BadWriteKey => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"pronto\""),
                );
            }
            Self::BadAdminKey => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"pronto\""),
                );
            }
            Self::BadInboundAuth => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"pronto inbound\""),
                );
            }
            // The unread rest of an oversized body is not drained; closing tells the client not to reuse the
            // connection for its next request.
            Self::TooLarge { .. } => {
                h.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Self::RateLimited { retry_after_secs } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            _ => {}
        }
        res
    }
}
