//! Table tests for the acknowledgement policy: who is acknowledged, on which channels, and the per-recipient
//! cap counted across the batch (the server suite keeps checking the messages arrive).

use super::*;
use crate::sales::lead::LeadState;
use crate::{ContactId, WorkspaceId};
use chrono::TimeZone;
use serde_json::json;

const CONFIG: &str = r#"
[[rep]]
id = "ann"
name = "Ann Lee"
email = "ann@shop.example"
[[team]]
id = "sales"
members = ["ann"]
[[route]]
team = "sales"
[leads.ack]
max_per_recipient_per_day = 2
"#;

fn program(sms: bool, enabled: bool) -> Program {
    let mut p = Program::empty();
    p.sales = crate::sales::from_toml(CONFIG);
    p.sales.ack.enabled = enabled;
    p.messages.sms = sms;
    p
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

fn lead(n: u128, phone: bool) -> LeadState {
    let mut l = crate::Lead::bare(n, Some("Bo"), Some("bo@example.com"));
    l.phone = phone.then(|| crate::Phone::parse("+12125550123", crate::Region::default()).unwrap());
    LeadState::arrived(
        &l,
        l.id,
        WorkspaceId(uuid::Uuid::from_u128(1)),
        ContactId(uuid::Uuid::from_u128(2)),
        now(),
    )
}

fn promise() -> Promise {
    Promise {
        at: Some(now() + chrono::Duration::minutes(5)),
        text: "within 5 minutes".into(),
    }
}

#[test]
fn a_lead_is_acknowledged_on_the_channels_it_allows_within_the_daily_cap() {
    // (case, SMS provider, acknowledgements on, the lead gave a phone, the contact's traits, acknowledgements
    // already sent to the email today, what is sent, the last log line's start, capped)
    type Case = (
        &'static str,
        bool,
        bool,
        bool,
        Value,
        i64,
        Vec<&'static str>,
        Option<&'static str>,
        u64,
    );
    let cases: Vec<Case> = vec![
        (
            "email only without an SMS provider",
            false,
            true,
            true,
            json!({}),
            0,
            vec!["email"],
            Some("promised contact within 5 minutes by email to bo@example.com"),
            0,
        ),
        (
            "email and SMS with a provider and a phone",
            true,
            true,
            true,
            json!({}),
            0,
            vec!["email", "sms"],
            Some("promised contact within 5 minutes by email to bo@example.com and SMS to +12125550123"),
            0,
        ),
        (
            "no SMS to a contact who texted STOP",
            true,
            true,
            true,
            json!({"sms_opt_out": true}),
            0,
            vec!["email"],
            Some("promised contact within 5 minutes by email to bo@example.com"),
            0,
        ),
        (
            "nothing to an unsubscribed contact",
            true,
            true,
            true,
            json!({"unsubscribed": true}),
            0,
            vec![],
            Some("no acknowledgement: unsubscribed"),
            0,
        ),
        (
            "nothing when acknowledgements are off",
            true,
            false,
            true,
            json!({}),
            0,
            vec![],
            None,
            0,
        ),
        (
            "an address at the day's cap gets no more; the phone still does",
            true,
            true,
            true,
            json!({}),
            2,
            vec!["sms"],
            Some("promised contact within 5 minutes by SMS to +12125550123"),
            1,
        ),
    ];
    for (name, sms, enabled, phone, traits, sent_today, channels, last, capped) in cases {
        let p = program(sms, enabled);
        let mut fx = LeadEffects::default();
        fx.count_acks("bo@example.com".into(), sent_today);
        let Value::Object(traits) = traits else {
            unreachable!()
        };
        let l = lead(7, phone);
        acknowledge(
            &p,
            &mut fx,
            &l,
            p.sales.rep("ann"),
            &promise(),
            &traits,
            now(),
        );
        let got: Vec<&str> = fx.messages.iter().map(|m| m.channel).collect();
        assert_eq!(got, channels, "{name}");
        assert_eq!(
            fx.logs.last().map(|g| g.detail.as_str()),
            last,
            "{name}: log"
        );
        assert_eq!(fx.capped, capped, "{name}: capped");
        if capped > 0 {
            assert!(
                fx.logs[0]
                    .detail
                    .starts_with("no acknowledgement to bo@example.com: already 2"),
                "{name}: {:?}",
                fx.logs
            );
        }
    }
}

#[test]
fn the_cap_counts_the_acknowledgements_the_same_batch_queues() {
    let p = program(false, true);
    let mut fx = LeadEffects::default();
    fx.count_acks("bo@example.com".into(), 1);
    for n in 7..10 {
        acknowledge(
            &p,
            &mut fx,
            &lead(n, false),
            None,
            &promise(),
            &Map::new(),
            now(),
        );
    }
    assert_eq!(fx.messages.len(), 1, "one more reaches the cap of 2");
    assert_eq!(fx.capped, 2);
    let reply_to: Vec<Option<&str>> = fx.messages.iter().map(|m| m.reply_to.as_deref()).collect();
    assert_eq!(
        reply_to,
        vec![None],
        "no owner: no Reply-To but the shop's (none set)"
    );
}
