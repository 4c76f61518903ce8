//! The OpenAPI document's frame and the wire formats of bodies that handlers read as raw bytes (they are
//! parsed by the domain crate, which names bad fields better than a derive could).

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pronto",
        description = "Answer every online lead and abandoned cart within minutes. Ingestion speaks the Segment \
                       HTTP Tracking API, so the official Segment and RudderStack libraries work unchanged.",
        license(name = "AGPL-3.0-only")
    ),
    modifiers(&Security),
    tags(
        (name = "ingest", description = "Events in: Segment tracking API, leads, HTML forms (write key)"),
        (name = "admin", description = "Contacts and their timelines (admin key)"),
        (name = "shops", description = "Shopify and WooCommerce webhooks (signed by the shop), and the deliveries that could not be mapped (admin key)"),
        (name = "app", description = "The web app for reps, managers and admins: HTML pages and forms under /app, signed in by a session cookie; every form post carries its CSRF token"),
        (name = "ops", description = "Health, readiness, metrics, this document")
    ),
    components(schemas(SegmentMessage, Batch, Success, LeadRequest, crate::error::ErrorBody, crate::error::FieldErrorBody))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "writeKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "The write key as the Basic username, empty password (as Segment).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "adminKey",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "inboundSignature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "webhook-signature",
                "A Standard Webhooks signature made with [inbound] email_secret: `v1,<base64 HMAC-SHA256 of \
                 \"{webhook-id}.{webhook-timestamp}.{body}\">`, sent with the `webhook-id` and `webhook-timestamp` \
                 headers; the timestamp must be within 5 minutes.",
            ))),
        );
        for (name, header, secret) in [
            ("shopifySignature", "X-Shopify-Hmac-Sha256", "Shopify"),
            ("wooSignature", "X-WC-Webhook-Signature", "WooCommerce"),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    header,
                    &format!(
                        "The base64 HMAC-SHA256 of the raw body under the {secret} webhook secret of the \
                         `[[shop]]` the request names."
                    ),
                ))),
            );
        }
        components.add_security_scheme(
            "sendgridSignature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Twilio-Email-Event-Webhook-Signature",
                "SendGrid's base64 DER ECDSA P-256 signature of `X-Twilio-Email-Event-Webhook-Timestamp` followed \
                 by the raw body, checked with [inbound] sendgrid_public_key.",
            ))),
        );
        components.add_security_scheme(
            "inboundBasic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "[inbound] email_secret as the Basic password (any username), as inbound-mail \
                         services put credentials in the webhook URL.",
                    ))
                    .build(),
            ),
        );
    }
}

/// A Segment tracking-API message. Which fields are required depends on the type: track needs `event`;
/// alias needs `previousId` and `userId`; group needs `groupId`; all but alias need `userId` or `anonymousId`.
/// Anything else is kept as sent.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentMessage {
    /// In a batch: identify, track, page, screen, group or alias. Single endpoints imply it.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The client's id for the message; a repeat is a no-op that answers as the first.
    pub message_id: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// track: the event name, e.g. `Checkout Started`, `Order Completed`.
    pub event: Option<String>,
    /// page/screen: the page name.
    pub name: Option<String>,
    pub properties: Option<Map<String, Value>>,
    pub traits: Option<Map<String, Value>>,
    pub context: Option<Map<String, Value>>,
    pub integrations: Option<Map<String, Value>>,
    /// ISO 8601 with offset: when it happened, per the client.
    pub timestamp: Option<String>,
    pub original_timestamp: Option<String>,
    pub sent_at: Option<String>,
    /// alias: the id being linked (usually the anonymous id).
    pub previous_id: Option<String>,
    /// group: the account id.
    pub group_id: Option<String>,
    /// The write key, for clients that cannot send HTTP Basic auth.
    pub write_key: Option<String>,
}

/// A batch of messages, at most 500 KB, each at most 32 KB. All or nothing: one invalid message refuses the
/// batch with a 400 that lists every bad message by index; nothing of it is stored.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    pub batch: Vec<SegmentMessage>,
    pub sent_at: Option<String>,
    pub write_key: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Success {
    /// Always true: the message is durably committed.
    pub success: bool,
}

impl Success {
    pub const OK: Success = Success { success: true };
}

/// A lead. An email or a phone is required; any field not listed is kept with the lead.
#[derive(Serialize, ToSchema)]
pub struct LeadRequest {
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// As typed; without `+country` it is read in `ingest.default_region`.
    pub phone: Option<String>,
    pub company: Option<String>,
    pub message: Option<String>,
    /// Where the lead came from (`ads`, `partner`, …).
    pub source: Option<String>,
}
