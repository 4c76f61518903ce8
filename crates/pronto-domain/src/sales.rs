//! Speed to lead, the pure part: reps and teams, routing rules, working hours, the SLA clock with its
//! escalation chain, and the promise an acknowledgement makes to the lead.
//!
//! The store asks two questions inside the transaction that records a lead: which rule applies (so it can lock
//! that team's routing state), then which rep gets the lead given that state ([`Sales::decide`]). Both answers
//! depend only on their arguments, so routing fairness, off-hours promises and escalation timing are tested
//! here without a database.
//!
//! Invariants:
//! - a rep who is away, off duty or at capacity is never picked by a rule's strategy;
//! - a lead always gets an answer: a rule's rep, else the contact's existing owner (rules with `keep_owner`),
//!   else the fallback owner, else the team member whose shift starts first (the promise then names that
//!   time), else nobody (recorded, and the team's manager told);
//! - the escalation chain's offsets strictly increase and none is earlier than the SLA itself, so each step
//!   fires once, in order.
//!
//! # Layout
//! - this file: the `[[rep]]`/`[[team]]`/`[[route]]`/`[leads]` config, its check, working hours, routing
//!   ([`Sales::decide`]), SLA times and the promise.
//! - [`lead`]: [`lead::LeadState`] with its typed [`lead::LeadStatus`], and the claim/attempt/reply transitions.
//! - [`alerts`]: the messages about a lead (rep alerts, the manager's escalation, the acknowledgement, a
//!   forwarded reply) queued on [`alerts::LeadEffects`].
//! - [`routing`]: a batch's routing [`routing::Book`]: what to load, the pick, the counters it moves.
//! - [`sla`]: a routed lead's clock started ([`sla::start`]) and its escalation chain stepped ([`sla::escalate`]).

pub mod alerts;
pub mod lead;
pub mod routing;
pub mod sla;

use crate::flow::{duration, local_time, next_local, Days};
use chrono::{DateTime, Datelike, Duration as Span, NaiveTime, Utc};
pub use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// `[[rep]]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RepConfig {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    /// E.164 or national (the server's default region): the `tel:` link and SMS alerts.
    pub phone: Option<String>,
    /// A Slack-compatible incoming-webhook URL: alerts are posted as `{"text": …}`.
    pub webhook: Option<String>,
    pub timezone: Option<String>,
    /// `{ within = "09:00-17:00", days = ["mon", …] }` in the rep's time zone; none: always on duty.
    pub hours: Option<HoursConfig>,
    /// Open leads (not yet won, lost or closed) at which the rep stops getting new ones.
    pub capacity: Option<u32>,
    /// Where alerts go: any of `email`, `sms`, `webhook`; default every channel the rep has.
    pub alerts: Option<Vec<String>>,
    /// The initial away flag; the admin API changes it at run time.
    #[serde(default)]
    pub away: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HoursConfig {
    pub within: String,
    #[serde(default)]
    pub days: Vec<String>,
}

/// `[[team]]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    pub id: String,
    pub members: Vec<String>,
    /// Relative shares for the `weighted` strategy (default 1 each).
    #[serde(default)]
    pub weights: std::collections::BTreeMap<String, u32>,
    /// A rep told when the SLA chain says `manager`, or when nobody can take a lead.
    pub manager: Option<String>,
}

/// `[[route]]`: first match wins.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub id: Option<String>,
    /// Only leads from this form.
    pub form: Option<String>,
    /// Only leads with this source.
    pub source: Option<String>,
    /// A minijinja expression over the lead (`country == "DE" and budget|int >= 10000`).
    pub when: Option<String>,
    pub team: String,
    #[serde(default)]
    pub strategy: Strategy,
    /// A contact that already has an owner (from an earlier lead) keeps that rep while they are not away.
    #[serde(default)]
    pub keep_owner: bool,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// In turn: the member assigned longest ago (never assigned first, then the order of `members`).
    #[default]
    RoundRobin,
    /// In proportion to `weights`: the member furthest below its share.
    Weighted,
    /// The member with the fewest open leads (ties: round robin).
    LeastLoaded,
}

/// `[leads]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LeadsConfig {
    /// The rep who gets a lead no rule's team can take.
    pub fallback: Option<String>,
    /// The business's time zone: the lead's when it has none, the report's hour of week.
    pub timezone: Option<String>,
    #[serde(default)]
    pub sla: SlaConfig,
    #[serde(default)]
    pub ack: AckConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlaConfig {
    /// First human contact within this (default 5m).
    #[serde(default = "five_minutes")]
    pub within: String,
    /// `business` (default): only the owner's working hours count; `wall`: every minute counts.
    #[serde(default)]
    pub clock: SlaClock,
    /// What happens when the clock runs out, step by step; `after` counts from the lead's arrival on the same
    /// clock.
    #[serde(default)]
    pub escalate: Vec<EscalateConfig>,
}

fn five_minutes() -> String {
    "5m".into()
}

impl Default for SlaConfig {
    fn default() -> Self {
        Self {
            within: five_minutes(),
            clock: SlaClock::default(),
            escalate: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SlaClock {
    #[default]
    Business,
    Wall,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EscalateConfig {
    pub after: String,
    #[serde(rename = "do")]
    pub action: Escalate,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Escalate {
    /// Alert the owner again.
    Realert,
    /// Give the lead to the next rep of its team (one not tried yet) and alert them.
    Reassign,
    /// Tell the team's manager.
    Manager,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AckConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Email template (default the built-in `lead-ack`).
    #[serde(default = "ack_email")]
    pub email: String,
    /// SMS template, sent when the lead gave a phone and has not opted out of texts.
    #[serde(default = "ack_sms")]
    pub sms: String,
    /// At most this many acknowledgements to one address (email or phone) per 24 hours; a further lead is
    /// stored, routed and alerted as any, but not acknowledged (the text of an acknowledgement comes from
    /// whoever fills the form, so without a cap the form is a relay to any inbox).
    #[serde(default = "three")]
    pub max_per_recipient_per_day: u32,
}

fn three() -> u32 {
    3
}

/// Whether one more acknowledgement may go to an address that got `sent` in the last 24 hours.
pub fn may_acknowledge(ack: &AckConfig, sent: i64) -> bool {
    sent < i64::from(ack.max_per_recipient_per_day)
}

fn yes() -> bool {
    true
}
fn ack_email() -> String {
    "lead-ack".into()
}
fn ack_sms() -> String {
    "lead-ack-sms".into()
}

impl Default for AckConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            email: ack_email(),
            sms: ack_sms(),
            max_per_recipient_per_day: three(),
        }
    }
}

/// A checked rep.
#[derive(Debug, Clone, PartialEq)]
pub struct Rep {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub webhook: Option<String>,
    pub timezone: Tz,
    pub hours: Option<Hours>,
    pub capacity: Option<u32>,
    pub alerts: Vec<AlertChannel>,
    pub away: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertChannel {
    Email,
    Sms,
    Webhook,
}

impl AlertChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Webhook => "webhook",
        }
    }
}

/// Working hours: local `[start, end)` on `days`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub days: Days,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub id: String,
    /// Member rep ids with their weights, in the configured order.
    pub members: Vec<(String, u32)>,
    pub manager: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub id: String,
    pub form: Option<String>,
    pub source: Option<String>,
    pub when: Option<String>,
    pub team: String,
    pub strategy: Strategy,
    pub keep_owner: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sla {
    pub within: Duration,
    pub clock: SlaClock,
    pub chain: Vec<(Duration, Escalate)>,
}

/// Everything speed to lead runs on; empty when the config names no reps.
#[derive(Debug, Clone, PartialEq)]
pub struct Sales {
    pub reps: Vec<Rep>,
    pub teams: Vec<Team>,
    pub routes: Vec<Route>,
    pub fallback: Option<String>,
    pub timezone: Tz,
    pub sla: Sla,
    pub ack: AckConfig,
}

impl Default for Sales {
    fn default() -> Self {
        Self {
            reps: Vec::new(),
            teams: Vec::new(),
            routes: Vec::new(),
            fallback: None,
            timezone: Tz::UTC,
            sla: Sla {
                within: Duration::from_secs(300),
                clock: SlaClock::Business,
                chain: Vec::new(),
            },
            ack: AckConfig::default(),
        }
    }
}

fn zone(text: Option<&str>, default: Tz) -> Result<Tz, String> {
    match text {
        None => Ok(default),
        Some(t) => t
            .parse()
            .map_err(|_| format!("`{t}` is not an IANA time zone like Europe/Berlin")),
    }
}

impl Hours {
    fn parse(c: &HoursConfig) -> Result<Hours, String> {
        let (a, b) = c
            .within
            .split_once('-')
            .ok_or_else(|| format!("`{}` is not hours like 09:00-17:00", c.within))?;
        let (start, end) = (local_time(a)?, local_time(b)?);
        if start == end {
            return Err("start and end must differ".into());
        }
        Ok(Hours {
            start,
            end,
            days: Days::parse(&c.days)?,
        })
    }

    fn inside(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            t >= self.start && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// Whether `at` falls in these hours. A shift past midnight belongs to the day it starts on.
    pub fn on_duty(&self, at: DateTime<Utc>, tz: Tz) -> bool {
        let local = at.with_timezone(&tz);
        let t = local.time();
        if !self.inside(t) {
            return false;
        }
        let day = if self.start > self.end && t < self.end {
            local.weekday().pred()
        } else {
            local.weekday()
        };
        self.days.contains(day)
    }

    /// `at` if on duty, else the next shift's start.
    pub fn next_start(&self, at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        if self.on_duty(at, tz) {
            at
        } else {
            next_local(at, tz, self.days, self.start)
        }
    }

    /// The end of the shift `at` is in (`at` must be on duty).
    fn shift_end(&self, at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        next_local(at, tz, Days::ALL, self.end)
    }

    /// `from` plus `span` of working time.
    pub fn add(&self, from: DateTime<Utc>, span: Duration, tz: Tz) -> DateTime<Utc> {
        let mut left = Span::from_std(span).unwrap_or(Span::MAX);
        let mut at = from;
        // Each turn consumes a whole shift or ends; a year of shifts bounds it.
        for _ in 0..800 {
            at = self.next_start(at, tz);
            let end = self.shift_end(at, tz);
            if end - at >= left {
                return at + left;
            }
            left -= end - at;
            at = end;
        }
        at
    }
}

impl Rep {
    pub fn on_duty(&self, at: DateTime<Utc>) -> bool {
        self.hours.is_none_or(|h| h.on_duty(at, self.timezone))
    }

    pub fn next_start(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        match &self.hours {
            Some(h) => h.next_start(at, self.timezone),
            None => at,
        }
    }

    pub fn first_name(&self) -> &str {
        self.name.split_whitespace().next().unwrap_or(&self.name)
    }

    /// `rep` as templates see it; [`Rep::no_context`] when a lead has no owner.
    pub fn context(&self) -> Value {
        json!({"id": self.id, "name": self.name, "first_name": self.first_name(), "email": self.email, "phone": self.phone})
    }

    pub fn no_context() -> Value {
        json!({"id": null, "name": null, "first_name": null, "email": null, "phone": null})
    }
}

/// A team member as routing sees it: its rep, its share, and its state in the store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Member {
    pub rep: String,
    pub weight: u32,
    pub away: bool,
    /// Open leads it owns.
    pub open: u32,
    /// Leads this team gave it.
    pub assigned: i64,
    /// The team's assignment counter when it last got one (0: never).
    pub last_seq: i64,
}

/// How a lead got its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// A rule's strategy picked an on-duty rep.
    Rule,
    /// The contact kept its owner (`keep_owner`).
    KeptOwner,
    /// No member could take it now; the fallback owner did.
    Fallback,
    /// Nobody was on duty; the member whose shift starts first.
    NextShift,
    /// Nobody at all could take it.
    Nobody,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub rep: Option<String>,
    pub how: How,
    /// Why, for the lead's log: "round robin in team `sales` (rule `de`); skipped bob (away)".
    pub reason: String,
}

/// What a rule's strategy needs to know about the moment and the people.
pub struct Situation<'a> {
    pub now: DateTime<Utc>,
    /// The team's members with their state, in the configured order.
    pub members: &'a [Member],
    /// Reps that already had this lead (a reassignment skips them).
    pub exclude: &'a [String],
    /// The contact's owner from an earlier lead, with its away flag.
    pub owner: Option<(&'a str, bool)>,
    /// The fallback rep's away flag.
    pub fallback_away: bool,
    /// Only a rep who can take the lead now (on duty, not away, under capacity): an escalation's
    /// reassignment, which must not hand an overdue lead to someone whose shift starts in nine hours. Then
    /// nobody is queued for a later shift and the fallback owner must be on duty too.
    pub now_only: bool,
}

impl Sales {
    pub fn is_empty(&self) -> bool {
        self.reps.is_empty()
    }

    /// Checks the speed-to-lead config; every problem is returned, each naming the rep, team, route or field.
    /// `templates` are the names a template setting may use (built-ins included).
    pub fn check(
        reps: &[RepConfig],
        teams: &[TeamConfig],
        routes: &[RouteConfig],
        leads: &LeadsConfig,
        templates: &[&str],
    ) -> Result<Sales, Vec<String>> {
        let mut errors = Vec::new();
        let timezone = zone(leads.timezone.as_deref(), Tz::UTC).unwrap_or_else(|m| {
            errors.push(format!("leads.timezone: {m}"));
            Tz::UTC
        });
        let mut checked_reps = Vec::new();
        for (i, r) in reps.iter().enumerate() {
            let mut err =
                |field: &str, m: String| errors.push(format!("rep `{}`, {field}: {m}", r.id));
            if r.id.trim().is_empty() {
                err("id", "must not be empty".into());
            }
            if reps[..i].iter().any(|o| o.id == r.id) {
                err("id", "is used by another rep".into());
            }
            if let Some(e) = &r.email {
                if let Err(m) = crate::Email::parse(e) {
                    err("email", m.to_string());
                }
            }
            let phone = match &r.phone {
                Some(p) => match crate::Phone::parse(p, crate::Region::default()) {
                    Ok(p) => Some(p.as_str().to_string()),
                    Err(m) => {
                        err("phone", m.to_string());
                        None
                    }
                },
                None => None,
            };
            if let Some(w) = &r.webhook {
                if !(w.starts_with("https://") || w.starts_with("http://")) {
                    err("webhook", format!("`{w}` is not an http(s) URL"));
                }
            }
            let tz = zone(r.timezone.as_deref(), timezone).unwrap_or_else(|m| {
                err("timezone", m);
                Tz::UTC
            });
            let hours = match &r.hours {
                Some(h) => Hours::parse(h).map_err(|m| err("hours", m)).ok(),
                None => None,
            };
            let have = |c: AlertChannel| match c {
                AlertChannel::Email => r.email.is_some(),
                AlertChannel::Sms => r.phone.is_some(),
                AlertChannel::Webhook => r.webhook.is_some(),
            };
            let alerts: Vec<AlertChannel> = match &r.alerts {
                None => [
                    AlertChannel::Email,
                    AlertChannel::Sms,
                    AlertChannel::Webhook,
                ]
                .into_iter()
                .filter(|c| have(*c))
                .collect(),
                Some(list) => list
                    .iter()
                    .filter_map(|c| {
                        let ch = match c.as_str() {
                            "email" => AlertChannel::Email,
                            "sms" => AlertChannel::Sms,
                            "webhook" => AlertChannel::Webhook,
                            other => {
                                err("alerts", format!("`{other}` is not email, sms or webhook"));
                                return None;
                            }
                        };
                        if !have(ch) {
                            err(
                                "alerts",
                                format!(
                                    "{c} alerts need the rep's {}",
                                    match ch {
                                        AlertChannel::Email => "email",
                                        AlertChannel::Sms => "phone",
                                        AlertChannel::Webhook => "webhook",
                                    }
                                ),
                            );
                        }
                        Some(ch)
                    })
                    .collect(),
            };
            if alerts.is_empty() && r.alerts.is_none() {
                err(
                    "email",
                    "a rep needs an email, a phone or a webhook to be alerted on".into(),
                );
            }
            checked_reps.push(Rep {
                id: r.id.clone(),
                name: r.name.clone(),
                email: r.email.clone(),
                phone,
                webhook: r.webhook.clone(),
                timezone: tz,
                hours,
                capacity: r.capacity,
                alerts,
                away: r.away,
            });
        }
        let is_rep = |id: &str| reps.iter().any(|r| r.id == id);
        let mut checked_teams = Vec::new();
        for (i, t) in teams.iter().enumerate() {
            let mut err =
                |field: &str, m: String| errors.push(format!("team `{}`, {field}: {m}", t.id));
            if teams[..i].iter().any(|o| o.id == t.id) {
                err("id", "is used by another team".into());
            }
            if t.members.is_empty() {
                err("members", "a team needs at least one rep".into());
            }
            for m in &t.members {
                if !is_rep(m) {
                    err("members", format!("no rep `{m}`"));
                }
            }
            for (w, n) in &t.weights {
                if !t.members.contains(w) {
                    err("weights", format!("`{w}` is not a member"));
                }
                if *n == 0 {
                    err("weights", format!("`{w}` must weigh at least 1"));
                }
            }
            if let Some(m) = &t.manager {
                if !is_rep(m) {
                    err("manager", format!("no rep `{m}`"));
                }
            }
            checked_teams.push(Team {
                id: t.id.clone(),
                members: t
                    .members
                    .iter()
                    .map(|m| (m.clone(), t.weights.get(m).copied().unwrap_or(1).max(1)))
                    .collect(),
                manager: t.manager.clone(),
            });
        }
        let mut checked_routes = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            let id = r.id.clone().unwrap_or_else(|| format!("{}", i + 1));
            let mut err =
                |field: &str, m: String| errors.push(format!("route `{id}`, {field}: {m}"));
            if !teams.iter().any(|t| t.id == r.team) {
                err("team", format!("no team `{}`", r.team));
            }
            if let Some(w) = &r.when {
                if let Err(m) = crate::expr::check(w) {
                    err("when", m);
                }
            }
            checked_routes.push(Route {
                id,
                form: r.form.clone(),
                source: r.source.clone(),
                when: r.when.clone(),
                team: r.team.clone(),
                strategy: r.strategy,
                keep_owner: r.keep_owner,
            });
        }
        if let Some(f) = &leads.fallback {
            if !is_rep(f) {
                errors.push(format!("leads.fallback: no rep `{f}`"));
            }
        }
        if !reps.is_empty() && routes.is_empty() && leads.fallback.is_none() {
            errors.push("leads: with reps configured, a [[route]] or leads.fallback must say who gets leads".into());
        }
        let within = duration(&leads.sla.within).unwrap_or_else(|m| {
            errors.push(format!("leads.sla.within: {m}"));
            Duration::from_secs(300)
        });
        let mut chain = Vec::new();
        for (i, e) in leads.sla.escalate.iter().enumerate() {
            match duration(&e.after) {
                Ok(d) => {
                    if d < within {
                        errors.push(format!("leads.sla.escalate[{i}].after: must not be earlier than sla.within ({})", leads.sla.within));
                    }
                    if chain.last().is_some_and(|(p, _)| *p >= d) {
                        errors.push(format!(
                            "leads.sla.escalate[{i}].after: must be later than the step before"
                        ));
                    }
                    chain.push((d, e.action));
                }
                Err(m) => errors.push(format!("leads.sla.escalate[{i}].after: {m}")),
            }
        }
        if leads.ack.enabled {
            for (field, name) in [
                ("leads.ack.email", &leads.ack.email),
                ("leads.ack.sms", &leads.ack.sms),
            ] {
                if !templates.contains(&name.as_str()) {
                    errors.push(format!("{field}: no template `{name}`"));
                }
            }
        }
        if errors.is_empty() {
            Ok(Sales {
                reps: checked_reps,
                teams: checked_teams,
                routes: checked_routes,
                fallback: leads.fallback.clone(),
                timezone,
                sla: Sla {
                    within,
                    clock: leads.sla.clock,
                    chain,
                },
                ack: leads.ack.clone(),
            })
        } else {
            Err(errors)
        }
    }

    pub fn rep(&self, id: &str) -> Option<&Rep> {
        self.reps.iter().find(|r| r.id == id)
    }

    pub fn team(&self, id: &str) -> Option<&Team> {
        self.teams.iter().find(|t| t.id == id)
    }

    /// The first rule a lead matches. `ctx` is [`lead_context`]'s `lead` object.
    pub fn route_for(&self, lead: &Value) -> Option<&Route> {
        self.routes.iter().find(|r| self.matches(r, lead))
    }

    /// Whether rule `r` takes `lead` (its form, its source, its `when` expression).
    pub fn matches(&self, r: &Route, lead: &Value) -> bool {
        let text = |k: &str| lead.get(k).and_then(Value::as_str);
        r.form.as_deref().is_none_or(|f| text("form") == Some(f))
            && r.source
                .as_deref()
                .is_none_or(|s| text("source") == Some(s))
            && r.when
                .as_deref()
                .is_none_or(|w| crate::expr::truthy(w, lead))
    }

    /// Who gets a lead under `route` (or no rule), given the team's state.
    pub fn decide(&self, route: Option<&Route>, s: &Situation<'_>) -> Assignment {
        let mut skipped: Vec<String> = Vec::new();
        if let (Some(r), Some((owner, away))) = (route, s.owner) {
            if r.keep_owner
                && !away
                && !s.exclude.iter().any(|e| e == owner)
                && self.rep(owner).is_some()
            {
                return Assignment {
                    rep: Some(owner.to_string()),
                    how: How::KeptOwner,
                    reason: format!("kept the contact's owner {owner} (rule `{}`)", r.id),
                };
            }
        }
        let mut available: Vec<&Member> = Vec::new();
        if let Some(r) = route {
            for m in s.members {
                let Some(rep) = self.rep(&m.rep) else {
                    continue;
                };
                let why = if s.exclude.contains(&m.rep) {
                    Some("had it already")
                } else if m.away {
                    Some("away")
                } else if rep.capacity.is_some_and(|c| m.open >= c) {
                    Some("at capacity")
                } else if !rep.on_duty(s.now) {
                    Some("off duty")
                } else {
                    None
                };
                match why {
                    Some(w) => skipped.push(format!("{} ({w})", m.rep)),
                    None => available.push(m),
                }
            }
            let skipped_text = if skipped.is_empty() {
                String::new()
            } else {
                format!("; skipped {}", skipped.join(", "))
            };
            if let Some(m) = pick(r.strategy, &available) {
                return Assignment {
                    rep: Some(m.rep.clone()),
                    how: How::Rule,
                    reason: format!(
                        "{} in team `{}` (rule `{}`){skipped_text}",
                        match r.strategy {
                            Strategy::RoundRobin => "round robin",
                            Strategy::Weighted => "weighted",
                            Strategy::LeastLoaded => "least loaded",
                        },
                        r.team,
                        r.id
                    ),
                };
            }
        }
        if let Some(f) = &self.fallback {
            let can_now = |f: &str| {
                self.rep(f).is_some_and(|r| {
                    r.on_duty(s.now)
                        && s.members
                            .iter()
                            .find(|m| m.rep == f)
                            .is_none_or(|m| r.capacity.is_none_or(|c| m.open < c))
                })
            };
            if !s.fallback_away && !s.exclude.contains(f) && (!s.now_only || can_now(f)) {
                return Assignment {
                    rep: Some(f.clone()),
                    how: How::Fallback,
                    reason: match route {
                        Some(r) => format!(
                            "fallback owner: nobody in team `{}` could take it ({})",
                            r.team,
                            skipped.join(", ")
                        ),
                        None => "fallback owner: no rule matched".into(),
                    },
                };
            }
        }
        // Nobody on duty: queue for the member whose shift starts first (not for a reassignment).
        let next = s
            .members
            .iter()
            .filter(|_| !s.now_only)
            .filter(|m| !m.away && !s.exclude.contains(&m.rep))
            .filter_map(|m| {
                let rep = self.rep(&m.rep)?;
                rep.capacity
                    .is_none_or(|c| m.open < c)
                    .then(|| (rep.next_start(s.now), m))
            })
            .min_by(|a, b| a.0.cmp(&b.0).then(a.1.last_seq.cmp(&b.1.last_seq)));
        if let Some((at, m)) = next {
            return Assignment {
                rep: Some(m.rep.clone()),
                how: How::NextShift,
                reason: format!(
                    "nobody on duty; {} starts first, at {}",
                    m.rep,
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            };
        }
        Assignment {
            rep: None,
            how: How::Nobody,
            reason: if skipped.is_empty() {
                "no rule matched and there is no fallback owner".into()
            } else {
                format!("nobody could take it: {}", skipped.join(", "))
            },
        }
    }

    /// When escalation step `step` is due for a lead that arrived at `arrived` and is owned by `owner`.
    /// `None` past the end of the chain.
    pub fn escalation_due(
        &self,
        step: usize,
        arrived: DateTime<Utc>,
        owner: Option<&Rep>,
    ) -> Option<DateTime<Utc>> {
        let (after, _) = self.sla.chain.get(step)?;
        Some(self.sla_add(arrived, *after, owner))
    }

    /// The SLA deadline: first human contact due by then.
    pub fn deadline(&self, arrived: DateTime<Utc>, owner: Option<&Rep>) -> DateTime<Utc> {
        self.sla_add(arrived, self.sla.within, owner)
    }

    fn sla_add(&self, from: DateTime<Utc>, span: Duration, owner: Option<&Rep>) -> DateTime<Utc> {
        let plain = from + Span::from_std(span).unwrap_or(Span::MAX);
        match (
            self.sla.clock,
            owner.and_then(|r| r.hours.map(|h| (h, r.timezone))),
        ) {
            (SlaClock::Business, Some((h, tz))) => h.add(from, span, tz),
            _ => plain,
        }
    }

    /// What the acknowledgement promises a lead that arrived at `now`, written for `reader` (the lead: their
    /// zone, their clock, the zone named): "within 5 minutes" while the owner is on duty, else the start of
    /// their next shift ("tomorrow after 9:00 AM EST"). A lead nobody can take gets no time at all ("as soon
    /// as possible"): a promise is only made when a rep can keep it.
    pub fn promise(
        &self,
        owner: Option<&Rep>,
        now: DateTime<Utc>,
        reader: crate::calendar::Reader,
    ) -> Promise {
        let Some(owner) = owner else {
            return Promise {
                at: None,
                text: "as soon as possible".into(),
            };
        };
        let start = owner.next_start(now);
        if start <= now {
            return Promise {
                at: Some(self.deadline(now, Some(owner))),
                text: format!("within {}", human(self.sla.within)),
            };
        }
        Promise {
            at: Some(start),
            text: format!(
                "{} after {}",
                crate::calendar::day_word(start, now, reader.tz),
                reader.time(start)
            ),
        }
    }
}

/// The `sla` every lead message's template sees, for a reader who is `rep` (their zone and clock; the
/// business's without one): `within` ("5 minutes"), `deadline_local` ("3:05 PM EST", with the day when it
/// is not today), and whether it is already `overdue` and `overdue_by` how long ("12 minutes"). An alert
/// sent after the deadline (a realert, a reassignment) says so instead of showing a time that has passed.
pub fn sla_context(
    sales: &Sales,
    deadline: Option<DateTime<Utc>>,
    rep: Option<&Rep>,
    now: DateTime<Utc>,
) -> Value {
    let reader = match rep {
        Some(r) => crate::calendar::Reader::new(
            r.timezone,
            r.phone
                .as_deref()
                .and_then(crate::calendar::country_of_phone)
                .as_deref(),
        ),
        None => crate::calendar::Reader::new(sales.timezone, None),
    };
    let deadline = deadline.unwrap_or(now);
    let day = crate::calendar::day_word(deadline, now, reader.tz);
    let time = reader.time(deadline);
    let deadline_local = if day == "today" {
        time
    } else {
        format!("{day} {time}")
    };
    let overdue = deadline <= now;
    json!({
        "within": human(sales.sla.within),
        "deadline_local": deadline_local,
        "overdue": overdue,
        "overdue_by": if overdue { human_approx((now - deadline).to_std().unwrap_or_default()) } else { String::new() },
    })
}

/// A duration as people say it, rounded to its largest unit: "12 minutes", "3 hours", "2 days".
pub fn human_approx(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = if s >= 86_400 {
        (s / 86_400, "day")
    } else if s >= 3_600 {
        (s / 3_600, "hour")
    } else if s >= 60 {
        (s / 60, "minute")
    } else {
        (s.max(1), "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The promise made to a lead: when a human will contact them (`at` is `None` when no time is promised).
#[derive(Debug, Clone, PartialEq)]
pub struct Promise {
    pub at: Option<DateTime<Utc>>,
    pub text: String,
}

/// "5 minutes", "1 hour", "90 minutes": how people say an SLA.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if s.is_multiple_of(86_400) && s >= 86_400 {
        plural(s / 86_400, "day")
    } else if s.is_multiple_of(3_600) && s >= 3_600 {
        plural(s / 3_600, "hour")
    } else if s.is_multiple_of(60) && s >= 60 {
        plural(s / 60, "minute")
    } else {
        plural(s, "second")
    }
}

/// A strategy's pick among the available members (already filtered).
fn pick<'a>(strategy: Strategy, available: &[&'a Member]) -> Option<&'a Member> {
    let in_turn = |a: &&Member, b: &&Member| a.last_seq.cmp(&b.last_seq);
    match strategy {
        Strategy::RoundRobin => available.iter().copied().min_by(in_turn),
        Strategy::LeastLoaded => available
            .iter()
            .copied()
            .min_by(|a, b| a.open.cmp(&b.open).then(in_turn(a, b))),
        // The member furthest below its share: smallest (assigned + 1) / weight, compared exactly.
        Strategy::Weighted => available.iter().copied().min_by(|a, b| {
            let l = (a.assigned + 1) as i128 * i128::from(b.weight);
            let r = (b.assigned + 1) as i128 * i128::from(a.weight);
            l.cmp(&r).then(in_turn(a, b))
        }),
    }
}

/// How a logged contact attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Reached,
    NoAnswer,
    Voicemail,
    Won,
    Lost,
    NotInterested,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Reached,
        Outcome::NoAnswer,
        Outcome::Voicemail,
        Outcome::Won,
        Outcome::Lost,
        Outcome::NotInterested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reached => "reached",
            Self::NoAnswer => "no_answer",
            Self::Voicemail => "voicemail",
            Self::Won => "won",
            Self::Lost => "lost",
            Self::NotInterested => "not_interested",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// The event recorded on the contact's timeline, so flows (cadences) can exit on it.
    pub fn event(self) -> &'static str {
        match self {
            Self::Reached => LEAD_REACHED,
            Self::NoAnswer | Self::Voicemail => LEAD_ATTEMPTED,
            Self::Won => LEAD_WON,
            Self::Lost | Self::NotInterested => LEAD_LOST,
        }
    }
}

/// Speed to lead as a config file writes it (`[[rep]]`, `[[team]]`, `[[route]]`, `[leads]`), checked against
/// the built-in templates; for tests.
#[cfg(test)]
pub(crate) fn from_toml(text: &str) -> Sales {
    #[derive(Deserialize)]
    struct Config {
        rep: Vec<RepConfig>,
        team: Vec<TeamConfig>,
        route: Vec<RouteConfig>,
        #[serde(default)]
        leads: LeadsConfig,
    }
    let c: Config = toml::from_str(text).expect("a valid test config");
    let names: Vec<String> = builtin_templates().into_iter().map(|t| t.name).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Sales::check(&c.rep, &c.team, &c.route, &c.leads, &names).expect("a valid test config")
}

/// Events pronto records on a lead's contact as the lead is worked, for flows to exit on.
pub const LEAD_CLAIMED: &str = "Lead Claimed";
/// A manager handed a lead to another rep by hand.
pub const LEAD_REASSIGNED: &str = "Lead Reassigned";
pub const LEAD_ATTEMPTED: &str = "Lead Contact Attempted";
pub const LEAD_REACHED: &str = "Lead Reached";
pub const LEAD_WON: &str = "Lead Won";
pub const LEAD_LOST: &str = "Lead Lost";
pub const LEAD_REPLIED: &str = "Lead Replied";

/// The channels a contact attempt is logged on.
pub const ATTEMPT_CHANNELS: [&str; 3] = ["call", "email", "sms"];

/// Recorded when a contact texts STOP (or START): cadences exit on it.
pub const SMS_OPTED_OUT: &str = "SMS Opted Out";
pub const SMS_OPTED_IN: &str = "SMS Opted In";

/// The contact texted STOP (or was marked so): no SMS at all until START.
pub fn sms_opted_out(traits: &serde_json::Map<String, Value>) -> bool {
    traits
        .get("sms_opt_out")
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"))
}

/// The `lead` object templates and rule expressions see.
pub fn lead_context(id: &str, props: &Value, received: DateTime<Utc>) -> Value {
    let get = |k: &str| props.get(k).cloned().unwrap_or(Value::Null);
    let mut lead = json!({
        "id": id,
        "name": get("name"),
        "email": get("email"),
        "phone": get("phone"),
        "company": get("company"),
        "message": get("message"),
        "source": get("source"),
        "form": get("form"),
        "fields": props.get("fields").cloned().unwrap_or_else(|| json!({})),
        "received_at": received.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        // Whether a human has tried to reach them yet, so a message never says "we tried to reach you"
        // when nobody has.
        "attempted": props.get("first_contact_at").is_some_and(|v| !v.is_null()),
        "first_contact_at": get("first_contact_at"),
    });
    // Extra form fields at the top level too, so rules read `country == "DE"`; known fields win.
    if let (Some(obj), Some(fields)) = (
        lead.as_object_mut(),
        props.get("fields").and_then(Value::as_object),
    ) {
        for (k, v) in fields {
            obj.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    lead
}

/// The built-in templates for leads; a `[[template]]` of the same name replaces one.
pub fn builtin_templates() -> Vec<crate::template::TemplateConfig> {
    let t = |name: &str, subject: &str, text: &str, html: Option<&str>| {
        crate::template::TemplateConfig {
            name: name.into(),
            subject: subject.into(),
            text: text.into(),
            html: html.map(str::to_string),
        }
    };
    vec![
        t(
            "rep-alert",
            "New lead: {{ lead.name or lead.email or lead.phone }}{% if lead.company %} ({{ lead.company }}){% endif %}",
            "{% if alert.kind == 'realert' %}STILL WAITING — {% elif alert.kind == 'reassigned' %}REASSIGNED TO YOU — {% endif %}\
New lead for {{ rep.first_name }}: {{ lead.name or '(no name)' }}\n\
{% if lead.phone %}Phone: {{ lead.phone }}  Call: {{ links.call }}\n{% endif %}\
{% if lead.email %}Email: {{ lead.email }}\n{% endif %}\
{% if lead.company %}Company: {{ lead.company }}\n{% endif %}\
Source: {{ lead.source or 'unknown' }}\n\
{% if lead.message %}Message: {{ lead.message }}\n{% endif %}\
{% if sla.overdue %}OVERDUE by {{ sla.overdue_by }} (SLA {{ sla.within }}): respond now.{% else %}Respond by {{ sla.deadline_local }} ({{ sla.within }}).{% endif %}\n\
I'm on it: {{ links.claim }}\n",
            Some("<p>{% if alert.kind == 'realert' %}<b>Still waiting.</b> {% elif alert.kind == 'reassigned' %}<b>Reassigned to you.</b> {% endif %}\
New lead for {{ rep.first_name }}: <b>{{ lead.name or '(no name)' }}</b>{% if lead.company %} ({{ lead.company }}){% endif %}</p>\
<ul>{% if lead.phone %}<li>Phone: <a href=\"{{ links.call }}\">{{ lead.phone }}</a></li>{% endif %}\
{% if lead.email %}<li>Email: <a href=\"mailto:{{ lead.email }}\">{{ lead.email }}</a></li>{% endif %}\
<li>Source: {{ lead.source or 'unknown' }}</li></ul>\
{% if lead.message %}<blockquote>{{ lead.message }}</blockquote>{% endif %}\
<p>{% if sla.overdue %}<b>Overdue by {{ sla.overdue_by }}</b> (SLA {{ sla.within }}): respond now.{% else %}Respond by {{ sla.deadline_local }} ({{ sla.within }}).{% endif %}</p>\
<p><a href=\"{{ links.claim }}\" style=\"display:inline-block;padding:12px 20px;background:#0a7;color:#fff;border-radius:6px;text-decoration:none\">I'm on it</a>\
{% if lead.phone %} &nbsp; <a href=\"{{ links.call }}\">Call {{ lead.phone }}</a>{% endif %}</p>"),
        ),
        t(
            "rep-alert-sms",
            "",
            "{% if alert.kind == 'realert' %}STILL WAITING: {% endif %}New lead {{ lead.name or '' }} {{ lead.phone or lead.email }} ({{ lead.source or 'web' }}). Claim: {{ links.claim }}",
            None,
        ),
        t(
            "lead-ack",
            "We got your message{% if lead.name %}, {{ lead.name }}{% endif %}",
            "Hi{% if lead.name %} {{ lead.name }}{% endif %},\n\nThanks for getting in touch. {{ rep.first_name or 'Someone from our team' }} will contact you {{ promise.text }}.\n",
            Some("<p>Hi{% if lead.name %} {{ lead.name }}{% endif %},</p><p>Thanks for getting in touch. {{ rep.first_name or 'Someone from our team' }} will contact you <b>{{ promise.text }}</b>.</p>"),
        ),
        t(
            "lead-ack-sms",
            "",
            "Thanks{% if lead.name %} {{ lead.name }}{% endif %}! {{ rep.first_name or 'We' }} will contact you {{ promise.text }}. Reply STOP to opt out.",
            None,
        ),
        t(
            "lead-escalated",
            "Lead not answered: {{ lead.name or lead.email or lead.phone }}",
            "Nobody has contacted {{ lead.name or lead.email or lead.phone }} (arrived {{ lead.received_at }}, owner {{ rep.name or 'nobody' }}).\n{{ alert.reason }}\nTake it: {{ links.claim }}\n",
            None,
        ),
        t(
            "lead-reply",
            "Reply from {{ lead.name or lead.email or lead.phone }}",
            "{{ lead.name or lead.email or lead.phone }} replied by {{ reply.channel }}:\n\n{{ reply.body }}\n",
            None,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn rep(id: &str, tz: &str, hours: Option<(&str, &[&str])>) -> RepConfig {
        RepConfig {
            id: id.into(),
            name: format!("{id} Smith"),
            email: Some(format!("{id}@shop.example")),
            phone: None,
            webhook: None,
            timezone: Some(tz.into()),
            hours: hours.map(|(w, d)| HoursConfig {
                within: w.into(),
                days: d.iter().map(|s| s.to_string()).collect(),
            }),
            capacity: None,
            alerts: None,
            away: false,
        }
    }

    const WEEKDAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri"];

    fn sales(reps: Vec<RepConfig>, strategy: Strategy, leads: LeadsConfig) -> Sales {
        let team = TeamConfig {
            id: "sales".into(),
            members: reps.iter().map(|r| r.id.clone()).collect(),
            weights: [("ann".to_string(), 3)]
                .into_iter()
                .filter(|(k, _)| reps.iter().any(|r| &r.id == k))
                .collect(),
            manager: None,
        };
        let route = RouteConfig {
            id: Some("all".into()),
            form: None,
            source: None,
            when: None,
            team: "sales".into(),
            strategy,
            keep_owner: true,
        };
        let names: Vec<&str> = vec!["lead-ack", "lead-ack-sms"];
        Sales::check(&reps, &[team], &[route], &leads, &names).unwrap()
    }

    fn members(s: &Sales) -> Vec<Member> {
        s.teams[0]
            .members
            .iter()
            .map(|(r, w)| Member {
                rep: r.clone(),
                weight: *w,
                ..Default::default()
            })
            .collect()
    }

    /// Routes `n` leads one after another, updating the state as the store would.
    fn run(s: &Sales, ms: &mut [Member], n: usize, now: DateTime<Utc>) -> Vec<String> {
        let mut seq = ms.iter().map(|m| m.last_seq).max().unwrap_or(0);
        (0..n)
            .map(|_| {
                let a = s.decide(
                    s.routes.first(),
                    &Situation {
                        now,
                        members: ms,
                        exclude: &[],
                        owner: None,
                        fallback_away: false,
                        now_only: false,
                    },
                );
                let rep = a.rep.unwrap();
                seq += 1;
                let m = ms.iter_mut().find(|m| m.rep == rep).unwrap();
                m.assigned += 1;
                m.open += 1;
                m.last_seq = seq;
                rep
            })
            .collect()
    }

    #[test]
    fn each_strategy_shares_leads_as_it_promises() {
        let now = at("2026-11-24T10:00:00Z");
        let reps = || {
            vec![
                rep("ann", "UTC", None),
                rep("bob", "UTC", None),
                rep("cy", "UTC", None),
            ]
        };
        type Case = (Strategy, usize, Vec<(&'static str, usize)>);
        let cases: Vec<Case> = vec![
            (
                Strategy::RoundRobin,
                9,
                vec![("ann", 3), ("bob", 3), ("cy", 3)],
            ),
            (
                Strategy::Weighted,
                10,
                vec![("ann", 6), ("bob", 2), ("cy", 2)],
            ),
            (
                Strategy::LeastLoaded,
                6,
                vec![("ann", 2), ("bob", 2), ("cy", 2)],
            ),
        ];
        for (strategy, n, want) in cases {
            let s = sales(reps(), strategy, LeadsConfig::default());
            let mut ms = members(&s);
            let got = run(&s, &mut ms, n, now);
            for (who, count) in want {
                assert_eq!(
                    got.iter().filter(|r| *r == who).count(),
                    count,
                    "{strategy:?}: {got:?}"
                );
            }
        }
        // Round robin goes in order, and least loaded prefers the emptiest desk.
        let s = sales(reps(), Strategy::RoundRobin, LeadsConfig::default());
        assert_eq!(
            run(&s, &mut members(&s), 4, now),
            ["ann", "bob", "cy", "ann"]
        );
        let s = sales(reps(), Strategy::LeastLoaded, LeadsConfig::default());
        let mut ms = members(&s);
        ms[0].open = 5;
        ms[1].open = 1;
        assert_eq!(run(&s, &mut ms, 2, now), ["cy", "bob"]);
    }

    #[test]
    fn reps_away_off_duty_or_at_capacity_are_skipped_and_the_reason_is_kept() {
        // 10:00 UTC: ann (New York, 9-17) is off duty at 05:00 local; bob is away; cy is at capacity; dee works.
        let now = at("2026-11-24T10:00:00Z");
        let mut cy = rep("cy", "UTC", None);
        cy.capacity = Some(2);
        let reps = vec![
            rep("ann", "America/New_York", Some(("09:00-17:00", WEEKDAYS))),
            rep("bob", "UTC", None),
            cy,
            rep("dee", "Europe/Berlin", Some(("09:00-17:00", WEEKDAYS))),
        ];
        let s = sales(reps, Strategy::RoundRobin, LeadsConfig::default());
        let mut ms = members(&s);
        ms[1].away = true;
        ms[2].open = 2;
        let a = s.decide(
            s.routes.first(),
            &Situation {
                now,
                members: &ms,
                exclude: &[],
                owner: None,
                fallback_away: false,
                now_only: false,
            },
        );
        assert_eq!(a.rep.as_deref(), Some("dee"));
        assert_eq!(a.how, How::Rule);
        assert!(
            a.reason
                .contains("ann (off duty), bob (away), cy (at capacity)"),
            "{}",
            a.reason
        );
    }

    #[test]
    fn a_reassignment_goes_only_to_a_rep_who_can_take_the_lead_now() {
        // Tue 10:00 UTC: ann (New York 9-17) is off duty for 4 more hours, dee (Berlin 9-17) works.
        let now = at("2026-11-24T10:00:00Z");
        let reps = vec![
            rep("ann", "America/New_York", Some(("09:00-17:00", WEEKDAYS))),
            rep("dee", "Europe/Berlin", Some(("09:00-17:00", WEEKDAYS))),
        ];
        let s = sales(reps, Strategy::RoundRobin, LeadsConfig::default());
        let ms = members(&s);
        let decide = |exclude: &[String], now_only: bool| {
            s.decide(
                s.routes.first(),
                &Situation {
                    now,
                    members: &ms,
                    exclude,
                    owner: None,
                    fallback_away: false,
                    now_only,
                },
            )
        };
        let dee = vec!["dee".to_string()];
        // (already tried, reassignment?) -> who, how
        let cases: [(&[String], bool, Option<&str>, How); 4] = [
            (&[], true, Some("dee"), How::Rule),
            // dee had it: a new lead would wait for ann's shift, a reassignment goes to nobody (the manager).
            (&dee, false, Some("ann"), How::NextShift),
            (&dee, true, None, How::Nobody),
            (&[], false, Some("dee"), How::Rule),
        ];
        for (exclude, now_only, who, how) in cases {
            let a = decide(exclude, now_only);
            assert_eq!(
                (a.rep.as_deref(), a.how),
                (who, how),
                "{exclude:?} {now_only}: {}",
                a.reason
            );
        }
    }

    #[test]
    fn an_alert_after_the_deadline_says_it_is_overdue_instead_of_showing_a_past_time() {
        let s = sales(
            vec![rep("ann", "America/New_York", None)],
            Strategy::RoundRobin,
            LeadsConfig::default(),
        );
        let ann = s.rep("ann");
        let deadline = at("2026-11-24T15:05:00Z");
        let cases = [
            ("2026-11-24T15:01:00Z", false, "10:05 AM EST", ""),
            ("2026-11-24T15:17:00Z", true, "10:05 AM EST", "12 minutes"),
            ("2026-11-24T18:05:00Z", true, "10:05 AM EST", "3 hours"),
        ];
        for (now, overdue, local, by) in cases {
            let ctx = sla_context(&s, Some(deadline), ann, at(now));
            assert_eq!(
                (
                    ctx["overdue"].as_bool(),
                    ctx["deadline_local"].as_str(),
                    ctx["overdue_by"].as_str()
                ),
                (Some(overdue), Some(local), Some(by)),
                "{now}"
            );
        }
        // A deadline on another day names the day.
        let ctx = sla_context(
            &s,
            Some(at("2026-11-25T14:05:00Z")),
            ann,
            at("2026-11-24T23:00:00Z"),
        );
        assert_eq!(ctx["deadline_local"], "tomorrow 9:05 AM EST");
    }

    #[test]
    fn with_nobody_on_duty_the_fallback_takes_it_or_else_the_first_shift_does() {
        // Sunday 22:00 UTC: nobody works weekends.
        let now = at("2026-11-29T22:00:00Z");
        let reps = || {
            vec![
                rep("ann", "America/New_York", Some(("09:00-17:00", WEEKDAYS))),
                rep("dee", "Europe/Berlin", Some(("09:00-17:00", WEEKDAYS))),
                rep("fay", "UTC", None),
            ]
        };
        let s = sales(reps(), Strategy::RoundRobin, LeadsConfig::default());
        let ms: Vec<Member> = members(&s).into_iter().filter(|m| m.rep != "fay").collect();
        let a = s.decide(
            s.routes.first(),
            &Situation {
                now,
                members: &ms,
                exclude: &[],
                owner: None,
                fallback_away: false,
                now_only: false,
            },
        );
        assert_eq!(
            (a.rep.as_deref(), a.how),
            (Some("dee"), How::NextShift),
            "Berlin opens before New York"
        );

        let s = sales(
            reps(),
            Strategy::RoundRobin,
            LeadsConfig {
                fallback: Some("fay".into()),
                ..Default::default()
            },
        );
        let a = s.decide(
            s.routes.first(),
            &Situation {
                now,
                members: &ms,
                exclude: &[],
                owner: None,
                fallback_away: false,
                now_only: false,
            },
        );
        assert_eq!((a.rep.as_deref(), a.how), (Some("fay"), How::Fallback));
        let a = s.decide(
            s.routes.first(),
            &Situation {
                now,
                members: &ms,
                exclude: &[],
                owner: None,
                fallback_away: true,
                now_only: false,
            },
        );
        assert_eq!(a.how, How::NextShift, "an away fallback is skipped too");
    }

    #[test]
    fn a_known_contact_keeps_its_owner_unless_the_owner_is_away() {
        let now = at("2026-11-24T10:00:00Z");
        let s = sales(
            vec![rep("ann", "UTC", None), rep("bob", "UTC", None)],
            Strategy::RoundRobin,
            LeadsConfig::default(),
        );
        let ms = members(&s);
        let kept = s.decide(
            s.routes.first(),
            &Situation {
                now,
                members: &ms,
                exclude: &[],
                owner: Some(("bob", false)),
                fallback_away: false,
                now_only: false,
            },
        );
        assert_eq!(
            (kept.rep.as_deref(), kept.how),
            (Some("bob"), How::KeptOwner)
        );
        let away = s.decide(
            s.routes.first(),
            &Situation {
                now,
                members: &ms,
                exclude: &[],
                owner: Some(("bob", true)),
                fallback_away: false,
                now_only: false,
            },
        );
        assert_eq!((away.rep.as_deref(), away.how), (Some("ann"), How::Rule));
        let reassigned = s.decide(
            s.routes.first(),
            &Situation {
                now,
                members: &ms,
                exclude: &["ann".into(), "bob".into()],
                owner: Some(("bob", false)),
                fallback_away: false,
                now_only: false,
            },
        );
        assert_eq!(
            reassigned.how,
            How::Nobody,
            "a reassignment never returns to a rep who had the lead"
        );
    }

    #[test]
    fn rules_match_on_form_source_and_expressions_in_order() {
        let reps = vec![rep("ann", "UTC", None)];
        let team = TeamConfig {
            id: "t".into(),
            members: vec!["ann".into()],
            weights: Default::default(),
            manager: None,
        };
        let route =
            |id: &str, form: Option<&str>, source: Option<&str>, when: Option<&str>| RouteConfig {
                id: Some(id.into()),
                form: form.map(Into::into),
                source: source.map(Into::into),
                when: when.map(Into::into),
                team: "t".into(),
                strategy: Strategy::RoundRobin,
                keep_owner: false,
            };
        let routes = vec![
            route(
                "big-de",
                None,
                None,
                Some("country == 'DE' and budget|int >= 10000"),
            ),
            route("demo", Some("demo"), None, None),
            route("ads", None, Some("ads"), None),
            route("rest", None, None, None),
        ];
        let s = Sales::check(
            &reps,
            &[team],
            &routes,
            &LeadsConfig::default(),
            &["lead-ack", "lead-ack-sms"],
        )
        .unwrap();
        let cases = [
            (
                json!({"form": "demo", "fields": {"country": "DE", "budget": "20000"}}),
                "big-de",
            ),
            (
                json!({"form": "demo", "fields": {"country": "DE", "budget": "200"}}),
                "demo",
            ),
            (json!({"form": "contact", "source": "ads"}), "ads"),
            (json!({"form": "contact"}), "rest"),
        ];
        for (props, want) in cases {
            let lead = lead_context("l1", &props, at("2026-11-24T10:00:00Z"));
            assert_eq!(
                s.route_for(&lead).map(|r| r.id.as_str()),
                Some(want),
                "{props}"
            );
        }
    }

    #[test]
    fn the_promise_names_the_next_shift_in_the_leads_time_zone() {
        let s = sales(
            vec![rep(
                "ann",
                "America/New_York",
                Some(("09:00-17:00", WEEKDAYS)),
            )],
            Strategy::RoundRobin,
            LeadsConfig::default(),
        );
        let ann = s.rep("ann");
        let cases = [
            // On duty (Tue 10:00 New York): the SLA.
            (
                "2026-11-24T15:00:00Z",
                "America/New_York",
                "within 5 minutes",
            ),
            // Tue 20:00 New York: tomorrow 9:00 New York, on their clock with the zone named; a London lead
            // reads 14:00 GMT, their time on their clock.
            (
                "2026-11-25T01:00:00Z",
                "America/New_York",
                "tomorrow after 9:00 AM EST",
            ),
            (
                "2026-11-24T23:00:00Z",
                "Europe/London",
                "tomorrow after 14:00 GMT",
            ),
            // Tue 06:00 New York: later today.
            (
                "2026-11-24T11:00:00Z",
                "America/New_York",
                "today after 9:00 AM EST",
            ),
            // Friday 18:00 New York: Monday. In Tokyo it is already Saturday; Monday 9:00 NY is Monday 23:00 there.
            (
                "2026-11-27T23:00:00Z",
                "America/New_York",
                "on Monday after 9:00 AM EST",
            ),
            (
                "2026-11-27T23:00:00Z",
                "Asia/Tokyo",
                "on Monday after 23:00 JST",
            ),
        ];
        for (now, tz, want) in cases {
            let reader = crate::calendar::Reader::new(tz.parse().unwrap(), None);
            let p = s.promise(ann, at(now), reader);
            assert_eq!(p.text, want, "{now} in {tz}");
        }
        let ny = crate::calendar::Reader::new(s.timezone, None);
        let p = s.promise(ann, at("2026-11-25T01:00:00Z"), ny);
        assert_eq!(p.at, Some(at("2026-11-25T14:00:00Z")));
        // Nobody can take the lead: no time is promised that nobody would keep.
        let p = s.promise(None, at("2026-11-24T15:00:00Z"), ny);
        assert_eq!((p.text.as_str(), p.at), ("as soon as possible", None));
    }

    #[test]
    fn the_business_clock_counts_only_working_hours() {
        let h = Hours::parse(&HoursConfig {
            within: "09:00-17:00".into(),
            days: WEEKDAYS.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap();
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let m = |n: u64| Duration::from_secs(n * 60);
        let cases = [
            // Tue 10:00 Berlin + 5 min.
            ("2026-11-24T09:00:00Z", m(5), "2026-11-24T09:05:00Z"),
            // Tue 16:58 Berlin + 5 min: 2 min today, 3 tomorrow from 09:00.
            ("2026-11-24T15:58:00Z", m(5), "2026-11-25T08:03:00Z"),
            // Friday 20:00 Berlin: Monday 09:05.
            ("2026-11-27T19:00:00Z", m(5), "2026-11-30T08:05:00Z"),
            // Exactly a full day of work from Monday 09:00 ends at Monday 17:00.
            ("2026-11-30T08:00:00Z", m(480), "2026-11-30T16:00:00Z"),
        ];
        for (from, span, want) in cases {
            assert_eq!(h.add(at(from), span, tz), at(want), "{from} + {span:?}");
        }
        // A night shift belongs to the day it starts on.
        let night = Hours::parse(&HoursConfig {
            within: "22:00-06:00".into(),
            days: vec!["fri".into()],
        })
        .unwrap();
        assert!(
            night.on_duty(at("2026-11-28T03:00:00Z"), Tz::UTC),
            "Saturday 03:00 is Friday's shift"
        );
        assert!(!night.on_duty(at("2026-11-29T03:00:00Z"), Tz::UTC));
    }

    #[test]
    fn the_escalation_chain_is_timed_on_the_sla_clock() {
        let leads = LeadsConfig {
            sla: SlaConfig {
                within: "5m".into(),
                clock: SlaClock::Business,
                escalate: vec![
                    EscalateConfig {
                        after: "5m".into(),
                        action: Escalate::Realert,
                    },
                    EscalateConfig {
                        after: "10m".into(),
                        action: Escalate::Reassign,
                    },
                    EscalateConfig {
                        after: "15m".into(),
                        action: Escalate::Manager,
                    },
                ],
            },
            ..Default::default()
        };
        let s = sales(
            vec![rep("ann", "UTC", Some(("09:00-17:00", WEEKDAYS)))],
            Strategy::RoundRobin,
            leads,
        );
        let ann = s.rep("ann");
        let arrived = at("2026-11-24T16:52:00Z");
        let due: Vec<Option<DateTime<Utc>>> =
            (0..4).map(|k| s.escalation_due(k, arrived, ann)).collect();
        assert_eq!(
            due,
            vec![
                Some(at("2026-11-24T16:57:00Z")),
                Some(at("2026-11-25T09:02:00Z")),
                Some(at("2026-11-25T09:07:00Z")),
                None
            ]
        );
        assert_eq!(
            s.deadline(arrived, None),
            at("2026-11-24T16:57:00Z"),
            "no owner: wall clock"
        );
    }

    #[test]
    fn a_bad_speed_to_lead_config_names_every_problem() {
        let mut bad = rep("ann", "Mars/Base", Some(("9-5", &[])));
        bad.email = Some("nope".into());
        let team = TeamConfig {
            id: "t".into(),
            members: vec!["ann".into(), "zed".into()],
            weights: Default::default(),
            manager: Some("boss".into()),
        };
        let route = RouteConfig {
            id: None,
            form: None,
            source: None,
            when: Some("country ==".into()),
            team: "nope".into(),
            strategy: Strategy::RoundRobin,
            keep_owner: false,
        };
        let leads = LeadsConfig {
            fallback: Some("ghost".into()),
            sla: SlaConfig {
                within: "10m".into(),
                clock: SlaClock::Wall,
                escalate: vec![EscalateConfig {
                    after: "5m".into(),
                    action: Escalate::Realert,
                }],
            },
            ..Default::default()
        };
        let errors = Sales::check(&[bad], &[team], &[route], &leads, &[]).unwrap_err();
        let fields: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap())
            .collect();
        assert_eq!(
            fields,
            vec![
                "rep `ann`, email",
                "rep `ann`, timezone",
                "rep `ann`, hours",
                "team `t`, members",
                "team `t`, manager",
                "route `1`, team",
                "route `1`, when",
                "leads.fallback",
                "leads.sla.escalate[0].after",
                "leads.ack.email",
                "leads.ack.sms",
            ],
            "{errors:#?}"
        );
    }
}
