//! Erasing a person (GDPR article 17, CCPA deletion): what of theirs is personal, and how a stored text or
//! JSON value is cleaned of it. The store applies it to every row that is theirs and to the rows elsewhere
//! that name their address or phone; rows are kept, cleaned, so that counts and reports stay right.
//!
//! Two rules, both needed: fields that are personal by their name ([`PERSONAL_KEYS`]: `email`, `phone`,
//! `name`, `address`, `ip`, the ids a client sent, …) are dropped from JSON wherever they are; and any text
//! that contains one of the person's own identifiers ([`Needles`]: their addresses, numbers, names, user
//! ids) has each occurrence replaced by [`ERASED`], whatever field it is in (a lead's message that signs
//! with their name, a product note, a raw webhook body). Matching is case-insensitive.

use serde_json::Value;
use std::borrow::Cow;

/// What an erased value becomes.
pub const ERASED: &str = "[erased]";

/// JSON fields that hold personal data by their name, dropped wherever they appear.
pub const PERSONAL_KEYS: &[&str] = &[
    "email",
    "phone",
    "name",
    "first_name",
    "last_name",
    "firstName",
    "lastName",
    "username",
    "company",
    "address",
    "address1",
    "address2",
    "street",
    "ip",
    "userId",
    "user_id",
    "anonymousId",
    "anonymous_id",
    "birthday",
    "avatar",
    "traits",
];

/// Shorter identifiers are not searched for in other text (a two-letter first name would erase words
/// that merely contain it); they still go where their field does.
const MIN_NEEDLE: usize = 3;

/// A person's identifiers, lower-cased, longest first (so "ann lee" is replaced before "ann").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needles {
    all: Vec<String>,
    /// Their email addresses and phone numbers: what rows that are not theirs are searched for.
    contact_points: Vec<String>,
}

impl Needles {
    /// From the contact's traits, its identities (`(kind, value)`: email, phone, user and anonymous ids) and
    /// the leads it sent (`[name, email, phone, company]`).
    pub fn of(
        traits: &Value,
        identities: &[(String, String)],
        leads: &[[Option<String>; 4]],
    ) -> Self {
        let mut all = Vec::new();
        let mut points = Vec::new();
        let mut add = |s: &str, point: bool| {
            let s = s.trim().to_lowercase();
            if s.chars().count() >= MIN_NEEDLE {
                if point {
                    points.push(s.clone());
                }
                all.push(s);
            }
        };
        for (kind, value) in identities {
            add(value, kind == "email" || kind == "phone");
        }
        if let Some(t) = traits.as_object() {
            for key in ["email", "phone"] {
                if let Some(v) = t.get(key).and_then(Value::as_str) {
                    add(v, true);
                }
            }
            for key in [
                "name",
                "first_name",
                "last_name",
                "firstName",
                "lastName",
                "username",
                "company",
            ] {
                if let Some(v) = t.get(key).and_then(Value::as_str) {
                    add(v, false);
                }
            }
        }
        for [name, email, phone, company] in leads {
            for (v, point) in [
                (name, false),
                (email, true),
                (phone, true),
                (company, false),
            ] {
                if let Some(v) = v {
                    add(v, point);
                }
            }
        }
        // A phone is also written without its `+` (national forms are left to the exact-match rows).
        let bare: Vec<String> = points
            .iter()
            .filter_map(|p| p.strip_prefix('+').map(str::to_string))
            .collect();
        all.extend(bare);
        for v in [&mut all, &mut points] {
            v.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
            v.dedup();
        }
        Self {
            all,
            contact_points: points,
        }
    }

    pub fn contact_points(&self) -> &[String] {
        &self.contact_points
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// `text` with every occurrence of an identifier replaced by [`ERASED`].
    pub fn redact_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for needle in &self.all {
            let lower = out.to_lowercase();
            // Lower-casing can change byte lengths (rare letters); such text is compared char by char.
            if lower.len() != out.len() {
                if lower.contains(needle.as_str()) {
                    out = Cow::Owned(ERASED.to_string());
                }
                continue;
            }
            if !lower.contains(needle.as_str()) {
                continue;
            }
            let mut s = String::with_capacity(out.len());
            let mut rest = 0;
            for (at, _) in lower.match_indices(needle.as_str()) {
                if at < rest {
                    continue;
                }
                s.push_str(&out[rest..at]);
                s.push_str(ERASED);
                rest = at + needle.len();
            }
            s.push_str(&out[rest..]);
            out = Cow::Owned(s);
        }
        out
    }

    /// `value` without [`PERSONAL_KEYS`] and with every string redacted as [`Needles::redact_text`] does.
    pub fn redact_json(&self, value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(k, _)| !PERSONAL_KEYS.contains(&k.as_str()))
                    .map(|(k, v)| (self.redact_text(k).into_owned(), self.redact_json(v)))
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.redact_json(v)).collect())
            }
            Value::String(s) => Value::String(self.redact_text(s).into_owned()),
            other => other.clone(),
        }
    }

    /// A stored column: JSON text is cleaned as JSON (keeping its shape), other text as text. `None` when
    /// nothing changes.
    pub fn redact_column(&self, text: &str, json: bool) -> Option<String> {
        let cleaned = if json {
            match serde_json::from_str::<Value>(text) {
                Ok(v) => {
                    let r = self.redact_json(&v);
                    if r == v {
                        return None;
                    }
                    r.to_string()
                }
                Err(_) => self.redact_text(text).into_owned(),
            }
        } else {
            self.redact_text(text).into_owned()
        };
        (cleaned != text).then_some(cleaned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ann() -> Needles {
        Needles::of(
            &json!({"email": "Ann@Example.com", "first_name": "Ann", "last_name": "Lee", "plan": "pro"}),
            &[
                ("email".into(), "ann@example.com".into()),
                ("phone".into(), "+14155550101".into()),
                ("user".into(), "u-1001".into()),
            ],
            &[[
                Some("Ann Lee".into()),
                Some("ann@example.com".into()),
                None,
                Some("Lee & Co".into()),
            ]],
        )
    }

    #[test]
    fn identifiers_come_from_traits_identities_and_leads_and_contact_points_are_the_reachable_ones()
    {
        let n = ann();
        assert_eq!(n.contact_points(), ["ann@example.com", "+14155550101"]);
        for needle in ["ann lee", "lee & co", "u-1001", "14155550101", "ann", "lee"] {
            assert!(n.all.contains(&needle.to_string()), "{needle}: {:?}", n.all);
        }
        assert!(
            Needles::of(&json!({"first_name": "Al"}), &[], &[]).is_empty(),
            "too short to search for"
        );
    }

    #[test]
    fn text_loses_every_identifier_whatever_its_case_and_keeps_the_rest() {
        let n = ann();
        let cases = [
            (
                "Hi, this is Ann Lee (ANN@example.com), call +14155550101",
                "Hi, this is [erased] ([erased]), call [erased]",
            ),
            ("tel:14155550101", "tel:[erased]"),
            ("Mug (blue) x 2", "Mug (blue) x 2"),
            ("", ""),
            (
                "Ännchen writes to ann@example.com",
                "Ännchen writes to [erased]",
            ),
            // Lower-casing İ changes its length: such text is erased whole when it names the person.
            ("İstanbul, Ann", "[erased]"),
        ];
        for (text, want) in cases {
            assert_eq!(n.redact_text(text), want, "{text}");
        }
    }

    #[test]
    fn json_loses_personal_fields_everywhere_and_keeps_what_reports_count() {
        let n = ann();
        let event = json!({
            "type": "track", "event": "Checkout Started", "userId": "u-1001",
            "context": {"ip": "203.0.113.9", "traits": {"email": "ann@example.com"}},
            "properties": {"checkout_id": "chk-1", "value": 54.5, "currency": "EUR",
                           "note": "gift for Ann's mum",
                           "products": [{"product_id": "p1", "name": "Mug", "price": 12.25, "quantity": 2}]}
        });
        let got = n.redact_json(&event);
        assert_eq!(
            got,
            json!({
                "type": "track", "event": "Checkout Started",
                "context": {},
                "properties": {"checkout_id": "chk-1", "value": 54.5, "currency": "EUR",
                               "note": "gift for [erased]'s mum",
                               "products": [{"product_id": "p1", "price": 12.25, "quantity": 2}]}
            })
        );
        assert_eq!(
            n.redact_column(&event.to_string(), true),
            Some(got.to_string())
        );
        assert_eq!(
            n.redact_column("{\"value\": 1}", true),
            None,
            "nothing to change"
        );
        assert_eq!(
            n.redact_column("not json, Ann", true).as_deref(),
            Some("not json, [erased]")
        );
    }
}
