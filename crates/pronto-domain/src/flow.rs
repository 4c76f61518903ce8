//! Flow definitions: what `[[flow]]` in `pronto.toml` says, checked into a [`Flow`] the engine can trust.
//!
//! A flow starts a run on a trigger event, keys the run on a value of that event (a checkout id, a cart id; by
//! default the contact), ends it on exit events that match the same key or the same contact, and walks its
//! steps: `wait` (fixed, or tiered by a value such as the cart total), `send` (channel, template, optional
//! offer) and `exit`. Every problem is reported with the flow, the step and the field, so `pronto check` can say
//! exactly what to fix.
//!
//! This module is the checked model and the pure timing decisions; the scheduler and the store that run flows
//! on durable timers build on it.

use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// One problem in one flow's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowError {
    pub flow: String,
    /// 1-based, as people count steps; `None` for the flow's own fields.
    pub step: Option<usize>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Some(n) => write!(
                f,
                "flow `{}`, step {n}, {}: {}",
                self.flow, self.field, self.message
            ),
            None => write!(f, "flow `{}`, {}: {}", self.flow, self.field, self.message),
        }
    }
}

/// `[[flow]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    pub id: String,
    pub trigger: TriggerConfig,
    /// A path into the trigger event (`properties.checkout_id`); absent: one run per contact.
    pub key: Option<String>,
    #[serde(default)]
    pub exit: Vec<ExitConfig>,
    #[serde(default)]
    pub reentry: Reentry,
    #[serde(default, rename = "step")]
    pub steps: Vec<StepConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    /// One event name or several (`["Product Added", "Cart Viewed"]`).
    pub event: OneOrMany,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExitConfig {
    pub event: String,
    /// What the exit event must share with the run: its key, or its contact.
    pub same: Same,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Same {
    Key,
    Contact,
}

/// What a trigger for a key that already has a run in progress does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reentry {
    /// The run takes the new event as its snapshot and its current wait starts again (idle time counts from
    /// the last activity). The default: a cart that changes is still one cart.
    #[default]
    Update,
    /// The later trigger is ignored; a key runs the flow at most once, ever.
    Once,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    pub wait: Option<WaitConfig>,
    pub send: Option<SendConfig>,
    /// `exit = true` ends the run here.
    pub exit: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum WaitConfig {
    /// `"10m"`, `"1h 30m"`, `"1d"`.
    Fixed(String),
    /// `{ by = "properties.value", tiers = [[0, "10m"], [50, "1h"], [500, "4h"]] }`: the wait of the highest
    /// tier whose threshold the value reaches.
    Tiered {
        by: String,
        tiers: Vec<(f64, String)>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendConfig {
    pub channel: Channel,
    pub template: String,
    pub offer: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
    Webhook,
}

/// A path into an event's JSON (`properties.checkout_id` → `["properties", "checkout_id"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(Vec<String>);

impl Path {
    fn parse(text: &str) -> Result<Self, &'static str> {
        let parts: Vec<String> = text.split('.').map(str::to_string).collect();
        if text.is_empty() || parts.iter().any(|p| p.is_empty()) {
            return Err("must be a dotted path like properties.checkout_id");
        }
        Ok(Self(parts))
    }

    /// The value at this path in `doc`, if any.
    pub fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.0.iter().try_fold(doc, |v, k| v.get(k))
    }

    /// The value as a run key: strings as they are, numbers in their JSON form; anything else is no key.
    pub fn key(&self, doc: &Value) -> Option<String> {
        match self.get(doc)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Wait {
    Fixed(Duration),
    /// Thresholds ascending; the first tier's threshold is the floor below which the first wait still applies.
    Tiered {
        by: Path,
        tiers: Vec<(f64, Duration)>,
    },
}

impl Wait {
    /// How long to wait for a run whose snapshot is `doc`. A missing or non-numeric value takes the first tier,
    /// so a cart without a total is followed up like a small one rather than never.
    pub fn duration(&self, doc: &Value) -> Duration {
        match self {
            Wait::Fixed(d) => *d,
            Wait::Tiered { by, tiers } => {
                let value = by
                    .get(doc)
                    .and_then(|v| v.as_f64().or_else(|| v.as_str()?.trim().parse().ok()));
                let mut chosen = tiers[0].1;
                if let Some(v) = value {
                    for (threshold, d) in tiers {
                        if v >= *threshold {
                            chosen = *d;
                        }
                    }
                }
                chosen
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Wait(Wait),
    Send {
        channel: Channel,
        template: String,
        offer: Option<String>,
    },
    Exit,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    pub event: String,
    pub same: Same,
}

/// A checked flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub id: String,
    pub triggers: Vec<String>,
    /// `None`: one run per contact.
    pub key: Option<Path>,
    pub exits: Vec<Exit>,
    pub reentry: Reentry,
    pub steps: Vec<Step>,
}

fn duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like 10m, 1h or 1d ({e})"))?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    if d > Duration::from_secs(366 * 24 * 3600) {
        return Err("must be at most a year".into());
    }
    Ok(d)
}

impl Flow {
    /// Checks one flow. `templates` are the names a `send` may use.
    pub fn check(c: &FlowConfig, templates: &[&str]) -> Result<Flow, Vec<FlowError>> {
        let mut errors = Vec::new();
        let mut err = |step: Option<usize>, field: &str, message: String| {
            errors.push(FlowError {
                flow: c.id.clone(),
                step,
                field: field.to_string(),
                message,
            });
        };
        let id_ok = !c.id.is_empty()
            && c.id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        if !id_ok {
            err(None, "id", "must be letters, digits, - or _".into());
        }
        let triggers = match &c.trigger.event {
            OneOrMany::One(e) => vec![e.clone()],
            OneOrMany::Many(es) => es.clone(),
        };
        if triggers.is_empty() || triggers.iter().any(|t| t.trim().is_empty()) {
            err(None, "trigger.event", "must name at least one event".into());
        }
        let key = match c.key.as_deref().map(Path::parse) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(m)) => {
                err(None, "key", m.into());
                None
            }
        };
        for (i, x) in c.exit.iter().enumerate() {
            if x.event.trim().is_empty() {
                err(
                    None,
                    &format!("exit[{i}].event"),
                    "must name an event".into(),
                );
            }
            if x.same == Same::Key && c.key.is_none() {
                err(
                    None,
                    &format!("exit[{i}].same"),
                    "is `key`, but the flow has no `key` (use `contact`)".into(),
                );
            }
        }
        if c.steps.is_empty() {
            err(None, "step", "a flow needs at least one step".into());
        }
        let mut steps = Vec::new();
        let mut ended_at: Option<usize> = None;
        for (i, s) in c.steps.iter().enumerate() {
            let n = Some(i + 1);
            if let Some(end) = ended_at {
                err(
                    n,
                    "step",
                    format!("is unreachable: step {end} always exits"),
                );
            }
            let kinds = [s.wait.is_some(), s.send.is_some(), s.exit.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if kinds != 1 {
                err(
                    n,
                    "step",
                    "must have exactly one of wait, send, exit".into(),
                );
                continue;
            }
            if let Some(w) = &s.wait {
                match w {
                    WaitConfig::Fixed(t) => match duration(t) {
                        Ok(d) => steps.push(Step::Wait(Wait::Fixed(d))),
                        Err(m) => err(n, "wait", m),
                    },
                    WaitConfig::Tiered { by, tiers } => {
                        let by = Path::parse(by)
                            .map_err(|m| err(n, "wait.by", m.into()))
                            .ok();
                        let mut parsed = Vec::new();
                        if tiers.is_empty() {
                            err(
                                n,
                                "wait.tiers",
                                "needs at least one [threshold, duration]".into(),
                            );
                        }
                        for (t, (threshold, text)) in tiers.iter().enumerate() {
                            if t > 0 && *threshold <= tiers[t - 1].0 {
                                err(
                                    n,
                                    &format!("wait.tiers[{t}]"),
                                    "thresholds must increase".into(),
                                );
                            }
                            match duration(text) {
                                Ok(d) => parsed.push((*threshold, d)),
                                Err(m) => err(n, &format!("wait.tiers[{t}]"), m),
                            }
                        }
                        if let (Some(by), true) =
                            (by, parsed.len() == tiers.len() && !tiers.is_empty())
                        {
                            steps.push(Step::Wait(Wait::Tiered { by, tiers: parsed }));
                        }
                    }
                }
            }
            if let Some(send) = &s.send {
                if !templates.contains(&send.template.as_str()) {
                    err(
                        n,
                        "send.template",
                        format!("unknown template `{}`", send.template),
                    );
                }
                steps.push(Step::Send {
                    channel: send.channel,
                    template: send.template.clone(),
                    offer: send.offer.clone(),
                });
            }
            if let Some(x) = s.exit {
                if x {
                    ended_at = Some(i + 1);
                    steps.push(Step::Exit);
                } else {
                    err(
                        n,
                        "exit",
                        "only `exit = true` means something; remove the step".into(),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(Flow {
                id: c.id.clone(),
                triggers,
                key,
                exits: c
                    .exit
                    .iter()
                    .map(|x| Exit {
                        event: x.event.clone(),
                        same: x.same,
                    })
                    .collect(),
                reentry: c.reentry,
                steps,
            })
        } else {
            Err(errors)
        }
    }

    /// Checks every flow, and that ids are unique.
    pub fn check_all(
        configs: &[FlowConfig],
        templates: &[&str],
    ) -> Result<Vec<Flow>, Vec<FlowError>> {
        let mut flows = Vec::new();
        let mut errors = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            if configs[..i].iter().any(|o| o.id == c.id) {
                errors.push(FlowError {
                    flow: c.id.clone(),
                    step: None,
                    field: "id".into(),
                    message: "is used by another flow".into(),
                });
            }
            match Flow::check(c, templates) {
                Ok(f) => flows.push(f),
                Err(e) => errors.extend(e),
            }
        }
        if errors.is_empty() {
            Ok(flows)
        } else {
            Err(errors)
        }
    }

    /// The run key a trigger event gives this flow; `None` when the flow is keyed and the event lacks the key
    /// (such an event cannot start a run: there would be nothing to match an exit against).
    pub fn run_key(&self, event: &Value, contact: &str) -> Option<String> {
        match &self.key {
            None => Some(contact.to_string()),
            Some(p) => p.key(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flows(text: &str) -> Result<Vec<Flow>, Vec<FlowError>> {
        #[derive(Deserialize)]
        struct File {
            flow: Vec<FlowConfig>,
        }
        let f: File = toml::from_str(text).expect("test TOML parses");
        Flow::check_all(&f.flow, &["checkout-reminder", "checkout-offer"])
    }

    const CHECKOUT: &str = r#"
[[flow]]
id = "checkout-recovery"
trigger = { event = "Checkout Started" }
key = "properties.checkout_id"
exit = [{ event = "Order Completed", same = "key" }, { event = "Order Completed", same = "contact" }]
[[flow.step]]
wait = { by = "properties.value", tiers = [[0, "10m"], [50, "1h"], [500, "4h"]] }
[[flow.step]]
send = { channel = "email", template = "checkout-reminder" }
[[flow.step]]
wait = "1d"
[[flow.step]]
send = { channel = "email", template = "checkout-offer", offer = "FREESHIP" }
"#;

    #[test]
    fn the_checkout_recovery_flow_checks_and_waits_by_cart_value() {
        let f = &flows(CHECKOUT).unwrap()[0];
        assert_eq!(f.triggers, vec!["Checkout Started"]);
        assert_eq!(f.steps.len(), 4);
        let Step::Wait(wait) = &f.steps[0] else {
            panic!("first step waits")
        };
        let cases = [
            (json!({"properties": {"value": 12}}), 10 * 60),
            (json!({"properties": {"value": 50}}), 3600),
            (json!({"properties": {"value": "499.99"}}), 3600),
            (json!({"properties": {"value": 2000}}), 4 * 3600),
            (json!({"properties": {}}), 10 * 60),
            (json!({"properties": {"value": "n/a"}}), 10 * 60),
        ];
        for (doc, secs) in cases {
            assert_eq!(wait.duration(&doc), Duration::from_secs(secs), "{doc}");
        }
        assert_eq!(
            f.run_key(&json!({"properties": {"checkout_id": "c1"}}), "contact-1")
                .as_deref(),
            Some("c1")
        );
        assert_eq!(
            f.run_key(&json!({"properties": {"checkout_id": 42}}), "contact-1")
                .as_deref(),
            Some("42")
        );
        assert_eq!(f.run_key(&json!({"properties": {}}), "contact-1"), None);
    }

    #[test]
    fn every_mistake_is_reported_with_flow_step_and_field() {
        let cases: &[(&str, &str)] = &[
            ("id = \"a b\"\ntrigger = { event = \"X\" }\n[[flow.step]]\nwait = \"1h\"", "flow `a b`, id:"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\n[[flow.step]]\nwait = \"soon\"", "flow `f`, step 1, wait: `soon` is not a duration"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\n[[flow.step]]\nwait = \"0s\"", "step 1, wait: must be longer than zero"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\n[[flow.step]]\nsend = { channel = \"email\", template = \"nope\" }", "step 1, send.template: unknown template `nope`"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\n[[flow.step]]\nwait = { by = \"properties.value\", tiers = [[50, \"1h\"], [10, \"2h\"]] }", "step 1, wait.tiers[1]: thresholds must increase"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\n[[flow.step]]\nexit = true\n[[flow.step]]\nwait = \"1h\"", "step 2, step: is unreachable"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\n[[flow.step]]\nwait = \"1h\"\nexit = true", "step 1, step: must have exactly one"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nexit = [{ event = \"Order Completed\", same = \"key\" }]\n[[flow.step]]\nwait = \"1h\"", "flow `f`, exit[0].same:"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nkey = \"properties.\"\n[[flow.step]]\nwait = \"1h\"", "flow `f`, key:"),
            ("id = \"f\"\ntrigger = { event = [] }\n[[flow.step]]\nwait = \"1h\"", "flow `f`, trigger.event:"),
            ("id = \"f\"\ntrigger = { event = \"X\" }", "flow `f`, step: a flow needs at least one step"),
        ];
        for (body, want) in cases {
            let errs = flows(&format!("[[flow]]\n{body}")).expect_err(body);
            let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
            assert!(
                text.iter().any(|t| t.contains(want)),
                "{body}\n got {text:?}\n want {want}"
            );
        }
        let twice = format!("{CHECKOUT}{CHECKOUT}");
        let errs = flows(&twice).unwrap_err();
        assert!(errs
            .iter()
            .any(|e| e.field == "id" && e.message.contains("another flow")));
    }
}
