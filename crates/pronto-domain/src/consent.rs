//! Consent by rule: whether a flow's message may go to a person, from why the flow writes
//! ([`Purpose`]) and where the person is. Marketing to people in opt-in countries (`[consent] opt_in`, e.g.
//! the EU under the ePrivacy directive, the UK under PECR, Canada under CASL) needs their recorded consent
//! (`accepts_marketing` true, as a shop's checkbox or an identify call sets it); elsewhere marketing is
//! opt-out (it goes until they unsubscribe). Transactional mail needs no consent and ignores an unsubscribe
//! from marketing; nobody marked do-not-contact gets anything.
//!
//! Every change of a consent trait ([`KEYS`]) is recorded on the contact, with its source and time
//! ([`record_changes`]), in the `consent_history` trait.
//!
//! Where a person is: their `country` trait (or `country_code`, or `address.country` /
//! `address.country_code`), as an ISO 3166 two-letter code; else their phone number's country. Unknown:
//! as `unknown_country` says (default: opt-in, the safe side).

use crate::flow::{Purpose, SendTo};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// The 27 member states of the European Union (ISO 3166-1 alpha-2), what `opt_in = ["EU"]` stands for.
pub const EU: [&str; 27] = [
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
];

/// The European Economic Area: the EU with Iceland, Liechtenstein and Norway (`opt_in = ["EEA"]`).
pub const EEA_EXTRA: [&str; 3] = ["IS", "LI", "NO"];

/// `[consent]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentConfig {
    /// Countries (ISO 3166 codes, or `EU` / `EEA`) where marketing needs recorded consent.
    #[serde(default)]
    pub opt_in: Vec<String>,
    /// `opt_in` (default) or `opt_out`: how a person whose country is unknown is treated, when `opt_in`
    /// names any country.
    pub unknown_country: Option<String>,
}

/// The checked rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    opt_in: BTreeSet<String>,
    unknown_opt_in: bool,
}

impl Policy {
    /// The rule, or each problem with its field.
    pub fn check(c: &ConsentConfig) -> Result<Self, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut opt_in = BTreeSet::new();
        for (i, code) in c.opt_in.iter().enumerate() {
            let upper = code.trim().to_ascii_uppercase();
            match upper.as_str() {
                "EU" => opt_in.extend(EU.iter().map(|c| c.to_string())),
                "EEA" => opt_in.extend(EU.iter().chain(EEA_EXTRA.iter()).map(|c| c.to_string())),
                c if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_uppercase()) => {
                    opt_in.insert(c.to_string());
                }
                _ => problems.push((
                    format!("consent.opt_in[{i}]"),
                    format!("`{code}` is not a two-letter country code (ISO 3166), EU or EEA"),
                )),
            }
        }
        let unknown_opt_in = match c.unknown_country.as_deref() {
            None | Some("opt_in") => true,
            Some("opt_out") => false,
            Some(other) => {
                problems.push((
                    "consent.unknown_country".into(),
                    format!("`{other}` is not opt_in or opt_out"),
                ));
                true
            }
        };
        if problems.is_empty() {
            Ok(Self {
                opt_in,
                unknown_opt_in,
            })
        } else {
            Err(problems)
        }
    }

    /// Why a flow's message may not go to a person with these traits and phone, if so: `(category,
    /// detail)`, the category the same for every run that is refused for that reason (the flows report
    /// groups by it).
    pub fn refusal(
        &self,
        traits: &serde_json::Map<String, Value>,
        phone: Option<&str>,
        purpose: Purpose,
        send_to: SendTo,
    ) -> Option<(&'static str, String)> {
        let yes = |k: &str| truthy(traits.get(k));
        if yes("do_not_contact") {
            return Some(("do not contact", "do not contact".into()));
        }
        if purpose == Purpose::Transactional {
            return None;
        }
        if yes("unsubscribed") {
            return Some(("unsubscribed", "unsubscribed".into()));
        }
        if send_to == SendTo::Subscribers && !yes("accepts_marketing") {
            let why = "not a subscriber (the flow sends to contacts who accept marketing)";
            return Some((why, why.into()));
        }
        if self.opt_in.is_empty() || yes("accepts_marketing") {
            return None;
        }
        match country(traits, phone) {
            Some(c) if self.opt_in.contains(&c) => Some((
                "no marketing consent",
                format!(
                    "no marketing consent: {c} requires opt-in (accepts_marketing is not true)"
                ),
            )),
            None if self.unknown_opt_in => Some((
                "no marketing consent",
                "no marketing consent: the country is unknown and [consent] treats it as opt-in"
                    .into(),
            )),
            _ => None,
        }
    }
}

/// The traits that say what a person agreed to.
pub const KEYS: [&str; 3] = ["accepts_marketing", "unsubscribed", "do_not_contact"];

/// The trait the changes are kept in, newest last.
pub const HISTORY: &str = "consent_history";

/// How many changes are kept per person (the oldest go first).
const HISTORY_LIMIT: usize = 50;

/// The consent traits' values before a change, to compare with after it ([`record_changes`]).
pub fn snapshot(traits: &serde_json::Map<String, Value>) -> [Option<Value>; 3] {
    KEYS.map(|k| traits.get(k).cloned())
}

/// Appends to `traits`' [`HISTORY`] one entry per consent trait whose value differs from `before`
/// (`{trait, value, source, at}`; `value` null when it was removed). `source` says what changed it: `identify`,
/// a shop (`shopify`), `unsubscribe link`, `complaint`, …
pub fn record_changes(
    before: &[Option<Value>; 3],
    traits: &mut serde_json::Map<String, Value>,
    source: &str,
    at: chrono::DateTime<chrono::Utc>,
) {
    let changes: Vec<Value> = KEYS
        .iter()
        .zip(before)
        .filter(|(k, old)| traits.get(**k) != old.as_ref())
        .map(|(k, _)| {
            serde_json::json!({
                "trait": k,
                "value": traits.get(*k).cloned().unwrap_or(Value::Null),
                "source": source,
                "at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })
        })
        .collect();
    if changes.is_empty() {
        return;
    }
    let mut history = match traits.remove(HISTORY) {
        Some(Value::Array(h)) => h,
        _ => Vec::new(),
    };
    history.extend(changes);
    let excess = history.len().saturating_sub(HISTORY_LIMIT);
    history.drain(..excess);
    traits.insert(HISTORY.into(), Value::Array(history));
}

/// What changed a contact's traits through ingestion, for [`record_changes`]: the shop whose webhook it was
/// (`shopify`, `woocommerce`), a lead (`lead`), else the message's type (`identify`).
pub fn source_of(event: &crate::NewEvent) -> String {
    if let Some(platform) = event
        .payload
        .pointer("/context/shop/platform")
        .and_then(Value::as_str)
    {
        return platform.to_string();
    }
    match event.name.as_deref() {
        Some("Lead Submitted") => "lead".into(),
        _ => event.kind.as_str().into(),
    }
}

fn truthy(v: Option<&Value>) -> bool {
    v.is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"))
}

/// Where the person is, as an upper-case ISO 3166 alpha-2 code: their traits' country, else their phone's.
pub fn country(traits: &serde_json::Map<String, Value>, phone: Option<&str>) -> Option<String> {
    let code = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| s.len() == 2 && s.chars().all(|c| c.is_ascii_uppercase()))
    };
    let address = traits.get("address");
    code(traits.get("country"))
        .or_else(|| code(traits.get("country_code")))
        .or_else(|| code(address.and_then(|a| a.get("country_code"))))
        .or_else(|| code(address.and_then(|a| a.get("country"))))
        .or_else(|| {
            let phone = phonenumber::parse(None, phone?).ok()?;
            let id = phone.country().id()?;
            Some(AsRef::<str>::as_ref(&id).to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn traits(v: &Value) -> serde_json::Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn policy(opt_in: &[&str], unknown: Option<&str>) -> Policy {
        Policy::check(&ConsentConfig {
            opt_in: opt_in.iter().map(|s| s.to_string()).collect(),
            unknown_country: unknown.map(str::to_string),
        })
        .unwrap()
    }

    #[test]
    fn where_a_person_is_comes_from_their_traits_then_their_phone() {
        let cases = [
            (json!({"country": "de"}), None, Some("DE")),
            (json!({"country_code": "FR"}), None, Some("FR")),
            (json!({"address": {"country": "NL"}}), None, Some("NL")),
            (json!({"address": {"country": "Netherlands"}}), None, None),
            (json!({}), Some("+4930901820"), Some("DE")),
            (json!({}), Some("+14155550101"), Some("US")),
            (json!({"country": "IE"}), Some("+14155550101"), Some("IE")),
            (json!({}), None, None),
        ];
        for (t, phone, want) in cases {
            assert_eq!(
                country(&traits(&t), phone).as_deref(),
                want,
                "{t} {phone:?}"
            );
        }
    }

    #[test]
    fn marketing_needs_consent_where_the_rule_says_and_transactional_mail_needs_none() {
        use Purpose::{Marketing as M, Transactional as T};
        let eu = policy(&["EU", "GB"], None);
        let eu_lenient = policy(&["EU"], Some("opt_out"));
        let none = Policy::default();
        // (what, rule, traits, purpose, send_to, the refusal's category)
        type Case<'a> = (&'a str, &'a Policy, Value, Purpose, SendTo, Option<&'a str>);
        let cases: Vec<Case> = vec![
            (
                "a German without consent",
                &eu,
                json!({"country": "DE"}),
                M,
                SendTo::Everyone,
                Some("no marketing consent"),
            ),
            (
                "a German who accepted",
                &eu,
                json!({"country": "DE", "accepts_marketing": true}),
                M,
                SendTo::Everyone,
                None,
            ),
            (
                "a Briton without consent",
                &eu,
                json!({"country": "GB"}),
                M,
                SendTo::Everyone,
                Some("no marketing consent"),
            ),
            (
                "an American without consent (opt-out)",
                &eu,
                json!({"country": "US"}),
                M,
                SendTo::Everyone,
                None,
            ),
            (
                "an unknown country, strict",
                &eu,
                json!({}),
                M,
                SendTo::Everyone,
                Some("no marketing consent"),
            ),
            (
                "an unknown country, lenient",
                &eu_lenient,
                json!({}),
                M,
                SendTo::Everyone,
                None,
            ),
            (
                "no rule: opt-out everywhere",
                &none,
                json!({"country": "DE"}),
                M,
                SendTo::Everyone,
                None,
            ),
            (
                "an American who unsubscribed",
                &eu,
                json!({"country": "US", "unsubscribed": true}),
                M,
                SendTo::Everyone,
                Some("unsubscribed"),
            ),
            (
                "a flow for subscribers only",
                &none,
                json!({"country": "US"}),
                M,
                SendTo::Subscribers,
                Some("not a subscriber (the flow sends to contacts who accept marketing)"),
            ),
            (
                "transactional to a German without consent",
                &eu,
                json!({"country": "DE"}),
                T,
                SendTo::Everyone,
                None,
            ),
            (
                "transactional after an unsubscribe",
                &eu,
                json!({"unsubscribed": true}),
                T,
                SendTo::Everyone,
                None,
            ),
            (
                "transactional to do-not-contact",
                &eu,
                json!({"do_not_contact": true}),
                T,
                SendTo::Everyone,
                Some("do not contact"),
            ),
        ];
        for (what, p, traits, purpose, send_to, want) in cases {
            let got = p.refusal(&super::tests::traits(&traits), None, purpose, send_to);
            assert_eq!(got.as_ref().map(|(c, _)| *c), want, "{what}: {got:?}");
        }
    }

    #[test]
    fn each_consent_change_is_recorded_with_its_source_and_time_and_nothing_else_is() {
        let at = |h: u32| {
            chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 12, 7, h, 0, 0).unwrap()
        };
        let mut traits = json!({"email": "a@b.co"}).as_object().cloned().unwrap();
        let steps: [(Value, &str); 4] = [
            (json!({"accepts_marketing": true, "plan": "pro"}), "shopify"),
            (json!({"plan": "team"}), "identify"),
            (json!({"accepts_marketing": true}), "identify"),
            (
                json!({"unsubscribed": true, "accepts_marketing": null}),
                "unsubscribe link",
            ),
        ];
        for (h, (patch, source)) in steps.into_iter().enumerate() {
            let before = snapshot(&traits);
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    traits.remove(k);
                } else {
                    traits.insert(k.clone(), v.clone());
                }
            }
            record_changes(&before, &mut traits, source, at(h as u32 + 8));
        }
        assert_eq!(
            traits[HISTORY],
            json!([
                {"trait": "accepts_marketing", "value": true, "source": "shopify", "at": "2026-12-07T08:00:00Z"},
                {"trait": "accepts_marketing", "value": null, "source": "unsubscribe link", "at": "2026-12-07T11:00:00Z"},
                {"trait": "unsubscribed", "value": true, "source": "unsubscribe link", "at": "2026-12-07T11:00:00Z"},
            ])
        );
    }

    #[test]
    fn a_rule_that_names_no_country_is_refused_by_field() {
        let err = Policy::check(&ConsentConfig {
            opt_in: vec!["DE".into(), "Europe".into()],
            unknown_country: Some("maybe".into()),
        })
        .unwrap_err();
        let fields: Vec<&str> = err.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["consent.opt_in[1]", "consent.unknown_country"]);
        assert_eq!(policy(&["EEA"], None).opt_in.len(), 30);
    }
}
