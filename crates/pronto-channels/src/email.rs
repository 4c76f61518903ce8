//! Email over SMTP.
//!
//! `PRONTO_SMTP_URL` uses lettre's URL form: `smtp://host:25` (plain; add `?tls=opportunistic` or
//! `?tls=required` for STARTTLS), `smtps://user:pass@host:465` (TLS from the first byte). Credentials in the URL
//! are percent-decoded; TLS certificates are checked against the Mozilla roots (webpki-roots).

use crate::dkim::DkimKey;
use crate::smtp::{Endpoint, Pool};
use crate::SendError;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;
use std::sync::Arc;
use std::time::Duration;

/// One email, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// `Shop <shop@example.com>` or a bare address.
    pub from: String,
    pub to: String,
    /// Where a reply goes: a real person, not a no-reply box.
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: String,
    /// When present the message is multipart/alternative (plain text and HTML).
    pub html: Option<String>,
    /// The outbox idempotency key; sent as the Message-ID (`<key@domain-of-from>`), so a receiving system can
    /// recognise a duplicate and a reply can be threaded back to the message.
    pub idempotency_key: String,
    /// A one-click unsubscribe URL, sent as `List-Unsubscribe` with `List-Unsubscribe-Post` (RFC 8058), which
    /// the large mailbox providers expect of marketing mail.
    pub list_unsubscribe: Option<String>,
    /// The same as a `mailto:` (an email to a mailbox that reaches pronto), listed after the URL for mail
    /// clients that do not do one-click.
    pub list_unsubscribe_mailto: Option<String>,
}

/// Whether `text` is an address an email can be sent from or to (`Shop <shop@example.com>`).
pub fn check_mailbox(text: &str) -> Result<(), String> {
    text.parse::<Mailbox>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl Email {
    fn mailbox(field: &str, text: &str) -> Result<Mailbox, SendError> {
        text.parse()
            .map_err(|e| SendError::Invalid(format!("{field} `{text}`: {e}")))
    }

    /// The Message-ID this email is sent with.
    pub fn message_id(&self) -> Result<String, SendError> {
        let from = Self::mailbox("from", &self.from)?;
        Ok(format!(
            "<{}@{}>",
            self.idempotency_key,
            from.email.domain()
        ))
    }

    fn build(&self) -> Result<Message, SendError> {
        let mut b = Message::builder()
            .from(Self::mailbox("from", &self.from)?)
            .to(Self::mailbox("to", &self.to)?)
            .subject(&self.subject)
            .message_id(Some(self.message_id()?));
        if let Some(r) = &self.reply_to {
            b = b.reply_to(Self::mailbox("reply_to", r)?);
        }
        if let Some(u) = &self.list_unsubscribe {
            use lettre::message::header::{HeaderName, HeaderValue};
            b = b
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    match &self.list_unsubscribe_mailto {
                        Some(m) => format!("<{u}>, <{m}>"),
                        None => format!("<{u}>"),
                    },
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".into(),
                ));
        }
        let built = match &self.html {
            Some(html) => b.multipart(MultiPart::alternative_plain_html(
                self.text.clone(),
                html.clone(),
            )),
            None => b.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(self.text.clone()),
            ),
        };
        built.map_err(|e| SendError::Invalid(e.to_string()))
    }
}

/// Idle connections kept open between sends. The delivery worker sends up to this many messages at once;
/// with fewer kept, the others would open a connection (greeting, EHLO, TLS, AUTH) per message.
pub const IDLE_CONNECTIONS: u32 = 256;
/// A whole send (taking a connection, MAIL, RCPT, DATA, the server's reply) is given up as temporary after
/// this.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends over one SMTP server, reusing connections (see [`crate::smtp`] for why the pool is ours).
#[derive(Clone)]
pub struct SmtpSender {
    pool: Arc<Pool>,
    /// Every message is signed with each of these (none: unsigned).
    dkim: Arc<[DkimKey]>,
}

#[derive(Debug, thiserror::Error)]
#[error("PRONTO_SMTP_URL `{url}`: {message}")]
pub struct SmtpUrlError {
    url: String,
    message: String,
}

impl SmtpSender {
    /// From a lettre-style SMTP URL (see the module docs). The password is never part of the error.
    pub fn from_url(url: &str) -> Result<Self, SmtpUrlError> {
        Self::with_ca(url, None)
    }

    /// As [`SmtpSender::from_url`], also trusting a CA certificate (DER) beside Mozilla's roots: for a relay
    /// whose certificate a private CA signed (the tests' TLS server; not yet a configuration setting).
    pub fn with_ca(url: &str, ca: Option<&[u8]>) -> Result<Self, SmtpUrlError> {
        let endpoint = Endpoint::parse(url, ca).map_err(|message| SmtpUrlError {
            url: redact(url),
            message,
        })?;
        Ok(Self {
            pool: Arc::new(Pool::new(endpoint, IDLE_CONNECTIONS as usize)),
            dkim: Arc::new([]),
        })
    }

    /// Signs every message with each key (RFC 8463 advises Ed25519 beside RSA).
    pub fn with_dkim(mut self, keys: Arc<[DkimKey]>) -> Self {
        self.dkim = keys;
        self
    }

    /// Delivers one email. 4xx replies and connection trouble are temporary; 5xx replies to the message are
    /// permanent and carry the server's words. Trouble opening a connection is temporary whatever the reply
    /// (a refused login included): fixing the configuration lets the queued messages go out.
    pub async fn send(&self, email: &Email) -> Result<(), SendError> {
        let message = email.build()?;
        let envelope = message.envelope().clone();
        // Signing is CPU work (RSA most of it): done before a connection is taken, not while holding one.
        let bytes = if self.dkim.is_empty() {
            message.formatted()
        } else {
            crate::dkim::signed(message, &self.dkim)
        };
        let conversation = async {
            let mut lease = self.pool.take().await.map_err(SendError::Temporary)?;
            let sent = lease.conn.send(&envelope, &bytes).await;
            self.pool.give_back(lease);
            match sent {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(SendError::Permanent {
                    code: e.status().map(|c| c.to_string()),
                    reply: e.to_string(),
                }),
                Err(e) => Err(SendError::Temporary(e.to_string())),
            }
        };
        tokio::time::timeout(TIMEOUT, conversation)
            .await
            .unwrap_or_else(|_| {
                Err(SendError::Temporary(format!(
                    "no reply from the SMTP server within {} s",
                    TIMEOUT.as_secs()
                )))
            })
    }
}

/// The URL with any credentials hidden, for logs and the start banner.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idempotency_key_becomes_the_message_id_in_the_senders_domain() {
        let e = Email {
            from: "Shop <orders@shop.example>".into(),
            to: "ann@example.com".into(),
            reply_to: None,
            subject: "s".into(),
            text: "t".into(),
            html: None,
            idempotency_key: "run-1.step-2".into(),
            list_unsubscribe: None,
            list_unsubscribe_mailto: None,
        };
        assert_eq!(e.message_id().unwrap(), "<run-1.step-2@shop.example>");
    }

    #[test]
    fn an_unparseable_address_is_invalid_not_retried() {
        let e = Email {
            from: "shop".into(),
            to: "ann@example.com".into(),
            reply_to: None,
            subject: "s".into(),
            text: "t".into(),
            html: None,
            idempotency_key: "k".into(),
            list_unsubscribe: None,
            list_unsubscribe_mailto: None,
        };
        assert!(matches!(e.build(), Err(SendError::Invalid(m)) if m.contains("from")));
    }

    #[tokio::test]
    async fn smtp_urls_are_checked_and_passwords_never_shown() {
        assert!(SmtpSender::from_url("smtp://127.0.0.1:2525").is_ok());
        assert!(SmtpSender::from_url("smtps://user:pa%24%24@smtp.example.com:465").is_ok());
        assert!(SmtpSender::from_url("smtp://h:25?tls=required").is_ok());
        let err = SmtpSender::from_url("http://user:secret@host")
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
        assert!(err.contains("***@host"), "{err}");
    }
}
