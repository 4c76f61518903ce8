//! pronto's outbound channels. Sending is separate from deciding: the engine writes a message to the outbox with
//! an idempotency key, and a delivery worker hands it to a channel here. A channel's only job is to deliver one
//! message and to say precisely how a failure should be treated: retry later ([`SendError::Temporary`]), give
//! up with the server's reply ([`SendError::Permanent`]), or fix the message ([`SendError::Invalid`]).
//!
//! # Layout
//! - [`email`]: [`email::Email`] and [`email::SmtpSender`] (`smtp://`, `smtps://`, STARTTLS modes, auth), with the
//!   idempotency key as the Message-ID.
//! - [`dkim`]: DKIM signing keys (RSA, Ed25519; the file formats OpenSSL and dkimpy write) and signing with
//!   several at once.
//! - `smtp`: the SMTP connections under it: lettre's conversation over our own sockets (`TCP_NODELAY`) and pool.
//! - [`sms`]: [`sms::SmsSender`] for Twilio-compatible REST APIs (the documented wire format) and
//!   `X-Twilio-Signature` checks for inbound webhooks.
//! - [`sink`]: a minimal SMTP receiver (real protocol, plain or TLS: STARTTLS or from the first byte, scriptable
//!   refusals) for tests and `pronto bench`.
//! - [`webhook`]: signed webhooks (Standard Webhooks headers, HMAC-SHA256) and Slack-style incoming webhooks.
//! - `tests/dkim.rs`: signed mail through the SMTP sink, checked by dkimpy (`tests/dkim/verify.py`), an
//!   independent verifier.
//! - `tests/webhook.rs`: deliveries to a real axum receiver that verifies the signatures.
//! - `tests/sms.rs`: against a local HTTP server (wiremock) that checks the exact request Twilio documents; the
//!   one fake allowed, as no SMS provider is reachable from here.
//! - `tests/smtp.rs`: against a real SMTP conversation ([`sink::SmtpSink`], told to refuse with 4xx or 5xx
//!   replies, to hang up, or to speak TLS with the test CA's certificate from `tests/tls/`, made by its
//!   `make.sh`).

pub mod dkim;
pub mod email;
pub mod sink;
pub mod sms;
pub(crate) mod smtp;
pub mod webhook;

/// How a failed delivery is to be treated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later (a 4xx reply, a refused or dropped connection, a timeout, a connection that could not
    /// be set up: TLS or login refused).
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Do not try again: the server refused (a 5xx: no such mailbox, rejected as spam, …). `code` is its
    /// reply code (SMTP's `550`, the SMS provider's error code `21610`, a webhook's HTTP status) and `reply`
    /// its words, so the caller can tell a mailbox that does not exist from a message refused as spam.
    #[error("permanent failure: {reply}")]
    Permanent { code: Option<String>, reply: String },
    /// The message itself is unusable (an address that does not parse); retrying cannot help.
    #[error("invalid message: {0}")]
    Invalid(String),
}
