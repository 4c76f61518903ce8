//! Table tests for a lead's SLA: the clock a routed lead starts with, and each escalation step (re-alert,
//! reassign, manager) with what it sends and records. Ported from the store and server suites; those keep
//! checking the timers fire on time, once, under a lock.

use super::*;
use crate::sales::lead::{LeadState, LeadStatus};
use crate::sales::How;
use crate::{ContactId, WorkspaceId};
use chrono::TimeZone;

/// Two reps on wall-clock time, a manager, a 5-minute SLA: re-alert at 5m, reassign at 10m, manager at 15m.
const CONFIG: &str = r#"
[[rep]]
id = "ann"
name = "Ann Lee"
email = "ann@shop.example"
[[rep]]
id = "bob"
name = "Bob Ray"
email = "bob@shop.example"
[[rep]]
id = "meg"
name = "Meg Boss"
email = "meg@shop.example"
[[team]]
id = "sales"
members = ["ann", "bob"]
manager = "meg"
[[route]]
id = "all"
team = "sales"
[leads.sla]
within = "5m"
clock = "wall"
escalate = [{ after = "5m", do = "realert" }, { after = "10m", do = "reassign" }, { after = "15m", do = "manager" }]
"#;

fn program(config: &str) -> Program {
    let mut p = Program::empty();
    p.sales = crate::sales::from_toml(config);
    p
}

fn at(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap() + chrono::Duration::minutes(min)
}

/// A lead arrived at minute 0 from bo@example.com, not yet routed.
fn arrived() -> LeadState {
    let mut lead = crate::Lead::bare(7, Some("Bo"), Some("bo@example.com"));
    lead.message = Some("a quote".into());
    LeadState::arrived(
        &lead,
        lead.id,
        WorkspaceId(uuid::Uuid::from_u128(1)),
        ContactId(uuid::Uuid::from_u128(2)),
        at(0),
    )
}

fn routed_to(rep: Option<&str>) -> Routed {
    Routed {
        decision: Assignment {
            rep: rep.map(str::to_string),
            how: if rep.is_some() {
                How::Rule
            } else {
                How::Nobody
            },
            reason: "round robin in team `sales`".into(),
        },
        team: Some("sales".into()),
        route: Some("all".into()),
    }
}

/// Ann's lead, routed at minute 0.
fn started(p: &Program) -> LeadState {
    let mut l = arrived();
    start(
        p,
        &mut LeadEffects::default(),
        &mut l,
        routed_to(Some("ann")),
        &Map::new(),
        at(0),
    );
    l
}

#[test]
fn a_routed_lead_gets_its_owner_deadline_first_escalation_alert_and_acknowledgement() {
    let p = program(CONFIG);
    let mut fx = LeadEffects::default();
    let mut l = arrived();
    start(
        &p,
        &mut fx,
        &mut l,
        routed_to(Some("ann")),
        &Map::new(),
        at(0),
    );
    assert_eq!(
        (
            l.owner.as_deref(),
            l.team.as_deref(),
            l.route.as_deref(),
            l.tried.clone()
        ),
        (
            Some("ann"),
            Some("sales"),
            Some("all"),
            vec!["ann".to_string()]
        )
    );
    assert_eq!(
        (l.sla_deadline, l.due_at, l.promised_at, l.status),
        (Some(at(5)), Some(at(5)), Some(at(5)), LeadStatus::Open)
    );
    assert_eq!(fx.timers, Some(at(5)), "the escalation timer was set");
    let sent: Vec<(&str, &str)> = fx
        .messages
        .iter()
        .map(|m| (m.to.as_str(), m.key.as_str()))
        .collect();
    let alert = format!("lead.{}.alert.ann.email.0", l.id);
    let ack = format!("lead.{}.ack.email", l.id);
    assert_eq!(
        sent,
        vec![
            ("ann@shop.example", alert.as_str()),
            ("bo@example.com", ack.as_str())
        ]
    );
    assert_eq!(
        fx.messages[1].reply_to.as_deref(),
        Some("ann@shop.example"),
        "a reply reaches the owner"
    );
    let kinds: Vec<&str> = fx.logs.iter().map(|g| g.kind.as_str()).collect();
    assert_eq!(kinds, vec!["routed", "alerted", "acknowledged"]);
    assert_eq!(
        fx.logs[2].detail,
        "promised contact within 5 minutes by email to bo@example.com"
    );
}

#[test]
fn a_lead_nobody_can_take_is_promised_no_time_and_its_manager_is_told() {
    let p = program(CONFIG);
    let mut fx = LeadEffects::default();
    let mut l = arrived();
    start(&p, &mut fx, &mut l, routed_to(None), &Map::new(), at(0));
    assert_eq!((l.owner.as_deref(), l.promised_at), (None, None));
    let to: Vec<&str> = fx.messages.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(to, vec!["meg@shop.example", "bo@example.com"]);
    assert_eq!(fx.logs[0].kind, "unassigned");
    assert!(fx.logs[1]
        .detail
        .starts_with("nobody could take the lead: round robin"));
    assert!(fx.logs[2]
        .detail
        .starts_with("promised contact as soon as possible"));
}

#[test]
fn each_escalation_step_fires_once_in_order_and_a_handled_lead_stops_escalating() {
    let p = program(CONFIG);
    // (case, the lead, the routing a reassignment got, at minute, what fired, who got a message, the log's
    // kind, the owner after, the next step and when it is due)
    type Case = (
        &'static str,
        LeadState,
        Option<Routed>,
        i64,
        Escalated,
        Vec<&'static str>,
        Vec<&'static str>,
        Option<&'static str>,
        i64,
        Option<DateTime<Utc>>,
    );
    let step = |n: i64| {
        let mut l = started(&p);
        l.sla_step = n;
        l
    };
    let cases: Vec<Case> = vec![
        (
            "the first step alerts the owner again",
            step(0),
            None,
            5,
            Escalated::Fired(Escalate::Realert),
            vec!["ann@shop.example"],
            vec!["escalated", "alerted"],
            Some("ann"),
            1,
            Some(at(10)),
        ),
        (
            "the second reassigns to the rep routing found, who is alerted",
            step(1),
            Some(routed_to(Some("bob"))),
            10,
            Escalated::Fired(Escalate::Reassign),
            vec!["bob@shop.example"],
            vec!["reassigned", "alerted"],
            Some("bob"),
            2,
            Some(at(15)),
        ),
        (
            "a reassignment nobody can take tells the manager and leaves the lead where it was",
            step(1),
            Some(routed_to(None)),
            10,
            Escalated::Fired(Escalate::Reassign),
            vec!["meg@shop.example"],
            vec!["escalated"],
            Some("ann"),
            2,
            Some(at(15)),
        ),
        (
            "the last step tells the manager, and nothing is due after it",
            step(2),
            None,
            15,
            Escalated::Fired(Escalate::Manager),
            vec!["meg@shop.example"],
            vec!["escalated"],
            Some("ann"),
            3,
            None,
        ),
        (
            "past the chain nothing fires and the timer is cleared",
            step(3),
            None,
            20,
            Escalated::Stopped,
            vec![],
            vec![],
            Some("ann"),
            3,
            None,
        ),
        (
            "a claimed lead does not escalate",
            {
                let mut l = step(0);
                l.claimed_at = Some(at(2));
                l
            },
            None,
            5,
            Escalated::Stopped,
            vec![],
            vec![],
            Some("ann"),
            0,
            None,
        ),
        (
            "a contacted lead does not escalate",
            {
                let mut l = step(0);
                l.first_contact_at = Some(at(2));
                l
            },
            None,
            5,
            Escalated::Stopped,
            vec![],
            vec![],
            Some("ann"),
            0,
            None,
        ),
        (
            "a closed lead does not escalate",
            {
                let mut l = step(0);
                l.status = LeadStatus::Lost;
                l
            },
            None,
            5,
            Escalated::Stopped,
            vec![],
            vec![],
            Some("ann"),
            0,
            None,
        ),
    ];
    for (name, mut l, routed, min, fired, to, kinds, owner, next, due) in cases {
        let mut fx = LeadEffects::default();
        let got = escalate(&p, &mut fx, &mut l, routed, at(min));
        assert_eq!(got, fired, "{name}");
        let sent: Vec<&str> = fx.messages.iter().map(|m| m.to.as_str()).collect();
        assert_eq!(sent, to, "{name}: messages");
        let logged: Vec<&str> = fx.logs.iter().map(|g| g.kind.as_str()).collect();
        assert_eq!(logged, kinds, "{name}: logs");
        assert_eq!(
            (l.owner.as_deref(), l.sla_step, l.due_at),
            (owner, next, due),
            "{name}"
        );
    }
}

#[test]
fn a_reassignment_records_who_had_it_and_why() {
    let p = program(CONFIG);
    let mut l = started(&p);
    l.sla_step = 1;
    let mut fx = LeadEffects::default();
    escalate(&p, &mut fx, &mut l, Some(routed_to(Some("bob"))), at(10));
    assert_eq!(l.tried, vec!["ann".to_string(), "bob".to_string()]);
    assert_eq!(
        fx.logs[0].detail,
        "no claim or contact 10 minutes after arrival (SLA 5 minutes); reassigned from ann to Bob Ray (round robin in team `sales`)"
    );
    let key = format!("lead.{}.alert.bob.email.2", l.id);
    assert_eq!(
        fx.messages[0].key, key,
        "the step number keeps repeated alerts apart"
    );
}

#[test]
fn only_a_reassignment_needs_the_lead_routed_again() {
    let p = program(CONFIG);
    let needs: Vec<bool> = (0..4)
        .map(|n| {
            let mut l = started(&p);
            l.sla_step = n;
            needs_routing(&p.sales, &l)
        })
        .collect();
    assert_eq!(needs, vec![false, true, false, false]);
}
