//! Bounces and complaints that arrive by mail: RFC 3464 delivery status notifications (a relay or the
//! receiving server gave up on a message after it left pronto) and RFC 5965 feedback reports (a mailbox
//! provider's feedback loop: the person pressed "this is spam"). A mailbox forwarder posts them raw to
//! `POST /v1/inbound/bounces`; [`read`] finds what they report (the MIME structure and the report fields are
//! read by `mail-parser`), [`verdicts`] what that means for each address.

use super::{after_refusal, Medium, Reason, Verdict};
use mail_parser::{Message, MessageParser, MimeHeaders};

/// One recipient of a delivery status notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// `Final-Recipient` (else `Original-Recipient`), without its `rfc822;` type.
    pub address: String,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded` (lower-cased).
    pub action: String,
    /// The enhanced status code (`5.1.1`).
    pub status: String,
    pub diagnostic: Option<String>,
}

/// What a message reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A delivery status notification, recipient by recipient.
    Delivery {
        recipients: Vec<DsnRecipient>,
        /// The Message-ID of the message it is about, when the report carries its headers.
        original_message_id: Option<String>,
    },
    /// A feedback report (`abuse`, `fraud`, `auth-failure`, `not-spam`, …).
    Feedback {
        feedback_type: String,
        /// `Original-Rcpt-To`, else the reported message's `To`.
        recipient: Option<String>,
        original_message_id: Option<String>,
    },
    /// Neither (a reply, an auto-responder, a bounce in prose only).
    Other,
}

impl Report {
    pub fn kind(&self) -> &'static str {
        match self {
            Report::Delivery { .. } => "dsn",
            Report::Feedback { .. } => "feedback",
            Report::Other => "none",
        }
    }
}

/// The fields of one block of `Name: value` lines (RFC 822 style, as a report's parts are), read by the
/// MIME parser's header reader.
fn field<'a>(block: &'a Message<'a>, name: &str) -> Option<String> {
    block
        .header_raw(name)
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|v| !v.is_empty())
}

/// An address field's address: the part after `rfc822;`, without angle brackets.
fn address_of(value: &str) -> String {
    let v = match value.split_once(';') {
        Some((_, a)) => a,
        None => value,
    };
    v.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// The blank-line separated blocks of a report part.
fn blocks(contents: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(contents).replace("\r\n", "\n");
    text.split("\n\n")
        .map(|b| b.trim_matches('\n'))
        .filter(|b| !b.is_empty())
        .map(|b| format!("{b}\n\n").into_bytes())
        .collect()
}

/// The Message-ID of the message a report is about: the `message/rfc822` part's, or the headers a
/// `text/rfc822-headers` part gives.
fn original_message_id(msg: &Message<'_>) -> Option<String> {
    msg.parts.iter().skip(1).find_map(|p| {
        let ct = p.content_type()?;
        match (ct.ctype(), ct.subtype()) {
            ("message", Some("rfc822")) => {
                p.message().and_then(|m| m.message_id()).map(str::to_string)
            }
            ("text", Some("rfc822-headers")) => MessageParser::default()
                .parse_headers(p.contents())
                .and_then(|m| m.message_id().map(str::to_string)),
            _ => None,
        }
    })
}

/// What `raw` (a whole message) reports.
pub fn read(raw: &[u8]) -> Report {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Report::Other;
    };
    let parser = MessageParser::default();
    for part in msg.parts.iter().skip(1) {
        let Some(ct) = part.content_type() else {
            continue;
        };
        match (ct.ctype(), ct.subtype()) {
            ("message", Some("delivery-status")) => {
                let mut recipients = Vec::new();
                // The first block is about the message; each later one about one recipient.
                for block in blocks(part.contents()).iter().skip(1) {
                    let Some(fields) = parser.parse_headers(block) else {
                        continue;
                    };
                    let Some(address) = field(&fields, "Final-Recipient")
                        .or_else(|| field(&fields, "Original-Recipient"))
                        .map(|a| address_of(&a))
                    else {
                        continue;
                    };
                    recipients.push(DsnRecipient {
                        address,
                        action: field(&fields, "Action").unwrap_or_default().to_lowercase(),
                        status: field(&fields, "Status").unwrap_or_default(),
                        diagnostic: field(&fields, "Diagnostic-Code"),
                    });
                }
                return Report::Delivery {
                    recipients,
                    original_message_id: original_message_id(&msg),
                };
            }
            ("message", Some("feedback-report")) => {
                let fields = blocks(part.contents());
                let Some(fields) = fields.first().and_then(|b| parser.parse_headers(b)) else {
                    return Report::Other;
                };
                let reported_to = msg.parts.iter().skip(1).find_map(|p| {
                    p.message()
                        .and_then(|m| m.to())
                        .and_then(|to| to.first())
                        .and_then(|a| a.address())
                        .map(str::to_string)
                });
                return Report::Feedback {
                    feedback_type: field(&fields, "Feedback-Type")
                        .unwrap_or_default()
                        .to_lowercase(),
                    recipient: field(&fields, "Original-Rcpt-To")
                        .map(|a| address_of(&a))
                        .or(reported_to),
                    original_message_id: original_message_id(&msg),
                };
            }
            _ => {}
        }
    }
    Report::Other
}

/// What a report means for each address it names: a DSN's `failed` recipients are judged by their status
/// as a refusal at send time is ([`after_refusal`]: `5.1.1` lists, `5.2.2` is a soft bounce, `5.7.x`
/// keeps), a `failed` with a `4.x.x` status (the relay gave up retrying) is a soft bounce; `delayed` and the
/// others are not bounces. A feedback report of type `abuse` is a complaint: the address is listed and the
/// person is to get no more marketing; other feedback types (`auth-failure`, `not-spam`, …) mean nothing
/// here.
pub fn verdicts(report: &Report) -> Vec<(String, Verdict)> {
    match report {
        Report::Delivery { recipients, .. } => recipients
            .iter()
            .filter(|r| r.action == "failed")
            .filter_map(|r| {
                let text = format!("{} {}", r.status, r.diagnostic.as_deref().unwrap_or(""))
                    .trim()
                    .to_string();
                let verdict = if r.status.starts_with("4.") {
                    Verdict::SoftBounce { detail: text }
                } else {
                    after_refusal(Medium::Email, None, &text)
                };
                (verdict != Verdict::Keep).then(|| (r.address.clone(), verdict))
            })
            .collect(),
        Report::Feedback {
            feedback_type,
            recipient: Some(to),
            ..
        } if feedback_type == "abuse" => vec![(
            to.clone(),
            Verdict::Suppress {
                reason: Reason::Complaint,
                detail: "reported as spam (feedback report)".into(),
            },
        )],
        _ => Vec::new(),
    }
}
