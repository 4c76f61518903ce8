//! SMS against a local HTTP server standing in for Twilio (no SMS provider is reachable from here). It accepts a
//! request only if it is exactly what Twilio documents: the path with the account SID, HTTP Basic auth with SID
//! and token, a form-encoded body with To, From and Body and nothing else.

use pronto_channels::sms::{Sms, SmsSender, TwilioConfig};
use pronto_channels::SendError;
use std::collections::BTreeMap;
use wiremock::matchers::{header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

/// Matches a form body with exactly these fields.
struct FormIs(BTreeMap<String, String>);

impl Match for FormIs {
    fn matches(&self, request: &Request) -> bool {
        let is_form = request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let fields: Result<BTreeMap<String, String>, _> =
            serde_urlencoded::from_bytes(&request.body);
        is_form && fields.is_ok_and(|f| f == self.0)
    }
}

fn config(server: &MockServer) -> TwilioConfig {
    TwilioConfig {
        base_url: server.uri(),
        account_sid: "AC0123456789abcdef0123456789abcdef".into(),
        auth_token: "secret-token".into(),
        from: "+15005550006".into(),
    }
}

fn sms() -> Sms {
    Sms {
        to: "+14155552671".into(),
        body: "Your cart is waiting: https://shop.example/c/1 & more ✓".into(),
    }
}

#[tokio::test]
async fn a_message_is_sent_in_the_exact_format_twilio_documents() {
    let server = MockServer::start().await;
    let expected: BTreeMap<String, String> = [
        ("To", "+14155552671"),
        ("From", "+15005550006"),
        (
            "Body",
            "Your cart is waiting: https://shop.example/c/1 & more ✓",
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Mock::given(method("POST"))
        .and(path(
            "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json",
        ))
        // base64("AC0123456789abcdef0123456789abcdef:secret-token")
        .and(header(
            "authorization",
            "Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjpzZWNyZXQtdG9rZW4=",
        ))
        .and(FormIs(expected))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({
            "sid": "SM0123456789abcdef0123456789abcdef", "status": "queued", "to": "+14155552671"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let sid = SmsSender::new(config(&server)).send(&sms()).await.unwrap();
    assert_eq!(sid, "SM0123456789abcdef0123456789abcdef");
}

#[tokio::test]
async fn provider_errors_are_classified_with_twilios_code_and_message() {
    let cases: Vec<(u16, serde_json::Value, &str, bool)> = vec![
        (
            400,
            serde_json::json!({"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}),
            "21211",
            false,
        ),
        (
            400,
            serde_json::json!({"code": 21610, "message": "Attempt to send to unsubscribed recipient", "status": 400}),
            "21610",
            false,
        ),
        (
            401,
            serde_json::json!({"code": 20003, "message": "Authenticate", "status": 401}),
            "20003",
            false,
        ),
        (
            429,
            serde_json::json!({"code": 20429, "message": "Too Many Requests", "status": 429}),
            "20429",
            true,
        ),
        (
            503,
            serde_json::json!({"message": "unavailable"}),
            "503",
            true,
        ),
    ];
    for (status, body, needle, temporary) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        let got = SmsSender::new(config(&server)).send(&sms()).await;
        match (got, temporary) {
            (Err(SendError::Temporary(m)), true)
            | (Err(SendError::Permanent { reply: m, .. }), false) => {
                assert!(m.contains(needle), "{status}: {m}")
            }
            (other, _) => panic!("{status}: unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unreachable_provider_is_a_temporary_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = TwilioConfig {
        base_url: format!("http://127.0.0.1:{port}"),
        account_sid: "AC1".into(),
        auth_token: "t".into(),
        from: "+15005550006".into(),
    };
    assert!(matches!(
        SmsSender::new(cfg).send(&sms()).await,
        Err(SendError::Temporary(_))
    ));
}
