//! Email against a real SMTP conversation: an in-test listener that speaks the protocol (greeting, EHLO, MAIL,
//! RCPT, DATA with dot-stuffing, QUIT) and can be told to refuse.

use pronto_channels::email::{Email, SmtpSender};
use pronto_channels::SendError;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the listener answers to MAIL FROM for each transaction, in order; `None` afterwards accepts.
#[derive(Default)]
struct Script {
    mail_replies: Vec<&'static str>,
    received: Vec<String>,
}

async fn smtp_server(script: Arc<Mutex<Script>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let script = script.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 test.local ESMTP\r\n").await.unwrap();
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        "250-test.local\r\n250 8BITMIME".into()
                    } else if upper.starts_with("MAIL FROM") {
                        let mut s = script.lock().unwrap();
                        if s.mail_replies.is_empty() {
                            "250 OK".into()
                        } else {
                            s.mail_replies.remove(0).into()
                        }
                    } else if upper.starts_with("RCPT TO") {
                        "250 OK".into()
                    } else if upper == "DATA" {
                        write.write_all(b"354 go ahead\r\n").await.unwrap();
                        let mut body = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            body.push_str(l.strip_prefix('.').unwrap_or(&l));
                            body.push('\n');
                        }
                        script.lock().unwrap().received.push(body);
                        "250 queued".into()
                    } else if upper == "RSET" || upper == "NOOP" {
                        "250 OK".into()
                    } else if upper == "QUIT" {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        "502 not implemented".into()
                    };
                    if write
                        .write_all(format!("{reply}\r\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn email(key: &str) -> Email {
    Email {
        from: "Shop <orders@shop.example>".into(),
        to: "Ann <ann@example.com>".into(),
        reply_to: Some("Sam at Shop <sam@shop.example>".into()),
        subject: "Your cart is waiting".into(),
        text: "Your Mug (blue) x2 is still in your cart.\n.A line that starts with a dot.".into(),
        html: Some("<p>Your <b>Mug</b> is still in your cart.</p>".into()),
        idempotency_key: key.into(),
    }
}

#[tokio::test]
async fn an_email_is_delivered_with_its_key_as_message_id_reply_to_and_both_parts() {
    let script = Arc::new(Mutex::new(Script::default()));
    let port = smtp_server(script.clone()).await;
    let sender = SmtpSender::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap();
    sender.send(&email("run-7.step-2")).await.unwrap();
    let got = script.lock().unwrap().received.clone();
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
    ] {
        assert!(m.contains(needle), "missing {needle:?} in\n{m}");
    }
}

#[tokio::test]
async fn a_4xx_reply_is_temporary_and_a_5xx_reply_is_permanent_with_the_servers_words() {
    let script = Arc::new(Mutex::new(Script {
        mail_replies: vec![
            "451 4.3.0 greylisted, try later",
            "550 5.1.1 mailbox unavailable",
        ],
        ..Default::default()
    }));
    let port = smtp_server(script.clone()).await;
    let sender = SmtpSender::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap();
    match sender.send(&email("a")).await {
        Err(SendError::Temporary(m)) => assert!(m.contains("greylisted"), "{m}"),
        other => panic!("expected temporary, got {other:?}"),
    }
    match sender.send(&email("b")).await {
        Err(SendError::Permanent(m)) => assert!(m.contains("mailbox unavailable"), "{m}"),
        other => panic!("expected permanent, got {other:?}"),
    }
    sender
        .send(&email("c"))
        .await
        .expect("accepted once the server accepts");
    assert_eq!(script.lock().unwrap().received.len(), 1);
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
