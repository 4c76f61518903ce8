//! DKIM signatures checked by an independent verifier: each message goes through a real SMTP conversation
//! ([`SmtpSink`]) and the bytes the sink received are handed to dkimpy (`tests/dkim/verify.py`, installed by
//! `scripts/test.sh` from `tests/dkim/requirements.txt`), which answers the key lookups from the TXT records in
//! `tests/fixtures/dkim/`.

use pronto_channels::dkim::DkimKey;
use pronto_channels::email::{Email, SmtpSender};
use pronto_channels::sink::SmtpSink;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dkim")
        .join(name)
}

fn key(selector: &str, file: &str) -> DkimKey {
    let text = std::fs::read_to_string(fixture(file)).unwrap();
    DkimKey::new("shop.example", selector, &text).unwrap()
}

fn email() -> Email {
    Email {
        from: "Shop <orders@shop.example>".into(),
        to: "Ann <ann@example.com>".into(),
        reply_to: Some("Sam at Shop <sam@shop.example>".into()),
        subject: "Your cart is waiting: 10% off".into(),
        text: "Your Mug (blue) x2 is still in your cart.  \n.A line that starts with a dot.\n\n\n"
            .into(),
        html: Some("<p>Your <b>Mug</b> is still in your cart.</p>".into()),
        idempotency_key: "run-7.step-2".into(),
        list_unsubscribe: Some("https://pronto.example/u/w/c/t".into()),
        list_unsubscribe_mailto: Some(
            "mailto:unsubscribe@in.shop.example?subject=unsubscribe%20w%2Fc%2Ft".into(),
        ),
    }
}

/// dkimpy's verdict on `message` with `records` (selector, DNS record file) published for shop.example:
/// its exit status and one `pass`/`fail` line per signature.
fn verify(message: &str, records: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("message.eml");
    std::fs::write(&file, message).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/dkim/verify.py");
    let python = std::env::var("PRONTO_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(&file)
        .args(records.iter().map(|(selector, record)| {
            format!("shop.example={selector}={}", fixture(record).display())
        }))
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "dkimpy is not installed (pip install -r tests/dkim/requirements.txt): {stderr}"
    );
    (
        out.status.success(),
        format!("{}{stderr}", String::from_utf8_lossy(&out.stdout)),
    )
}

async fn send_signed(keys: Vec<DkimKey>) -> String {
    let sink = SmtpSink::start().await.unwrap();
    let sender = SmtpSender::from_url(&sink.url())
        .unwrap()
        .with_dkim(Arc::from(keys));
    sender.send(&email()).await.unwrap();
    sink.received().pop().unwrap()
}

#[tokio::test]
async fn every_key_format_signs_mail_that_dkimpy_verifies_against_the_published_record() {
    let cases = [
        ("rsa-pkcs1.pem", "rsa.dns", "rsa-sha256"),
        ("rsa-pkcs8.pem", "rsa.dns", "rsa-sha256"),
        ("ed25519.pem", "ed25519.dns", "ed25519-sha256"),
        ("ed25519.b64", "ed25519.dns", "ed25519-sha256"),
    ];
    for (file, record, algorithm) in cases {
        let message = send_signed(vec![key("s2026", file)]).await;
        assert!(
            message.contains(&format!("a={algorithm}")),
            "{file}: {message}"
        );
        let (ok, said) = verify(&message, &[("s2026", record)]);
        assert!(ok, "{file}: dkimpy said {said}\n{message}");
        assert_eq!(said.matches("pass").count(), 1, "{file}: {said}");
    }
}

#[tokio::test]
async fn rsa_and_ed25519_sign_the_same_message_and_both_signatures_verify() {
    let message = send_signed(vec![key("ed", "ed25519.pem"), key("rsa", "rsa-pkcs1.pem")]).await;
    assert_eq!(message.matches("DKIM-Signature:").count(), 2, "{message}");
    let (ok, said) = verify(&message, &[("ed", "ed25519.dns"), ("rsa", "rsa.dns")]);
    assert!(ok, "dkimpy said {said}\n{message}");
    assert_eq!(said.matches("pass").count(), 2, "{said}");
    // The signature covers the unsubscribe headers, as RFC 8058 asks.
    let h = message
        .split("h=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .replace(['\n', ' ', '\t'], "");
    for field in [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ] {
        assert!(
            h.split(':').any(|f| f == field),
            "{field} not signed: h={h}"
        );
    }
}

#[tokio::test]
async fn a_changed_body_a_changed_subject_or_another_key_fails_verification() {
    let message = send_signed(vec![key("s1", "rsa-pkcs1.pem")]).await;
    let cases = [
        (
            "body",
            message.replace("still in your cart", "gone from your cart"),
            "rsa.dns",
        ),
        (
            "subject",
            message.replace("Subject: Your cart", "Subject: Our cart"),
            "rsa.dns",
        ),
        ("key", message.clone(), "other-rsa.dns"),
    ];
    for (what, tampered, record) in cases {
        assert!(
            tampered != message || record != "rsa.dns",
            "the {what} case changed nothing"
        );
        let (ok, said) = verify(&tampered, &[("s1", record)]);
        assert!(!ok, "a changed {what} still verified: {said}");
        assert!(said.contains("fail"), "{what}: {said}");
    }
    // And the untouched message passes, so the failures above are the changes'.
    assert!(verify(&message, &[("s1", "rsa.dns")]).0);
}
