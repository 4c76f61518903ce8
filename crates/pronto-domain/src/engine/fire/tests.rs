//! Table tests for a timer batch's decisions: the guard, consent, the frequency cap, the SMS skip rule,
//! waits, quiet hours and call tasks. Ported from the store and server suites that could reach them only
//! through a database; those keep testing that the effects are written atomically.

use super::*;
use crate::flow::FlowConfig;
use crate::program::MessageSettings;
use crate::template::TemplateConfig;
use serde_json::{json, Map};
use std::time::Duration;

/// Waits an hour, emails, waits a day, texts, emails again.
const CHECKOUT: &str = r#"
id = "checkout-recovery"
trigger = { event = "Checkout Started" }
key = "properties.checkout_id"
exit = [{ event = "Order Completed", same = "key" }, { event = "Order Completed", same = "contact" }]
[[step]]
wait = "1h"
[[step]]
send = { channel = "email", template = "reminder" }
[[step]]
wait = "1d"
[[step]]
send = { channel = "sms", template = "nudge" }
[[step]]
send = { channel = "email", template = "last" }
"#;

/// Calls the lead, then emails it.
const CADENCE: &str = r#"
id = "lead-cadence"
trigger = { event = "Lead Submitted" }
key = "properties.lead_id"
[[step]]
call = { script = "call-script" }
[[step]]
send = { channel = "email", template = "reminder" }
"#;

const TEMPLATES: [(&str, &str, &str); 4] = [
    ("reminder", "Your cart", "Still thinking it over?"),
    ("nudge", "", "Your cart is waiting"),
    ("last", "Last call", "Your cart expires soon"),
    (
        "call-script",
        "Call {{ lead.name }}",
        "Ask about {{ lead.message }}",
    ),
];

/// The program the tests run: both flows, the templates, and an email cap / SMS provider as a case wants.
fn program(cap: Option<u32>, sms: bool) -> Program {
    // The checkout flow once more, sending to subscribers only.
    let subscribers = CHECKOUT.replace(
        "id = \"checkout-recovery\"",
        "id = \"subscribers-recovery\"\nsend_to = \"subscribers\"",
    );
    let flows: Vec<FlowConfig> = [CHECKOUT, CADENCE, subscribers.as_str()]
        .iter()
        .map(|f| toml::from_str(f).unwrap())
        .collect();
    let templates: Vec<TemplateConfig> = TEMPLATES
        .iter()
        .map(|(name, subject, text)| TemplateConfig {
            name: name.to_string(),
            subject: subject.to_string(),
            text: text.to_string(),
            html: None,
        })
        .collect();
    let messages = MessageSettings {
        email_cap: cap.map(|n| (n, Duration::from_secs(86_400))),
        sms,
        ..MessageSettings::default()
    };
    Program::build(&flows, &templates, messages).unwrap()
}

/// 2026-12-01 at `hour`:`min` UTC.
fn at(hour: u32, min: u32) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.with_ymd_and_hms(2026, 12, 1, hour, min, 0).unwrap()
}

fn id(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

const WS: WorkspaceId = WorkspaceId(uuid::Uuid::from_u128(9));
const ANN: ContactId = ContactId(uuid::Uuid::from_u128(1));

/// A checkout run of Ann's for `c1`, started at 11:00, waiting at `step`.
fn run(step: i64) -> DueRun {
    DueRun {
        id: RunId(id(100)),
        ws: WS,
        flow: "checkout-recovery".into(),
        key: "c1".into(),
        contact: ANN,
        step,
        started: at(11, 0),
        snapshot: json!({"event": "Checkout Started", "properties": {"checkout_id": "c1"}}),
        arm: None,
    }
}

fn ann(traits: Value, email: bool, phone: bool) -> Addressee {
    let Value::Object(traits) = traits else {
        unreachable!()
    };
    Addressee {
        asked: ANN,
        live: ANN,
        recipient: Recipient {
            email: email.then(|| "ann@example.com".into()),
            phone: phone.then(|| "+14155550100".into()),
            traits,
        },
    }
}

fn order(key: Option<&str>, happened: DateTime<Utc>) -> Mark {
    Mark {
        flow: "checkout-recovery".into(),
        rule: if key.is_some() { 0 } else { 1 },
        name: "Order Completed".into(),
        key: key.map(str::to_string),
        contact: ANN,
        happened,
    }
}

/// What a case loads beside its run.
struct Given {
    step: i64,
    flow: &'static str,
    marks: Vec<Mark>,
    contact: Option<Addressee>,
    /// Emails Ann got in the cap's window, and the cap.
    sent: i64,
    cap: Option<u32>,
    sms: bool,
    now: DateTime<Utc>,
    /// The run's group in the flow's experiment.
    arm: Option<crate::experiment::Arm>,
}

impl Default for Given {
    fn default() -> Self {
        Self {
            step: 0,
            flow: "checkout-recovery",
            marks: Vec::new(),
            contact: Some(ann(json!({}), true, true)),
            sent: 0,
            cap: None,
            sms: false,
            now: at(12, 0),
            arm: None,
        }
    }
}

/// What a case must decide: the run's next state, step, timer and outcome; its logs as (kind, reason); the
/// channels of the messages written.
struct Expect {
    state: RunState,
    step: i64,
    due: Option<DateTime<Utc>>,
    outcome: Option<&'static str>,
    logs: Vec<(&'static str, Option<String>)>,
    channels: Vec<&'static str>,
}

fn decide(g: Given) -> RunEffects {
    let program = program(g.cap, g.sms);
    let mut r = run(g.step);
    r.flow = g.flow.into();
    r.arm = g.arm;
    let mut loaded = Loaded::default();
    if !g.marks.is_empty() {
        loaded.marks.insert(r.id, g.marks);
    }
    if let Some(c) = g.contact {
        loaded.recipients.insert(ANN, c);
    }
    loaded.sent.insert(ANN, g.sent);
    fire(&program, vec![r], loaded, g.now)
}

const NOT_SUBSCRIBED: &str = "not a subscriber (the flow sends to contacts who accept marketing)";

fn sent(reason: Option<&str>) -> (&'static str, Option<String>) {
    ("sent", reason.map(str::to_string))
}

fn kind(kind: &'static str, reason: Option<&str>) -> (&'static str, Option<String>) {
    (kind, reason.map(str::to_string))
}

#[test]
fn a_due_run_is_guarded_checked_capped_and_moved_on_as_each_case_says() {
    let tomorrow_noon = at(12, 0) + chrono::Duration::days(1);
    let eight_tomorrow = at(8, 0) + chrono::Duration::days(1);
    let no_sms = NotSent::NoChannel("sms").to_string();
    let cases: Vec<(&str, Given, Expect)> = vec![
        (
            "a due run sends its step and waits at the next",
            Given::default(),
            Expect {
                state: RunState::Active,
                step: 2,
                due: Some(tomorrow_noon),
                outcome: None,
                logs: vec![sent(None), kind("waiting", None)],
                channels: vec!["email"],
            },
        ),
        (
            "a held-out run sends nothing at its send step, logs why, and waits at the next like the others",
            Given {
                arm: Some(crate::experiment::Arm::Holdout),
                ..Given::default()
            },
            Expect {
                state: RunState::Active,
                step: 2,
                due: Some(tomorrow_noon),
                outcome: None,
                logs: vec![kind("skipped", Some("holdout")), kind("waiting", None)],
                channels: vec![],
            },
        ),
        (
            "a held-out run is stopped by an order like any other",
            Given {
                arm: Some(crate::experiment::Arm::Holdout),
                marks: vec![order(Some("c1"), at(9, 0))],
                ..Given::default()
            },
            Expect {
                state: RunState::Exited,
                step: 0,
                due: None,
                outcome: Some("Order Completed for the same checkout_id"),
                logs: vec![kind(
                    "skipped",
                    Some("Order Completed for the same checkout_id"),
                )],
                channels: vec![],
            },
        ),
        (
            "a run in the treatment group sends as without an experiment",
            Given {
                arm: Some(crate::experiment::Arm::Treatment),
                ..Given::default()
            },
            Expect {
                state: RunState::Active,
                step: 2,
                due: Some(tomorrow_noon),
                outcome: None,
                logs: vec![sent(None), kind("waiting", None)],
                channels: vec!["email"],
            },
        ),
        (
            "an order for the same key stops the run, however long before it happened",
            Given {
                marks: vec![order(Some("c1"), at(9, 0))],
                ..Given::default()
            },
            Expect {
                state: RunState::Exited,
                step: 0,
                due: None,
                outcome: Some("Order Completed for the same checkout_id"),
                logs: vec![kind(
                    "skipped",
                    Some("Order Completed for the same checkout_id"),
                )],
                channels: vec![],
            },
        ),
        (
            "an order by the same contact before the run started does not stop it",
            Given {
                marks: vec![order(None, at(10, 59))],
                ..Given::default()
            },
            Expect {
                state: RunState::Active,
                step: 2,
                due: Some(tomorrow_noon),
                outcome: None,
                logs: vec![sent(None), kind("waiting", None)],
                channels: vec!["email"],
            },
        ),
        (
            "an order by the same contact at or after the run started stops it",
            Given {
                marks: vec![order(None, at(11, 0))],
                ..Given::default()
            },
            Expect {
                state: RunState::Exited,
                step: 0,
                due: None,
                outcome: Some("Order Completed for the same contact"),
                logs: vec![kind(
                    "skipped",
                    Some("Order Completed for the same contact"),
                )],
                channels: vec![],
            },
        ),
        (
            "an order for another key does not stop the run",
            Given {
                marks: vec![order(Some("c2"), at(11, 30))],
                ..Given::default()
            },
            Expect {
                state: RunState::Active,
                step: 2,
                due: Some(tomorrow_noon),
                outcome: None,
                logs: vec![sent(None), kind("waiting", None)],
                channels: vec!["email"],
            },
        ),
        (
            "an unsubscribed contact ends the run",
            Given {
                contact: Some(ann(json!({"unsubscribed": true}), true, true)),
                ..Given::default()
            },
            Expect {
                state: RunState::Exited,
                step: 0,
                due: None,
                outcome: Some("unsubscribed"),
                logs: vec![kind("skipped", Some("unsubscribed"))],
                channels: vec![],
            },
        ),
        (
            "a flow for subscribers sends to a contact who accepts marketing",
            Given {
                flow: "subscribers-recovery",
                contact: Some(ann(json!({"accepts_marketing": true}), true, true)),
                ..Given::default()
            },
            Expect {
                state: RunState::Active,
                step: 2,
                due: Some(tomorrow_noon),
                outcome: None,
                logs: vec![sent(None), kind("waiting", None)],
                channels: vec!["email"],
            },
        ),
        (
            "a flow for subscribers ends the run of a contact who does not accept marketing, or never said",
            Given {
                flow: "subscribers-recovery",
                contact: Some(ann(json!({"accepts_marketing": false}), true, true)),
                ..Given::default()
            },
            Expect {
                state: RunState::Exited,
                step: 0,
                due: None,
                outcome: Some(NOT_SUBSCRIBED),
                logs: vec![kind("skipped", Some(NOT_SUBSCRIBED))],
                channels: vec![],
            },
        ),
        (
            "a flow for subscribers, a contact with no consent trait",
            Given {
                flow: "subscribers-recovery",
                ..Given::default()
            },
            Expect {
                state: RunState::Exited,
                step: 0,
                due: None,
                outcome: Some(NOT_SUBSCRIBED),
                logs: vec![kind("skipped", Some(NOT_SUBSCRIBED))],
                channels: vec![],
            },
        ),
        (
            "a contact marked do-not-contact ends the run, written as a string too",
            Given {
                contact: Some(ann(json!({"do_not_contact": "true"}), true, true)),
                ..Given::default()
            },
            Expect {
                state: RunState::Exited,
                step: 0,
                due: None,
                outcome: Some("do not contact"),
                logs: vec![kind("skipped", Some("do not contact"))],
                channels: vec![],
            },
        ),
        (
            "a contact that no longer exists ends the run",
            Given {
                contact: None,
                ..Given::default()
            },
            Expect {
                state: RunState::Exited,
                step: 0,
                due: None,
                outcome: Some("the contact no longer exists"),
                logs: vec![kind("exited", Some("the contact no longer exists"))],
                channels: vec![],
            },
        ),
        (
            "a run of a flow no longer configured ends",
            Given {
                flow: "gone",
                ..Given::default()
            },
            Expect {
                state: RunState::Exited,
                step: 0,
                due: None,
                outcome: Some("the flow is no longer in the configuration"),
                logs: vec![kind(
                    "exited",
                    Some("the flow is no longer in the configuration"),
                )],
                channels: vec![],
            },
        ),
        (
            "a contact at the frequency cap is not emailed, and the run goes on",
            Given {
                cap: Some(2),
                sent: 2,
                ..Given::default()
            },
            Expect {
                state: RunState::Active,
                step: 2,
                due: Some(tomorrow_noon),
                outcome: None,
                logs: vec![
                    kind("skipped", Some("frequency cap")),
                    kind("waiting", None),
                ],
                channels: vec![],
            },
        ),
        (
            "a contact under the frequency cap is emailed",
            Given {
                cap: Some(3),
                sent: 2,
                ..Given::default()
            },
            Expect {
                state: RunState::Active,
                step: 2,
                due: Some(tomorrow_noon),
                outcome: None,
                logs: vec![sent(None), kind("waiting", None)],
                channels: vec!["email"],
            },
        ),
        (
            "a contact with no email address is skipped, and the run goes on",
            Given {
                contact: Some(ann(json!({}), false, true)),
                ..Given::default()
            },
            Expect {
                state: RunState::Active,
                step: 2,
                due: Some(tomorrow_noon),
                outcome: None,
                logs: vec![
                    kind("skipped", Some("no email address")),
                    kind("waiting", None),
                ],
                channels: vec![],
            },
        ),
        (
            "an SMS outside the quiet hours is sent, then the last email, and the run finishes",
            Given {
                step: 2,
                sms: true,
                ..Given::default()
            },
            Expect {
                state: RunState::Finished,
                step: 2,
                due: None,
                outcome: Some("finished"),
                logs: vec![sent(None), sent(None), kind("finished", None)],
                channels: vec!["sms", "email"],
            },
        ),
        (
            "an SMS in the quiet hours holds the run until they end",
            Given {
                step: 2,
                sms: true,
                now: at(23, 0),
                ..Given::default()
            },
            Expect {
                state: RunState::Active,
                step: 2,
                due: Some(eight_tomorrow),
                outcome: None,
                logs: vec![kind("deferred", Some("quiet hours"))],
                channels: vec![],
            },
        ),
        (
            "an SMS in the quiet hours that cannot be sent at all is skipped at once, not held",
            Given {
                step: 2,
                sms: false,
                now: at(23, 0),
                ..Given::default()
            },
            Expect {
                state: RunState::Finished,
                step: 2,
                due: None,
                outcome: Some("finished"),
                logs: vec![
                    kind("skipped", Some(&no_sms)),
                    sent(None),
                    kind("finished", None),
                ],
                channels: vec!["email"],
            },
        ),
        (
            "a contact who texted STOP is not held for the quiet hours either",
            Given {
                step: 2,
                sms: true,
                now: at(23, 0),
                contact: Some(ann(json!({"sms_opt_out": true}), true, true)),
                ..Given::default()
            },
            Expect {
                state: RunState::Finished,
                step: 2,
                due: None,
                outcome: Some("finished"),
                logs: vec![
                    kind("skipped", Some("the contact replied STOP to SMS")),
                    sent(None),
                    kind("finished", None),
                ],
                channels: vec!["email"],
            },
        ),
    ];
    for (name, given, want) in cases {
        let now = given.now;
        let fx = decide(given);
        assert_eq!(fx.updates.len(), 1, "{name}: one update per run");
        let u = &fx.updates[0];
        assert_eq!(
            (u.state, u.step, u.due, u.outcome.as_deref()),
            (want.state, want.step, want.due, want.outcome),
            "{name}"
        );
        let logs: Vec<(&str, Option<String>)> =
            fx.logs.iter().map(|l| (l.kind, l.reason.clone())).collect();
        assert_eq!(logs, want.logs, "{name}: logs");
        assert!(fx.logs.iter().all(|l| l.at == now), "{name}: logged now");
        let channels: Vec<&str> = fx.messages.iter().map(|m| m.channel).collect();
        assert_eq!(channels, want.channels, "{name}: messages");
        assert_eq!(
            fx.sent_keys,
            if want.channels.is_empty() {
                vec![]
            } else {
                vec!["c1".to_string()]
            },
            "{name}: sent keys"
        );
    }
}

#[test]
fn the_frequency_cap_counts_the_emails_the_same_batch_writes() {
    let program = program(Some(1), false);
    let first = run(0);
    let second = DueRun {
        id: RunId(id(101)),
        key: "c2".into(),
        ..run(0)
    };
    let mut loaded = Loaded::default();
    loaded.recipients.insert(ANN, ann(json!({}), true, false));
    let fx = fire(&program, vec![first, second], loaded, at(12, 0));
    assert_eq!(fx.messages.len(), 1);
    assert_eq!(fx.sent_keys, vec!["c1".to_string()]);
    let skipped: Vec<(RunId, Option<&str>)> = fx
        .logs
        .iter()
        .filter(|l| l.kind == "skipped")
        .map(|l| (l.run, l.reason.as_deref()))
        .collect();
    assert_eq!(skipped, vec![(RunId(id(101)), Some("frequency cap"))]);
}

#[test]
fn a_message_is_keyed_by_run_and_step_and_carries_the_unsubscribe_link() {
    let program = program(None, false);
    let mut loaded = Loaded::default();
    loaded.recipients.insert(ANN, ann(json!({}), true, false));
    let fx = fire(&program, vec![run(0)], loaded, at(12, 0));
    let m = &fx.messages[0];
    assert_eq!(m.key, format!("{}.1", RunId(id(100))));
    assert_eq!(
        (m.to.as_str(), m.subject.as_str(), m.flow.as_deref(), m.step),
        (
            "ann@example.com",
            "Your cart",
            Some("checkout-recovery"),
            Some(1)
        )
    );
    assert!(m
        .unsubscribe_url
        .as_deref()
        .is_some_and(|u| u.contains("/u/")));
    assert_eq!((m.contact, m.ws, m.lead), (ANN, WS, None));
}

fn cadence_run(lead: Option<LeadId>) -> DueRun {
    let props = match lead {
        Some(l) => json!({"lead_id": l.to_string()}),
        None => json!({}),
    };
    DueRun {
        flow: "lead-cadence".into(),
        key: "k".into(),
        step: -1,
        snapshot: json!({"event": "Lead Submitted", "properties": props}),
        ..run(-1)
    }
}

fn lead(n: u128, ws: WorkspaceId) -> CadenceLead {
    CadenceLead {
        id: LeadId(id(n)),
        ws,
        owner: Some("ann-rep".into()),
        context: json!({"name": "Bo", "message": "a quote"}),
    }
}

#[test]
fn a_call_step_opens_a_task_for_the_lead_the_run_names_or_else_the_contacts_latest() {
    let program = program(None, false);
    let named = LeadId(id(7));
    // (case, run, leads it names that exist, the contact's latest, the lead the task is for)
    type Case = (
        &'static str,
        DueRun,
        Vec<CadenceLead>,
        Vec<CadenceLead>,
        Option<LeadId>,
    );
    let cases: Vec<Case> = vec![
        (
            "the lead the trigger names",
            cadence_run(Some(named)),
            vec![lead(7, WS)],
            vec![],
            Some(named),
        ),
        (
            "no lead named: the contact's latest lead",
            cadence_run(None),
            vec![],
            vec![lead(8, WS)],
            Some(LeadId(id(8))),
        ),
        (
            "a named lead that does not exist is not replaced by the latest",
            cadence_run(Some(named)),
            vec![],
            vec![lead(8, WS)],
            None,
        ),
        (
            "a lead of another workspace is not used",
            cadence_run(Some(named)),
            vec![lead(7, WorkspaceId(id(10)))],
            vec![],
            None,
        ),
    ];
    for (name, r, named_leads, latest, want) in cases {
        let mut loaded = Loaded::default();
        loaded.recipients.insert(ANN, ann(json!({}), true, false));
        loaded.leads = named_leads.into_iter().map(|l| (l.id, l)).collect();
        loaded.latest = latest.into_iter().map(|l| (ANN, l)).collect();
        let fx = fire(&program, vec![r], loaded, at(12, 0));
        let tasks: Vec<LeadId> = fx.tasks.iter().map(|t| t.lead).collect();
        assert_eq!(tasks, want.into_iter().collect::<Vec<_>>(), "{name}");
        let call = &fx.logs[0];
        match want {
            Some(_) => {
                assert_eq!(call.kind, "task", "{name}");
                assert_eq!(
                    fx.tasks[0].title, "Call Bo",
                    "{name}: the script sees the lead"
                );
                assert_eq!(
                    fx.messages[0].lead, want,
                    "{name}: the email is about the lead"
                );
            }
            None => assert_eq!(
                (call.kind, call.reason.clone()),
                ("skipped", Some(NotSent::NoLead.to_string())),
                "{name}"
            ),
        }
    }
}

#[test]
fn what_a_batch_needs_loaded_is_named_leads_and_latest_leads_only_for_flows_that_call() {
    let program = program(Some(5), false);
    let named = LeadId(id(7));
    let runs = vec![
        cadence_run(Some(named)),
        cadence_run(Some(named)),
        cadence_run(None),
        run(0),
    ];
    let mut recipients = HashMap::new();
    recipients.insert(ANN, ann(json!({}), true, false));
    let w = wanted(&program, &runs, &recipients, at(12, 0));
    assert_eq!(w.leads, vec![named]);
    assert_eq!(
        w.latest,
        vec![(WS, ANN)],
        "the checkout flow has no call step"
    );
    assert_eq!(w.sent_since, Some(at(12, 0) - chrono::Duration::days(1)));
    assert_eq!(
        wanted(&program_uncapped(), &runs, &recipients, at(12, 0)).sent_since,
        None
    );
}

fn program_uncapped() -> Program {
    program(None, false)
}

#[test]
fn a_run_with_no_traits_map_still_gets_a_context() {
    // Snapshots that could not be read back are `Null`; the run still walks its steps.
    let program = program(None, false);
    let mut r = run(0);
    r.snapshot = Value::Null;
    let mut loaded = Loaded::default();
    loaded.recipients.insert(
        ANN,
        Addressee {
            asked: ANN,
            live: ANN,
            recipient: Recipient {
                email: Some("ann@example.com".into()),
                phone: None,
                traits: Map::new(),
            },
        },
    );
    let fx = fire(&program, vec![r], loaded, at(12, 0));
    assert_eq!(fx.messages.len(), 1);
}
