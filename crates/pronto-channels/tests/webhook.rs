//! Webhooks over real HTTP: an axum server receives the deliveries, checks their signatures with the receiver's
//! side of the convention, and answers as scripted.

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use pronto_channels::webhook::{secret_bytes, verify, Webhook, WebhookSender};
use pronto_channels::SendError;
use std::sync::{Arc, Mutex};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Default)]
struct Receiver {
    answers: Vec<u16>,
    verified: Vec<(String, serde_json::Value)>,
}

async fn receiver(state: Arc<Mutex<Receiver>>) -> String {
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let h = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let ts: i64 = h("webhook-timestamp").parse().unwrap_or(0);
                let ok = verify(
                    &secret_bytes(SECRET),
                    &h("webhook-id"),
                    ts,
                    &body,
                    &h("webhook-signature"),
                    ts,
                    300,
                );
                let mut s = state.lock().unwrap();
                if !ok {
                    return StatusCode::UNAUTHORIZED;
                }
                let status = if s.answers.is_empty() {
                    204
                } else {
                    s.answers.remove(0)
                };
                if status < 300 {
                    s.verified
                        .push((h("webhook-id"), serde_json::from_slice(&body).unwrap()));
                }
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn hook(url: &str, key: &str) -> Webhook {
    Webhook {
        url: url.into(),
        body: serde_json::json!({"text": "New lead: Ann Lee, +1 415 555 2671"}),
        idempotency_key: key.into(),
    }
}

#[tokio::test]
async fn a_signed_delivery_is_verified_by_the_receiver() {
    let state = Arc::new(Mutex::new(Receiver::default()));
    let url = receiver(state.clone()).await;
    WebhookSender::new(SECRET)
        .send(&hook(&url, "lead-1.alert"), 1_764_000_000)
        .await
        .unwrap();
    let got = &state.lock().unwrap().verified;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "lead-1.alert");
    assert_eq!(got[0].1["text"], "New lead: Ann Lee, +1 415 555 2671");
}

#[tokio::test]
async fn answers_are_classified_and_a_wrong_secret_is_refused_by_the_receiver() {
    let state = Arc::new(Mutex::new(Receiver {
        answers: vec![503, 429, 410, 400],
        ..Default::default()
    }));
    let url = receiver(state.clone()).await;
    let sender = WebhookSender::new(SECRET);
    // (status, temporary?)
    for (want, temporary) in [("503", true), ("429", true), ("410", false), ("400", false)] {
        let err = sender
            .send(&hook(&url, want), 1_764_000_000)
            .await
            .unwrap_err();
        let classified = match &err {
            SendError::Temporary(_) => temporary,
            SendError::Permanent { .. } => !temporary,
            SendError::Invalid(_) => false,
        };
        assert!(
            classified && err.to_string().contains(want),
            "{want}: {err}"
        );
    }
    let forged = WebhookSender::new("whsec_b3RoZXIgc2VjcmV0")
        .send(&hook(&url, "x"), 1_764_000_000)
        .await
        .unwrap_err();
    assert!(
        matches!(forged, SendError::Permanent { ref code, .. } if code.as_deref() == Some("401")),
        "{forged}"
    );
    assert!(state.lock().unwrap().verified.is_empty());
}
