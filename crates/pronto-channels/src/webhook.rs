//! Signed webhooks, following the Standard Webhooks convention (standardwebhooks.com) so that receivers can use
//! its libraries: headers `webhook-id` (the outbox idempotency key, so a receiver can drop a redelivery),
//! `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
//! A Slack-compatible incoming webhook is the same POST with a `{"text": …}` body; Slack ignores the headers.

use crate::SendError;
use base64::Engine;
use hmac::{Hmac, Mac};
use std::time::Duration;

type HmacSha256 = Hmac<sha2::Sha256>;

/// One webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub url: String,
    pub body: serde_json::Value,
    pub idempotency_key: String,
}

#[derive(Clone)]
pub struct WebhookSender {
    http: reqwest::Client,
    secret: Vec<u8>,
}

/// The signing secret: `whsec_<base64>` as Standard Webhooks writes it, or any other string used as raw bytes.
pub fn secret_bytes(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

fn mac(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    mac
}

/// The `webhook-signature` header value.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD
            .encode(mac(secret, id, timestamp, body).finalize().into_bytes())
    )
}

/// Checks a received webhook: one of the space-separated `v1,` signatures matches (constant time), and the
/// timestamp is within `tolerance` of `now` (replays of old deliveries are refused).
pub fn verify(
    secret: &[u8],
    id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
    now: i64,
    tolerance: i64,
) -> bool {
    if (now - timestamp).abs() > tolerance {
        return false;
    }
    header
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|sig| {
            base64::engine::general_purpose::STANDARD
                .decode(sig)
                .is_ok_and(|given| {
                    mac(secret, id, timestamp, body)
                        .verify_slice(&given)
                        .is_ok()
                })
        })
}

impl WebhookSender {
    pub fn new(secret: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("a client with only a timeout set always builds");
        Self {
            http,
            secret: secret_bytes(secret),
        }
    }

    /// Delivers one webhook, signed at `now` (Unix seconds). 2xx is delivered; 408, 429, 5xx and connection
    /// trouble are temporary; any other answer is permanent (the receiver refuses this delivery).
    pub async fn send(&self, hook: &Webhook, now: i64) -> Result<(), SendError> {
        let body = serde_json::to_vec(&hook.body).map_err(|e| SendError::Invalid(e.to_string()))?;
        let res = self
            .http
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("webhook-id", &hook.idempotency_key)
            .header("webhook-timestamp", now.to_string())
            .header(
                "webhook-signature",
                sign(&self.secret, &hook.idempotency_key, now, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_builder() {
                    SendError::Invalid(e.to_string())
                } else {
                    SendError::Temporary(e.to_string())
                }
            })?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let detail = format!(
            "{status}: {}",
            res.text()
                .await
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect::<String>()
        );
        if status.as_u16() == 408 || status.as_u16() == 429 || status.is_server_error() {
            Err(SendError::Temporary(detail))
        } else {
            Err(SendError::Permanent {
                code: Some(status.as_u16().to_string()),
                reply: detail,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_standard_webhooks_test_vector() {
        let secret = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let got = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(got, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn signatures_verify_and_refuse_tampering_other_keys_and_stale_timestamps() {
        let secret = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"text":"New lead: Ann"}"#;
        let header = sign(&secret, "msg_1", 1_700_000_000, body);
        assert!(header.starts_with("v1,"));
        assert!(verify(
            &secret,
            "msg_1",
            1_700_000_000,
            body,
            &header,
            1_700_000_010,
            300
        ));
        assert!(verify(
            &secret,
            "msg_1",
            1_700_000_000,
            body,
            &format!("v1,AAAA {header}"),
            1_700_000_010,
            300
        ));
        assert!(!verify(
            &secret,
            "msg_1",
            1_700_000_000,
            br#"{"text":"New lead: Eve"}"#,
            &header,
            1_700_000_010,
            300
        ));
        assert!(!verify(
            &secret,
            "msg_2",
            1_700_000_000,
            body,
            &header,
            1_700_000_010,
            300
        ));
        assert!(!verify(
            b"other",
            "msg_1",
            1_700_000_000,
            body,
            &header,
            1_700_000_010,
            300
        ));
        assert!(!verify(
            &secret,
            "msg_1",
            1_700_000_000,
            body,
            &header,
            1_700_000_000 + 301,
            300
        ));
    }
}
