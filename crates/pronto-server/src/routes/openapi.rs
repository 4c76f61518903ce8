//! What the derived OpenAPI document cannot say by itself, added in one place so it cannot drift per handler:
//! the responses every operation can give (500 and 503 with `Retry-After`; 413, 415 and a 400 for an
//! unreadable body wherever a body is read; 401 wherever a credential is needed; 429 where leads are
//! limited), the exact rules of the Segment messages and leads the domain parser applies, enums of the
//! string codes, this server's configured rep ids and forms, and query parameters that cannot be null.
//!
//! Schemathesis runs against the result in CI (`scripts/schemathesis.sh`): a response that does not match
//! it, or input it calls valid that the server refuses (or the reverse), fails the build.

use serde_json::{json, Map, Value};

/// What of the configuration the document states: the ids a request may name.
pub struct Configured {
    pub reps: Vec<String>,
    pub forms: Vec<String>,
    /// `(flow, experiment, variants)` of each flow whose experiment has variants: what may be promoted.
    pub experiments: Vec<(String, String, Vec<String>)>,
}

/// Operations that read a request body through `extract::Body` (413 over the limit, 415 for an unknown
/// `Content-Encoding`, 400 for a body that cannot be read).
const READS_BODY: &[(&str, &str)] = &[
    ("post", "/v1/identify"),
    ("post", "/v1/track"),
    ("post", "/v1/page"),
    ("post", "/v1/screen"),
    ("post", "/v1/group"),
    ("post", "/v1/alias"),
    ("post", "/v1/batch"),
    ("post", "/v1/leads"),
    ("post", "/f/{form}"),
    ("patch", "/v1/reps/{id}"),
    ("post", "/v1/leads/{id}/claim"),
    ("post", "/v1/leads/{id}/attempts"),
    ("post", "/v1/inbound/sms"),
    ("post", "/v1/inbound/voice"),
    ("post", "/v1/inbound/email"),
    ("post", "/v1/inbound/bounces"),
    ("post", "/v1/inbound/events/sendgrid"),
    ("post", "/v1/inbound/events/mailgun"),
    ("post", "/v1/admin/keys"),
    ("post", "/v1/admin/experiments/promote"),
    ("post", "/v1/suppressions"),
    ("post", "/v1/suppressions/import"),
];

/// Operations that never touch the store (no 500/503).
const NO_STORE: &[&str] = &[
    "/",
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/assets/pronto.css",
];

const SEGMENT: [(&str, &str); 6] = [
    ("/v1/identify", "IdentifyMessage"),
    ("/v1/track", "TrackMessage"),
    ("/v1/page", "PageMessage"),
    ("/v1/screen", "ScreenMessage"),
    ("/v1/group", "GroupMessage"),
    ("/v1/alias", "AliasMessage"),
];

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn error_response(description: &str, retry_after: bool) -> Value {
    let mut r = json!({
        "description": description,
        "content": {"application/json": {"schema": schema_ref("ErrorBody")}}
    });
    if retry_after {
        r["headers"] = json!({"Retry-After": {"description": "Seconds to wait before retrying",
                                              "schema": {"type": "integer", "minimum": 1}}});
    }
    r
}

/// An email as the domain parser accepts it (`Email::parse`, which trims first): one `@`, a local part of 1-64
/// characters, a domain of at least two labels that neither start nor end with `-`, no spaces or control
/// characters inside.
const EMAIL: &str = r#"^\s*[^@\s\x00-\x1f\x7f-\x9f]{1,64}@[^@\s\x00-\x1f\x7f-\x9f.()<>\[\],;:"\\-](?:[^@\s\x00-\x1f\x7f-\x9f.()<>\[\],;:"\\]*[^@\s\x00-\x1f\x7f-\x9f.()<>\[\],;:"\\-])?(?:\.[^@\s\x00-\x1f\x7f-\x9f.()<>\[\],;:"\\-](?:[^@\s\x00-\x1f\x7f-\x9f.()<>\[\],;:"\\]*[^@\s\x00-\x1f\x7f-\x9f.()<>\[\],;:"\\-])?)+\s*$"#;

fn text(max: u32) -> Value {
    json!({"type": ["string", "null"], "maxLength": max})
}

/// The Segment messages and the lead exactly as `pronto_domain::event` and `pronto_domain::lead` read them.
fn message_schemas(schemas: &mut Map<String, Value>) {
    let id = json!({"anyOf": [
        {"type": "string", "minLength": 1, "maxLength": 256},
        {"type": "integer", "minimum": -9223372036854775808i64, "maximum": 18446744073709551615u64}
    ], "description": "A string of 1-256 characters or an integer (some clients send numeric ids)."});
    schemas.insert("SegmentId".into(), id);
    schemas.insert(
        "SegmentOptionalId".into(),
        json!({"anyOf": [schema_ref("SegmentId"), {"const": ""}, {"type": "null"}],
               "description": "An id, or absent: `\"\"` and null count as absent, as the Segment libraries send them."}),
    );
    schemas.insert(
        "SegmentTime".into(),
        json!({"anyOf": [{"type": "string", "format": "date-time"}, {"const": ""}, {"type": "null"}],
               "description": "RFC 3339 with an offset; `\"\"` and null count as absent."}),
    );
    let object = json!({"type": ["object", "null"]});
    let common = json!({
        "type": "object",
        "properties": {
            "type": {"type": "string", "description": "Implied by a single endpoint (and not checked there)."},
            "messageId": {"$ref": "#/components/schemas/SegmentOptionalId"},
            "userId": {"$ref": "#/components/schemas/SegmentOptionalId"},
            "anonymousId": {"$ref": "#/components/schemas/SegmentOptionalId"},
            "context": object, "integrations": object,
            "timestamp": {"$ref": "#/components/schemas/SegmentTime"},
            "originalTimestamp": {"$ref": "#/components/schemas/SegmentTime"},
            "sentAt": {"$ref": "#/components/schemas/SegmentTime"},
            "writeKey": {"description": "The write key, for clients that cannot send HTTP Basic auth; never stored."}
        },
        "additionalProperties": true,
        "description": "Fields pronto reads are checked; every other field is kept as sent. No string may hold NUL. At most \
                        `ingest.max_event_bytes` (32 KB) per message."
    });
    schemas.insert("SegmentCommon".into(), common);
    schemas.insert(
        "SegmentWho".into(),
        json!({"anyOf": [
            {"required": ["userId"], "properties": {"userId": schema_ref("SegmentId")}},
            {"required": ["anonymousId"], "properties": {"anonymousId": schema_ref("SegmentId")}}
        ], "description": "A userId or an anonymousId."}),
    );
    let kinds: [(&str, &str, Value); 6] = [
        (
            "IdentifyMessage",
            "identify",
            json!({"properties": {"traits": object}}),
        ),
        (
            "TrackMessage",
            "track",
            json!({"required": ["event"], "properties": {
                "event": {"type": "string", "minLength": 1, "maxLength": 256,
                          "description": "The event name; the Segment e-commerce v2 names (`Checkout Started`, `Order Completed`, …) have their documented properties type-checked."},
                "properties": object}}),
        ),
        (
            "PageMessage",
            "page",
            json!({"properties": {"name": {"type": ["string", "null"]}, "properties": object}}),
        ),
        (
            "ScreenMessage",
            "screen",
            json!({"properties": {"name": {"type": ["string", "null"]}, "properties": object}}),
        ),
        (
            "GroupMessage",
            "group",
            json!({"required": ["groupId"], "properties": {"groupId": schema_ref("SegmentId"), "traits": object}}),
        ),
        (
            "AliasMessage",
            "alias",
            json!({"required": ["userId", "previousId"],
                   "properties": {"userId": schema_ref("SegmentId"), "previousId": schema_ref("SegmentId")}}),
        ),
    ];
    let mut batch_items = Vec::new();
    for (name, kind, own) in kinds {
        let mut parts = vec![schema_ref("SegmentCommon"), own];
        if kind != "alias" {
            parts.push(schema_ref("SegmentWho"));
        }
        schemas.insert(name.into(), json!({"allOf": parts}));
        batch_items.push(json!({"allOf": [schema_ref(name),
                                          {"required": ["type"], "properties": {"type": {"const": kind}}}]}));
    }
    schemas.insert(
        "Batch".into(),
        json!({"type": "object", "required": ["batch"], "properties": {
            "batch": {"type": "array", "minItems": 1, "items": {"oneOf": batch_items},
                      "description": "Each message with its `type`; at most `ingest.max_batch_bytes` (500 KB) in all."},
            "writeKey": {"description": "The write key, for clients that cannot send HTTP Basic auth."}
        }, "additionalProperties": true}),
    );
    schemas.remove("SegmentMessage");
    schemas.insert(
        "LeadRequest".into(),
        json!({
            "type": "object",
            "description": "A lead. An email or a phone is required; any field not listed is kept with the lead (`timezone`: \
                            an IANA zone the lead's times are written in; `locale`). Text is trimmed; empty text counts as absent.",
            "properties": {
                "name": text(256), "first_name": text(128), "last_name": text(128),
                "email": {"type": ["string", "null"], "maxLength": 254,
                          "anyOf": [{"type": "null"}, {"pattern": "^\\s*$"}, {"pattern": EMAIL}],
                          "description": "Empty counts as absent."},
                "phone": {"type": ["string", "null"], "maxLength": 64,
                          "description": "As typed; without `+country` it is read in `ingest.default_region`. It must be a valid \
                                          number for its region (400 otherwise)."},
                "company": text(256), "message": text(10_000), "source": text(256), "form": text(128)
            },
            "anyOf": [
                {"required": ["email"], "properties": {"email": {"type": "string", "pattern": EMAIL}}},
                {"required": ["phone"], "properties": {"phone": {"type": "string", "minLength": 1}}}
            ],
            "additionalProperties": true
        }),
    );
}

/// Form posts and the provider webhooks, as their handlers read them.
fn form_schemas(schemas: &mut Map<String, Value>) {
    let s = |max: u32| json!({"type": "string", "maxLength": max});
    schemas.insert(
        "FormLead".into(),
        json!({
            "type": "object",
            "description": "An HTML form's fields (urlencoded). An email or a phone is required; every other field is kept \
                            with the lead. The honeypot field (`website` unless the form names another) must stay empty: a \
                            post that fills it gets the same answer and is dropped.",
            "properties": {
                "name": s(256), "first_name": s(128), "last_name": s(128),
                "email": {"type": "string", "maxLength": 254,
                          "anyOf": [{"pattern": "^\\s*$"}, {"pattern": EMAIL}],
                          "description": "Empty counts as absent."},
                "phone": {"type": "string", "maxLength": 64,
                          "description": "As typed; it must be a valid number for its region (400 otherwise)."},
                "company": s(256), "message": s(10_000), "source": s(256)
            },
            "anyOf": [
                {"required": ["email"], "properties": {"email": {"type": "string", "pattern": EMAIL}}},
                {"required": ["phone"], "properties": {"phone": {"type": "string", "minLength": 1}}}
            ],
            "additionalProperties": {"type": "string"}
        }),
    );
    schemas.insert(
        "InboundSms".into(),
        json!({"type": "object", "required": ["From"], "properties": {
            "From": {"type": "string", "minLength": 1, "description": "The sender's number (E.164)."},
            "To": {"type": "string"},
            "Body": {"type": "string", "description": "The text: STOP, START, HELP (and their synonyms) or a reply."}
        }, "additionalProperties": {"type": "string"}}),
    );
    schemas.insert(
        "InboundVoice".into(),
        json!({"type": "object", "required": ["From", "CallSid"], "properties": {
            "From": {"type": "string", "minLength": 1, "description": "The caller's number (E.164)."},
            "To": {"type": "string", "description": "The web-only number called."},
            "CallSid": {"type": "string", "minLength": 1, "description": "The call's id: a retried webhook records nothing new."}
        }, "additionalProperties": {"type": "string"}}),
    );
}

/// String codes as the code writes them.
fn enums(schemas: &mut Map<String, Value>, configured: &Configured) {
    let set = |schemas: &mut Map<String, Value>, schema: &str, field: &str, values: &[&str]| {
        if let Some(p) = schemas
            .get_mut(schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{field}")))
        {
            p["enum"] = json!(values);
        }
    };
    set(
        schemas,
        "ErrorBody",
        "error",
        &[
            "invalid",
            "too_large",
            "unauthorized",
            "bad_signature",
            "not_found",
            "unsupported_encoding",
            "rate_limited",
            "unavailable",
            "internal",
            "idempotency_key_reused",
            "conflict",
        ],
    );
    set(schemas, "Health", "status", &["ok", "ready"]);
    set(schemas, "Health", "backend", &["sqlite", "postgres"]);
    set(
        schemas,
        "IdentityView",
        "kind",
        &["user_id", "anonymous_id", "email", "phone"],
    );
    set(
        schemas,
        "RunResponse",
        "state",
        &["active", "exited", "finished"],
    );
    set(
        schemas,
        "MessageBody",
        "state",
        &["queued", "sent", "failed", "suppressed"],
    );
    set(
        schemas,
        "MessageBody",
        "channel",
        &["email", "sms", "webhook"],
    );
    set(schemas, "KeyView", "kind", &["write", "admin"]);
    set(
        schemas,
        "KeyView",
        "origin",
        &["generated", "env", "api", "legacy"],
    );
    set(schemas, "NewKeyRequest", "kind", &["write", "admin"]);
    set(
        schemas,
        "AttemptRequest",
        "channel",
        &["call", "email", "sms"],
    );
    set(
        schemas,
        "AttemptRequest",
        "outcome",
        &[
            "reached",
            "no_answer",
            "voicemail",
            "won",
            "lost",
            "not_interested",
        ],
    );
    set(
        schemas,
        "Group",
        "by",
        &["source", "rep", "team", "week", "hour_of_week"],
    );
    let reps: Vec<&str> = configured.reps.iter().map(String::as_str).collect();
    set(schemas, "ClaimRequest", "rep", &reps);
    if let Some(p) = schemas
        .get_mut("AttemptRequest")
        .and_then(|s| s.pointer_mut("/properties/rep"))
    {
        *p = json!({"anyOf": [{"type": "string", "enum": reps}, {"type": "null"}],
                    "description": "The rep who made it (a configured rep id)."});
    }
    if let Some(a) = schemas.get_mut("AttemptRequest") {
        a["properties"]["value"] = json!({"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}],
            "description": "With a `won` outcome: what the win is worth."});
        a["properties"]["currency"] = json!({"anyOf": [{"type": "string", "pattern": "^[A-Za-z]{3}$"}, {"type": "null"}],
            "description": "The value's ISO 4217 currency (`EUR`); only with a value."});
        // A value only with a win; a currency only with a value.
        a["allOf"] = json!([
            {"if": {"required": ["value"], "properties": {"value": {"type": "number"}}},
             "then": {"properties": {"outcome": {"const": "won"}}}},
            {"if": {"required": ["currency"], "properties": {"currency": {"type": "string"}}},
             "then": {"required": ["value"], "properties": {"value": {"type": "number"}}}}
        ]);
    }
    if let Some(p) = schemas
        .get_mut("AttemptRequest")
        .and_then(|s| s.pointer_mut("/properties/note"))
    {
        p["maxLength"] = json!(10_000);
    }
    if let Some(p) = schemas
        .get_mut("AttemptRequest")
        .and_then(|s| s.pointer_mut("/properties/at"))
    {
        p["description"] = json!(
            "When it happened (default now); RFC 3339. Not more than 5 minutes ahead of now, \
                                  and not before the lead arrived (400 otherwise)."
        );
    }
    if let Some(p) = schemas
        .get_mut("NewKeyRequest")
        .and_then(|s| s.pointer_mut("/properties/label"))
    {
        p["maxLength"] = json!(200);
    }
    if let Some(p) = schemas
        .get_mut("InboundEmail")
        .and_then(|s| s.pointer_mut("/properties/from"))
    {
        p["minLength"] = json!(1);
    }
}

/// Query parameters cannot carry JSON null: an absent one is simply left out.
fn no_null(schema: &mut Value) {
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types[0].clone();
            schema["type"] = only;
        }
    }
}

fn operation_params(path: &str, method: &str, op: &mut Value, configured: &Configured) {
    let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
        return;
    };
    for p in params.iter_mut() {
        if p["in"] == "query" {
            if let Some(s) = p.get_mut("schema") {
                no_null(s);
            }
        }
        if p["name"] == "Idempotency-Key" {
            p["schema"] = json!({"type": "string", "minLength": 1, "maxLength": 256,
                                 "pattern": "^[\\t -~]*[!-~][\\t -~]*$"});
        }
        if p["name"] == "rep" && p["in"] == "query" {
            p["schema"] = json!({"type": "string", "enum": configured.reps});
        }
        if (path, method, p["name"].as_str()) == ("/v1/reps/{id}", "patch", Some("id")) {
            p["schema"] = json!({"type": "string", "enum": configured.reps});
        }
        if (path, p["name"].as_str()) == ("/f/{form}", Some("form")) {
            p["schema"] = json!({"type": "string", "enum": configured.forms});
        }
        if p["name"] == "state" && path == "/v1/tasks" {
            p["schema"] = json!({"type": "string", "enum": ["open", "all"]});
        }
        let report = path == "/v1/reports/speed-to-lead" || path == "/v1/reports/flows";
        if p["name"] == "format" && path == "/v1/suppressions" {
            p["schema"] = json!({"type": "string", "enum": ["json", "csv"]});
        }
        if p["name"] == "format" && report {
            p["schema"] = json!({"type": "string", "enum": ["json", "csv"]});
        }
        if (p["name"] == "from" || p["name"] == "to") && report {
            p["schema"] = json!({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]});
        }
    }
    // Exactly one identifier: one object parameter of one property, written as `?email=…`.
    if path == "/v1/contacts" {
        params.retain(|p| {
            !["email", "phone", "user_id", "anonymous_id"]
                .contains(&p["name"].as_str().unwrap_or(""))
        });
        params.insert(0, json!({
            "name": "lookup", "in": "query", "required": true, "style": "form", "explode": true,
            "description": "Exactly one identifier: email, phone (E.164 or as typed), user_id or anonymous_id.",
            "schema": {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": false,
                       "properties": {
                           "email": {"type": "string", "pattern": EMAIL, "maxLength": 254},
                           "phone": {"type": "string", "minLength": 1, "maxLength": 64},
                           "user_id": {"type": "string", "minLength": 1},
                           "anonymous_id": {"type": "string", "minLength": 1}
                       }}
        }));
    }
}

/// Which answers name resources other operations take: Schemathesis's stateful phase follows these to reach
/// a lead, a contact or a key with a real id (as a client would).
fn links(paths: &mut Map<String, Value>) {
    let link = |op: &str, param: &str, from: &str| json!({"operationId": op, "parameters": {param: format!("$response.body#/{from}")}});
    let lead_links = json!({
        "GetLead": link("get_lead", "id", "lead_id"),
        "ClaimLead": link("claim_lead", "id", "lead_id"),
        "LogAttempt": link("log_attempt", "id", "lead_id"),
        "GetContact": link("get_contact", "id", "contact_id"),
    });
    for code in ["200", "201"] {
        if let Some(r) = paths
            .get_mut("/v1/leads")
            .and_then(|p| p.pointer_mut(&format!("/post/responses/{code}")))
        {
            r["links"] = lead_links.clone();
        }
    }
    if let Some(r) = paths
        .get_mut("/v1/admin/keys")
        .and_then(|p| p.pointer_mut("/post/responses/201"))
    {
        r["links"] = json!({"RevokeKey": link("revoke_key", "id", "id")});
    }
    if let Some(r) = paths
        .get_mut("/v1/contacts")
        .and_then(|p| p.pointer_mut("/get/responses/200"))
    {
        r["links"] = json!({"GetContact": link("get_contact", "id", "id")});
    }
}

/// Adds the responses and content types every operation shares, and the configured ids.
/// A promotion names a configured flow, its experiment and one of its variants: one alternative per
/// experiment (none configured: nothing can be promoted).
fn promotable(schemas: &mut serde_json::Map<String, Value>, configured: &Configured) {
    let alternatives: Vec<Value> = configured
        .experiments
        .iter()
        .map(|(flow, experiment, variants)| {
            json!({"type": "object", "required": ["flow", "experiment", "variant"],
                   "additionalProperties": false,
                   "properties": {"flow": {"const": flow}, "experiment": {"const": experiment},
                                  "variant": {"type": "string", "enum": variants}}})
        })
        .collect();
    let schema = if alternatives.is_empty() {
        json!({"not": {}, "description": "No configured experiment has variants to promote."})
    } else {
        json!({"oneOf": alternatives,
               "description": "A configured flow, its running experiment and one of that experiment's variants."})
    };
    schemas.insert("PromoteRequest".into(), schema);
}

pub fn finish(doc: &mut Value, configured: &Configured) {
    if let Some(schemes) = doc
        .pointer_mut("/components/securitySchemes")
        .and_then(Value::as_object_mut)
    {
        schemes.insert(
            "twilioSignature".into(),
            json!({"type": "apiKey", "in": "header", "name": "X-Twilio-Signature",
                   "description": "Twilio's signature: base64 HMAC-SHA1, with the [sms] auth token, of `server.public_url` + \
                                   the path followed by each form parameter's name and value, sorted by name."}),
        );
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        message_schemas(schemas);
        form_schemas(schemas);
        enums(schemas, configured);
        promotable(schemas, configured);
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    links(paths);
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            operation_params(path, method, op, configured);
            let secured = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| !s.is_empty());
            let reads_body = READS_BODY.contains(&(method.as_str(), path.as_str()));
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            let mut add = |code: &str, r: Value| {
                responses.entry(code.to_string()).or_insert(r);
            };
            if !NO_STORE.contains(&path.as_str()) && path != "/readyz" {
                add(
                    "500",
                    error_response(
                        "Stored data cannot be read (the row is quarantined where a worker met it)",
                        false,
                    ),
                );
                add(
                    "503",
                    error_response(
                        "The database is unavailable: nothing was stored; retry after Retry-After",
                        true,
                    ),
                );
            }
            if reads_body {
                add(
                    "400",
                    error_response("The body or a field is invalid (the field is named)", false),
                );
                add(
                    "413",
                    error_response("The body is over its size limit", false),
                );
                add(
                    "415",
                    error_response(
                        "An unsupported Content-Encoding (identity and gzip work)",
                        false,
                    ),
                );
            }
            if secured {
                add(
                    "401",
                    error_response("Missing or unknown credential", false),
                );
            }
            if matches!(path.as_str(), "/v1/leads" | "/f/{form}") {
                responses.insert(
                    "429".into(),
                    error_response(
                        "Too many leads from this client or naming this address; see Retry-After",
                        true,
                    ),
                );
            }
        }
        // Ingest reads raw bytes, so `text/plain` (what `navigator.sendBeacon` sends) works as JSON does.
        if let Some(post) = item.get_mut("post") {
            let segment = SEGMENT.iter().find(|(p, _)| p == path).map(|(_, s)| *s);
            let body_schema = match (path.as_str(), segment) {
                (_, Some(s)) => Some(schema_ref(s)),
                ("/v1/batch", _) => Some(schema_ref("Batch")),
                ("/v1/leads", _) => Some(schema_ref("LeadRequest")),
                _ => None,
            };
            if let Some(schema) = body_schema {
                post["requestBody"] = json!({"required": true, "content": {
                    "application/json": {"schema": schema},
                    "text/plain": {"schema": schema}
                }});
            }
            if path == "/v1/leads" {
                if let Some(r) = post.pointer_mut("/responses/422") {
                    *r = error_response(
                        "This Idempotency-Key was used before with a different body",
                        false,
                    );
                } else if let Some(r) = post.get_mut("responses").and_then(Value::as_object_mut) {
                    r.insert(
                        "422".into(),
                        error_response(
                            "This Idempotency-Key was used before with a different body",
                            false,
                        ),
                    );
                }
            }
            if segment.is_some() {
                if let Some(r) = post.get_mut("responses").and_then(Value::as_object_mut) {
                    r.insert(
                        "422".into(),
                        error_response(
                            "This Idempotency-Key was used before with a different body",
                            false,
                        ),
                    );
                }
            }
            let form = match path.as_str() {
                "/f/{form}" => Some("FormLead"),
                "/v1/inbound/sms" => Some("InboundSms"),
                "/v1/inbound/voice" => Some("InboundVoice"),
                _ => None,
            };
            if let Some(schema) = form {
                post["requestBody"] = json!({"required": true, "content": {
                    "application/x-www-form-urlencoded": {"schema": schema_ref(schema)}
                }});
            }
            if path.starts_with("/v1/inbound/sms") || path.starts_with("/v1/inbound/voice") {
                post["security"] = json!([{"twilioSignature": []}]);
            }
            if path == "/v1/inbound/bounces" {
                post["requestBody"] = json!({"required": true, "content": {
                    "text/plain": {"schema": {"type": "string", "pattern": "\\S"}}
                }});
            }
            if path == "/v1/inbound/email" {
                let schema = schema_ref("InboundEmail");
                post["requestBody"] = json!({"required": true, "content": {
                    "application/json": {"schema": schema},
                    "application/x-www-form-urlencoded": {"schema": schema}
                }});
            }
        }
    }
}
