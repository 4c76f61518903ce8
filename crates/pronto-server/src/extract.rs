//! Request extractors: keys, idempotency keys, client IPs and size-limited bodies. They only read the request;
//! deciding what a key is worth is the service's job.

use crate::error::ApiError;
pub use crate::service::InboundAuth;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_ENCODING};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use base64::Engine;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

/// The write key from `Authorization: Basic base64(key:)`, as the Segment libraries send it. Absent when the
/// header is missing or not Basic; the body's `writeKey` may still carry one.
pub struct WriteKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for WriteKey {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(basic_username(&parts.headers)))
    }
}

fn basic_username(headers: &HeaderMap) -> Option<String> {
    let (user, _) = basic_credentials(headers)?;
    (!user.is_empty()).then_some(user)
}

impl<S: Send + Sync> FromRequestParts<S> for InboundAuth {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let h = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(Self {
            webhook_id: h("webhook-id"),
            webhook_timestamp: h("webhook-timestamp"),
            webhook_signature: h("webhook-signature"),
            basic_password: basic_credentials(&parts.headers).map(|(_, p)| p),
        })
    }
}

/// The user and password of `Authorization: Basic …`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    Some(match text.split_once(':') {
        Some((u, p)) => (u.to_string(), p.to_string()),
        None => (text, String::new()),
    })
}

/// An admin request: `Authorization: Bearer <admin key>`, checked; carries the key's workspace.
pub struct Admin(pub pronto_domain::WorkspaceId);

impl<S> FromRequestParts<S> for Admin
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AppState::from_ref(state);
        let key = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, k)| k.trim());
        state.service.admin(key).await.map(Self)
    }
}

/// The `Idempotency-Key` header of native calls. Read here, judged by the service after the credential:
/// a request with a bad key and no credential is a 401, not a 400.
pub struct IdempotencyKey(pub Result<Option<String>, pronto_domain::Invalid>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(match parts.headers.get("idempotency-key") {
            None => Ok(None),
            Some(v) => match v.to_str() {
                Ok(s) if !s.trim().is_empty() && s.len() <= 256 => Ok(Some(s.trim().to_string())),
                _ => Err(pronto_domain::Invalid::one(
                    "Idempotency-Key",
                    "must be 1-256 visible ASCII characters",
                )),
            },
        }))
    }
}

/// The client's IP: the socket peer, or the first `X-Forwarded-For` hop when configured to trust it.
pub struct ClientIp(pub IpAddr);

impl<S> FromRequestParts<S> for ClientIp
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        let state = AppState::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if !state.settings.forms.trust_forwarded_for {
            return Ok(Self(peer));
        }
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
        Ok(Self(forwarded.unwrap_or(peer)))
    }
}

/// Refuses a request whose path or query carries a NUL (`%00`) before any handler or the store sees it:
/// 400 naming the parameter (or `path`), the same on every backend. See [`pronto_domain::check_text`].
pub async fn refuse_nul_in_uri(
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = req.uri();
    let path = percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy();
    if let Err(inv) = pronto_domain::check_text("path", &path) {
        return ApiError::from(inv).into_response();
    }
    if let Some(q) = uri.query() {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q).unwrap_or_default();
        for (k, v) in &pairs {
            if let Err(inv) = pronto_domain::check_text(k, k).and(pronto_domain::check_text(k, v)) {
                return ApiError::from(inv).into_response();
            }
        }
    }
    next.run(req).await
}

/// The request body, read up to the batch limit (413 beyond). Gzip bodies arrive here already inflated by
/// the decompression layer, so the limit also bounds what a small compressed body may expand to.
pub struct Body(pub Bytes);

impl<S> FromRequest<S> for Body
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = AppState::from_ref(state).settings.max_batch_bytes;
        if let Some(enc) = req.headers().get(CONTENT_ENCODING) {
            let enc = enc.to_str().unwrap_or("?").to_string();
            if !enc.eq_ignore_ascii_case("identity") {
                return Err(ApiError::UnsupportedEncoding(enc));
            }
        }
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if let Some(size) = declared.filter(|s| *s > limit) {
            return Err(ApiError::TooLarge {
                field: "body".into(),
                size,
                limit,
            });
        }
        match axum::body::to_bytes(req.into_body(), limit).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(e) if is_length_limit(&e) => Err(ApiError::TooLarge {
                field: "body".into(),
                size: limit + 1,
                limit,
            }),
            // The decompression layer could not inflate it: a corrupt or truncated gzip stream.
            Err(e) => Err(pronto_domain::Invalid::one(
                "body",
                format!("could not be read (a corrupt or truncated gzip body?): {e}"),
            )
            .into()),
        }
    }
}

/// Whether reading a body failed because it passed the size limit (not because it could not be read).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_basic_username_is_the_write_key() {
        let cases: &[(&str, Option<&str>)] = &[
            ("Basic d2s6", Some("wk")),         // "wk:"
            ("basic d2s=", Some("wk")),         // "wk" without colon
            ("Basic d2s6c2VjcmV0", Some("wk")), // "wk:secret"
            ("Basic Og==", None),               // ":"
            ("Bearer wk", None),
            ("Basic !!!", None),
        ];
        for (header, want) in cases {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_str(header).unwrap());
            assert_eq!(basic_username(&h).as_deref(), *want, "{header}");
        }
    }
}
