//! Typed reads from JSON objects that collect every problem with its path instead of stopping at the first.

use crate::error::{path, FieldError};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub(crate) type Obj = Map<String, Value>;

/// Collects field errors while a message is read, so one response can name all of them.
#[derive(Debug, Default)]
pub(crate) struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// A string, or absent/null. An empty string counts as absent: the Segment libraries send `""` for unset ids.
    pub fn str(&mut self, obj: &Obj, key: &str, prefix: &str) -> Option<String> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.push(path(prefix, key), "must be a string");
                None
            }
        }
    }

    /// An identifier: a string or an integer (some clients send numeric user ids), at most 256 characters.
    /// An integer written with a zero fraction (`522.0`, as JSON allows and some serialisers write) is that
    /// integer.
    pub fn id(&mut self, obj: &Obj, key: &str, prefix: &str) -> Option<String> {
        let v = match obj.get(key) {
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            // Only where an f64 holds integers exactly (±2^53): beyond, `9223372036854775809` and its
            // neighbours read as the same float and could not be told apart.
            Some(Value::Number(n))
                if n.as_f64()
                    .is_some_and(|x| x.fract() == 0.0 && x.abs() <= 9_007_199_254_740_992.0) =>
            {
                Some((n.as_f64().unwrap_or_default() as i64).to_string())
            }
            Some(Value::Number(_)) => {
                self.push(path(prefix, key), "must be a string or an integer");
                return None;
            }
            _ => self.str(obj, key, prefix),
        };
        match v {
            Some(s) if s.chars().count() > 256 => {
                self.push(path(prefix, key), "must be at most 256 characters");
                None
            }
            v => v,
        }
    }

    /// A number, also when sent as a numeric string (`"19.99"`), as many shop platforms do.
    pub fn num(&mut self, obj: &Obj, key: &str, prefix: &str) -> Option<f64> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => match s.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Some(n),
                _ => {
                    self.push(path(prefix, key), "must be a number");
                    None
                }
            },
            Some(_) => {
                self.push(path(prefix, key), "must be a number");
                None
            }
        }
    }

    pub fn object<'a>(&mut self, obj: &'a Obj, key: &str, prefix: &str) -> Option<&'a Obj> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => {
                self.push(path(prefix, key), "must be an object");
                None
            }
        }
    }

    pub fn array<'a>(&mut self, obj: &'a Obj, key: &str, prefix: &str) -> Option<&'a Vec<Value>> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(a),
            Some(_) => {
                self.push(path(prefix, key), "must be an array");
                None
            }
        }
    }

    /// An ISO 8601 / RFC 3339 date-time with an offset, as the Segment libraries send.
    pub fn timestamp(&mut self, obj: &Obj, key: &str, prefix: &str) -> Option<DateTime<Utc>> {
        let s = self.str(obj, key, prefix)?;
        match DateTime::parse_from_rfc3339(s.trim()) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                self.push(
                    path(prefix, key),
                    "must be an ISO 8601 date-time with a time zone",
                );
                None
            }
        }
    }

    pub fn into_result<T>(self, ok: T) -> Result<T, crate::Invalid> {
        if self.0.is_empty() {
            Ok(ok)
        } else {
            Err(crate::Invalid(self.0))
        }
    }
}
