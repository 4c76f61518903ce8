//! Signed one-click links for reps ("I'm on it", "log a call"): they work from a phone without logging in,
//! expire, and cannot be forged or moved to another lead, rep or action, because all of those and the expiry are
//! under an HMAC-SHA256 with the server's secret. Groundwork for the speed-to-lead issue; using a link twice is
//! harmless because claiming a lead is idempotent in the store.

use base64::Engine;
use hmac::{Hmac, Mac};

type HmacSha256 = Hmac<sha2::Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("the link has expired")]
    Expired,
    #[error("the link is not valid")]
    Invalid,
}

fn mac(secret: &[u8], lead: &str, rep: &str, action: &str, expires: i64) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    // Length-prefixed fields: no choice of values can make two different tuples sign the same bytes.
    for part in [lead, rep, action, &expires.to_string()] {
        m.update(&(part.len() as u64).to_be_bytes());
        m.update(part.as_bytes());
    }
    m
}

/// A token for `action` by `rep` on `lead`, valid until `expires` (Unix seconds): `<expires>.<signature>`.
pub fn sign(secret: &[u8], lead: &str, rep: &str, action: &str, expires: i64) -> String {
    let sig = mac(secret, lead, rep, action, expires)
        .finalize()
        .into_bytes();
    format!(
        "{expires}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    )
}

/// Checks a token for exactly this lead, rep and action at `now`.
pub fn verify(
    secret: &[u8],
    lead: &str,
    rep: &str,
    action: &str,
    token: &str,
    now: i64,
) -> Result<(), ClaimError> {
    let (expires, sig) = token.split_once('.').ok_or(ClaimError::Invalid)?;
    let expires: i64 = expires.parse().map_err(|_| ClaimError::Invalid)?;
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| ClaimError::Invalid)?;
    mac(secret, lead, rep, action, expires)
        .verify_slice(&sig)
        .map_err(|_| ClaimError::Invalid)?;
    if now > expires {
        return Err(ClaimError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_works_only_for_its_lead_rep_and_action_and_only_until_it_expires() {
        let secret = b"server secret";
        let token = sign(secret, "lead-1", "rep-a", "claim", 2_000);
        assert_eq!(
            verify(secret, "lead-1", "rep-a", "claim", &token, 1_999),
            Ok(())
        );
        let cases = [
            (
                "another lead",
                "lead-2",
                "rep-a",
                "claim",
                token.clone(),
                1_000,
                ClaimError::Invalid,
            ),
            (
                "another rep",
                "lead-1",
                "rep-b",
                "claim",
                token.clone(),
                1_000,
                ClaimError::Invalid,
            ),
            (
                "another action",
                "lead-1",
                "rep-a",
                "won",
                token.clone(),
                1_000,
                ClaimError::Invalid,
            ),
            (
                "a stretched expiry",
                "lead-1",
                "rep-a",
                "claim",
                token.replacen("2000", "9999", 1),
                1_000,
                ClaimError::Invalid,
            ),
            (
                "garbage",
                "lead-1",
                "rep-a",
                "claim",
                "x".to_string(),
                1_000,
                ClaimError::Invalid,
            ),
            (
                "too late",
                "lead-1",
                "rep-a",
                "claim",
                token.clone(),
                2_001,
                ClaimError::Expired,
            ),
        ];
        for (name, lead, rep, action, t, now, want) in cases {
            assert_eq!(
                verify(secret, lead, rep, action, &t, now),
                Err(want),
                "{name}"
            );
        }
        assert_eq!(
            verify(b"other secret", "lead-1", "rep-a", "claim", &token, 1_000),
            Err(ClaimError::Invalid)
        );
    }
}
