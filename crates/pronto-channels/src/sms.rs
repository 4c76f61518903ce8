//! SMS through a Twilio-compatible REST API, in the request format Twilio documents:
//! `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic auth (account SID, auth token),
//! `application/x-www-form-urlencoded` fields `To`, `From`, `Body`. The base URL is configurable so that other
//! providers speaking the same API (and tests) can stand in.
//!
//! Twilio's Messages API takes no idempotency key: a request that timed out after Twilio accepted it cannot be
//! told from one that never arrived. Such a timeout is reported as temporary and retried, so that message can
//! arrive twice (rare; the alternative is losing it). 429 and 5xx answers are temporary; other 4xx answers
//! (invalid number, unsubscribed recipient, bad credentials) are permanent, with Twilio's code and message.
//!
//! Also here: checking the `X-Twilio-Signature` of inbound webhooks (replies, STOP, calls).

use crate::SendError;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioConfig {
    /// `https://api.twilio.com` for Twilio itself.
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    /// An E.164 number or an alphanumeric sender id.
    pub from: String,
}

/// One text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    /// E.164.
    pub to: String,
    pub body: String,
}

#[derive(Clone)]
pub struct SmsSender {
    http: reqwest::Client,
    config: TwilioConfig,
}

/// Twilio's error body: `{"code": 21211, "message": "...", "more_info": "...", "status": 400}`.
#[derive(Debug, Deserialize)]
struct ApiError {
    code: Option<i64>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Created {
    sid: String,
}

impl SmsSender {
    pub fn new(config: TwilioConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a client with only a timeout set always builds");
        Self { http, config }
    }

    /// Sends one message; the answer is the provider's message id (`SM…`).
    pub async fn send(&self, sms: &Sms) -> Result<String, SendError> {
        let c = &self.config;
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            c.base_url.trim_end_matches('/'),
            c.account_sid
        );
        let res = self
            .http
            .post(url)
            .basic_auth(&c.account_sid, Some(&c.auth_token))
            .form(&[
                ("To", sms.to.as_str()),
                ("From", c.from.as_str()),
                ("Body", sms.body.as_str()),
            ])
            .send()
            .await
            .map_err(|e| SendError::Temporary(format!("SMS provider unreachable: {e}")))?;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str::<Created>(&text)
                .map(|c| c.sid)
                .map_err(|e| {
                    SendError::Temporary(format!("unreadable answer from the SMS provider: {e}"))
                });
        }
        let (code, detail) = match serde_json::from_str::<ApiError>(&text) {
            Ok(ApiError {
                code: Some(code),
                message,
            }) => (
                Some(code.to_string()),
                format!("{status} {code}: {}", message.unwrap_or_default()),
            ),
            _ => (
                None,
                format!("{status}: {}", text.chars().take(200).collect::<String>()),
            ),
        };
        // 429 and 5xx: the provider is busy or down; any other 4xx (bad number, unsubscribed recipient, bad
        // credentials) will fail the same way again.
        if status.as_u16() == 429 || status.is_server_error() {
            Err(SendError::Temporary(detail))
        } else {
            Err(SendError::Permanent {
                code,
                reply: detail,
            })
        }
    }
}

fn signature_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<sha1::Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac
}

/// Twilio's request signature: Base64(HMAC-SHA1(auth token, URL + each POST parameter's name and value, sorted by
/// name)).
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD.encode(
        signature_mac(auth_token, url, params)
            .finalize()
            .into_bytes(),
    )
}

/// Whether an inbound webhook's `X-Twilio-Signature` is genuine; compared in constant time.
pub fn verify_twilio_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    match base64::engine::general_purpose::STANDARD.decode(signature.trim()) {
        Ok(given) => signature_mac(auth_token, url, params)
            .verify_slice(&given)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn documented_example() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn the_signature_matches_twilios_documented_example_and_detects_tampering() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = documented_example();
        assert_eq!(
            twilio_signature("12345", url, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert!(verify_twilio_signature(
            "12345",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        let mut tampered = params.clone();
        tampered[2].1 = "9999".into();
        assert!(!verify_twilio_signature(
            "12345",
            url,
            &tampered,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!verify_twilio_signature(
            "other",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!verify_twilio_signature(
            "12345",
            url,
            &params,
            "not base64!"
        ));
    }
}
