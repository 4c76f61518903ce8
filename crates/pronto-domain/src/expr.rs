//! Expressions in flows (`trigger.filter`, `if`): minijinja expressions, the same language as templates, over
//! a run's context (the event's fields at the top level, the contact's traits under `contact`).
//!
//! Undefined values are lenient here (unlike templates): `properties.coupon` on an event without one is
//! simply falsy, because events legitimately omit optional fields. Syntax errors are caught at load.

use minijinja::Environment;
use serde_json::Value;
use std::sync::OnceLock;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(Environment::new)
}

/// Whether `source` compiles; the error says where it does not.
pub fn check(source: &str) -> Result<(), String> {
    if source.trim().is_empty() {
        return Err("must not be empty".into());
    }
    env().compile_expression(source).map(|_| ()).map_err(|e| {
        format!(
            "does not compile: {}",
            e.detail().unwrap_or(&e.kind().to_string())
        )
    })
}

/// Whether `source` is true for `ctx`. An expression that fails at run time (say, comparing text with a
/// number) is false: a run is not started or branched on a value nobody can compare.
pub fn truthy(source: &str, ctx: &Value) -> bool {
    env()
        .compile_expression(source)
        .and_then(|e| e.eval(ctx))
        .map(|v| v.is_true())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expressions_read_the_event_and_the_contact_and_missing_values_are_false() {
        let ctx =
            json!({"properties": {"value": 120, "currency": "EUR"}, "contact": {"vip": true}});
        let cases = [
            ("properties.value >= 100", true),
            ("properties.value >= 500", false),
            ("properties.currency == 'EUR' and contact.vip", true),
            ("properties.coupon", false),
            ("not properties.coupon", true),
            ("properties.missing.deeper == 1", false),
        ];
        for (src, want) in cases {
            assert_eq!(truthy(src, &ctx), want, "{src}");
        }
    }

    #[test]
    fn a_syntax_error_is_caught_when_checked() {
        assert!(check("properties.value >=").is_err());
        assert!(check("").is_err());
        assert!(check("properties.value >= 10").is_ok());
    }
}
