//! The messages speed to lead sends, decided and rendered: a rep's alert (new, again, reassigned), the
//! manager's escalation, the acknowledgement to the lead with its promise, a reply forwarded to the lead's
//! owner. Each is queued on a [`LeadEffects`] with an idempotency key made from the lead, the recipient and
//! the step, so a decision taken twice sends once; the store writes the effects in bulk.
//!
//! Every lead message's template sees one context ([`message_context`]): `lead`, `rep`, `links` (claim,
//! call), `promise`, `sla`, `alert` and `reply`.

use super::lead::{LeadLog, LeadState};
use super::{may_acknowledge, sla_context, sms_opted_out, AlertChannel, Promise, Rep};
use crate::message::links::claim_url;
use crate::message::Outgoing;
use crate::program::{Program, Recipient};
use crate::MessageId;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Why a rep is alerted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    New,
    Realert,
    Reassigned,
}

impl Alert {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Realert => "realert",
            Self::Reassigned => "reassigned",
        }
    }
}

/// What a batch of lead work records and sends, collected so each kind of row is written in one statement.
#[derive(Debug, Default)]
pub struct LeadEffects {
    pub logs: Vec<LeadLog>,
    pub messages: Vec<Outgoing>,
    /// The earliest escalation timer set: the scheduler should look again by then.
    pub timers: Option<DateTime<Utc>>,
    /// Acknowledgements not sent because their recipient had the day's cap (for the metric).
    pub capped: u64,
    /// Acknowledgements per recipient address in the last 24 hours, as loaded before the batch
    /// ([`LeadEffects::count_acks`]) and kept current as the batch queues more.
    acks: HashMap<String, i64>,
}

impl LeadEffects {
    pub fn log(
        &mut self,
        lead: &LeadState,
        at: DateTime<Utc>,
        kind: &str,
        rep: Option<&str>,
        detail: String,
    ) {
        self.logs.push(lead.log(at, kind, rep, detail));
    }

    /// Acknowledgements already sent to `to` in the last 24 hours (loaded by the store).
    pub fn count_acks(&mut self, to: String, n: i64) {
        self.acks.insert(to, n);
    }

    /// Notes `lead`'s escalation timer, if it has one.
    pub fn timer_of(&mut self, lead: &LeadState) {
        if let Some(at) = lead.due_at {
            self.timers = Some(self.timers.map_or(at, |t| t.min(at)));
        }
    }
}

/// The template context of a lead message.
pub fn message_context(
    program: &Program,
    lead: &LeadState,
    rep: Option<&Rep>,
    alert: (&str, &str),
    now: DateTime<Utc>,
) -> Value {
    let sales = &program.sales;
    let rep_json = rep.map_or_else(Rep::no_context, Rep::context);
    let claim = rep
        .map(|r| {
            claim_url(
                &program.messages,
                lead.workspace_id,
                lead.id,
                &r.id,
                now.timestamp(),
            )
        })
        .unwrap_or_default();
    let sla = sla_context(sales, lead.sla_deadline, rep, now);
    json!({
        "lead": lead.context(),
        "rep": rep_json,
        "links": {"claim": claim, "call": lead.phone.as_ref().map(|p| format!("tel:{p}"))},
        "promise": {"text": "", "at": lead.promised_at},
        "sla": sla,
        "alert": {"kind": alert.0, "reason": alert.1},
        "reply": {"channel": "", "body": ""},
    })
}

/// One message about a lead: where it goes, how, what it renders and who a reply reaches.
struct Queued<'a> {
    key: String,
    channel: AlertChannel,
    to: &'a str,
    template: &'a str,
    reply_to: Option<String>,
}

/// Queues one message about a lead. `key` makes it idempotent; a template error is logged on the lead.
fn queue(
    program: &Program,
    fx: &mut LeadEffects,
    lead: &LeadState,
    q: Queued<'_>,
    ctx: &Value,
    now: DateTime<Utc>,
) -> bool {
    let rendered = match program.templates.render(q.template, ctx) {
        Ok(r) => r,
        Err(e) => {
            fx.log(lead, now, "failed", None, e.to_string());
            return false;
        }
    };
    let (subject, text, html) = match q.channel {
        AlertChannel::Email => (rendered.subject, rendered.text, rendered.html),
        AlertChannel::Sms => (String::new(), rendered.text.trim().to_string(), None),
        // Slack-compatible incoming webhook body.
        AlertChannel::Webhook => (
            rendered.subject.clone(),
            json!({"text": format!("*{}*\n{}", rendered.subject, rendered.text.trim())})
                .to_string(),
            None,
        ),
    };
    fx.messages.push(Outgoing {
        id: MessageId::new(),
        ws: lead.workspace_id,
        key: q.key,
        run: None,
        flow: None,
        step: None,
        lead: Some(lead.id),
        contact: lead.contact_id,
        channel: q.channel.as_str(),
        to: q.to.to_string(),
        from: program.messages.from.clone(),
        reply_to: q.reply_to,
        subject,
        text,
        html,
        unsubscribe_url: None,
        now,
    });
    true
}

/// Where `rep` gets alerts on `ch`, if the rep has that channel and it can be sent now.
fn address(program: &Program, rep: &Rep, ch: AlertChannel) -> Option<String> {
    match ch {
        AlertChannel::Email => rep.email.clone(),
        AlertChannel::Sms if program.messages.sms => rep.phone.clone(),
        AlertChannel::Sms => None,
        AlertChannel::Webhook => rep.webhook.clone(),
    }
}

/// Queues `ctx` to `rep` on each of the rep's alert channels (`template` by email and webhook, the short
/// `rep-alert-sms` by SMS), keyed `{key}.{channel}.{n}`; a reply goes to the lead. Answers the channels used.
#[allow(clippy::too_many_arguments)]
fn send_to_rep(
    program: &Program,
    fx: &mut LeadEffects,
    lead: &LeadState,
    rep: &Rep,
    template: &str,
    key: &str,
    n: i64,
    ctx: &Value,
    now: DateTime<Utc>,
) -> Vec<&'static str> {
    let mut sent = Vec::new();
    for ch in &rep.alerts {
        let Some(to) = address(program, rep, *ch) else {
            continue;
        };
        let template = if *ch == AlertChannel::Sms {
            "rep-alert-sms"
        } else {
            template
        };
        let q = Queued {
            key: format!("{key}.{}.{n}", ch.as_str()),
            channel: *ch,
            to: &to,
            template,
            reply_to: lead.email.clone(),
        };
        if queue(program, fx, lead, q, ctx, now) {
            sent.push(ch.as_str());
        }
    }
    sent
}

/// Alerts `rep` about `lead` on each of the rep's channels. `n` tells repeated alerts apart.
pub fn alert_rep(
    program: &Program,
    fx: &mut LeadEffects,
    lead: &LeadState,
    rep: &Rep,
    kind: Alert,
    n: i64,
    now: DateTime<Utc>,
) {
    let ctx = message_context(program, lead, Some(rep), (kind.as_str(), ""), now);
    let key = format!("lead.{}.alert.{}", lead.id, rep.id);
    let sent = send_to_rep(program, fx, lead, rep, "rep-alert", &key, n, &ctx, now);
    let detail = format!(
        "{} alert to {} by {}",
        kind.as_str(),
        rep.name,
        sent.join(", ")
    );
    fx.log(lead, now, "alerted", Some(&rep.id), detail);
}

/// Tells the manager of the lead's team why it escalates, with the manager's own claim link (taking the
/// lead themselves is the quickest fix); without a manager the escalation is only recorded.
pub fn alert_manager(
    program: &Program,
    fx: &mut LeadEffects,
    lead: &LeadState,
    reason: &str,
    n: i64,
    now: DateTime<Utc>,
) {
    let sales = &program.sales;
    let manager = lead
        .team
        .as_deref()
        .and_then(|t| sales.team(t))
        .and_then(|t| t.manager.as_deref())
        .and_then(|m| sales.rep(m));
    let Some(m) = manager else {
        let detail = format!("{reason}; no manager is configured for the team");
        fx.log(lead, now, "escalated", None, detail);
        return;
    };
    let owner = lead.owner.as_deref().and_then(|o| sales.rep(o));
    let mut ctx = message_context(program, lead, owner, ("manager", reason), now);
    ctx["links"]["claim"] = json!(claim_url(
        &program.messages,
        lead.workspace_id,
        lead.id,
        &m.id,
        now.timestamp()
    ));
    let key = format!("lead.{}.manager.{}", lead.id, m.id);
    let sent = send_to_rep(program, fx, lead, m, "lead-escalated", &key, n, &ctx, now);
    let detail = format!("{reason}; told manager {} by {}", m.name, sent.join(", "));
    fx.log(lead, now, "escalated", Some(&m.id), detail);
}

/// The acknowledgement to the lead: email, and SMS when they gave a phone and texts are possible and allowed;
/// none to a contact who opted out, and none to an address past the day's cap
/// (`leads.ack.max_per_recipient_per_day`, counted before the batch and as it queues more).
pub fn acknowledge(
    program: &Program,
    fx: &mut LeadEffects,
    lead: &LeadState,
    owner: Option<&Rep>,
    promise: &Promise,
    traits: &Map<String, Value>,
    now: DateTime<Utc>,
) {
    let ack = &program.sales.ack;
    if !ack.enabled {
        return;
    }
    let recipient = Recipient {
        email: lead.email.clone(),
        phone: lead.phone.clone(),
        traits: traits.clone(),
    };
    if let Some(why) = recipient.refusal() {
        let detail = format!("no acknowledgement: {why}");
        fx.log(lead, now, "acknowledged", None, detail);
        return;
    }
    let mut ctx = message_context(program, lead, owner, ("ack", ""), now);
    ctx["promise"] = json!({"text": promise.text, "at": promise.at});
    let reply_to = owner
        .and_then(|r| r.email.clone())
        .or_else(|| program.messages.reply_to.clone());
    let mut sent = Vec::new();
    let mut capped = Vec::new();
    let mut admit = |fx: &mut LeadEffects, to: &str| {
        let n = fx.acks.entry(to.to_string()).or_default();
        if may_acknowledge(ack, *n) {
            *n += 1;
            true
        } else {
            capped.push(to.to_string());
            false
        }
    };
    if let Some(email) = lead.email.as_ref().filter(|e| admit(fx, e)) {
        let q = Queued {
            key: format!("lead.{}.ack.email", lead.id),
            channel: AlertChannel::Email,
            to: email,
            template: &ack.email,
            reply_to: reply_to.clone(),
        };
        if queue(program, fx, lead, q, &ctx, now) {
            sent.push(format!("email to {email}"));
        }
    }
    if let Some(phone) = &lead.phone {
        let texts = program.messages.sms && !sms_opted_out(traits);
        if texts && admit(fx, phone) {
            let q = Queued {
                key: format!("lead.{}.ack.sms", lead.id),
                channel: AlertChannel::Sms,
                to: phone,
                template: &ack.sms,
                reply_to: None,
            };
            if queue(program, fx, lead, q, &ctx, now) {
                sent.push(format!("SMS to {phone}"));
            }
        }
    }
    if !capped.is_empty() {
        fx.capped += capped.len() as u64;
        let detail = format!(
            "no acknowledgement to {}: already {} in the last 24 hours (leads.ack.max_per_recipient_per_day)",
            capped.join(" and "),
            ack.max_per_recipient_per_day
        );
        fx.log(lead, now, "acknowledged", None, detail);
    }
    if !sent.is_empty() {
        let detail = format!(
            "promised contact {} by {}",
            promise.text,
            sent.join(" and ")
        );
        fx.log(lead, now, "acknowledged", None, detail);
    }
}

/// The lead answered on `channel`: the reply goes to the lead's owner by email (a reply to it reaches the
/// lead), keyed by a fresh id since every reply is forwarded; without an owner with an email it is recorded.
pub fn forward_reply(
    program: &Program,
    fx: &mut LeadEffects,
    lead: &LeadState,
    channel: &str,
    body: &str,
    now: DateTime<Utc>,
) {
    let sales = &program.sales;
    let owner = lead.owner.as_deref().and_then(|o| sales.rep(o));
    let short: String = body.chars().take(200).collect();
    match owner.and_then(|r| r.email.as_deref().map(|e| (r, e))) {
        Some((rep, email)) => {
            let mut ctx = message_context(program, lead, Some(rep), ("reply", ""), now);
            ctx["reply"] = json!({"channel": channel, "body": body});
            let q = Queued {
                key: format!("lead.{}.reply.{}", lead.id, MessageId::new()),
                channel: AlertChannel::Email,
                to: email,
                template: "lead-reply",
                reply_to: lead.email.clone(),
            };
            queue(program, fx, lead, q, &ctx, now);
            let detail = format!("{channel} reply forwarded to {}: {short}", rep.name);
            fx.log(lead, now, "replied", Some(&rep.id), detail);
        }
        None => {
            let detail =
                format!("{channel} reply (no owner with an email to forward it to): {short}");
            fx.log(lead, now, "replied", None, detail);
        }
    }
}

#[cfg(test)]
mod tests;
