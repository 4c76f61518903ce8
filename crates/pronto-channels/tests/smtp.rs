//! Email against a real SMTP conversation: [`SmtpSink`] speaks the protocol (greeting, EHLO, MAIL, RCPT, DATA
//! with dot-stuffing, QUIT) and can be told to refuse.

use pronto_channels::email::{Email, SmtpSender};
use pronto_channels::sink::SmtpSink;
use pronto_channels::SendError;

fn email(key: &str) -> Email {
    Email {
        from: "Shop <orders@shop.example>".into(),
        to: "Ann <ann@example.com>".into(),
        reply_to: Some("Sam at Shop <sam@shop.example>".into()),
        subject: "Your cart is waiting".into(),
        text: "Your Mug (blue) x2 is still in your cart.\n.A line that starts with a dot.".into(),
        html: Some("<p>Your <b>Mug</b> is still in your cart.</p>".into()),
        idempotency_key: key.into(),
        list_unsubscribe: Some("https://pronto.example/u/w/c/t".into()),
        list_unsubscribe_mailto: Some(
            "mailto:unsubscribe@in.shop.example?subject=unsubscribe%20w%2Fc%2Ft".into(),
        ),
    }
}

#[tokio::test]
async fn an_email_is_delivered_with_its_key_as_message_id_reply_to_and_both_parts() {
    let sink = SmtpSink::start().await.unwrap();
    let sender = SmtpSender::from_url(&sink.url()).unwrap();
    sender.send(&email("run-7.step-2")).await.unwrap();
    let got = sink.received();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    for needle in [
        "Message-ID: <run-7.step-2@shop.example>",
        "Reply-To: \"Sam at Shop\" <sam@shop.example>",
        "To: Ann <ann@example.com>",
        "Subject: Your cart is waiting",
        "multipart/alternative",
        "text/plain",
        "text/html",
        ".A line that starts with a dot.",
        "List-Unsubscribe: <https://pronto.example/u/w/c/t>,",
        "<mailto:unsubscribe@in.shop.example?subject=unsubscribe%20w%2Fc%2Ft>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
    ] {
        assert!(m.contains(needle), "missing {needle:?} in\n{m}");
    }
}

#[tokio::test]
async fn a_4xx_reply_is_temporary_and_a_5xx_reply_is_permanent_with_the_servers_words() {
    let sink = SmtpSink::start().await.unwrap();
    sink.refuse(&[
        "451 4.3.0 greylisted, try later",
        "550 5.1.1 mailbox unavailable",
    ]);
    let sender = SmtpSender::from_url(&sink.url()).unwrap();
    match sender.send(&email("a")).await {
        Err(SendError::Temporary(m)) => assert!(m.contains("greylisted"), "{m}"),
        other => panic!("expected temporary, got {other:?}"),
    }
    match sender.send(&email("b")).await {
        Err(SendError::Permanent { code, reply }) => {
            assert!(reply.contains("mailbox unavailable"), "{reply}");
            assert_eq!(code.as_deref(), Some("550"));
        }
        other => panic!("expected permanent, got {other:?}"),
    }
    sender
        .send(&email("c"))
        .await
        .expect("accepted once the server accepts");
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn a_server_that_is_not_there_is_a_temporary_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sender = SmtpSender::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap();
    assert!(matches!(
        sender.send(&email("x")).await,
        Err(SendError::Temporary(_))
    ));
}

#[tokio::test]
async fn each_tls_mode_protects_the_connection_or_refuses_to_send() {
    // The sink offers no STARTTLS and speaks plain text from its greeting on.
    let sink = SmtpSink::start().await.unwrap();
    let port = sink.port;
    let cases = [
        (format!("smtp://127.0.0.1:{port}?tls=opportunistic"), Ok(())),
        (
            format!("smtp://127.0.0.1:{port}?tls=required"),
            Err("does not offer STARTTLS"),
        ),
        (
            format!("smtps://127.0.0.1:{port}"),
            Err("TLS with 127.0.0.1"),
        ),
    ];
    for (i, (url, expected)) in cases.into_iter().enumerate() {
        let sender = SmtpSender::from_url(&url).unwrap();
        let got = sender.send(&email(&format!("tls-{i}"))).await;
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(SendError::Temporary(m)), Err(needle)) => {
                assert!(m.contains(needle), "{url}: {m}")
            }
            (got, expected) => panic!("{url}: got {got:?}, expected {expected:?}"),
        }
    }
    // Only the opportunistic send went out (in plain text, as the server offered nothing better).
    let got = sink.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("Message-ID: <tls-0@shop.example>"));
}

#[tokio::test]
async fn connections_are_reused_between_sends() {
    let sink = SmtpSink::start().await.unwrap();
    let sender = SmtpSender::from_url(&sink.url()).unwrap();
    for i in 0..5 {
        sender.send(&email(&format!("reuse-{i}"))).await.unwrap();
    }
    assert_eq!(sink.received().len(), 5);
    assert_eq!(
        sink.connections(),
        1,
        "one connection carried every message"
    );
}

const CA: &[u8] = include_bytes!("tls/ca.der");
const CERT: &[u8] = include_bytes!("tls/server.der");
const KEY: &[u8] = include_bytes!("tls/server.key.der");
const OTHER: &[u8] = include_bytes!("tls/other.der");

#[tokio::test]
async fn starttls_and_implicit_tls_carry_the_message_encrypted_to_a_server_the_ca_vouches_for() {
    use pronto_channels::sink::SinkTls;
    // The test certificate names localhost and 127.0.0.1; tests/tls/make.sh made it.
    let cases = [
        (SinkTls::StartTls, "smtp://localhost:{port}?tls=required"),
        (
            SinkTls::StartTls,
            "smtp://127.0.0.1:{port}?tls=opportunistic",
        ),
        (SinkTls::Implicit, "smtps://localhost:{port}"),
    ];
    for (mode, url) in cases {
        let sink = SmtpSink::start_tls(mode, CERT, KEY).await.unwrap();
        let url = url.replace("{port}", &sink.port.to_string());
        let sender = SmtpSender::with_ca(&url, Some(CA)).unwrap();
        for i in 0..2 {
            sender
                .send(&email(&format!("tls-{i}")))
                .await
                .unwrap_or_else(|e| panic!("{url}: {e}"));
        }
        assert_eq!(sink.received_over_tls(), [true, true], "{url}");
        assert_eq!(sink.connections(), 1, "{url}: the TLS connection is reused");
    }
}

#[tokio::test]
async fn a_certificate_no_trusted_ca_signed_or_for_another_name_is_refused() {
    use pronto_channels::sink::SinkTls;
    let cases = [
        // Mozilla's roots only: the test CA is unknown.
        (SinkTls::Implicit, CERT, None),
        (SinkTls::StartTls, CERT, None),
        // Trusted CA, but the certificate names other.test, not localhost.
        (SinkTls::Implicit, OTHER, Some(CA)),
        (SinkTls::StartTls, OTHER, Some(CA)),
    ];
    for (mode, cert, ca) in cases {
        let sink = SmtpSink::start_tls(mode, cert, KEY).await.unwrap();
        let url = match mode {
            SinkTls::Implicit => "smtps://localhost:{port}",
            SinkTls::StartTls => "smtp://localhost:{port}?tls=required",
        };
        let url = url.replace("{port}", &sink.port.to_string());
        let sender = SmtpSender::with_ca(&url, ca).unwrap();
        match sender.send(&email("refused")).await {
            Err(SendError::Temporary(m)) => {
                assert!(m.to_lowercase().contains("certificate"), "{url}: {m}")
            }
            other => panic!("{url}: expected a certificate error, got {other:?}"),
        }
        assert!(sink.received().is_empty(), "{url}");
    }
}

#[tokio::test]
async fn a_connection_the_server_closed_while_parked_is_replaced_without_a_failed_send() {
    use pronto_channels::sink::SinkTls;
    let cases = [None, Some(SinkTls::StartTls), Some(SinkTls::Implicit)];
    for mode in cases {
        let (sink, url) = match mode {
            None => {
                let sink = SmtpSink::start().await.unwrap();
                let url = sink.url();
                (sink, url)
            }
            Some(mode) => {
                let sink = SmtpSink::start_tls(mode, CERT, KEY).await.unwrap();
                let url = match mode {
                    SinkTls::StartTls => format!("smtp://localhost:{}?tls=required", sink.port),
                    SinkTls::Implicit => format!("smtps://localhost:{}", sink.port),
                };
                (sink, url)
            }
        };
        let sender = SmtpSender::with_ca(&url, Some(CA)).unwrap();
        sender.send(&email("before")).await.unwrap();
        // The server's 421 and close reach the parked connection; no NOOP is sent this soon after its last use.
        sink.hang_up_idle().await;
        sender
            .send(&email("after"))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(sink.received().len(), 2, "{url}");
        assert_eq!(sink.connections(), 2, "{url}");
    }
}
