//! Validation errors that name the offending field.

use serde::Serialize;

/// One problem with one field of the input. `field` is a path into the input as the client sent it
/// (`properties.products[0].price`, `batch[3].userId`), so the client can find the problem without guessing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Input that was rejected. Never empty: a parse either succeeds or names at least one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid input: {}", summary(.0))]
pub struct Invalid(pub Vec<FieldError>);

impl Invalid {
    pub fn one(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![FieldError::new(field, message)])
    }

    /// Prefixes every field path, e.g. with `batch[3]` when the error came from one event of a batch.
    pub fn within(mut self, prefix: &str) -> Self {
        for e in &mut self.0 {
            e.field = if e.field.is_empty() {
                prefix.to_string()
            } else if e.field.starts_with('[') {
                format!("{prefix}{}", e.field)
            } else {
                format!("{prefix}.{}", e.field)
            };
        }
        self
    }
}

fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Refuses text that no backend can store as sent: PostgreSQL text and jsonb cannot hold NUL (`\u0000`), so
/// a NUL anywhere a client's text enters (a query parameter, a path segment, a JSON or form field) is a 400
/// naming the field, the same on every backend, instead of a failed statement answered 503 ("retry"), which
/// webhook senders retry forever.
pub fn check_text(field: &str, s: &str) -> Result<(), Invalid> {
    if s.contains('\0') {
        Err(Invalid::one(
            field,
            "must not contain NUL (\\u0000) characters",
        ))
    } else {
        Ok(())
    }
}

/// [`check_text`] for every string and key of a JSON value; the field is the path of the first NUL.
pub fn check_json(v: &serde_json::Value, prefix: &str) -> Result<(), Invalid> {
    match find_nul(v, prefix) {
        Some(at) => Err(Invalid::one(
            at,
            "must not contain NUL (\\u0000) characters",
        )),
        None => Ok(()),
    }
}

/// The path of `key` inside `prefix`, as field errors name it (`properties.price`).
pub(crate) fn path(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The path of the first string (or key) holding a NUL character. PostgreSQL text cannot store NUL, so such
/// input is refused up front, the same way on every backend, instead of failing at commit.
fn find_nul(v: &serde_json::Value, prefix: &str) -> Option<String> {
    match v {
        serde_json::Value::String(s) if s.contains('\0') => Some(prefix.to_string()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| find_nul(x, &format!("{prefix}[{i}]"))),
        serde_json::Value::Object(o) => o.iter().find_map(|(k, x)| {
            if k.contains('\0') {
                Some(path(prefix, k))
            } else {
                find_nul(x, &path(prefix, k))
            }
        }),
        _ => None,
    }
}
