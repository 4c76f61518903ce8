//! Table tests for the lead transitions, ported from the store and server suites that reached them only
//! through a database (those keep checking that the transitions are written and locked).

use super::*;
use chrono::TimeZone;

fn at(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap() + chrono::Duration::minutes(min)
}

/// An open lead owned by `ann`, arrived at minute 0, its first escalation due at minute 5.
fn open() -> LeadState {
    let lead = crate::Lead::bare(7, Some("Bo"), None);
    let mut l = LeadState::arrived(
        &lead,
        lead.id,
        WorkspaceId(uuid::Uuid::from_u128(1)),
        ContactId(uuid::Uuid::from_u128(2)),
        at(0),
    );
    l.owner = Some("ann".into());
    l.tried = vec!["ann".into()];
    l.due_at = Some(at(5));
    l
}

fn with(f: impl FnOnce(&mut LeadState)) -> LeadState {
    let mut l = open();
    f(&mut l);
    l
}

#[test]
fn a_lead_arrives_open_unowned_and_without_a_clock() {
    let l = LeadState::arrived(
        &crate::Lead::bare(7, None, None),
        LeadId(uuid::Uuid::from_u128(7)),
        WorkspaceId(uuid::Uuid::from_u128(1)),
        ContactId(uuid::Uuid::from_u128(2)),
        at(0),
    );
    assert_eq!(
        (l.status, l.owner, l.due_at, l.sla_step, l.tried.len()),
        (LeadStatus::Open, None, None, 0, 0)
    );
}

#[test]
fn a_status_is_written_and_read_back_as_the_word_stored() {
    for s in LeadStatus::ALL {
        assert_eq!(s.as_str().parse::<LeadStatus>(), Ok(s));
        assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
    }
    assert!("closed".parse::<LeadStatus>().is_err());
    let open: Vec<LeadStatus> = LeadStatus::ALL
        .into_iter()
        .filter(|s| s.is_open())
        .collect();
    assert_eq!(
        open,
        vec![LeadStatus::Open, LeadStatus::Claimed, LeadStatus::Contacted]
    );
}

#[test]
fn a_claim_takes_an_open_lead_and_stops_its_clock_and_the_first_claim_wins() {
    // (case, the lead, who claims, the owner/status/claimer after, the log's detail; None: nothing changes)
    type Case = (
        &'static str,
        LeadState,
        &'static str,
        Option<(&'static str, LeadStatus, &'static str)>,
    );
    let cases: Vec<Case> = vec![
        (
            "the owner claims an open lead",
            open(),
            "ann",
            Some((
                "ann",
                LeadStatus::Claimed,
                "claimed by ann; SLA clock stopped",
            )),
        ),
        (
            "another rep takes it over",
            open(),
            "bob",
            Some((
                "bob",
                LeadStatus::Claimed,
                "claimed by bob (taken over from ann); SLA clock stopped",
            )),
        ),
        (
            "a contacted lead is claimed but stays contacted",
            with(|l| l.status = LeadStatus::Contacted),
            "ann",
            Some((
                "ann",
                LeadStatus::Contacted,
                "claimed by ann; SLA clock stopped",
            )),
        ),
        (
            "a lead already claimed is not claimed again",
            with(|l| {
                l.claimed_at = Some(at(1));
                l.claimed_by = Some("ann".into());
            }),
            "bob",
            None,
        ),
        (
            "a won lead is not claimed",
            with(|l| l.status = LeadStatus::Won),
            "bob",
            None,
        ),
        (
            "a lost lead is not claimed",
            with(|l| l.status = LeadStatus::Lost),
            "bob",
            None,
        ),
    ];
    for (name, before, rep, want) in cases {
        let mut l = before.clone();
        let log = claim(&mut l, rep, at(3));
        match want {
            None => {
                assert_eq!(log, None, "{name}");
                assert_eq!(l, before, "{name}: unchanged");
            }
            Some((owner, status, detail)) => {
                let log = log.unwrap_or_else(|| panic!("{name}: claimed"));
                assert_eq!(
                    (
                        l.owner.as_deref(),
                        l.status,
                        l.claimed_by.as_deref(),
                        l.claimed_at,
                        l.due_at
                    ),
                    (Some(owner), status, Some(rep), Some(at(3)), None),
                    "{name}"
                );
                assert!(l.tried.iter().any(|r| r == rep), "{name}: tried");
                assert_eq!(
                    l.tried.iter().filter(|r| *r == rep).count(),
                    1,
                    "{name}: tried once"
                );
                assert_eq!(
                    (log.kind.as_str(), log.rep.as_deref(), log.detail.as_str()),
                    ("claimed", Some(rep), detail),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn an_attempt_records_first_contact_moves_the_status_and_closes_call_tasks_as_each_case_says() {
    struct Want {
        status: LeadStatus,
        first_contact: DateTime<Utc>,
        first: bool,
        closed: Option<&'static str>,
        tasks_upto: Option<DateTime<Utc>>,
        detail: &'static str,
    }
    // (case, the lead, the channel, the outcome, when it happened, what it must leave)
    type Case = (
        &'static str,
        LeadState,
        &'static str,
        Outcome,
        DateTime<Utc>,
        Want,
    );
    let cases: Vec<Case> = vec![
        (
            "a call that got voicemail is the first contact and closes the tasks opened before it",
            open(),
            "call",
            Outcome::Voicemail,
            at(2),
            Want {
                status: LeadStatus::Contacted,
                first_contact: at(2),
                first: true,
                closed: None,
                tasks_upto: Some(at(2)),
                detail: "call: voicemail (first contact; SLA clock stopped)",
            },
        ),
        (
            "an email that reached them closes every task: the cadence ends",
            open(),
            "email",
            Outcome::Reached,
            at(2),
            Want {
                status: LeadStatus::Contacted,
                first_contact: at(2),
                first: true,
                closed: None,
                tasks_upto: Some(at(3)),
                detail: "email: reached (first contact; SLA clock stopped)",
            },
        ),
        (
            "an SMS with no answer closes no task",
            open(),
            "sms",
            Outcome::NoAnswer,
            at(2),
            Want {
                status: LeadStatus::Contacted,
                first_contact: at(2),
                first: true,
                closed: None,
                tasks_upto: None,
                detail: "sms: no answer (first contact; SLA clock stopped)",
            },
        ),
        (
            "a later attempt is not the first contact",
            with(|l| {
                l.first_contact_at = Some(at(1));
                l.status = LeadStatus::Contacted;
            }),
            "sms",
            Outcome::NoAnswer,
            at(2),
            Want {
                status: LeadStatus::Contacted,
                first_contact: at(1),
                first: false,
                closed: None,
                tasks_upto: None,
                detail: "sms: no answer",
            },
        ),
        (
            "an attempt logged late but made earlier becomes the first contact",
            with(|l| l.first_contact_at = Some(at(2))),
            "call",
            Outcome::NoAnswer,
            at(1),
            Want {
                status: LeadStatus::Contacted,
                first_contact: at(1),
                first: true,
                closed: None,
                tasks_upto: Some(at(1)),
                detail: "call: no answer (first contact; SLA clock stopped)",
            },
        ),
        (
            "a won outcome closes the lead and every task",
            open(),
            "sms",
            Outcome::Won,
            at(2),
            Want {
                status: LeadStatus::Won,
                first_contact: at(2),
                first: true,
                closed: Some("won"),
                tasks_upto: Some(at(3)),
                detail: "sms: won (first contact; SLA clock stopped)",
            },
        ),
        (
            "not interested closes it as lost",
            open(),
            "call",
            Outcome::NotInterested,
            at(2),
            Want {
                status: LeadStatus::Lost,
                first_contact: at(2),
                first: true,
                closed: Some("not_interested"),
                tasks_upto: Some(at(3)),
                detail: "call: not interested (first contact; SLA clock stopped)",
            },
        ),
        (
            "a closed lead stays closed whatever is logged after",
            with(|l| {
                l.status = LeadStatus::Lost;
                l.outcome = Some("lost".into());
                l.closed_at = Some(at(1));
                l.first_contact_at = Some(at(1));
            }),
            "email",
            Outcome::Won,
            at(2),
            Want {
                status: LeadStatus::Lost,
                first_contact: at(1),
                first: false,
                closed: Some("lost"),
                tasks_upto: Some(at(3)),
                detail: "email: won",
            },
        ),
    ];
    for (name, before, channel, outcome, when, want) in cases {
        let mut l = before;
        let done = attempt(
            &mut l,
            Attempt {
                rep: Some("ann"),
                channel,
                outcome,
                at: when,
            },
            at(3),
        );
        assert_eq!(
            (l.status, l.first_contact_at, done.first, l.due_at),
            (want.status, Some(want.first_contact), want.first, None),
            "{name}"
        );
        assert_eq!(l.outcome.as_deref(), want.closed, "{name}: outcome");
        assert_eq!(
            l.closed_at.is_some(),
            want.closed.is_some(),
            "{name}: closed"
        );
        assert_eq!(done.close_tasks_upto, want.tasks_upto, "{name}: tasks");
        assert_eq!(
            (done.log.kind.as_str(), done.log.detail.as_str()),
            ("attempt", want.detail),
            "{name}"
        );
    }
}

#[test]
fn an_unowned_lead_belongs_to_whoever_tried_it() {
    let mut l = with(|l| l.owner = None);
    attempt(
        &mut l,
        Attempt {
            rep: Some("bob"),
            channel: "call",
            outcome: Outcome::NoAnswer,
            at: at(1),
        },
        at(1),
    );
    assert_eq!(l.owner.as_deref(), Some("bob"));
    let mut owned = open();
    attempt(
        &mut owned,
        Attempt {
            rep: Some("bob"),
            channel: "call",
            outcome: Outcome::NoAnswer,
            at: at(1),
        },
        at(1),
    );
    assert_eq!(owned.owner.as_deref(), Some("ann"), "an owner is kept");
}

#[test]
fn only_the_first_reply_is_timed() {
    let mut l = open();
    assert!(reply(&mut l, at(4)));
    assert!(!reply(&mut l, at(9)));
    assert_eq!(l.replied_at, Some(at(4)));
}

#[test]
fn a_manager_reassigns_an_open_lead_by_hand_but_not_a_closed_one_nor_to_its_owner() {
    // (lead, to, changes, owner after)
    let cases = [
        (open(), "bo", true, "bo"),
        (open(), "ann", false, "ann"),
        (with(|l| l.owner = None), "bo", true, "bo"),
        (with(|l| l.status = LeadStatus::Won), "bo", false, "ann"),
        (with(|l| l.status = LeadStatus::Claimed), "bo", true, "bo"),
    ];
    for (mut l, to, changes, owner) in cases {
        let before = l.clone();
        let log = reassign(&mut l, to, "mia@example.com", at(3));
        assert_eq!(log.is_some(), changes, "{:?} to {to}", before.status);
        assert_eq!(l.owner.as_deref(), Some(owner));
        if let Some(log) = log {
            assert_eq!(
                (log.kind.as_str(), log.rep.as_deref()),
                ("reassigned", Some(to))
            );
            assert!(
                log.detail
                    .starts_with("reassigned by mia@example.com from "),
                "{}",
                log.detail
            );
            assert_eq!(l.tried.last().map(String::as_str), Some(to));
            assert_eq!(
                (l.status, l.due_at, l.claimed_at),
                (before.status, before.due_at, before.claimed_at)
            );
        } else {
            assert_eq!(l, before);
        }
    }
}
