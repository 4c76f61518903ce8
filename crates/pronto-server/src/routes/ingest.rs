//! The Segment HTTP Tracking API: `/v1/{identify,track,page,screen,group,alias,batch}`.
//! Answers `200 {"success": true}` only after the message is committed.

use super::docs::{Batch, SegmentMessage, Success};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Body, IdempotencyKey, WriteKey};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use pronto_domain::EventType;

macro_rules! single_message_endpoint {
    ($name:ident, $path:literal, $kind:expr, $summary:literal) => {
        #[doc = $summary]
        #[utoipa::path(post, path = $path, tag = "ingest", request_body = SegmentMessage,
            params(("Idempotency-Key" = Option<String>, Header, description = "Stands in for a missing messageId")),
            responses(
                (status = 200, description = "Committed (or a repeat of a committed message)", body = Success),
                (status = 400, description = "A field is missing or has the wrong type", body = ErrorBody),
                (status = 401, description = "Missing or unknown write key", body = ErrorBody),
                (status = 413, description = "Over the per-event limit", body = ErrorBody),
                (status = 503, description = "Storage unavailable; retry", body = ErrorBody)
            ),
            security(("writeKey" = [])))]
        pub async fn $name(
            State(s): State<AppState>,
            key: WriteKey,
            idem: IdempotencyKey,
            body: Body,
        ) -> Result<Json<Success>, ApiError> {
            s.service.segment_one($kind, key.0.as_deref(), idem.0, &body.0).await?;
            Ok(Json(Success::OK))
        }
    };
}

single_message_endpoint!(
    identify,
    "/v1/identify",
    EventType::Identify,
    "Who a user is: ties ids, email and phone to one contact and sets traits."
);
single_message_endpoint!(track, "/v1/track", EventType::Track, "Something a user did; e-commerce spec names (`Checkout Started`, `Order Completed`, …) are understood.");
single_message_endpoint!(page, "/v1/page", EventType::Page, "A page view.");
single_message_endpoint!(
    screen,
    "/v1/screen",
    EventType::Screen,
    "A mobile screen view."
);
single_message_endpoint!(
    group,
    "/v1/group",
    EventType::Group,
    "The account a user belongs to."
);
single_message_endpoint!(
    alias,
    "/v1/alias",
    EventType::Alias,
    "Links a previous id (usually the anonymous id) to a user id; their contacts merge."
);

/// Many messages in one request, all or nothing.
#[utoipa::path(post, path = "/v1/batch", tag = "ingest", request_body = Batch,
    responses(
        (status = 200, description = "Every message committed", body = Success),
        (status = 400, description = "Nothing stored; `errors` names each bad message (`batch[3].userId`)", body = ErrorBody),
        (status = 401, description = "Missing or unknown write key", body = ErrorBody),
        (status = 413, description = "Batch or one message over its limit", body = ErrorBody),
        (status = 503, description = "Storage unavailable; retry", body = ErrorBody)
    ),
    security(("writeKey" = [])))]
pub async fn batch(
    State(s): State<AppState>,
    key: WriteKey,
    body: Body,
) -> Result<Json<Success>, ApiError> {
    s.service.segment_batch(key.0.as_deref(), &body.0).await?;
    Ok(Json(Success::OK))
}
