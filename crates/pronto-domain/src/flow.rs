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

use chrono::{DateTime, Datelike, LocalResult, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
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
    /// The time zone for `until`/`within` waits when the contact has no `timezone` trait; default UTC.
    pub timezone: Option<String>,
    /// Local hours (the contact's time zone) in which no SMS step sends: the step waits until they end.
    /// Default `21:00-08:00`, the window US rules (TCPA) and most carriers' codes of conduct forbid.
    pub sms_quiet_hours: Option<String>,
    /// Who the flow's messages go to: `everyone` (default) or `subscribers`, the contacts whose
    /// `accepts_marketing` trait is true (Shopify's "send to: email subscribers only").
    pub send_to: Option<String>,
    /// `marketing` (default: recovery, cadences, win-back) or `transactional` (what the person asked for:
    /// a receipt, a booking): marketing needs consent as `[consent]` says and keeps to the send window;
    /// transactional mail goes to anyone not marked do-not-contact, at any hour.
    pub purpose: Option<String>,
    /// Local hours (the contact's time zone) in which this marketing flow's emails may send, e.g.
    /// `08:00-21:00`: an email due outside them waits until they open. Default: any hour.
    pub email_send_window: Option<String>,
    /// A holdout: `{ id = "…", holdout = "10%" }` (see [`crate::experiment`]).
    pub experiment: Option<crate::experiment::ExperimentConfig>,
    /// What counts as this flow's conversion in the flows report: `{ event = "…", within = "3d" }` (default:
    /// an `Order Completed` or `Lead Won` within 7 days of the run's start).
    pub conversion: Option<ConversionConfig>,
}

/// `conversion = { event = "Subscription Started", within = "3d" }` on a flow, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversionConfig {
    /// One or more of the flow's exit events (conversions are found among what ends a run).
    pub event: Option<OneOrMany>,
    /// How long after the run's start it counts: 1 hour to 90 days.
    pub within: Option<String>,
}

/// What counts as a flow's conversion, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    pub events: Vec<String>,
    pub within: chrono::Duration,
}

impl Default for Conversion {
    fn default() -> Self {
        Self {
            events: vec!["Order Completed".into(), "Lead Won".into()],
            within: chrono::Duration::days(crate::experiment::results::WINDOW_DAYS),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerConfig {
    /// One event name or several (`["Product Added", "Cart Viewed"]`).
    pub event: OneOrMany,
    /// An expression over the event (and `contact`, its traits) that must be true to start or refresh a run:
    /// `properties.value >= 20`.
    pub filter: Option<String>,
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
    /// A label `if` steps can jump to.
    pub id: Option<String>,
    pub wait: Option<WaitConfig>,
    #[serde(rename = "if")]
    pub if_: Option<IfConfig>,
    pub send: Option<SendConfig>,
    /// `call = { script = "first-call" }`: a call task for the lead's owner, with the rendered script.
    pub call: Option<CallConfig>,
    /// `exit = true` ends the run here.
    pub exit: Option<bool>,
    /// What a `wait` or `send` step does in a variant of the flow's experiment:
    /// `variants = { ten-min = { wait = "10m" } }`; a variant not named does what the step says.
    #[serde(default)]
    pub variants: std::collections::BTreeMap<String, VariantStepConfig>,
}

/// A step in one variant: a `wait` for a wait step, a `send` for a send step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantStepConfig {
    pub wait: Option<WaitConfig>,
    pub send: Option<SendConfig>,
}

/// `if = { expr = "properties.value >= 100", then = "big", else = "small" }`: a branch; an absent target is the
/// next step. Targets are step ids further down (jumps go forward only, so every run ends).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IfConfig {
    pub expr: String,
    pub then: Option<String>,
    #[serde(rename = "else")]
    pub otherwise: Option<String>,
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
    /// `{ until = "09:00", days = ["mon", "tue"] }`: the next such local time (in the contact's time zone),
    /// on one of `days` if given.
    Until {
        until: String,
        #[serde(default)]
        days: Vec<String>,
    },
    /// `{ within = "09:00-18:00", days = ["mon", "fri"] }`: no wait inside those local hours, else until they
    /// next begin (business hours).
    Within {
        within: String,
        #[serde(default)]
        days: Vec<String>,
    },
}

impl WaitConfig {
    /// The wait `factor` times shorter, never under 10 s: `pronto serve --demo` shows a day's flows in
    /// minutes. Local times (`until`, `within`) stay as they are; a duration that does not parse is left for
    /// the flow's check to name.
    pub fn shortened(&self, factor: u32) -> WaitConfig {
        let short = |text: &str| match humantime::parse_duration(text.trim()) {
            Ok(d) => {
                let secs = (d.as_secs() / u64::from(factor.max(1))).max(10);
                humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
            }
            Err(_) => text.to_string(),
        };
        match self {
            Self::Fixed(t) => Self::Fixed(short(t)),
            Self::Tiered { by, tiers } => Self::Tiered {
                by: by.clone(),
                tiers: tiers.iter().map(|(v, t)| (*v, short(t))).collect(),
            },
            other => other.clone(),
        }
    }
}

impl FlowConfig {
    /// Every wait of the flow (its variants' too) `factor` times shorter ([`WaitConfig::shortened`]).
    pub fn shortened(mut self, factor: u32) -> Self {
        for step in &mut self.steps {
            if let Some(w) = &step.wait {
                step.wait = Some(w.shortened(factor));
            }
            for v in step.variants.values_mut() {
                if let Some(w) = &v.wait {
                    v.wait = Some(w.shortened(factor));
                }
            }
        }
        self
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendConfig {
    pub channel: Channel,
    pub template: String,
    pub offer: Option<String>,
}

/// A call task: a human step in a cadence. The task goes to the owner of the run's lead (the trigger's
/// `properties.lead_id`, else the contact's latest lead) and is done when a call attempt is logged on the lead.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallConfig {
    /// The template whose text is the call script shown to the rep (its subject is the task's title).
    pub script: String,
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

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

impl Path {
    fn parse(text: &str) -> Result<Self, &'static str> {
        let parts: Vec<String> = text.split('.').map(str::to_string).collect();
        if text.is_empty() || parts.iter().any(|p| p.is_empty()) {
            return Err("must be a dotted path like properties.checkout_id");
        }
        Ok(Self(parts))
    }

    /// The last segment (`checkout_id`), to name the key in reasons.
    pub fn last(&self) -> &str {
        self.0.last().map(String::as_str).unwrap_or("")
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
    /// Until the next local `at` on one of `days`.
    Until {
        at: NaiveTime,
        days: Days,
    },
    /// Until local time is within `[start, end)` on one of `days` (no wait if it already is).
    Within {
        start: NaiveTime,
        end: NaiveTime,
        days: Days,
    },
}

/// Days of the week a wait may end on (bit 0 = Monday); all days when none are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(u8);

impl Days {
    pub(crate) const ALL: Days = Days(0x7f);

    pub(crate) fn parse(names: &[String]) -> Result<Days, String> {
        if names.is_empty() {
            return Ok(Days::ALL);
        }
        let mut bits = 0u8;
        for n in names {
            let d: Weekday = n
                .parse()
                .map_err(|_| format!("`{n}` is not a day (mon, tue, … sun)"))?;
            bits |= 1 << d.num_days_from_monday();
        }
        Ok(Days(bits))
    }

    pub fn contains(self, d: Weekday) -> bool {
        self.0 & (1 << d.num_days_from_monday()) != 0
    }
}

pub(crate) fn local_time(text: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M")
        .map_err(|_| format!("`{text}` is not a time of day like 09:00"))
}

/// `09:00-17:00` as (start, end); the end may be earlier than the start (a window across midnight).
pub(crate) fn hours(text: &str) -> Result<(NaiveTime, NaiveTime), String> {
    text.split_once('-')
        .ok_or_else(|| format!("`{text}` is not hours like 09:00-17:00"))
        .and_then(|(a, b)| Ok((local_time(a)?, local_time(b)?)))
}

impl Wait {
    /// When a wait that begins at `now` ends, for a run whose context (the trigger event plus `contact`) is
    /// `ctx`, in time zone `tz`. A missing or non-numeric tier value takes the first tier, so a cart without a
    /// total is followed up like a small one rather than never.
    pub fn due(&self, ctx: &Value, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
        let after = |d: Duration| {
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        };
        match self {
            Wait::Fixed(d) => after(*d),
            Wait::Tiered { by, tiers } => {
                let value = by
                    .get(ctx)
                    .and_then(|v| v.as_f64().or_else(|| v.as_str()?.trim().parse().ok()));
                let mut chosen = tiers[0].1;
                if let Some(v) = value {
                    for (threshold, d) in tiers {
                        if v >= *threshold {
                            chosen = *d;
                        }
                    }
                }
                after(chosen)
            }
            Wait::Until { at, days } => next_local(now, tz, *days, *at),
            Wait::Within { start, end, days } => {
                let inside = |t: NaiveTime| {
                    if start <= end {
                        t >= *start && t < *end
                    } else {
                        t >= *start || t < *end
                    }
                };
                let local = now.with_timezone(&tz);
                if days.contains(local.weekday()) && inside(local.time()) {
                    now
                } else {
                    next_local(now, tz, *days, *start)
                }
            }
        }
    }
}

/// The first instant after `now` whose local wall-clock time is `at` on an allowed day. Days where `at` does
/// not exist (a DST gap) take the first instant after the gap; ambiguous times take the earlier one.
pub(crate) fn next_local(now: DateTime<Utc>, tz: Tz, days: Days, at: NaiveTime) -> DateTime<Utc> {
    let today = now.with_timezone(&tz).date_naive();
    for offset in 0..=8 {
        let Some(day) = today.checked_add_days(chrono::Days::new(offset)) else {
            break;
        };
        if !days.contains(day.weekday()) {
            continue;
        }
        let naive = day.and_time(at);
        let candidate = match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            LocalResult::None => {
                // Spring forward: the hour does not exist; an hour later does.
                match tz.from_local_datetime(&(naive + chrono::Duration::hours(1))) {
                    LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
                    LocalResult::None => continue,
                }
            }
        };
        if candidate > now {
            return candidate;
        }
    }
    now
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Wait(Wait),
    Send {
        channel: Channel,
        template: String,
        offer: Option<String>,
    },
    /// A call task for the lead's owner, its script rendered from `script`.
    Call {
        script: String,
    },
    /// Continue at `then` when `expr` is true for the run's context, else at `otherwise` (step indexes).
    If {
        expr: String,
        then: usize,
        otherwise: usize,
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
    /// Per step, what it is in a variant of the experiment (empty for most steps); see [`Flow::step`].
    pub variants: Vec<std::collections::BTreeMap<String, Step>>,
    /// Must be true for a trigger to start or refresh a run.
    pub filter: Option<String>,
    /// For local-time waits of contacts without a `timezone` trait.
    pub timezone: Tz,
    /// The local hours in which SMS steps may send (the complement of the configured quiet hours).
    pub sms_allowed: Wait,
    /// The local hours in which email steps may send (`email_send_window`); none: any hour.
    pub email_allowed: Option<Wait>,
    pub send_to: SendTo,
    pub purpose: Purpose,
    /// Its holdout, if it runs one.
    pub experiment: Option<crate::experiment::Experiment>,
    /// What the flows report counts as its conversion.
    pub conversion: Conversion,
}

/// Who a flow's messages go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendTo {
    /// Everyone the flow starts for (consent still applies: nobody unsubscribed or marked do-not-contact).
    #[default]
    Everyone,
    /// Only contacts whose `accepts_marketing` trait is true, as a shop's marketing consent sets it; checked
    /// when each message is due, so consent withdrawn meanwhile is honoured.
    Subscribers,
}

/// Why a flow writes to people, which decides the consent it needs and whether it keeps to a send window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    /// Recovery, cadences, win-back: needs consent (`[consent]`), stops at an unsubscribe, keeps to the
    /// flow's send window.
    #[default]
    Marketing,
    /// What the person asked for (a receipt, a booking confirmation): goes to anyone not marked
    /// do-not-contact, unsubscribed or not, at any hour.
    Transactional,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Marketing => "marketing",
            Purpose::Transactional => "transactional",
        }
    }
}

/// The quiet hours when a flow names none.
pub const DEFAULT_SMS_QUIET_HOURS: &str = "21:00-08:00";

pub(crate) fn duration(text: &str) -> Result<Duration, String> {
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

/// A checked `wait`; problems go to `err` as (field, message), the field under `at` (`wait`,
/// `variants.fast.wait`).
fn wait_step(w: &WaitConfig, at: &str, err: &mut dyn FnMut(&str, String)) -> Option<Wait> {
    match w {
        WaitConfig::Fixed(t) => duration(t).map(Wait::Fixed).map_err(|m| err(at, m)).ok(),
        WaitConfig::Tiered { by, tiers } => {
            let by = Path::parse(by)
                .map_err(|m| err(&format!("{at}.by"), m.into()))
                .ok();
            let mut parsed = Vec::new();
            if tiers.is_empty() {
                err(
                    &format!("{at}.tiers"),
                    "needs at least one [threshold, duration]".into(),
                );
            }
            for (t, (threshold, text)) in tiers.iter().enumerate() {
                if t > 0 && *threshold <= tiers[t - 1].0 {
                    err(
                        &format!("{at}.tiers[{t}]"),
                        "thresholds must increase".into(),
                    );
                }
                match duration(text) {
                    Ok(d) => parsed.push((*threshold, d)),
                    Err(m) => err(&format!("{at}.tiers[{t}]"), m),
                }
            }
            match by {
                Some(by) if parsed.len() == tiers.len() && !tiers.is_empty() => {
                    Some(Wait::Tiered { by, tiers: parsed })
                }
                _ => None,
            }
        }
        WaitConfig::Until { until, days } => {
            let at_time = local_time(until)
                .map_err(|m| err(&format!("{at}.until"), m))
                .ok();
            let days = Days::parse(days)
                .map_err(|m| err(&format!("{at}.days"), m))
                .ok();
            Some(Wait::Until {
                at: at_time?,
                days: days?,
            })
        }
        WaitConfig::Within { within, days } => {
            let range = hours(within)
                .map_err(|m| err(&format!("{at}.within"), m))
                .ok();
            let days = Days::parse(days)
                .map_err(|m| err(&format!("{at}.days"), m))
                .ok();
            let (start, end) = range?;
            Some(Wait::Within {
                start,
                end,
                days: days?,
            })
        }
    }
}

/// A checked `send` (the template must exist); problems go to `err` under `at`.
fn send_step(
    send: &SendConfig,
    templates: &[&str],
    at: &str,
    err: &mut dyn FnMut(&str, String),
) -> Step {
    if !templates.contains(&send.template.as_str()) {
        err(
            &format!("{at}.template"),
            format!("unknown template `{}`", send.template),
        );
    }
    Step::Send {
        channel: send.channel,
        template: send.template.clone(),
        offer: send.offer.clone(),
    }
}

impl Flow {
    /// Step `i` as a run in `arm` takes it: the variant's version where the step names the run's variant,
    /// else the step as written.
    pub fn step(&self, i: usize, arm: Option<&crate::experiment::Arm>) -> Option<&Step> {
        arm.and_then(|a| a.variant())
            .and_then(|v| self.variants.get(i)?.get(v))
            .or_else(|| self.steps.get(i))
    }

    /// Every `send` step in any variant, for what the flow's messages need (templates, the catalog).
    pub fn sends(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .chain(self.variants.iter().flat_map(|m| m.values()))
            .filter(|s| matches!(s, Step::Send { .. }))
    }

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
        if let Some(f) = &c.trigger.filter {
            if let Err(m) = crate::expr::check(f) {
                err(None, "trigger.filter", m);
            }
        }
        let timezone = match c.timezone.as_deref().map(str::parse::<Tz>) {
            None => Tz::UTC,
            Some(Ok(tz)) => tz,
            Some(Err(_)) => {
                err(
                    None,
                    "timezone",
                    "is not an IANA time zone like Europe/Oslo".into(),
                );
                Tz::UTC
            }
        };
        let quiet = c
            .sms_quiet_hours
            .as_deref()
            .unwrap_or(DEFAULT_SMS_QUIET_HOURS);
        let sms_allowed = hours(quiet)
            .and_then(|(start, end)| {
                if start == end {
                    Err("must be a window like 21:00-08:00, not empty".into())
                } else {
                    // Allowed from the end of the quiet hours to their start.
                    Ok(Wait::Within {
                        start: end,
                        end: start,
                        days: Days::ALL,
                    })
                }
            })
            .unwrap_or_else(|m| {
                err(None, "sms_quiet_hours", m);
                Wait::Fixed(Duration::ZERO)
            });
        let experiment = match c
            .experiment
            .as_ref()
            .map(crate::experiment::Experiment::check)
        {
            None => None,
            Some(Ok(e)) => Some(e),
            Some(Err((field, m))) => {
                err(None, &format!("experiment.{field}"), m);
                None
            }
        };
        let mut conversion = Conversion::default();
        if let Some(cv) = &c.conversion {
            if let Some(e) = &cv.event {
                let events = match e {
                    OneOrMany::One(e) => vec![e.clone()],
                    OneOrMany::Many(es) => es.clone(),
                };
                if events.is_empty() {
                    err(
                        None,
                        "conversion.event",
                        "must name at least one event".into(),
                    );
                }
                for e in &events {
                    if !c.exit.iter().any(|x| x.event == *e) {
                        err(
                            None,
                            "conversion.event",
                            format!(
                                "`{e}` is not one of the flow's exit events (conversions are found among \
                                 what ends a run)"
                            ),
                        );
                    }
                }
                conversion.events = events;
            }
            if let Some(w) = &cv.within {
                match humantime::parse_duration(w.trim()) {
                    Ok(d) if (3_600..=90 * 86_400).contains(&d.as_secs()) => {
                        conversion.within = chrono::Duration::seconds(d.as_secs() as i64)
                    }
                    _ => err(
                        None,
                        "conversion.within",
                        format!("`{w}` is not a duration from 1h to 90d"),
                    ),
                }
            }
        }
        let send_to = match c.send_to.as_deref() {
            None | Some("everyone") => SendTo::Everyone,
            Some("subscribers") => SendTo::Subscribers,
            Some(other) => {
                err(
                    None,
                    "send_to",
                    format!("`{other}` is not everyone or subscribers"),
                );
                SendTo::Everyone
            }
        };
        let purpose = match c.purpose.as_deref() {
            None | Some("marketing") => Purpose::Marketing,
            Some("transactional") => Purpose::Transactional,
            Some(other) => {
                err(
                    None,
                    "purpose",
                    format!("`{other}` is not marketing or transactional"),
                );
                Purpose::Marketing
            }
        };
        let email_allowed = match (&c.email_send_window, purpose) {
            (None, _) => None,
            (Some(_), Purpose::Transactional) => {
                err(
                    None,
                    "email_send_window",
                    "a transactional flow sends at any hour; remove the window or make it marketing".into(),
                );
                None
            }
            (Some(w), Purpose::Marketing) => match hours(w) {
                Ok((start, end)) if start != end => Some(Wait::Within {
                    start,
                    end,
                    days: Days::ALL,
                }),
                Ok(_) => {
                    err(
                        None,
                        "email_send_window",
                        "must be a window like 08:00-21:00, not empty".into(),
                    );
                    None
                }
                Err(m) => {
                    err(None, "email_send_window", m);
                    None
                }
            },
        };
        let labels: Vec<Option<&str>> = c.steps.iter().map(|s| s.id.as_deref()).collect();
        for (i, l) in labels.iter().enumerate() {
            if let Some(l) = l {
                if labels[..i].contains(&Some(*l)) {
                    err(Some(i + 1), "id", format!("`{l}` is used by another step"));
                }
            }
        }
        // Where a jump lands: a label further down, or the next step.
        let target = |from: usize,
                      label: &Option<String>,
                      field: &str,
                      errs: &mut Vec<(usize, String, String)>| {
            match label {
                None => from + 1,
                Some(l) => match labels.iter().position(|x| *x == Some(l.as_str())) {
                    Some(t) if t > from => t,
                    Some(_) => {
                        errs.push((
                            from,
                            field.into(),
                            format!("`{l}` is not further down; jumps go forward only"),
                        ));
                        from + 1
                    }
                    None => {
                        errs.push((from, field.into(), format!("no step has id `{l}`")));
                        from + 1
                    }
                },
            }
        };
        let mut jump_errors = Vec::new();
        let mut steps = Vec::new();
        for (i, s) in c.steps.iter().enumerate() {
            let n = Some(i + 1);
            let kinds = [
                s.wait.is_some(),
                s.send.is_some(),
                s.call.is_some(),
                s.exit.is_some(),
                s.if_.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if kinds != 1 {
                err(
                    n,
                    "step",
                    "must have exactly one of wait, send, call, if, exit".into(),
                );
                steps.push(Step::Exit);
                continue;
            }
            if let Some(w) = &s.wait {
                if let Some(w) = wait_step(w, "wait", &mut |f, m| err(n, f, m)) {
                    steps.push(Step::Wait(w));
                }
            }
            if let Some(send) = &s.send {
                steps.push(send_step(send, templates, "send", &mut |f, m| err(n, f, m)));
            }
            if let Some(call) = &s.call {
                if !templates.contains(&call.script.as_str()) {
                    err(
                        n,
                        "call.script",
                        format!("unknown template `{}`", call.script),
                    );
                }
                steps.push(Step::Call {
                    script: call.script.clone(),
                });
            }
            if let Some(b) = &s.if_ {
                if let Err(m) = crate::expr::check(&b.expr) {
                    err(n, "if.expr", m);
                }
                steps.push(Step::If {
                    expr: b.expr.clone(),
                    then: target(i, &b.then, "if.then", &mut jump_errors),
                    otherwise: target(i, &b.otherwise, "if.else", &mut jump_errors),
                });
            }
            if let Some(x) = s.exit {
                if !x {
                    err(
                        n,
                        "exit",
                        "only `exit = true` means something; remove the step".into(),
                    );
                }
                steps.push(Step::Exit);
            }
        }
        for (i, field, m) in jump_errors {
            err(Some(i + 1), &field, m);
        }
        let mut variants = vec![std::collections::BTreeMap::new(); c.steps.len()];
        for (i, s) in c.steps.iter().enumerate() {
            let n = Some(i + 1);
            for (v, alt) in &s.variants {
                let field = format!("variants.{v}");
                let known = experiment
                    .as_ref()
                    .is_some_and(|e| e.variants.iter().any(|x| x.id == *v));
                if !known {
                    let names: Vec<&str> = experiment
                        .iter()
                        .flat_map(|e| e.variants.iter().map(|x| x.id.as_str()))
                        .collect();
                    let m = if names.is_empty() {
                        "the flow's experiment names no variants (experiment.variants)".to_string()
                    } else {
                        format!("unknown variant; the experiment names {}", names.join(", "))
                    };
                    err(n, &field, m);
                    continue;
                }
                let step = match (&s.wait, &s.send, &alt.wait, &alt.send) {
                    (Some(_), None, Some(w), None) => {
                        wait_step(w, &format!("{field}.wait"), &mut |f, m| err(n, f, m))
                            .map(Step::Wait)
                    }
                    (None, Some(_), None, Some(send)) => Some(send_step(
                        send,
                        templates,
                        &format!("{field}.send"),
                        &mut |f, m| err(n, f, m),
                    )),
                    (Some(_), None, ..) => {
                        err(n, &field, "a wait step's variant is `{ wait = … }`".into());
                        None
                    }
                    (None, Some(_), ..) => {
                        err(
                            n,
                            &field,
                            "a send step's variant is `{ send = { … } }`".into(),
                        );
                        None
                    }
                    _ => {
                        err(n, &field, "only wait and send steps have variants".into());
                        None
                    }
                };
                if let Some(step) = step {
                    variants[i].insert(v.clone(), step);
                }
            }
        }
        // Every step must be reachable from the first; one that is not is a mistake the author wants to hear of.
        if steps.len() == c.steps.len() {
            let mut reachable = vec![false; steps.len()];
            for i in 0..steps.len() {
                if i > 0 && !reachable[i] {
                    continue;
                }
                reachable[i] = true;
                let next: Vec<usize> = match &steps[i] {
                    Step::Exit => vec![],
                    Step::If {
                        then, otherwise, ..
                    } => vec![*then, *otherwise],
                    _ => vec![i + 1],
                };
                for t in next {
                    if t < steps.len() {
                        reachable[t] = true;
                    }
                }
            }
            for (i, r) in reachable.iter().enumerate() {
                if !r {
                    err(
                        Some(i + 1),
                        "step",
                        "is unreachable: no step before it leads here".into(),
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
                variants,
                filter: c.trigger.filter.clone(),
                timezone,
                sms_allowed,
                email_allowed,
                send_to,
                purpose,
                experiment,
                conversion,
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

    #[test]
    fn a_demo_shortens_durations_sixty_times_but_never_below_ten_seconds_nor_local_times() {
        let cases = [
            (WaitConfig::Fixed("1h".into()), "1m"),
            (WaitConfig::Fixed("1d".into()), "24m"),
            (WaitConfig::Fixed("5m".into()), "10s"),
            (WaitConfig::Fixed("soon".into()), "soon"),
        ];
        for (wait, want) in cases {
            match wait.shortened(60) {
                WaitConfig::Fixed(t) => assert_eq!(t, want),
                other => panic!("{other:?}"),
            }
        }
        match (WaitConfig::Tiered {
            by: "properties.value".into(),
            tiers: vec![
                (0.0, "10m".into()),
                (50.0, "1h".into()),
                (500.0, "4h".into()),
            ],
        })
        .shortened(60)
        {
            WaitConfig::Tiered { tiers, .. } => assert_eq!(
                tiers.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
                ["10s", "1m", "4m"]
            ),
            other => panic!("{other:?}"),
        }
        let until = WaitConfig::Until {
            until: "09:00".into(),
            days: vec![],
        };
        assert!(matches!(until.shortened(60), WaitConfig::Until { until, .. } if until == "09:00"));
    }

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
    fn a_flows_conversion_defaults_to_an_order_or_a_won_lead_within_seven_days_and_can_be_named() {
        let f = &flows(CHECKOUT).unwrap()[0];
        assert_eq!(f.conversion, Conversion::default());
        assert_eq!(f.conversion.events, ["Order Completed", "Lead Won"]);
        let custom = CHECKOUT.replacen(
            "[[flow.step]]",
            "conversion = { event = \"Order Completed\", within = \"3d\" }\n[[flow.step]]",
            1,
        );
        let f = &flows(&custom).unwrap()[0];
        assert_eq!(f.conversion.events, ["Order Completed"]);
        assert_eq!(f.conversion.within, chrono::Duration::days(3));
    }

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
        let now = Utc::now();
        for (doc, secs) in cases {
            let want = now + chrono::Duration::seconds(secs);
            assert_eq!(wait.due(&doc, Tz::UTC, now), want, "{doc}");
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
            ("id = \"f\"\ntrigger = { event = \"X\" }\n[[flow.step]]\ncall = { script = \"nope\" }", "step 1, call.script: unknown template `nope`"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nsms_quiet_hours = \"9pm\"\n[[flow.step]]\nexit = true", "sms_quiet_hours: `9pm` is not hours like 09:00-17:00"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nsend_to = \"fans\"\n[[flow.step]]\nexit = true", "flow `f`, send_to: `fans` is not everyone or subscribers"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nexperiment = { id = \"e\", holdout = \"100%\" }\n[[flow.step]]\nexit = true", "flow `f`, experiment.holdout: 100% is more than 50% of the runs"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nexperiment = { id = \"e\", holdout = \"0.1\" }\n[[flow.step]]\nexit = true", "flow `f`, experiment.holdout: `0.1` is not a share"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nexperiment = { id = \"e\", holdout = \"10%\", variants = [{ id = \"a\" }] }\n[[flow.step]]\nexit = true", "flow `f`, experiment.variants: one variant is no comparison"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nexperiment = { id = \"e\", holdout = \"10%\", variants = [{ id = \"a\" }, { id = \"b\", weight = 0 }] }\n[[flow.step]]\nexit = true", "experiment.variants: [1].weight must be at least 1"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nexperiment = { id = \"e\", holdout = \"10%\", variants = [{ id = \"a\" }, { id = \"b\" }] }\n[[flow.step]]\nwait = \"1h\"\nvariants = { c = { wait = \"10m\" } }", "step 1, variants.c: unknown variant; the experiment names a, b"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nexperiment = { id = \"e\", holdout = \"10%\" }\n[[flow.step]]\nwait = \"1h\"\nvariants = { c = { wait = \"10m\" } }", "step 1, variants.c: the flow's experiment names no variants"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\n[[flow.step]]\nwait = \"1h\"\nvariants = { c = { wait = \"10m\" } }", "step 1, variants.c: the flow's experiment names no variants"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nexperiment = { id = \"e\", holdout = \"0%\", variants = [{ id = \"a\" }, { id = \"b\" }] }\n[[flow.step]]\nwait = \"1h\"\nvariants = { b = { send = { channel = \"email\", template = \"checkout-reminder\" } } }", "step 1, variants.b: a wait step's variant is `{ wait = … }`"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nexperiment = { id = \"e\", holdout = \"0%\", variants = [{ id = \"a\" }, { id = \"b\" }] }\n[[flow.step]]\nwait = \"1h\"\nvariants = { b = { wait = \"soon\" } }", "step 1, variants.b.wait: `soon` is not a duration"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nexperiment = { id = \"e\", holdout = \"0%\", variants = [{ id = \"a\" }, { id = \"b\" }] }\n[[flow.step]]\nsend = { channel = \"email\", template = \"checkout-reminder\" }\nvariants = { b = { send = { channel = \"email\", template = \"nope\" } } }", "step 1, variants.b.send.template: unknown template `nope`"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nexperiment = { id = \"e\", holdout = \"0%\", variants = [{ id = \"a\" }, { id = \"b\" }] }\n[[flow.step]]\nexit = true\nvariants = { b = { wait = \"1h\" } }", "step 1, variants.b: only wait and send steps have variants"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nexit = [{ event = \"Order Completed\", same = \"contact\" }]\nconversion = { event = \"Subscription Started\" }\n[[flow.step]]\nexit = true", "flow `f`, conversion.event: `Subscription Started` is not one of the flow's exit events"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nexit = [{ event = \"Order Completed\", same = \"contact\" }]\nconversion = { within = \"10m\" }\n[[flow.step]]\nexit = true", "flow `f`, conversion.within: `10m` is not a duration from 1h to 90d"),
            ("id = \"f\"\ntrigger = { event = \"X\" }\nsms_quiet_hours = \"21:00-21:00\"\n[[flow.step]]\nexit = true", "sms_quiet_hours: must be a window like 21:00-08:00, not empty"),
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

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn local_time_waits_end_at_the_next_allowed_local_time_in_the_zone() {
        let oslo: Tz = "Europe/Oslo".parse().unwrap();
        let weekdays = Days::parse(&[
            "mon".into(),
            "tue".into(),
            "wed".into(),
            "thu".into(),
            "fri".into(),
        ])
        .unwrap();
        let nine = NaiveTime::from_hms_opt(9, 0, 0).unwrap();
        let five = NaiveTime::from_hms_opt(17, 0, 0).unwrap();
        let until = Wait::Until {
            at: nine,
            days: Days::ALL,
        };
        let hours = Wait::Within {
            start: nine,
            end: five,
            days: weekdays,
        };
        let cases = [
            // (wait, now UTC, zone, due UTC)
            (&until, "2026-11-24T06:00:00Z", oslo, "2026-11-24T08:00:00Z"),
            (&until, "2026-11-24T08:00:00Z", oslo, "2026-11-25T08:00:00Z"),
            (
                &until,
                "2026-11-24T20:00:00Z",
                Tz::UTC,
                "2026-11-25T09:00:00Z",
            ),
            // Tuesday 11:00 in Oslo is within business hours: no wait.
            (&hours, "2026-11-24T10:00:00Z", oslo, "2026-11-24T10:00:00Z"),
            // Friday 18:00 Oslo → Monday 09:00 Oslo.
            (&hours, "2026-11-27T17:00:00Z", oslo, "2026-11-30T08:00:00Z"),
            // Saturday 20:00 UTC is Sunday 09:00 in Auckland, not a weekday → Monday 09:00 there.
            (
                &hours,
                "2026-11-28T20:00:00Z",
                "Pacific/Auckland".parse().unwrap(),
                "2026-11-29T20:00:00Z",
            ),
            // Summer time: 09:00 in Oslo on 2026-06-01 is 07:00 UTC.
            (&until, "2026-06-01T05:00:00Z", oslo, "2026-06-01T07:00:00Z"),
        ];
        for (wait, now, tz, due) in cases {
            assert_eq!(wait.due(&json!({}), tz, at(now)), at(due), "{now} in {tz}");
        }
    }

    #[test]
    fn branches_jump_forward_to_labels_and_bad_jumps_and_expressions_are_reported() {
        let ok = r#"
[[flow]]
id = "f"
trigger = { event = "X", filter = "properties.value > 0" }
timezone = "Europe/Oslo"
[[flow.step]]
if = { expr = "properties.value >= 100", then = "big" }
[[flow.step]]
send = { channel = "email", template = "checkout-reminder" }
[[flow.step]]
exit = true
[[flow.step]]
id = "big"
send = { channel = "email", template = "checkout-offer" }
"#;
        let f = &flows(ok).unwrap()[0];
        assert_eq!(
            f.steps[0],
            Step::If {
                expr: "properties.value >= 100".into(),
                then: 3,
                otherwise: 1
            }
        );
        assert_eq!(f.timezone, "Europe/Oslo".parse::<Tz>().unwrap());

        let cases = [
            ("[[flow.step]]\nif = { expr = \"x >\" }\n[[flow.step]]\nexit = true", "step 1, if.expr: does not compile"),
            ("[[flow.step]]\nid = \"a\"\nexit = true\n[[flow.step]]\nif = { expr = \"x\", then = \"a\" }", "step 2, if.then: `a` is not further down"),
            ("[[flow.step]]\nif = { expr = \"x\", else = \"nope\" }", "step 1, if.else: no step has id `nope`"),
            ("[[flow.step]]\nwait = { until = \"25:00\" }", "step 1, wait.until: `25:00` is not a time of day"),
            ("[[flow.step]]\nwait = { within = \"09:00-17:00\", days = [\"someday\"] }", "step 1, wait.days: `someday` is not a day"),
            ("timezone = \"Mars/Olympus\"\n[[flow.step]]\nexit = true", "timezone: is not an IANA time zone"),
        ];
        for (body, want) in cases {
            let text = format!("[[flow]]\nid = \"f\"\ntrigger = {{ event = \"X\" }}\n{body}");
            let errors = flows(&text).unwrap_err();
            let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            assert!(shown.iter().any(|e| e.contains(want)), "{want}: {shown:?}");
        }
    }
}
