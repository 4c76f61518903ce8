//! A lead: somebody who asked to be contacted, from `POST /v1/leads`, an HTML form or (later) a call.
//!
//! Unlike analytics traits, a lead's email and phone are what a rep will use to answer, so a malformed one is
//! refused with the field named rather than kept silently.

use crate::error::Invalid;
use crate::event::{EventType, NewEvent};
use crate::fields::{Errors, Obj};
use crate::identity::{Email, Identity, Phone, Region};
use crate::LeadId;
use serde_json::{Map, Value};

/// The event name every lead is recorded under on its contact's timeline.
pub const LEAD_SUBMITTED: &str = "Lead Submitted";

const KNOWN: [&str; 9] = [
    "name",
    "first_name",
    "last_name",
    "email",
    "phone",
    "company",
    "message",
    "source",
    "form",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    /// Chosen when the lead is read, so its event can carry it (`properties.lead_id`: cadences key on it).
    pub id: LeadId,
    pub name: Option<String>,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub company: Option<String>,
    pub message: Option<String>,
    pub source: Option<String>,
    /// The form it came through, for `/f/{form}` posts.
    pub form: Option<String>,
    /// Every other field, as sent.
    pub fields: Map<String, Value>,
}

#[cfg(test)]
impl Lead {
    /// A lead with only its id (`n`) and these name and email, for tests.
    pub(crate) fn bare(n: u128, name: Option<&str>, email: Option<&str>) -> Self {
        Lead {
            id: crate::LeadId(uuid::Uuid::from_u128(n)),
            name: name.map(str::to_string),
            email: email.map(|e| Email::parse(e).expect("a valid test address")),
            phone: None,
            company: None,
            message: None,
            source: None,
            form: None,
            fields: Map::new(),
        }
    }
}

impl Lead {
    /// Reads a lead from a JSON object. An email or a phone is required: a lead nobody can answer is not a lead.
    pub fn parse(obj: &Obj, region: Region) -> Result<Self, Invalid> {
        for (k, v) in obj {
            crate::error::check_text(k, k)?;
            crate::error::check_json(v, k)?;
        }
        let mut e = Errors::default();
        // The limit holds for the value as sent (the API document's `maxLength`), spaces around it included.
        let text = |e: &mut Errors, key: &str, max: usize| match e.str(obj, key, "") {
            Some(s) if s.chars().count() > max => {
                e.push(key, format!("must be at most {max} characters"));
                None
            }
            v => v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
        };
        let name = text(&mut e, "name", 256);
        let first = text(&mut e, "first_name", 128);
        let last = text(&mut e, "last_name", 128);
        let email_raw = text(&mut e, "email", 254);
        let phone_raw = text(&mut e, "phone", 64);
        let company = text(&mut e, "company", 256);
        let message = text(&mut e, "message", 10_000);
        let source = text(&mut e, "source", 256);
        let form = text(&mut e, "form", 128);

        let email = email_raw.and_then(|s| match Email::parse(&s) {
            Ok(v) => Some(v),
            Err(why) => {
                e.push("email", why);
                None
            }
        });
        let phone = phone_raw.and_then(|s| match Phone::parse(&s, region) {
            Ok(v) => Some(v),
            Err(why) => {
                e.push("phone", why);
                None
            }
        });
        if email.is_none()
            && phone.is_none()
            && !e.0.iter().any(|f| f.field == "email" || f.field == "phone")
        {
            e.push("email", "an email or a phone is required");
        }
        let name = name.or_else(|| match (first, last) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (f, l) => f.or(l),
        });
        let fields = obj
            .iter()
            .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        e.into_result(Self {
            id: LeadId::new(),
            name,
            email,
            phone,
            company,
            message,
            source,
            form,
            fields,
        })
    }

    /// Reads a lead from an urlencoded form post (all values are strings; a repeated field keeps its last value).
    pub fn from_form(
        pairs: &[(String, String)],
        form: &str,
        region: Region,
    ) -> Result<Self, Invalid> {
        let mut obj: Obj = pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        obj.insert("form".into(), Value::String(form.to_string()));
        obj.entry("source")
            .or_insert_with(|| Value::String(format!("form:{form}")));
        Self::parse(&obj, region)
    }

    /// The `Lead Submitted` event this lead is recorded as. Its identities (email, phone) resolve the contact;
    /// name, email, phone and company become the contact's traits.
    pub fn to_event(&self, message_id: Option<String>) -> NewEvent {
        let mut traits = Map::new();
        let put = |m: &mut Map<String, Value>, k: &str, v: Option<&str>| {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.to_string()));
            }
        };
        put(&mut traits, "name", self.name.as_deref());
        put(&mut traits, "email", self.email.as_ref().map(Email::as_str));
        put(&mut traits, "phone", self.phone.as_ref().map(Phone::as_str));
        put(&mut traits, "company", self.company.as_deref());
        let mut properties = traits.clone();
        properties.insert("lead_id".into(), Value::String(self.id.to_string()));
        put(&mut properties, "message", self.message.as_deref());
        put(&mut properties, "source", self.source.as_deref());
        put(&mut properties, "form", self.form.as_deref());
        if !self.fields.is_empty() {
            properties.insert("fields".into(), Value::Object(self.fields.clone()));
        }
        let identities = self
            .email
            .iter()
            .map(Identity::email)
            .chain(self.phone.iter().map(Identity::phone))
            .collect();
        let payload = serde_json::json!({
            "type": "track",
            "event": LEAD_SUBMITTED,
            "properties": Value::Object(properties.clone()),
        });
        NewEvent {
            message_id,
            dedupe_scope: None,
            request_hash: None,
            kind: EventType::Track,
            name: Some(LEAD_SUBMITTED.to_string()),
            user_id: None,
            anonymous_id: None,
            identities,
            traits,
            properties,
            timestamp: None,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Lead, Invalid> {
        Lead::parse(v.as_object().unwrap(), Region::default())
    }

    #[test]
    fn a_lead_is_normalised_and_keeps_its_extra_fields() {
        let lead = parse(
            json!({"first_name": "Ann", "last_name": "Lee", "email": " ANN@x.io ",
                                "phone": "415-555-2671", "budget": "10k", "source": "ads"}),
        )
        .unwrap();
        assert_eq!(lead.name.as_deref(), Some("Ann Lee"));
        assert_eq!(lead.email.unwrap().as_str(), "ann@x.io");
        assert_eq!(lead.phone.unwrap().as_str(), "+14155552671");
        assert_eq!(lead.fields["budget"], "10k");
        assert!(!lead.fields.contains_key("first_name"));
    }

    #[test]
    fn a_lead_without_a_way_to_answer_it_or_with_bad_fields_is_refused_naming_them() {
        let cases: Vec<(Value, &[&str])> = vec![
            (json!({"name": "Ann"}), &["email"]),
            (json!({"email": "ann"}), &["email"]),
            (json!({"phone": "12"}), &["phone"]),
            (json!({"email": 5}), &["email"]),
            (
                json!({"email": "a@b.co", "message": "x".repeat(10_001)}),
                &["message"],
            ),
            (json!({"email": "a@b.co", "name": ["Ann"]}), &["name"]),
            // The limit counts the value as sent: spaces around it too (found by Schemathesis).
            (
                json!({"email": format!("    a@b.co{}", "o".repeat(248))}),
                &["email"],
            ),
        ];
        for (input, want) in cases {
            let got: Vec<String> = parse(input.clone())
                .unwrap_err()
                .0
                .into_iter()
                .map(|f| f.field)
                .collect();
            assert_eq!(got, *want, "input {input}");
        }
    }

    #[test]
    fn a_form_post_becomes_a_lead_submitted_event_with_contact_traits() {
        let pairs = vec![
            ("name".to_string(), "Bo".to_string()),
            ("email".to_string(), "bo@shop.example".to_string()),
            ("message".to_string(), "call me".to_string()),
        ];
        let lead = Lead::from_form(&pairs, "contact", Region::default()).unwrap();
        let ev = lead.to_event(Some("m1".into()));
        assert_eq!(ev.name.as_deref(), Some(LEAD_SUBMITTED));
        assert_eq!(ev.properties["form"], "contact");
        assert_eq!(ev.properties["source"], "form:contact");
        assert_eq!(ev.traits["email"], "bo@shop.example");
        assert!(!ev.traits.contains_key("message"));
        assert_eq!(
            ev.identities,
            vec![Identity {
                kind: crate::IdentityKind::Email,
                value: "bo@shop.example".into()
            }]
        );
    }
}
