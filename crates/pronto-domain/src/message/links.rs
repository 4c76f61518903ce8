//! The signed links pronto puts in messages, made and checked in one place: a contact's one-click
//! unsubscribe link (also the `List-Unsubscribe` header) and a rep's "I'm on it" claim link. Each is an
//! HMAC of what it names, its purpose and its expiry under the database's link secret
//! ([`crate::claim`]), so one kind of link can never pass for the other, nor for another workspace's.

use crate::claim::{sign, verify, ClaimError};
use crate::program::MessageSettings;
use crate::{LeadId, WorkspaceId};

/// How long an unsubscribe link works: long enough for any mail still in an inbox.
const UNSUBSCRIBE_VALIDITY_SECS: i64 = 5 * 366 * 24 * 3600;

/// How long a claim link in an alert works.
const CLAIM_VALIDITY_SECS: i64 = 7 * 24 * 3600;

fn base(settings: &MessageSettings) -> &str {
    settings.public_url.trim_end_matches('/')
}

/// The contact's signed one-click unsubscribe link.
pub fn unsubscribe_url(
    settings: &MessageSettings,
    workspace: &str,
    contact: &str,
    now: i64,
) -> String {
    let token = sign(
        &settings.link_secret,
        contact,
        workspace,
        "unsubscribe",
        now + UNSUBSCRIBE_VALIDITY_SECS,
    );
    format!("{}/u/{workspace}/{contact}/{token}", base(settings))
}

/// Checks an unsubscribe link's token for this workspace and contact.
pub fn check_unsubscribe(
    settings: &MessageSettings,
    workspace: &str,
    contact: &str,
    token: &str,
    now: i64,
) -> Result<(), ClaimError> {
    verify(
        &settings.link_secret,
        contact,
        workspace,
        "unsubscribe",
        token,
        now,
    )
}

/// The rep's signed "I'm on it" link for this lead.
pub fn claim_url(
    settings: &MessageSettings,
    ws: WorkspaceId,
    lead: LeadId,
    rep: &str,
    now: i64,
) -> String {
    let token = sign(
        &settings.link_secret,
        &format!("{ws}/{lead}"),
        rep,
        "claim",
        now + CLAIM_VALIDITY_SECS,
    );
    format!("{}/c/{ws}/{lead}/{rep}/{token}", base(settings))
}

/// Checks a claim link's token.
pub fn check_claim(
    settings: &MessageSettings,
    ws: WorkspaceId,
    lead: LeadId,
    rep: &str,
    token: &str,
    now: i64,
) -> Result<(), ClaimError> {
    verify(
        &settings.link_secret,
        &format!("{ws}/{lead}"),
        rep,
        "claim",
        token,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(secret: &[u8]) -> MessageSettings {
        MessageSettings {
            public_url: "https://pronto.example/".into(),
            link_secret: secret.to_vec(),
            ..MessageSettings::default()
        }
    }

    fn token(url: &str) -> &str {
        url.rsplit('/').next().unwrap_or_default()
    }

    #[test]
    fn a_link_is_accepted_only_for_what_it_was_made_for_until_it_expires() {
        let s = settings(b"secret");
        let ws = WorkspaceId(uuid::Uuid::from_u128(1));
        let other_ws = WorkspaceId(uuid::Uuid::from_u128(2));
        let lead = LeadId(uuid::Uuid::from_u128(3));
        let now = 1_800_000_000;
        let unsub = unsubscribe_url(&s, &ws.to_string(), "c1", now);
        let claim = claim_url(&s, ws, lead, "ann", now);
        assert!(unsub.starts_with(&format!("https://pronto.example/u/{ws}/c1/")));
        assert!(claim.starts_with(&format!("https://pronto.example/c/{ws}/{lead}/ann/")));
        let cases: Vec<(&str, bool, bool)> = vec![
            (
                "the unsubscribe link, as made",
                check_unsubscribe(&s, &ws.to_string(), "c1", token(&unsub), now).is_ok(),
                true,
            ),
            (
                "the unsubscribe link for another contact",
                check_unsubscribe(&s, &ws.to_string(), "c2", token(&unsub), now).is_ok(),
                false,
            ),
            (
                "the unsubscribe link in another workspace",
                check_unsubscribe(&s, &other_ws.to_string(), "c1", token(&unsub), now).is_ok(),
                false,
            ),
            (
                "the unsubscribe link under another secret",
                check_unsubscribe(
                    &settings(b"other"),
                    &ws.to_string(),
                    "c1",
                    token(&unsub),
                    now,
                )
                .is_ok(),
                false,
            ),
            (
                "the unsubscribe link after five years",
                check_unsubscribe(
                    &s,
                    &ws.to_string(),
                    "c1",
                    token(&unsub),
                    now + UNSUBSCRIBE_VALIDITY_SECS + 1,
                )
                .is_ok(),
                false,
            ),
            (
                "the claim link, as made",
                check_claim(&s, ws, lead, "ann", token(&claim), now).is_ok(),
                true,
            ),
            (
                "the claim link for another rep",
                check_claim(&s, ws, lead, "bob", token(&claim), now).is_ok(),
                false,
            ),
            (
                "the claim link after a week",
                check_claim(
                    &s,
                    ws,
                    lead,
                    "ann",
                    token(&claim),
                    now + CLAIM_VALIDITY_SECS + 1,
                )
                .is_ok(),
                false,
            ),
        ];
        for (name, got, want) in cases {
            assert_eq!(got, want, "{name}");
        }
    }
}
