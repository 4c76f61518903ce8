//! The signed links pronto puts in messages, made and checked in one place: a contact's one-click
//! unsubscribe link (also the `List-Unsubscribe` header), a rep's "I'm on it" claim link, and the tracked
//! redirect a flow message's links go through. Each is an HMAC of what it names, its purpose and its expiry
//! under the database's link secret ([`crate::claim`]), so one kind of link can never pass for another, nor
//! for another workspace's or message's, and a tracked link cannot be pointed at another address.

use crate::claim::{sign, verify, ClaimError};
use crate::program::MessageSettings;
use crate::{LeadId, WorkspaceId};

/// How long an unsubscribe link works: long enough for any mail still in an inbox.
const UNSUBSCRIBE_VALIDITY_SECS: i64 = 5 * 366 * 24 * 3600;

/// How long a tracked link records clicks and redirects to its address; after that it still redirects, to
/// the address's site root ([`click_fallback`]).
const CLICK_VALIDITY_SECS: i64 = 90 * 24 * 3600;

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

/// The `mailto:` form of an unsubscribe link, for `List-Unsubscribe` beside the one-click URL (mail clients
/// without RFC 8058 send an email instead): a message to `mailbox` whose subject carries the link's
/// workspace, contact and token. Mail to `mailbox` must reach `POST /v1/inbound/email`, which reads the
/// subject back with [`unsubscribe_request`]. `None` when `url` is not an unsubscribe link.
pub fn unsubscribe_mailto(mailbox: &str, url: &str) -> Option<String> {
    let mut parts = url.trim_end_matches('/').rsplit('/');
    let (token, contact, workspace, u) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (u == "u").then(|| {
        format!("mailto:{mailbox}?subject=unsubscribe%20{workspace}%2F{contact}%2F{token}")
    })
}

/// The workspace, contact and token an unsubscribe email names (`unsubscribe <workspace>/<contact>/<token>`
/// anywhere in its subject or text, as [`unsubscribe_mailto`] wrote it; a client's `Re:` or a forwarder's
/// prefix does not matter). Checked with [`check_unsubscribe`] before anything is done.
pub fn unsubscribe_request(text: &str) -> Option<(String, String, String)> {
    let lower = text.to_ascii_lowercase();
    let at = lower.find("unsubscribe ")? + "unsubscribe ".len();
    let word = text[at..].split_whitespace().next()?;
    let mut parts = word.split('/');
    let (ws, contact, token) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && !ws.is_empty() && !contact.is_empty() && !token.is_empty())
        .then(|| (ws.to_string(), contact.to_string(), token.to_string()))
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

/// The tracked redirect for `target` in the message keyed `message` (its outbox key): opening it records a
/// click and redirects to `target`. Only absolute http(s) addresses are wrapped; anything else is returned
/// as it is.
pub fn click_url(
    settings: &MessageSettings,
    workspace: &str,
    message: &str,
    target: &str,
    now: i64,
) -> String {
    let Ok(u) = url::Url::parse(target) else {
        return target.to_string();
    };
    if !matches!(u.scheme(), "http" | "https") {
        return target.to_string();
    }
    let token = sign(
        &settings.link_secret,
        &format!("{workspace}/{message}"),
        target,
        "click",
        now + CLICK_VALIDITY_SECS,
    );
    let mut link = url::Url::parse(&format!(
        "{}/r/{workspace}/{message}/{token}",
        base(settings)
    ))
    .unwrap_or_else(|_| u.clone());
    if link.as_str() == u.as_str() {
        // The public URL is not a URL: no tracking rather than a broken link.
        return target.to_string();
    }
    link.query_pairs_mut().append_pair("to", target);
    link.to_string()
}

/// Checks a tracked link: `Ok` to record the click and redirect to `target`; `Expired` when it was made for
/// `target` but is too old (redirect to [`click_fallback`], record nothing); `Invalid` when it was not made
/// for this message and address (refuse: redirecting would make pronto an open redirect).
pub fn check_click(
    settings: &MessageSettings,
    workspace: &str,
    message: &str,
    target: &str,
    token: &str,
    now: i64,
) -> Result<(), ClaimError> {
    verify(
        &settings.link_secret,
        &format!("{workspace}/{message}"),
        target,
        "click",
        token,
        now,
    )
}

/// Where an expired tracked link goes: the root of the site it was made for (its signature checked), never an
/// address the link did not carry.
pub fn click_fallback(target: &str) -> Option<String> {
    let u = url::Url::parse(target).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let mut root = u;
    root.set_path("/");
    root.set_query(None);
    root.set_fragment(None);
    Some(root.to_string())
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
    fn the_mailto_form_carries_the_link_and_the_email_it_brings_back_reads_as_the_link() {
        let s = settings(b"secret");
        let url = unsubscribe_url(&s, "w1", "c1", 1_800_000_000);
        let mailto = unsubscribe_mailto("unsubscribe@in.example", &url).unwrap();
        let subject = mailto.split_once("?subject=").unwrap().1;
        assert!(
            mailto.starts_with("mailto:unsubscribe@in.example?subject=unsubscribe%20w1%2Fc1%2F")
        );
        // What a mail client puts in the subject, decoded; a reply prefix or a forwarded body changes nothing.
        let decoded = subject.replace("%20", " ").replace("%2F", "/");
        let want = Some(("w1".into(), "c1".into(), token(&url).to_string()));
        for text in [
            decoded.clone(),
            format!("Re: {decoded}"),
            format!(
                "Fwd: hello\n\n> {}",
                decoded.replace("unsubscribe", "UNSUBSCRIBE")
            ),
        ] {
            assert_eq!(unsubscribe_request(&text), want, "{text}");
            let (ws, contact, t) = unsubscribe_request(&text).unwrap();
            assert!(check_unsubscribe(&s, &ws, &contact, &t, 1_800_000_000).is_ok());
        }
        for text in [
            "unsubscribe",
            "please unsubscribe me",
            "unsubscribe w1/c1",
            "unsubscribe a/b/c/d",
        ] {
            assert_eq!(unsubscribe_request(text), None, "{text}");
        }
        assert_eq!(
            unsubscribe_mailto("m@x.example", "https://pronto.example/c/w/l/r/t"),
            None
        );
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

    #[test]
    fn a_tracked_link_redirects_only_where_it_was_made_to_and_expires_to_the_site_root() {
        let s = settings(b"secret");
        let now = 1_800_000_000;
        let target = "https://shop.example/cart/c1?utm_source=pronto&x=a%26b#top";
        let link = click_url(&s, "ws1", "run1.2", target, now);
        let u = url::Url::parse(&link).unwrap();
        assert!(
            link.starts_with("https://pronto.example/r/ws1/run1.2/"),
            "{link}"
        );
        let to: String = u
            .query_pairs()
            .find(|(k, _)| k == "to")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        assert_eq!(to, target, "the address survives the query string exactly");
        let token = u.path_segments().unwrap().next_back().unwrap().to_string();
        let check =
            |ws: &str, msg: &str, to: &str, at: i64| check_click(&s, ws, msg, to, &token, at);
        type Checked = Result<(), ClaimError>;
        let cases: Vec<(&str, Checked, Checked)> = vec![
            ("as made", check("ws1", "run1.2", target, now), Ok(())),
            (
                "pointed at another address",
                check("ws1", "run1.2", "https://evil.example/", now),
                Err(ClaimError::Invalid),
            ),
            (
                "another message",
                check("ws1", "run1.3", target, now),
                Err(ClaimError::Invalid),
            ),
            (
                "another workspace",
                check("ws2", "run1.2", target, now),
                Err(ClaimError::Invalid),
            ),
            (
                "after 90 days",
                check("ws1", "run1.2", target, now + 91 * 24 * 3600),
                Err(ClaimError::Expired),
            ),
        ];
        for (name, got, want) in cases {
            assert_eq!(got, want, "{name}");
        }
        assert_eq!(
            check_click(&s, "ws1", "run1.2", target, "1.abc", now),
            Err(ClaimError::Invalid),
            "a forged token"
        );
        assert_eq!(
            click_fallback(target).as_deref(),
            Some("https://shop.example/")
        );
        assert_eq!(
            click_url(&s, "ws1", "run1.2", "mailto:ann@example.com", now),
            "mailto:ann@example.com",
            "only web addresses are tracked"
        );
    }
}
