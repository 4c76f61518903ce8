//! Segment tracking-API messages, parsed and checked.
//!
//! pronto accepts what the official Segment and RudderStack libraries send, unchanged: the six message types,
//! camelCase fields, ids as strings (or integers), ISO 8601 timestamps. A message is kept exactly as sent
//! ([`NewEvent::payload`]); the fields pronto acts on are read out and type-checked, and a message whose
//! documented fields have the wrong type is refused with the field's path, never half-stored.

use crate::ecommerce::EcommerceEvent;
use crate::error::Invalid;
use crate::fields::{Errors, Obj};
use crate::identity::{Email, Identity, Phone, Region};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::str::FromStr;

/// The Segment message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        Self::Identify,
        Self::Track,
        Self::Page,
        Self::Screen,
        Self::Group,
        Self::Alias,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identify => "identify",
            Self::Track => "track",
            Self::Page => "page",
            Self::Screen => "screen",
            Self::Group => "group",
            Self::Alias => "alias",
        }
    }
}

impl FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| "must be one of identify, track, page, screen, group, alias".to_string())
    }
}

/// Settings that parsing depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    /// The region phone numbers without a `+country` prefix are read in.
    pub region: Region,
}

/// A checked event, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The client's id for this message; a second message with the same id in a workspace is a retry and a no-op.
    /// `None` when the client sent none (then a retry cannot be recognised).
    pub message_id: Option<String>,
    /// Where `message_id` is unique. `None`: the Segment `messageId`, unique per workspace. `Some(scope)`: an
    /// `Idempotency-Key`, unique per endpoint and credential (`leads:<key id>`), so a key can never match a
    /// Segment message or another endpoint's key.
    pub dedupe_scope: Option<String>,
    /// For a keyed request: a hash of the request as sent, so that a key reused for a different request is
    /// refused instead of answering the first one's result.
    pub request_hash: Option<String>,
    pub kind: EventType,
    /// The `event` of a track, the `name` of a page or screen.
    pub name: Option<String>,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// Every identifier the message carries, normalised; these resolve it to one contact.
    pub identities: Vec<Identity>,
    /// Traits to merge into the contact (those of an identify, or of a lead). Other messages' `context.traits`
    /// are kept in the payload but do not change the contact.
    pub traits: Map<String, Value>,
    pub properties: Map<String, Value>,
    /// When the client says the event happened (`timestamp`, else `originalTimestamp`).
    pub timestamp: Option<DateTime<Utc>>,
    /// The message as the client sent it.
    pub payload: Value,
}

impl NewEvent {
    /// Makes `key` (an `Idempotency-Key`) this event's id within `scope` (the endpoint and the credential),
    /// when the message carries no `messageId` of its own; `request_hash` identifies the request, so a key
    /// reused for another request can be told from a retry.
    pub fn keyed(mut self, scope: String, key: String, request_hash: String) -> Self {
        if self.message_id.is_none() {
            self.message_id = Some(key);
            self.dedupe_scope = Some(scope);
            self.request_hash = Some(request_hash);
        }
        self
    }

    /// The typed e-commerce view of a track event, when its name is one of the spec's.
    pub fn ecommerce(&self) -> Option<EcommerceEvent> {
        match (self.kind, &self.name) {
            (EventType::Track, Some(name)) => {
                EcommerceEvent::parse(name, &self.properties).ok().flatten()
            }
            _ => None,
        }
    }
}

/// Parses one message. `kind` is given by the endpoint (`/v1/track` → track); in a batch it is `None` and the
/// message's own `type` decides. `fallback_message_id` (an `Idempotency-Key` header) is used when the message has
/// no `messageId`.
pub fn parse_message(
    mut value: Value,
    kind: Option<EventType>,
    fallback_message_id: Option<&str>,
    opts: ParseOptions,
) -> Result<NewEvent, Invalid> {
    // A write key sent in the body is a credential, not data: it is never stored or shown in timelines.
    if let Value::Object(o) = &mut value {
        o.remove("writeKey");
    }
    let Value::Object(obj) = &value else {
        return Err(Invalid::one("", "must be a JSON object"));
    };
    let mut e = Errors::default();
    crate::error::check_json(&value, "")?;
    let kind = match kind {
        Some(k) => Some(k),
        None => match e.str(obj, "type", "") {
            None => {
                e.push("type", "is required");
                None
            }
            Some(t) => match t.parse::<EventType>() {
                Ok(k) => Some(k),
                Err(msg) => {
                    e.push("type", msg);
                    None
                }
            },
        },
    };
    let message_id = e
        .id(obj, "messageId", "")
        .or_else(|| fallback_message_id.map(str::to_string));
    let user_id = e.id(obj, "userId", "");
    let anonymous_id = e.id(obj, "anonymousId", "");
    let context = e.object(obj, "context", "");
    e.object(obj, "integrations", "");
    let timestamp = e.timestamp(obj, "timestamp", "");
    let original = e.timestamp(obj, "originalTimestamp", "");
    e.timestamp(obj, "sentAt", "");
    let Some(kind) = kind else {
        return Err(Invalid(e.0));
    };

    let mut name = None;
    let mut traits = Map::new();
    let mut properties = Map::new();
    let mut identities = Vec::new();
    match kind {
        EventType::Alias => {
            let previous = e.id(obj, "previousId", "");
            if user_id.is_none() {
                e.push("userId", "is required for alias");
            }
            match previous {
                None => e.push("previousId", "is required for alias"),
                // The previous id is almost always the anonymous id the visitor had before signing in.
                Some(p) => identities.push(Identity::anonymous_id(p)),
            }
        }
        EventType::Group => {
            if e.id(obj, "groupId", "").is_none() && !e.0.iter().any(|f| f.field == "groupId") {
                e.push("groupId", "is required for group");
            }
            e.object(obj, "traits", "");
        }
        EventType::Identify => {
            traits = e.object(obj, "traits", "").cloned().unwrap_or_default();
        }
        EventType::Track => {
            match e.str(obj, "event", "") {
                None if !e.0.iter().any(|f| f.field == "event") => {
                    e.push("event", "is required for track")
                }
                Some(n) if n.chars().count() > 256 => {
                    e.push("event", "must be at most 256 characters")
                }
                n => name = n,
            }
            properties = e.object(obj, "properties", "").cloned().unwrap_or_default();
        }
        EventType::Page | EventType::Screen => {
            name = e.str(obj, "name", "");
            properties = e.object(obj, "properties", "").cloned().unwrap_or_default();
        }
    }
    if kind != EventType::Alias && user_id.is_none() && anonymous_id.is_none() {
        let already =
            e.0.iter()
                .any(|f| f.field == "userId" || f.field == "anonymousId");
        if !already {
            e.push("userId", "userId or anonymousId is required");
        }
    }
    if let (EventType::Track, Some(n)) = (kind, &name) {
        if let Err(inv) = EcommerceEvent::parse(n, &properties) {
            e.0.extend(inv.within("properties").0);
        }
    }
    if !e.0.is_empty() {
        return Err(Invalid(e.0));
    }

    if let Some(u) = &user_id {
        identities.insert(0, Identity::user_id(u.clone()));
    }
    if let Some(a) = &anonymous_id {
        identities.push(Identity::anonymous_id(a.clone()));
    }
    let context_traits = context
        .and_then(|c| c.get("traits"))
        .and_then(Value::as_object);
    let sources: [Option<&Obj>; 3] = [Some(&traits), context_traits, Some(&properties)];
    push_contact_points(&mut identities, &sources, opts.region);

    Ok(NewEvent {
        message_id,
        dedupe_scope: None,
        request_hash: None,
        kind,
        name,
        user_id,
        anonymous_id,
        identities,
        traits,
        properties,
        timestamp: timestamp.or(original),
        payload: value,
    })
}

/// Adds the first valid email and phone found in `sources` as identities. A malformed email or phone inside
/// analytics traits stays in the payload as sent but identifies nobody: refusing the whole event for it would
/// lose the event, and guessing would merge strangers.
pub(crate) fn push_contact_points(
    identities: &mut Vec<Identity>,
    sources: &[Option<&Obj>],
    region: Region,
) {
    let string = |key: &str| {
        sources
            .iter()
            .flatten()
            .filter_map(|o| o.get(key).and_then(Value::as_str))
            .collect::<Vec<_>>()
    };
    if let Some(email) = string("email")
        .into_iter()
        .find_map(|s| Email::parse(s).ok())
    {
        identities.push(Identity::email(&email));
    }
    if let Some(phone) = string("phone")
        .into_iter()
        .find_map(|s| Phone::parse(s, region).ok())
    {
        identities.push(Identity::phone(&phone));
    }
}

/// Why a request body was refused before any message in it was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// `field` names the part that is too large (`body`, `batch[3]`).
    #[error("{field} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        field: String,
        size: usize,
        limit: usize,
    },
}

fn json_value(bytes: &[u8], field: &str) -> Result<Value, Invalid> {
    serde_json::from_slice(bytes)
        .map_err(|e| Invalid::one(field, format!("is not valid JSON: {e}")))
}

/// The `writeKey` field of a request body, for clients that send the key there instead of in HTTP Basic auth.
pub fn body_write_key(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct KeyOnly {
        #[serde(rename = "writeKey")]
        write_key: Option<Value>,
    }
    let parsed: KeyOnly = serde_json::from_slice(body).ok()?;
    parsed
        .write_key
        .and_then(|v| v.as_str().map(str::to_string))
}

/// Parses the body of a single-message endpoint (`/v1/track`, …).
pub fn parse_single(
    body: &[u8],
    kind: EventType,
    idempotency_key: Option<&str>,
    max_event_bytes: usize,
    opts: ParseOptions,
) -> Result<NewEvent, BodyError> {
    if body.len() > max_event_bytes {
        return Err(BodyError::TooLarge {
            field: "body".into(),
            size: body.len(),
            limit: max_event_bytes,
        });
    }
    let value = json_value(body, "body")?;
    Ok(parse_message(value, Some(kind), idempotency_key, opts)?)
}

/// Parses a `/v1/batch` body, all or nothing: one bad message refuses the whole batch, and the error lists every
/// bad message by index (`batch[3].userId`), so the client can fix and resend; the good ones' `messageId`s make
/// that resend safe.
pub fn parse_batch(
    body: &[u8],
    max_event_bytes: usize,
    opts: ParseOptions,
) -> Result<Vec<NewEvent>, BodyError> {
    let top: std::collections::BTreeMap<String, &serde_json::value::RawValue> =
        serde_json::from_slice(body).map_err(|e| {
            Invalid::one(
                "body",
                format!("must be a JSON object with a `batch` array: {e}"),
            )
        })?;
    let raw = top
        .get("batch")
        .ok_or_else(|| Invalid::one("batch", "is required"))?;
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(raw.get())
        .map_err(|_| Invalid::one("batch", "must be an array of messages"))?;
    if items.is_empty() {
        return Err(Invalid::one("batch", "must contain at least one message").into());
    }
    let mut events = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("batch[{i}]");
        let size = item.get().len();
        if size > max_event_bytes {
            return Err(BodyError::TooLarge {
                field,
                size,
                limit: max_event_bytes,
            });
        }
        let parsed =
            json_value(item.get().as_bytes(), "").and_then(|v| parse_message(v, None, None, opts));
        match parsed {
            Ok(ev) => events.push(ev),
            Err(inv) => errors.extend(inv.within(&field).0),
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(Invalid(errors).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKind;
    use serde_json::json;

    fn parse(v: Value, kind: Option<EventType>) -> Result<NewEvent, Invalid> {
        parse_message(v, kind, None, ParseOptions::default())
    }

    fn fields(r: Result<NewEvent, Invalid>) -> Vec<String> {
        r.expect_err("should be refused")
            .0
            .into_iter()
            .map(|f| f.field)
            .collect()
    }

    #[test]
    fn a_track_from_the_node_library_is_read_with_its_ids_and_timestamps() {
        let ev = parse(
            json!({
                "type": "track", "event": "Checkout Started", "userId": "u1", "anonymousId": "a1",
                "messageId": "node-next-1", "timestamp": "2026-11-24T10:00:00.000Z",
                "properties": {"checkout_id": "c1", "value": 30, "currency": "USD",
                               "products": [{"product_id": "p1", "price": "10.50", "quantity": 2}]},
                "context": {"library": {"name": "@segment/analytics-node", "version": "3.1.0"},
                            "traits": {"email": "Ann@Example.com"}},
                "integrations": {}, "_metadata": {"jsRuntime": "node"}
            }),
            None,
        )
        .unwrap();
        assert_eq!(ev.kind, EventType::Track);
        assert_eq!(ev.name.as_deref(), Some("Checkout Started"));
        assert_eq!(ev.message_id.as_deref(), Some("node-next-1"));
        assert_eq!(
            ev.timestamp.unwrap().to_rfc3339(),
            "2026-11-24T10:00:00+00:00"
        );
        let kinds: Vec<_> = ev
            .identities
            .iter()
            .map(|i| (i.kind, i.value.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (IdentityKind::UserId, "u1"),
                (IdentityKind::AnonymousId, "a1"),
                (IdentityKind::Email, "ann@example.com")
            ]
        );
        assert!(
            ev.traits.is_empty(),
            "context traits do not change the contact"
        );
        assert!(matches!(
            ev.ecommerce(),
            Some(EcommerceEvent::CheckoutStarted(_))
        ));
    }

    #[test]
    fn each_malformed_message_is_refused_naming_the_field() {
        let cases: Vec<(Value, Option<EventType>, &[&str])> = vec![
            (json!([1, 2]), None, &[""]),
            (json!({"userId": "u"}), None, &["type"]),
            (json!({"type": "click", "userId": "u"}), None, &["type"]),
            (json!({"event": "X"}), Some(EventType::Track), &["userId"]),
            (json!({"userId": "u"}), Some(EventType::Track), &["event"]),
            (
                json!({"userId": "u", "event": 5}),
                Some(EventType::Track),
                &["event"],
            ),
            (
                json!({"userId": {"a": 1}, "event": "X"}),
                Some(EventType::Track),
                &["userId"],
            ),
            (
                json!({"userId": 1.5, "event": "X"}),
                Some(EventType::Track),
                &["userId"],
            ),
            (
                json!({"userId": "u", "event": "X", "properties": []}),
                Some(EventType::Track),
                &["properties"],
            ),
            (
                json!({"userId": "u", "event": "X", "timestamp": "yesterday"}),
                Some(EventType::Track),
                &["timestamp"],
            ),
            (
                json!({"userId": "u", "traits": "x"}),
                Some(EventType::Identify),
                &["traits"],
            ),
            (
                json!({"userId": "u", "context": 3}),
                Some(EventType::Page),
                &["context"],
            ),
            (json!({"userId": "u"}), Some(EventType::Group), &["groupId"]),
            (
                json!({"userId": "u"}),
                Some(EventType::Alias),
                &["previousId"],
            ),
            (
                json!({"previousId": "a"}),
                Some(EventType::Alias),
                &["userId"],
            ),
            (
                json!({"userId": "u", "event": "Order Completed", "properties": {"products": [{"price": "cheap"}]}}),
                Some(EventType::Track),
                &["properties.products[0].price"],
            ),
            (
                json!({"userId": "u", "event": "Checkout Started", "properties": {"value": "lots", "products": {}}}),
                Some(EventType::Track),
                &["properties.value", "properties.products"],
            ),
        ];
        for (input, kind, want) in cases {
            assert_eq!(fields(parse(input.clone(), kind)), *want, "input {input}");
        }
    }

    #[test]
    fn a_custom_event_is_kept_exactly_as_sent() {
        let input = json!({"type": "track", "event": "Quote Requested", "anonymousId": "a",
                           "properties": {"nested": {"deep": [1, "two", null]}, "weird key": true}});
        let ev = parse(input.clone(), None).unwrap();
        assert_eq!(ev.payload, input);
        assert_eq!(ev.properties["nested"]["deep"][1], "two");
        assert!(ev.ecommerce().is_none());
    }

    #[test]
    fn an_identify_carries_traits_and_contact_points_but_bad_ones_identify_nobody() {
        let ev = parse(
            json!({"userId": 42, "traits": {"email": "not-an-email", "phone": "+1 415 555 2671", "name": "Ann"}}),
            Some(EventType::Identify),
        )
        .unwrap();
        assert_eq!(ev.user_id.as_deref(), Some("42"));
        assert_eq!(ev.traits["name"], "Ann");
        let kinds: Vec<_> = ev.identities.iter().map(|i| i.kind).collect();
        assert_eq!(kinds, vec![IdentityKind::UserId, IdentityKind::Phone]);
    }

    #[test]
    fn an_alias_links_the_previous_anonymous_id_to_the_user() {
        let ev = parse(
            json!({"previousId": "anon-1", "userId": "u-1"}),
            Some(EventType::Alias),
        )
        .unwrap();
        assert_eq!(
            ev.identities,
            vec![Identity::user_id("u-1"), Identity::anonymous_id("anon-1")]
        );
    }

    #[test]
    fn an_idempotency_key_stands_in_for_a_missing_message_id() {
        let ev = parse_message(
            json!({"userId": "u", "event": "X"}),
            Some(EventType::Track),
            Some("key-1"),
            ParseOptions::default(),
        )
        .unwrap();
        assert_eq!(ev.message_id.as_deref(), Some("key-1"));
    }

    #[test]
    fn a_batch_is_refused_whole_naming_each_bad_message_by_index() {
        let body = br#"{"batch": [
            {"type": "track", "event": "A", "userId": "u"},
            {"type": "track", "userId": "u"},
            {"type": "identify"},
            {"type": "page", "anonymousId": "a"}
        ], "sentAt": "2026-11-24T10:00:00Z"}"#;
        let err = parse_batch(body, 32 * 1024, ParseOptions::default()).unwrap_err();
        let BodyError::Invalid(inv) = err else {
            panic!("{err:?}")
        };
        let fields: Vec<_> = inv.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, vec!["batch[1].event", "batch[2].userId"]);
    }

    #[test]
    fn bodies_that_are_not_batches_or_too_large_are_named() {
        let cases: Vec<(&[u8], &str)> = vec![
            (b"not json", "body"),
            (b"[]", "body"),
            (br#"{"batch": 3}"#, "batch"),
            (br#"{"sentAt": "x"}"#, "batch"),
            (br#"{"batch": []}"#, "batch"),
            (br#"{"batch": [{"type": "track", "event": "X", "userId": "u", "properties": {"pad": "0123456789"}}]}"#, "batch[0]"),
        ];
        for (body, want) in cases {
            let got = match parse_batch(body, 80, ParseOptions::default()).unwrap_err() {
                BodyError::Invalid(inv) => inv.0[0].field.clone(),
                BodyError::TooLarge { field, .. } => field,
            };
            assert_eq!(got, want, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn a_write_key_may_travel_in_the_body() {
        assert_eq!(
            body_write_key(br#"{"writeKey": "wk", "batch": []}"#).as_deref(),
            Some("wk")
        );
        assert_eq!(body_write_key(br#"{"writeKey": 5}"#), None);
        assert_eq!(body_write_key(b"garbage"), None);
    }

    proptest::proptest! {
        #[test]
        fn no_json_input_makes_the_parser_panic(s in ".{0,200}") {
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                let _ = parse(v, None);
            }
            let _ = parse(json!({"type": "track", "event": s.clone(), "userId": s.clone(),
                                 "properties": {"products": [{"price": s.clone(), "quantity": s}]}}), None);
        }
    }
}
