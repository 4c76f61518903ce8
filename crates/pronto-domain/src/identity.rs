//! Checked identifiers. A value of these types is already normalised, so equality is identity: two spellings of
//! one email (`Ann@Example.COM `, `ann@example.com`) or one phone (`(415) 555-2671`, `+14155552671`) are equal.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A syntactically valid email address, trimmed and lower-cased.
///
/// The local part is lower-cased too: RFC 5321 allows case-sensitive mailboxes, but no mainstream provider uses
/// them, and treating `Ann@` and `ann@` as two people would split contacts far more often than it merges two.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let s = raw.trim().to_lowercase();
        if s.is_empty() {
            return Err("is empty");
        }
        if s.len() > 254 {
            return Err("is longer than 254 characters");
        }
        let (local, domain) = s.rsplit_once('@').ok_or("has no @")?;
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err("has an empty or over-long part before the @");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) || domain.contains('@') {
            return Err("contains spaces or control characters");
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels.iter().any(|l| {
                l.is_empty()
                    || l.starts_with('-')
                    || l.ends_with('-')
                    || l.contains(['(', ')', ',', ';', ':', '<', '>', '[', ']', '"', '\\'])
            })
        {
            return Err("does not have a valid domain");
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The region a phone number without a `+country` prefix is read in (ISO 3166-1 alpha-2, e.g. `US`, `GB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(phonenumber::country::Id);

impl FromStr for Region {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        phonenumber::country::Id::from_str(&s.trim().to_uppercase())
            .map(Self)
            .map_err(|_| format!("`{s}` is not an ISO 3166-1 alpha-2 region code"))
    }
}

impl Default for Region {
    fn default() -> Self {
        Self(phonenumber::country::Id::US)
    }
}

/// A valid phone number in E.164 form (`+14155552671`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Phone(String);

impl Phone {
    /// Parses a number as people type it; a number without `+` is read in `region`.
    pub fn parse(raw: &str, region: Region) -> Result<Self, &'static str> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("is empty");
        }
        if raw.len() > 64 {
            return Err("is longer than 64 characters");
        }
        let number =
            phonenumber::parse(Some(region.0), raw).map_err(|_| "is not a phone number")?;
        if !phonenumber::is_valid(&number) {
            return Err("is not a valid phone number for its region");
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of identifier that resolve to a contact. `UserId` is the strongest: two different user ids are
/// never merged into one contact (see [`crate::resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    UserId,
    AnonymousId,
    Email,
    Phone,
}

impl IdentityKind {
    pub const ALL: [IdentityKind; 4] = [Self::UserId, Self::AnonymousId, Self::Email, Self::Phone];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserId => "user_id",
            Self::AnonymousId => "anonymous_id",
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }
}

impl FromStr for IdentityKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown identity kind `{s}`"))
    }
}

/// One identifier of a contact. Values of the `Email` and `Phone` kinds are always normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    pub kind: IdentityKind,
    pub value: String,
}

impl Identity {
    pub fn user_id(v: impl Into<String>) -> Self {
        Self {
            kind: IdentityKind::UserId,
            value: v.into(),
        }
    }
    pub fn anonymous_id(v: impl Into<String>) -> Self {
        Self {
            kind: IdentityKind::AnonymousId,
            value: v.into(),
        }
    }
    pub fn email(e: &Email) -> Self {
        Self {
            kind: IdentityKind::Email,
            value: e.0.clone(),
        }
    }
    pub fn phone(p: &Phone) -> Self {
        Self {
            kind: IdentityKind::Phone,
            value: p.0.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased_and_nonsense_is_refused() {
        let cases: &[(&str, Result<&str, ()>)] = &[
            ("Ann@Example.COM ", Ok("ann@example.com")),
            ("a.b+tag@sub.example.co.uk", Ok("a.b+tag@sub.example.co.uk")),
            ("", Err(())),
            ("no-at-sign", Err(())),
            ("@example.com", Err(())),
            ("ann@localhost", Err(())),
            ("ann@exa mple.com", Err(())),
            ("ann@@example.com", Err(())),
            ("ann@-example.com", Err(())),
            ("ann@example..com", Err(())),
        ];
        for (raw, want) in cases {
            let got = Email::parse(raw)
                .map(|e| e.as_str().to_string())
                .map_err(|_| ());
            assert_eq!(got, want.map(str::to_string), "Email::parse({raw:?})");
        }
    }

    #[test]
    fn phones_become_e164_read_in_the_default_region_unless_prefixed() {
        let us: Region = "us".parse().unwrap();
        let gb: Region = "GB".parse().unwrap();
        let cases: &[(&str, Region, Option<&str>)] = &[
            ("(415) 555-2671", us, Some("+14155552671")),
            ("+1 415 555 2671", gb, Some("+14155552671")),
            ("020 7946 0018", gb, Some("+442079460018")),
            ("+44 20 7946 0018", us, Some("+442079460018")),
            ("12", us, None),
            ("call me", us, None),
            ("", us, None),
        ];
        for (raw, region, want) in cases {
            let got = Phone::parse(raw, *region)
                .ok()
                .map(|p| p.as_str().to_string());
            assert_eq!(got.as_deref(), *want, "Phone::parse({raw:?})");
        }
    }

    #[test]
    fn a_region_code_must_be_a_real_one() {
        assert!("XX".parse::<Region>().is_err());
        assert!("de".parse::<Region>().is_ok());
    }
}
