//! The flow engine's decisions, as pure functions of (flow, run, event or timer, now). The store applies what
//! they return inside the transaction that read their inputs, so a decision and its effects are atomic; keeping
//! the decisions here keeps the hard logic testable without I/O (the store calls them inside the ingest and
//! timer transactions).
//!
//! Rules:
//! - A trigger with no run for its key starts one; with a run in progress, `reentry = "update"` refreshes the
//!   run's snapshot and restarts its current wait (idle time counts from the last activity), `once` ignores it.
//! - An exit event ends a run when it matches the run's key (`same = "key"`: the event's value at the flow's key
//!   path equals the run key; its time does not matter, an order for this checkout is final whenever it
//!   happened) or its contact (`same = "contact"`: the event happened at or after the run's trigger by the
//!   client's clock, so an order delivered late still counts and last year's order does not).
//! - Walking the steps from a position: `send` steps are emitted in order, `if` steps branch, until a `wait`
//!   (scheduled for this snapshot: a duration, a tier by value, or a local time in the contact's zone) or the
//!   end or an `exit`. An SMS step in the contact's quiet hours (their local time) defers the run to when
//!   the quiet hours end; the step then runs as it would have.

pub mod fire;
pub mod group;

use crate::experiment::{self, Arm};
use crate::flow::{Channel, Flow, Reentry, Same, Step};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

/// What the engine knows of a run in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub key: String,
    pub contact: String,
    /// The step the run is waiting at.
    pub step: usize,
    /// When the trigger happened, by the client's clock (else when pronto received it).
    pub started: DateTime<Utc>,
    /// Its group in the flow's experiment, as written when it started.
    pub arm: Option<Arm>,
}

/// An effect the store must carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send the message of step `step` (through the outbox, keyed by run and step).
    Send { step: usize },
    /// Sleep until `at`, then continue after step `step`.
    Wait { step: usize, at: DateTime<Utc> },
    /// Step `step` may not run before `at` (an SMS in the contact's quiet hours, a marketing email outside the
    /// flow's send window): sleep, then run it.
    Defer { step: usize, at: DateTime<Utc> },
    /// Open the call task of step `step` for the lead's owner.
    Call { step: usize },
    /// The run has no steps left.
    Finish,
}

/// The time zone a run's local-time waits and SMS quiet hours use: the person's (see
/// [`crate::calendar::person_zone`]: their own `timezone`, the contact's trait, the browser's, their phone's
/// country), else the flow's.
pub fn zone(flow: &Flow, ctx: &Value) -> Tz {
    crate::calendar::person_zone(ctx, flow.timezone)
}

/// The context expressions and waits see: the event's fields at the top level and the contact's traits under
/// `contact`.
pub fn context(event: &Value, traits: &serde_json::Map<String, Value>) -> Value {
    let mut ctx = match event {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    ctx.insert("contact".into(), Value::Object(traits.clone()));
    Value::Object(ctx)
}

/// The steps from `from` on, as a run in `arm` takes them ([`Flow::step`]), until the next wait or the end.
/// `if` steps are decided on `ctx` as they are met; jumps go forward only (checked at load), so this always
/// ends.
pub fn advance(
    flow: &Flow,
    arm: Option<&Arm>,
    from: usize,
    ctx: &Value,
    now: DateTime<Utc>,
) -> Vec<Action> {
    let mut out = Vec::new();
    let mut i = from;
    while let Some(step) = flow.step(i, arm) {
        match step {
            Step::Send { channel, .. } => {
                // The hours a message may go in: SMS outside the quiet hours, a marketing email inside the
                // flow's send window (if it has one).
                let window = match channel {
                    Channel::Sms => Some(&flow.sms_allowed),
                    Channel::Email => flow.email_allowed.as_ref(),
                    Channel::Webhook => None,
                };
                let allowed = window.map_or(now, |w| w.due(ctx, zone(flow, ctx), now));
                if allowed > now {
                    out.push(Action::Defer {
                        step: i,
                        at: allowed,
                    });
                    return out;
                }
                out.push(Action::Send { step: i });
            }
            Step::Call { .. } => out.push(Action::Call { step: i }),
            Step::Wait(w) => {
                let at = w.due(ctx, zone(flow, ctx), now);
                out.push(Action::Wait { step: i, at });
                return out;
            }
            Step::If {
                expr,
                then,
                otherwise,
            } => {
                i = if crate::expr::truthy(expr, ctx) {
                    *then
                } else {
                    *otherwise
                };
                continue;
            }
            Step::Exit => break,
        }
        i += 1;
    }
    out.push(Action::Finish);
    out
}

/// What a trigger event does to a flow.
#[derive(Debug, Clone, PartialEq)]
pub enum OnTrigger {
    /// Start a run with this key, in this group of the flow's experiment, and carry out the actions.
    Start {
        key: String,
        arm: Option<Arm>,
        actions: Vec<Action>,
    },
    /// Replace the run's snapshot with the event and carry out the actions (its wait restarted).
    Refresh {
        actions: Vec<Action>,
    },
    Ignore(&'static str),
}

/// Decides for an event whose name is one of the flow's triggers. `existing` is the run in progress for the
/// event's key, if any.
pub fn on_trigger(
    flow: &Flow,
    event: &Value,
    contact: &str,
    existing: Option<&Run>,
    now: DateTime<Utc>,
) -> OnTrigger {
    let Some(key) = flow.run_key(event, contact) else {
        return OnTrigger::Ignore("the event has no value at the flow's key");
    };
    decide_trigger(flow, key, event, existing, now)
}

/// [`on_trigger`] for a key already taken from the event (the group walk computes it once, to find the run).
pub fn decide_trigger(
    flow: &Flow,
    key: String,
    event: &Value,
    existing: Option<&Run>,
    now: DateTime<Utc>,
) -> OnTrigger {
    if let Some(f) = &flow.filter {
        if !crate::expr::truthy(f, event) {
            return OnTrigger::Ignore("the flow's trigger filter is false for the event");
        }
    }
    match (existing, flow.reentry) {
        (None, _) => {
            let arm = flow
                .experiment
                .as_ref()
                .map(|e| experiment::assign(&flow.id, e, &key));
            OnTrigger::Start {
                actions: advance(flow, arm.as_ref(), 0, event, now),
                key,
                arm,
            }
        }
        (Some(_), Reentry::Once) => {
            OnTrigger::Ignore("a run for this key exists and reentry is once")
        }
        (Some(run), Reentry::Update) => {
            // Restart the wait the run is in; if it is past its waits, the refresh changes only the snapshot.
            let actions = match flow.steps.get(run.step) {
                Some(Step::Wait(_)) => advance(flow, run.arm.as_ref(), run.step, event, now),
                _ => Vec::new(),
            };
            OnTrigger::Refresh { actions }
        }
    }
}

/// The index of the first exit rule this event meets for the run, if any. `event_time` is the event's client
/// timestamp, else its receive time.
pub fn exit_rule(
    flow: &Flow,
    run: &Run,
    event_name: &str,
    event: &Value,
    event_contact: &str,
    event_time: DateTime<Utc>,
) -> Option<usize> {
    flow.exits.iter().position(|x| {
        x.event == event_name
            && match x.same {
                Same::Key => flow
                    .key
                    .as_ref()
                    .and_then(|p| p.key(event))
                    .is_some_and(|k| k == run.key),
                Same::Contact => event_contact == run.contact && event_time >= run.started,
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowConfig;
    use serde_json::json;

    fn checkout() -> Flow {
        let text = r#"
id = "checkout-recovery"
trigger = { event = "Checkout Started" }
key = "properties.checkout_id"
exit = [{ event = "Order Completed", same = "key" }, { event = "Order Completed", same = "contact" }]
[[step]]
wait = { by = "properties.value", tiers = [[0, "10m"], [50, "1h"], [500, "4h"]] }
[[step]]
send = { channel = "email", template = "reminder" }
[[step]]
wait = "1d"
[[step]]
send = { channel = "email", template = "reminder" }
[[step]]
send = { channel = "sms", template = "reminder" }
"#;
        let c: FlowConfig = toml::from_str(text).unwrap();
        Flow::check(&c, &["reminder"]).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cart(id: &str, value: f64) -> Value {
        json!({"properties": {"checkout_id": id, "value": value}})
    }

    #[test]
    fn a_new_checkout_starts_a_run_waiting_by_cart_value() {
        let now = at("2026-11-24T12:00:00Z");
        let cases = [
            (20.0, "2026-11-24T12:10:00Z"),
            (120.0, "2026-11-24T13:00:00Z"),
            (900.0, "2026-11-24T16:00:00Z"),
        ];
        for (value, due) in cases {
            let d = on_trigger(&checkout(), &cart("c1", value), "ann", None, now);
            assert_eq!(
                d,
                OnTrigger::Start {
                    key: "c1".into(),
                    arm: None,
                    actions: vec![Action::Wait {
                        step: 0,
                        at: at(due)
                    }]
                }
            );
        }
        assert!(matches!(
            on_trigger(&checkout(), &json!({"properties": {}}), "ann", None, now),
            OnTrigger::Ignore(_)
        ));
    }

    #[test]
    fn a_run_takes_its_variants_steps_and_the_steps_as_written_elsewhere() {
        let text = r#"
id = "checkout-recovery"
trigger = { event = "Checkout Started" }
key = "properties.checkout_id"
experiment = { id = "timing", holdout = "20%", variants = [{ id = "hour" }, { id = "ten-min" }] }
[[step]]
wait = "1h"
variants = { ten-min = { wait = "10m" } }
[[step]]
send = { channel = "email", template = "reminder" }
variants = { ten-min = { send = { channel = "sms", template = "nudge" } } }
"#;
        let c: FlowConfig = toml::from_str(text).unwrap();
        let f = Flow::check(&c, &["reminder", "nudge"]).unwrap();
        let now = at("2026-11-24T12:00:00Z");
        let v = |s: &str| Arm::Variant(s.into());
        let cases = [
            (
                "the variant's wait",
                Some(v("ten-min")),
                "2026-11-24T12:10:00Z",
            ),
            (
                "the other variant: as written",
                Some(v("hour")),
                "2026-11-24T13:00:00Z",
            ),
            (
                "held out: as written",
                Some(Arm::Holdout),
                "2026-11-24T13:00:00Z",
            ),
            (
                "a variant no longer configured: as written",
                Some(v("gone")),
                "2026-11-24T13:00:00Z",
            ),
            ("no experiment", None, "2026-11-24T13:00:00Z"),
        ];
        for (name, arm, due) in cases {
            assert_eq!(
                advance(&f, arm.as_ref(), 0, &cart("c1", 20.0), now),
                vec![Action::Wait {
                    step: 0,
                    at: at(due)
                }],
                "{name}"
            );
        }
        let template = |arm: Option<Arm>| match f.step(1, arm.as_ref()) {
            Some(Step::Send {
                template, channel, ..
            }) => (template.clone(), *channel),
            other => panic!("{other:?}"),
        };
        assert_eq!(template(Some(v("ten-min"))), ("nudge".into(), Channel::Sms));
        assert_eq!(
            template(Some(v("hour"))),
            ("reminder".into(), Channel::Email)
        );
        assert_eq!(f.sends().count(), 2, "both versions of the send");
        // A new run is assigned when it starts, and its first wait is its variant's.
        let started: Vec<(Option<Arm>, Vec<Action>)> = (0..200)
            .filter_map(
                |i| match on_trigger(&f, &cart(&format!("c{i}"), 20.0), "ann", None, now) {
                    OnTrigger::Start { arm, actions, .. } => Some((arm, actions)),
                    _ => None,
                },
            )
            .collect();
        for (arm, actions) in &started {
            let want = if *arm == Some(v("ten-min")) {
                "2026-11-24T12:10:00Z"
            } else {
                "2026-11-24T13:00:00Z"
            };
            assert_eq!(
                actions,
                &vec![Action::Wait {
                    step: 0,
                    at: at(want)
                }],
                "{arm:?}"
            );
        }
        for arm in [Arm::Holdout, v("hour"), v("ten-min")] {
            assert!(
                started.iter().any(|(a, _)| *a == Some(arm.clone())),
                "{arm:?} drawn"
            );
        }
    }

    #[test]
    fn a_cart_update_refreshes_the_snapshot_and_pushes_the_wait_out() {
        let f = checkout();
        let run = Run {
            key: "c1".into(),
            contact: "ann".into(),
            step: 0,
            started: at("2026-11-24T12:00:00Z"),
            arm: None,
        };
        let later = at("2026-11-24T12:07:00Z");
        let d = on_trigger(&f, &cart("c1", 600.0), "ann", Some(&run), later);
        assert_eq!(
            d,
            OnTrigger::Refresh {
                actions: vec![Action::Wait {
                    step: 0,
                    at: at("2026-11-24T16:07:00Z")
                }]
            }
        );
    }

    #[test]
    fn when_a_wait_ends_the_sends_up_to_the_next_wait_follow_and_the_end_finishes() {
        let f = checkout();
        let now = at("2026-11-24T12:10:00Z");
        assert_eq!(
            advance(&f, None, 1, &cart("c1", 20.0), now),
            vec![
                Action::Send { step: 1 },
                Action::Wait {
                    step: 2,
                    at: at("2026-11-25T12:10:00Z")
                }
            ]
        );
        assert_eq!(
            advance(&f, None, 3, &cart("c1", 20.0), now),
            vec![
                Action::Send { step: 3 },
                Action::Send { step: 4 },
                Action::Finish
            ]
        );
    }

    #[test]
    fn an_sms_step_in_the_contacts_quiet_hours_waits_until_they_end_in_their_time_zone() {
        let f = checkout();
        let ctx =
            |tz: &str| json!({"properties": {"checkout_id": "c1"}, "contact": {"timezone": tz}});
        // (contact zone, now UTC, deferred until UTC or None = sends now); quiet hours 21:00-08:00 local.
        let cases = [
            ("America/New_York", "2026-11-24T13:30:00Z", None), // 08:30 in New York
            ("America/New_York", "2026-11-25T01:59:00Z", None), // 20:59
            (
                "America/New_York",
                "2026-11-25T02:00:00Z",
                Some("2026-11-25T13:00:00Z"),
            ), // 21:00 → 08:00
            (
                "America/New_York",
                "2026-11-25T12:59:00Z",
                Some("2026-11-25T13:00:00Z"),
            ), // 07:59
            (
                "Asia/Tokyo",
                "2026-11-24T13:30:00Z",
                Some("2026-11-24T23:00:00Z"),
            ), // 22:30 → 08:00 JST
            ("Europe/London", "2026-11-24T13:30:00Z", None),
            (
                "not/a-zone",
                "2026-11-24T22:00:00Z",
                Some("2026-11-25T08:00:00Z"),
            ), // the flow's zone, UTC
        ];
        for (tz, now, deferred) in cases {
            let got = advance(&f, None, 4, &ctx(tz), at(now));
            let want = match deferred {
                None => vec![Action::Send { step: 4 }, Action::Finish],
                Some(t) => vec![Action::Defer { step: 4, at: at(t) }],
            };
            assert_eq!(got, want, "{tz} at {now}");
        }
    }

    #[test]
    fn a_flow_may_move_its_quiet_hours_and_emails_ignore_them() {
        let text = r#"
id = "f"
trigger = { event = "X" }
sms_quiet_hours = "22:00-09:00"
[[step]]
send = { channel = "email", template = "t" }
[[step]]
send = { channel = "sms", template = "t" }
"#;
        let c: FlowConfig = toml::from_str(text).unwrap();
        let f = Flow::check(&c, &["t"]).unwrap();
        assert_eq!(
            advance(&f, None, 0, &json!({}), at("2026-11-24T08:30:00Z")),
            vec![
                Action::Send { step: 0 },
                Action::Defer {
                    step: 1,
                    at: at("2026-11-24T09:00:00Z")
                }
            ]
        );
        assert_eq!(
            advance(&f, None, 1, &json!({}), at("2026-11-24T21:30:00Z")),
            vec![Action::Send { step: 1 }, Action::Finish]
        );
    }

    #[test]
    fn a_marketing_email_outside_the_send_window_waits_for_it_and_a_transactional_flow_has_none() {
        let flow = |extra: &str| {
            let text = format!(
                "id = \"f\"\ntrigger = {{ event = \"X\" }}\n{extra}\n[[step]]\nsend = {{ channel = \"email\", template = \"t\" }}\n"
            );
            let c: FlowConfig = toml::from_str(&text).unwrap();
            Flow::check(&c, &["t"])
        };
        let windowed = flow("email_send_window = \"08:00-21:00\"").unwrap();
        let ctx = |tz: &str| json!({"contact": {"timezone": tz}});
        // (contact zone, now UTC, held until UTC or None = sends now)
        let cases = [
            ("Europe/Berlin", "2026-11-24T12:00:00Z", None),
            (
                "Europe/Berlin",
                "2026-11-24T21:30:00Z",
                Some("2026-11-25T07:00:00Z"),
            ), // 22:30 → 08:00 CET
            (
                "America/New_York",
                "2026-11-24T12:00:00Z",
                Some("2026-11-24T13:00:00Z"),
            ), // 07:00 → 08:00
            ("America/New_York", "2026-11-24T14:00:00Z", None),
        ];
        for (tz, now, held) in cases {
            let want = match held {
                None => vec![Action::Send { step: 0 }, Action::Finish],
                Some(t) => vec![Action::Defer { step: 0, at: at(t) }],
            };
            assert_eq!(
                advance(&windowed, None, 0, &ctx(tz), at(now)),
                want,
                "{tz} at {now}"
            );
        }
        let none = flow("").unwrap();
        assert_eq!(
            advance(
                &none,
                None,
                0,
                &ctx("Europe/Berlin"),
                at("2026-11-24T23:00:00Z")
            ),
            vec![Action::Send { step: 0 }, Action::Finish],
            "no window: any hour"
        );
        let problems = [
            (
                "purpose = \"transactional\"\nemail_send_window = \"08:00-21:00\"",
                "email_send_window: a transactional flow",
            ),
            (
                "email_send_window = \"08:00-08:00\"",
                "email_send_window: must be a window",
            ),
            ("email_send_window = \"8am\"", "email_send_window: `8am`"),
            (
                "purpose = \"newsletter\"",
                "purpose: `newsletter` is not marketing or transactional",
            ),
        ];
        for (extra, want) in problems {
            let err = flow(extra).unwrap_err();
            assert!(
                err.iter().any(|e| e.to_string().contains(want)),
                "{extra}: {err:?}"
            );
        }
        assert_eq!(
            flow("purpose = \"transactional\"").unwrap().purpose,
            crate::flow::Purpose::Transactional
        );
    }

    #[test]
    fn an_order_exits_by_key_whenever_it_happened_and_by_contact_only_after_the_trigger() {
        let f = checkout();
        let run = Run {
            key: "c1".into(),
            contact: "ann".into(),
            step: 0,
            started: at("2026-11-24T12:00:00Z"),
            arm: None,
        };
        let order = |id: &str| json!({"properties": {"checkout_id": id, "order_id": "o1"}});
        let cases = [
            (
                "same checkout, timestamped before the checkout",
                order("c1"),
                "bob",
                "2026-11-24T11:00:00Z",
                Some(0),
            ),
            (
                "same contact, other checkout, after",
                order("c2"),
                "ann",
                "2026-11-24T12:05:00Z",
                Some(1),
            ),
            (
                "same contact, other checkout, last year",
                order("c2"),
                "ann",
                "2025-11-24T12:05:00Z",
                None,
            ),
            (
                "other contact, other checkout",
                order("c2"),
                "bob",
                "2026-11-24T12:05:00Z",
                None,
            ),
        ];
        for (name, ev, contact, time, want) in cases {
            assert_eq!(
                exit_rule(&f, &run, "Order Completed", &ev, contact, at(time)),
                want,
                "{name}"
            );
        }
        assert_eq!(
            exit_rule(
                &f,
                &run,
                "Checkout Started",
                &order("c1"),
                "ann",
                at("2026-11-24T13:00:00Z")
            ),
            None
        );
    }
}
