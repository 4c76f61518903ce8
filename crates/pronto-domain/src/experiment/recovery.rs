//! What each flow recovered over a period, for the shop owner: a funnel of the runs that got its messages
//! (entered → messaged → clicked → bought, with the revenue of what they bought), the holdout beside it when
//! the flow runs one, and per message step what it sent, what was clicked and the conversions whose last touch
//! it was. Pure: the counts come from every run of the period ([`super::results::counts_of`]), the steps'
//! names from the loaded flows.
//!
//! Held-out runs get no messages, so they are kept out of the funnel and shown as what they are: how many
//! bought without being messaged. The difference with its interval is the experiment's result (the flows
//! report); this page shows the counts behind it.

use super::results::{Counts, GroupCounts};
use crate::flow::{Channel, Flow, Step};
use serde::Serialize;
use std::collections::BTreeMap;

/// One flow's recovery over a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FlowRecovery {
    pub flow: String,
    /// Still configured (a flow removed since keeps its runs' counts).
    pub configured: bool,
    /// The funnel of the runs that were not held out.
    pub funnel: Funnel,
    /// The runs held out (none without a holdout).
    pub holdout: Option<Funnel>,
    /// Per message step that sent something, in step order.
    pub steps: Vec<StepFunnel>,
}

/// Runs through a funnel.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Funnel {
    pub entered: i64,
    /// With at least one message.
    pub messaged: i64,
    /// With at least one tracked click.
    pub clicked: i64,
    /// That bought (the flow's conversion event within its window).
    pub converted: i64,
    /// What they bought for, by currency (`""`: the events named none).
    pub revenue: BTreeMap<String, f64>,
}

/// One message step.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepFunnel {
    /// 1-based, as `pronto check` counts steps.
    pub step: i64,
    /// `email · checkout-1`, as configured now (`step 3` when the flow no longer has it).
    pub label: String,
    pub messaged: i64,
    pub clicked: i64,
    /// Conversions whose last touch was this step's message.
    pub conversions: i64,
    pub revenue: BTreeMap<String, f64>,
}

impl Funnel {
    fn add(&mut self, g: &GroupCounts) {
        self.entered += g.entered;
        self.messaged += g.messaged;
        self.clicked += g.clicked;
        self.converted += g.converted;
        for (currency, r) in &g.revenue {
            *self.revenue.entry(currency.clone()).or_default() += r.sum;
        }
    }
}

fn label(flow: Option<&Flow>, step: i64) -> String {
    let configured = flow.and_then(|f| f.steps.get(usize::try_from(step).ok()?));
    match configured {
        Some(Step::Send {
            channel, template, ..
        }) => {
            let channel = match channel {
                Channel::Email => "email",
                Channel::Sms => "SMS",
                Channel::Webhook => "webhook",
            };
            format!("{channel} · {template}")
        }
        _ => format!("step {}", step + 1),
    }
}

/// Each flow's recovery: the configured flows in their order (those without runs too, at zero), then flows
/// no longer configured that have runs in the period. `counts` are by (flow, experiment), as
/// [`super::results::counts_of`] makes them: a flow's runs under several experiments (or none) add up.
pub fn recovery(counts: &BTreeMap<(String, String), Counts>, flows: &[Flow]) -> Vec<FlowRecovery> {
    let mut ids: Vec<(String, bool)> = flows.iter().map(|f| (f.id.clone(), true)).collect();
    for (flow, _) in counts.keys() {
        if !ids.iter().any(|(id, _)| id == flow) {
            ids.push((flow.clone(), false));
        }
    }
    ids.into_iter()
        .map(|(id, configured)| {
            let flow = flows.iter().find(|f| f.id == id);
            let mut out = FlowRecovery {
                flow: id.clone(),
                configured,
                ..FlowRecovery::default()
            };
            let mut steps: BTreeMap<i64, StepFunnel> = BTreeMap::new();
            for ((f, _), c) in counts {
                if *f != id {
                    continue;
                }
                for (arm, g) in &c.groups {
                    if arm == "holdout" {
                        out.holdout.get_or_insert_with(Funnel::default).add(g);
                    } else {
                        out.funnel.add(g);
                    }
                }
                for (step, by_arm) in &c.steps {
                    let s = steps.entry(*step).or_insert_with(|| StepFunnel {
                        step: step + 1,
                        label: label(flow, *step),
                        ..StepFunnel::default()
                    });
                    for sc in by_arm.values() {
                        s.messaged += sc.messaged;
                        s.clicked += sc.clicked;
                        for (currency, r) in &sc.revenue {
                            s.conversions += r.conversions;
                            *s.revenue.entry(currency.clone()).or_default() += r.sum;
                        }
                    }
                }
            }
            out.steps = steps.into_values().collect();
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::results::{counts_of, Conversion, RunOutcome, Touch};
    use crate::experiment::Arm;
    use crate::flow::FlowConfig;
    use chrono::{DateTime, Duration, Utc};
    use serde_json::json;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn flows() -> Vec<Flow> {
        let cfg: FlowConfig = toml::from_str(
            r#"
id = "checkout-recovery"
trigger = { event = "Checkout Started" }
step = [{ wait = "10m" }, { send = { channel = "email", template = "checkout-1" } },
        { wait = "1d" }, { send = { channel = "sms", template = "checkout-sms" } }]
"#,
        )
        .unwrap();
        let idle: FlowConfig = toml::from_str(
            r#"
id = "signup"
trigger = { event = "Signed Up" }
step = [{ send = { channel = "email", template = "welcome" } }]
"#,
        )
        .unwrap();
        let templates = ["checkout-1", "checkout-sms", "welcome"];
        vec![
            Flow::check(&cfg, &templates).unwrap(),
            Flow::check(&idle, &templates).unwrap(),
        ]
    }

    /// A run: its flow, experiment, group, the steps that messaged it (clicked or not) and what it bought.
    fn run(
        flow: &str,
        experiment: &str,
        arm: Arm,
        touches: &[(i64, bool)],
        bought: Option<(&str, f64)>,
    ) -> RunOutcome {
        RunOutcome {
            flow: flow.into(),
            experiment: experiment.into(),
            arm,
            touches: touches
                .iter()
                .map(|&(step, clicked)| Touch {
                    step,
                    sent: t0() + Duration::minutes(10 * (step + 1)),
                    clicked: clicked.then(|| t0() + Duration::minutes(10 * (step + 1) + 1)),
                })
                .collect(),
            conversion: bought.map(|(currency, total)| Conversion {
                at: t0() + Duration::hours(30),
                event: json!({"properties": {"total": total, "currency": currency}}),
            }),
        }
    }

    #[test]
    fn each_flow_shows_its_funnel_its_holdout_and_its_steps_as_the_runs_say() {
        let runs = vec![
            // No experiment: messaged by step 2 (clicked) and bought; messaged twice, bought after the SMS.
            run(
                "checkout-recovery",
                "",
                Arm::Treatment,
                &[(1, true)],
                Some(("EUR", 80.0)),
            ),
            run(
                "checkout-recovery",
                "",
                Arm::Treatment,
                &[(1, false), (3, false)],
                Some(("EUR", 20.0)),
            ),
            run("checkout-recovery", "", Arm::Treatment, &[(1, false)], None),
            // A later holdout experiment on the same flow: its treated run adds to the funnel, the held-out
            // run (no messages, bought anyway) stands apart.
            run(
                "checkout-recovery",
                "h1",
                Arm::Treatment,
                &[(1, true)],
                None,
            ),
            run(
                "checkout-recovery",
                "h1",
                Arm::Holdout,
                &[],
                Some(("EUR", 50.0)),
            ),
            // A flow removed from the config since.
            run("old-flow", "", Arm::Treatment, &[(0, false)], None),
        ];
        let got = recovery(&counts_of(&runs), &flows());
        let ids: Vec<(&str, bool)> = got
            .iter()
            .map(|f| (f.flow.as_str(), f.configured))
            .collect();
        assert_eq!(
            ids,
            [
                ("checkout-recovery", true),
                ("signup", true),
                ("old-flow", false)
            ],
            "configured flows in order, idle ones too, then removed ones"
        );

        let c = &got[0];
        let eur = |v: f64| BTreeMap::from([("EUR".to_string(), v)]);
        assert_eq!(
            c.funnel,
            Funnel {
                entered: 4,
                messaged: 4,
                clicked: 2,
                converted: 2,
                revenue: eur(100.0)
            }
        );
        assert_eq!(
            c.holdout,
            Some(Funnel {
                entered: 1,
                messaged: 0,
                clicked: 0,
                converted: 1,
                revenue: eur(50.0)
            })
        );
        let steps: Vec<(i64, &str, i64, i64, i64)> = c
            .steps
            .iter()
            .map(|s| {
                (
                    s.step,
                    s.label.as_str(),
                    s.messaged,
                    s.clicked,
                    s.conversions,
                )
            })
            .collect();
        assert_eq!(
            steps,
            [
                (2, "email · checkout-1", 4, 2, 1),
                (4, "SMS · checkout-sms", 1, 0, 1)
            ],
            "the last touch gets the conversion"
        );
        assert_eq!(c.steps[0].revenue, eur(80.0));
        assert_eq!(c.steps[1].revenue, eur(20.0));

        assert_eq!(got[1].funnel, Funnel::default());
        assert!(got[1].holdout.is_none() && got[1].steps.is_empty());
        assert_eq!(
            got[2].steps[0].label, "step 1",
            "a removed flow's steps by number"
        );
    }
}
