//! The suppression list: addresses and numbers nothing more is sent to, and why. A mailbox that does not
//! exist, a person who complained or texted STOP to their carrier, an address an admin listed: once listed,
//! every later message to it is skipped with the reason recorded, whatever queued it (a flow, an
//! acknowledgement, a rep alert). Mailbox providers judge a sender by how often it knocks on doors that are
//! not there; Gmail's and Yahoo's 2024 sender rules make that a condition of reaching the inbox at all.
//!
//! What a refused delivery means is decided here, from the server's reply: a mailbox-level refusal
//! (`550`, `5.1.1` no such user, `5.2.1` disabled) lists the address at once; a full mailbox (`552`,
//! `5.2.2`) is a *soft* bounce, and enough of those within a window ([`SoftBounces`]) list the address for a
//! while. A message the outbox gave up on after temporary failures is not one: those include our own relay
//! being unreachable, which says nothing about the address. A refusal about the sender or the message
//! (`5.7.x`: policy, spam, authentication) fails that message but does not list the address: the fault is
//! ours to fix, and listing would silence good customers.
//!
//! # Layout
//! - this file: [`Medium`], [`Reason`], [`Suppression`]; [`address`] (the one spelling a list entry is
//!   kept and matched under); [`after_refusal`] (what a refused delivery means for its address); [`SoftBounces`] and its rule; [`suppressed`] (which of a batch of messages to skip); [`merge`]; the
//!   list as CSV ([`to_csv`], [`from_csv`]).
//! - [`report`]: bounces and complaints that arrive by mail (RFC 3464 DSNs, RFC 5965 feedback reports).
//! - [`provider`]: those a sending service's event webhook reports (SendGrid, Mailgun), with each one's
//!   signature check.

pub mod provider;
pub mod report;

use crate::identity::{Email, Phone, Region};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a list entry blocks: email to an address or SMS to a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Medium {
    Email,
    Sms,
}

impl Medium {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }

    /// The medium an address given without one is read in: email when it has an `@`, else SMS.
    pub fn of_address(address: &str) -> Self {
        if address.contains('@') {
            Self::Email
        } else {
            Self::Sms
        }
    }

    /// The medium of an outbox channel (`email`, `sms`); webhooks have none.
    pub fn of_channel(channel: &str) -> Option<Self> {
        match channel {
            "email" => Some(Self::Email),
            "sms" => Some(Self::Sms),
            _ => None,
        }
    }
}

/// Why an address is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The receiving server said the mailbox or number does not exist or is disabled.
    HardBounce,
    /// Repeated soft bounces within the window ([`SoftBounces`]); listed for a while.
    SoftBounces,
    /// The person reported a message as spam.
    Complaint,
    /// The person opted out where we cannot see it (STOP to the carrier, Twilio's error 21610).
    Unsubscribed,
    /// Listed by an admin (the API, a CSV import, the CLI).
    Manual,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::HardBounce,
        Reason::SoftBounces,
        Reason::Complaint,
        Reason::Unsubscribed,
        Reason::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardBounce => "hard_bounce",
            Self::SoftBounces => "soft_bounces",
            Self::Complaint => "complaint",
            Self::Unsubscribed => "unsubscribed",
            Self::Manual => "manual",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Suppression {
    pub medium: Medium,
    /// As the list spells it: a lower-cased email address, or an E.164 number.
    pub address: String,
    pub reason: Reason,
    /// Where it came from: `smtp` (a refusal at send time), `sms` (the provider's refusal), `outbox` (soft
    /// bounces counted), `api`, `csv`, `dsn`, `arf`, `sendgrid`, `mailgun`, `erasure` (an erased person, listed
    /// by [`hashed`] address).
    pub source: String,
    /// The server's words, or a note.
    pub detail: Option<String>,
    pub since: DateTime<Utc>,
    /// Listed until then (soft bounces); `None`: until removed.
    pub until: Option<DateTime<Utc>>,
}

impl Suppression {
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.since <= now && self.until.is_none_or(|u| now < u)
    }

    /// What a skipped message records as its reason.
    pub fn why(&self) -> String {
        let mut s = format!(
            "suppressed: {} (since {})",
            self.reason.as_str().replace('_', " "),
            self.since.format("%Y-%m-%d %H:%M UTC")
        );
        if let Some(until) = self.until {
            s.push_str(&format!(" until {}", until.format("%Y-%m-%d %H:%M UTC")));
        }
        if let Some(d) = self.detail.as_deref().filter(|d| !d.is_empty()) {
            s.push_str(": ");
            s.extend(d.chars().take(200));
        }
        s
    }
}

/// The one spelling an address is listed and matched under: an email address trimmed and lower-cased (a
/// display name, `Ann <ann@example.com>`, is dropped), a phone number in E.164 (one without `+` is read as
/// a US number, as everywhere in pronto).
pub fn address(medium: Medium, raw: &str) -> Result<String, &'static str> {
    match medium {
        Medium::Email => {
            let raw = raw.trim();
            let bare = match (raw.rfind('<'), raw.ends_with('>')) {
                (Some(open), true) => &raw[open + 1..raw.len() - 1],
                _ => raw,
            };
            Email::parse(bare).map(|e| e.as_str().to_string())
        }
        Medium::Sms => Phone::parse(raw, Region::default()).map(|p| p.as_str().to_string()),
    }
}

/// An entry an admin gives (the API, a CSV row, the CLI), checked: the address must parse for its medium
/// (an address with `@` is email, anything else a phone number, unless `medium` says), `detail` is at most
/// 500 characters, and `since` defaults to `now`. Errors name the field.
pub fn given(
    address: &str,
    medium: Option<Medium>,
    reason: Option<Reason>,
    detail: Option<&str>,
    source: &str,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Suppression, crate::Invalid> {
    let medium = medium.unwrap_or_else(|| Medium::of_address(address));
    let address = self::address(medium, address).map_err(|m| {
        crate::Invalid::one(
            "address",
            format!("{m} (an email address, or a phone number such as +14155552671)"),
        )
    })?;
    let detail = detail.map(str::trim).filter(|d| !d.is_empty());
    if detail.is_some_and(|d| d.chars().count() > 500) {
        return Err(crate::Invalid::one(
            "detail",
            "must be at most 500 characters",
        ));
    }
    Ok(Suppression {
        medium,
        address,
        reason: reason.unwrap_or(Reason::Manual),
        source: source.into(),
        detail: detail.map(str::to_string),
        since: since.unwrap_or(now),
        until: None,
    })
}

/// The CSV columns the list is exported with and imported from, in order.
pub const CSV_COLUMNS: [&str; 7] = [
    "medium", "address", "reason", "source", "detail", "since", "until",
];

/// The list as CSV: a header ([`CSV_COLUMNS`]) and one row per entry, times in RFC 3339.
pub fn to_csv(entries: &[Suppression]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(CSV_COLUMNS);
    for s in entries {
        let _ = w.write_record([
            s.medium.as_str(),
            &s.address,
            s.reason.as_str(),
            &s.source,
            s.detail.as_deref().unwrap_or(""),
            &s.since.to_rfc3339(),
            &s.until.map(|u| u.to_rfc3339()).unwrap_or_default(),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Entries from CSV with a header row naming at least `address` (any of [`CSV_COLUMNS`] may follow, in any
/// order; others are refused, so a mistyped column is not silently dropped). A missing `medium` is inferred,
/// `reason` defaults to `manual`, `since` to `now`, `until` to none (a lasting entry); `source` is `source`
/// unless the row names one. All or nothing: the first bad row is the error, its field named `line N: …`
/// (N counting the header as line 1).
pub fn from_csv(
    text: &str,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Suppression>, crate::Invalid> {
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = r
        .headers()
        .map_err(|e| crate::Invalid::one("body", format!("is not CSV: {e}")))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    if let Some(unknown) = header.iter().find(|h| !CSV_COLUMNS.contains(&h.as_str())) {
        return Err(crate::Invalid::one(
            "body",
            format!(
                "the header names `{unknown}`; the columns are {}",
                CSV_COLUMNS.join(", ")
            ),
        ));
    }
    if !header.iter().any(|h| h == "address") {
        return Err(crate::Invalid::one(
            "body",
            "the header row must name an `address` column",
        ));
    }
    let col = |name: &str| header.iter().position(|h| h == name);
    let mut out = Vec::new();
    for (i, row) in r.records().enumerate() {
        let line = i + 2;
        let at = |field: &str| format!("line {line}: {field}");
        let row = row.map_err(|e| crate::Invalid::one(at("row"), e.to_string()))?;
        let get = |name: &str| col(name).and_then(|c| row.get(c)).filter(|v| !v.is_empty());
        let medium = match get("medium") {
            None => None,
            Some("email") => Some(Medium::Email),
            Some("sms") => Some(Medium::Sms),
            Some(other) => {
                return Err(crate::Invalid::one(
                    at("medium"),
                    format!("`{other}` is not email or sms"),
                ))
            }
        };
        let reason = match get("reason") {
            None => None,
            Some(r) => Some(Reason::parse(r).ok_or_else(|| {
                crate::Invalid::one(
                    at("reason"),
                    format!(
                        "`{r}` is not one of {}",
                        Reason::ALL.map(Reason::as_str).join(", ")
                    ),
                )
            })?),
        };
        let time = |field: &str| -> Result<Option<DateTime<Utc>>, crate::Invalid> {
            get(field)
                .map(|t| {
                    DateTime::parse_from_rfc3339(t)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|_| {
                            crate::Invalid::one(at(field), format!("`{t}` is not an RFC 3339 time"))
                        })
                })
                .transpose()
        };
        let since = time("since")?;
        let until = time("until")?;
        let mut entry = given(
            get("address").unwrap_or(""),
            medium,
            reason,
            get("detail"),
            get("source").unwrap_or(source),
            since,
            now,
        )
        .map_err(|e| {
            crate::Invalid(
                e.0.into_iter()
                    .map(|f| crate::FieldError::new(at(&f.field), f.message))
                    .collect(),
            )
        })?;
        if entry.source.chars().count() > 100 {
            return Err(crate::Invalid::one(
                at("source"),
                "must be at most 100 characters",
            ));
        }
        entry.until = until;
        out.push(entry);
    }
    Ok(out)
}

/// What a delivery's failure means for its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// List the address now, for good.
    Suppress { reason: Reason, detail: String },
    /// Count a soft bounce; enough of them list the address for a while ([`SoftBounces`]).
    SoftBounce { detail: String },
    /// The failure says nothing against the address.
    Keep,
}

impl Verdict {
    /// What the deliverability counts (and so the complaint and bounce rates) count it as: `hard`, `soft`,
    /// `complaint`, or nothing (an opt-out at the carrier, an admin's entry, a listing that soft bounces
    /// already counted).
    pub fn counted_as(&self) -> Option<&'static str> {
        match self {
            Verdict::Suppress {
                reason: Reason::HardBounce,
                ..
            } => Some("hard"),
            Verdict::Suppress {
                reason: Reason::Complaint,
                ..
            } => Some("complaint"),
            Verdict::SoftBounce { .. } => Some("soft"),
            _ => None,
        }
    }
}

/// The enhanced status code (RFC 3463, `5.1.1`) in an SMTP reply's text, if it has one.
fn enhanced_code(text: &str) -> Option<(u8, u16, u16)> {
    text.split(|c: char| c.is_whitespace() || c == ':' || c == '(' || c == ')')
        .take(12)
        .find_map(|token| {
            let mut parts = token.split('.');
            let class: u8 = parts.next()?.parse().ok()?;
            let subject: u16 = parts.next()?.parse().ok()?;
            let detail: u16 = parts.next()?.parse().ok()?;
            (parts.next().is_none() && matches!(class, 2 | 4 | 5))
                .then_some((class, subject, detail))
        })
}

/// A permanent refusal of one delivery (`medium`'s provider answered `code`, with `text`): whether it lists
/// the address.
///
/// SMTP: by the enhanced status code when the reply has one — `5.1.x` (bad mailbox or domain; not `5.1.7`
/// and `5.1.8`, which are about the sender), `5.2.1` (mailbox disabled) and `5.4.4` (no route to the
/// domain) list it; `5.2.2` (mailbox full) is a soft bounce; anything else (`5.7.x` policy and spam,
/// `5.3.x` and `5.6.x` about the message) keeps it. Without one, by the basic code: `550`, `551`, `553`
/// list it, `552` is a soft bounce, others keep it.
/// SMS (Twilio's error codes): `21610` (the recipient texted STOP to the carrier) lists it as unsubscribed,
/// `21211` and `21614` (not a valid mobile number) as a hard bounce.
pub fn after_refusal(medium: Medium, code: Option<&str>, text: &str) -> Verdict {
    let detail = || text.chars().take(300).collect::<String>();
    let hard = || Verdict::Suppress {
        reason: Reason::HardBounce,
        detail: detail(),
    };
    match medium {
        Medium::Email => match enhanced_code(text) {
            Some((5, 1, 7 | 8)) => Verdict::Keep,
            Some((5, 1, _)) | Some((5, 2, 1)) | Some((5, 4, 4)) => hard(),
            Some((5, 2, 2)) => Verdict::SoftBounce { detail: detail() },
            Some(_) => Verdict::Keep,
            None => match code {
                Some("550" | "551" | "553") => hard(),
                Some("552") => Verdict::SoftBounce { detail: detail() },
                _ => Verdict::Keep,
            },
        },
        Medium::Sms => match code {
            Some("21610") => Verdict::Suppress {
                reason: Reason::Unsubscribed,
                detail: detail(),
            },
            Some("21211" | "21614") => hard(),
            _ => Verdict::Keep,
        },
    }
}

/// How many soft bounces within how long list an address, and for how long (`[messages] soft_bounces`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftBounces {
    pub max: u32,
    pub within: Duration,
    pub suppress_for: Duration,
}

impl Default for SoftBounces {
    /// 3 within 7 days list the address for 7 days.
    fn default() -> Self {
        Self {
            max: 3,
            within: Duration::days(7),
            suppress_for: Duration::days(7),
        }
    }
}

impl SoftBounces {
    /// `count` soft bounces of one address within [`Self::within`] up to `now` (this one included): the
    /// entry that lists it, if they reach [`Self::max`].
    pub fn suppression(
        &self,
        medium: Medium,
        address: &str,
        count: u32,
        last: &str,
        now: DateTime<Utc>,
    ) -> Option<Suppression> {
        (self.max > 0 && count >= self.max).then(|| Suppression {
            medium,
            address: address.to_string(),
            reason: Reason::SoftBounces,
            source: "outbox".into(),
            detail: Some(format!(
                "{count} soft bounces within {} h; last: {last}",
                self.within.num_hours()
            )),
            since: now,
            until: Some(now + self.suppress_for),
        })
    }
}

/// Where a message to `to` over `channel` is listed, if it can be: its medium and [`address`] (webhooks and
/// addresses that do not parse have none; the send itself reports those).
pub fn key_of(channel: &str, to: &str) -> Option<(Medium, String)> {
    let medium = Medium::of_channel(channel)?;
    Some((medium, address(medium, to).ok()?))
}

/// How an erased person's address stays on the list without being kept: `sha256:` and the hex SHA-256 of
/// its one spelling ([`address`]). A message to it is matched by hashing its address too ([`suppressed`]).
pub fn hashed(address: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(address.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Of a batch of outgoing messages (`(scope, channel, to)` each: the scope is whose list applies, a
/// workspace), which are to be skipped and why, given the entries listed for their addresses (`listed`, keyed
/// by scope, medium and [`address`] or its [`hashed`] form, for an erased person).
pub fn suppressed<'a, S: Eq + std::hash::Hash + Clone + 'a>(
    messages: impl IntoIterator<Item = (&'a S, &'a str, &'a str)>,
    listed: &HashMap<(S, Medium, String), Suppression>,
    now: DateTime<Utc>,
) -> Vec<Option<String>> {
    messages
        .into_iter()
        .map(|(scope, channel, to)| {
            let (medium, address) = key_of(channel, to)?;
            let hash = hashed(&address);
            [address, hash]
                .into_iter()
                .find_map(|a| listed.get(&(scope.clone(), medium, a)))
                .filter(|s| s.active_at(now))
                .map(Suppression::why)
        })
        .collect()
}

/// What is listed for an address when `new` arrives where `old` was: a lasting entry is not replaced by one
/// that runs out (soft bounces do not shorten a hard bounce, a complaint or an admin's entry); otherwise the
/// newer one is kept. `None`: keep `old` as it is.
pub fn merge(old: Option<&Suppression>, new: Suppression) -> Option<Suppression> {
    match old {
        Some(old) if old.until.is_none() && new.until.is_some() => None,
        Some(old) if *old == new => None,
        _ => Some(new),
    }
}

#[cfg(test)]
mod tests;
