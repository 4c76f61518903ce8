//! The speed-to-lead report over a period, overall and grouped by source, rep, team, week and hour of week:
//! [`build`] from each lead as the report reads it ([`ReportLead`]). Pure, so the same function serves the
//! report read from the store (`pronto report speed-to-lead`) and the one kept in memory by the server.

use super::{holder_at, LeadTiming, SpeedReport, Tally};
use crate::sales::lead::{LeadState, LeadStatus};
use crate::LeadId;
use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeMap;

/// One lead as the report reads it: what it is grouped and filtered by, its timing, the words it wrote,
/// and who held it when its SLA clock ran out.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportLead {
    pub id: LeadId,
    pub owner: Option<String>,
    pub team: Option<String>,
    pub source: Option<String>,
    pub form: Option<String>,
    /// The distinct words of what the lead wrote ([`super::business::words_of`]): the board counts the
    /// words leads use most.
    pub words: Box<[Box<str>]>,
    pub timing: LeadTiming,
    /// The rep of the last ownership change (routed, reassigned, claimed) at or before the SLA deadline:
    /// a breach counts against them, not whoever owns the lead when the report is read. `None` without a
    /// deadline or without history from before it (then the owner is held to it).
    pub holder_at_deadline: Option<String>,
}

impl ReportLead {
    /// `lead` as the report reads it, given its ownership changes in time order and the value of its win
    /// (`(currency, amount)`, when one was logged).
    pub fn of(
        lead: &LeadState,
        ownership: &[(DateTime<Utc>, String)],
        won_value: Option<(String, f64)>,
    ) -> ReportLead {
        let responded = match (lead.claimed_at, lead.first_contact_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ReportLead {
            id: lead.id,
            owner: lead.owner.clone(),
            team: lead.team.clone(),
            source: lead.source.clone(),
            form: lead.form.clone(),
            words: lead
                .message
                .as_deref()
                .map(super::business::words_of)
                .unwrap_or_default(),
            timing: LeadTiming {
                created: lead.created_at,
                first_contact: lead.first_contact_at,
                won: lead.status == LeadStatus::Won,
                won_value,
                deadline: lead.sla_deadline,
                responded,
            },
            holder_at_deadline: lead
                .sla_deadline
                .and_then(|d| holder_at(ownership, d))
                .map(str::to_string),
        }
    }

    /// Who a breach of this lead counts against.
    fn breach_holder(&self) -> &str {
        self.holder_at_deadline
            .as_deref()
            .or(self.owner.as_deref())
            .unwrap_or("(unassigned)")
    }
}

/// The speed-to-lead report for a period.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SpeedToLead {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub overall: SpeedReport,
    /// Grouped by source, rep, team, week and hour of week (weeks and hours in the business's time zone).
    pub groups: Vec<Group>,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Group {
    /// source, rep, team, week (keyed by its Monday, in the business's time zone) or hour_of_week.
    pub by: String,
    pub key: String,
    pub report: SpeedReport,
}

/// The dimensions the report is grouped by, in the order its groups are listed.
const DIMENSIONS: [&str; 5] = ["source", "rep", "team", "week", "hour_of_week"];

/// The report over `leads` (those that arrived in `[from, to)`), as of `now`; weeks and hours of week in
/// `tz`. In the by-rep rows, a breach counts against the rep who held the lead when its SLA clock ran out;
/// a rep who held breached leads they no longer own gets a row of their own. Each dimension's groups are in
/// the order of their key (weeks and hours of week in time order).
pub fn build(
    leads: &[&ReportLead],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    tz: Tz,
) -> SpeedToLead {
    let mut breaches: BTreeMap<&str, usize> = BTreeMap::new();
    for l in leads.iter().filter(|l| l.timing.breached(now)) {
        *breaches.entry(l.breach_holder()).or_default() += 1;
    }
    // Each lead's week and hour of week in `tz`, worked out once per quarter hour of arrival (every zone's
    // offset is a whole number of quarter hours, so a quarter hour never spans two local hours): the leads
    // come in arrival order, so this converts a few thousand times instead of once per lead.
    let mut quarter: Option<(i64, (u32, u32))> = None;
    let mut order: Vec<(i64, usize, u32, u32)> = Vec::with_capacity(leads.len());
    for (i, l) in leads.iter().enumerate() {
        let q = l.timing.created.timestamp().div_euclid(900);
        let (week, hour_of_week) = match quarter {
            Some((at, keys)) if at == q => keys,
            _ => {
                let keys = local_keys(l.timing.created, tz);
                quarter = Some((q, keys));
                keys
            }
        };
        // In order of response time (arrival order among equals), so that each group's times arrive sorted.
        let wait = l
            .timing
            .first_contact
            .map_or(i64::MAX, |t| (t - l.timing.created).num_milliseconds());
        order.push((wait, i, week, hour_of_week));
    }
    order.sort_unstable();
    let mut overall = Tally::default();
    let mut named: [FxHashMap<&str, Tally>; 3] = Default::default();
    let mut numbered: [FxHashMap<u32, Tally>; 2] = Default::default();
    for (_, i, week, hour_of_week) in order {
        let l = leads[i];
        overall.add(&l.timing, now);
        let names = [
            l.source.as_deref().unwrap_or("(none)"),
            l.owner.as_deref().unwrap_or("(unassigned)"),
            l.team.as_deref().unwrap_or("(none)"),
        ];
        for (tally, key) in named.iter_mut().zip(names) {
            tally.entry(key).or_default().add(&l.timing, now);
        }
        for (tally, key) in numbered.iter_mut().zip([week, hour_of_week]) {
            tally.entry(key).or_default().add(&l.timing, now);
        }
    }
    let [source, rep, team] = named;
    let [week, hour_of_week] = numbered;
    let tallies = [
        sorted(source.into_iter().map(|(k, t)| ((0, k), t))),
        sorted(rep.into_iter().map(|(k, t)| ((0, k), t))),
        sorted(team.into_iter().map(|(k, t)| ((0, k), t))),
        sorted(week.into_iter().map(|(k, t)| ((k, ""), t))),
        sorted(hour_of_week.into_iter().map(|(k, t)| ((k, ""), t))),
    ];
    let mut groups = Vec::new();
    for (by, keyed) in DIMENSIONS.into_iter().zip(tallies) {
        for ((n, name), tally) in keyed {
            let key = match by {
                "week" => i32::try_from(n)
                    .ok()
                    .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
                    .map(|monday| monday.format("%Y-%m-%d").to_string())
                    .unwrap_or_default(),
                "hour_of_week" => {
                    let day =
                        chrono::Weekday::try_from((n / 24) as u8).unwrap_or(chrono::Weekday::Mon);
                    format!("{day} {:02}:00", n % 24)
                }
                _ => name.to_string(),
            };
            let mut report = tally.finish();
            if by == "rep" {
                report.sla_breaches = breaches.remove(key.as_str()).unwrap_or(0);
            }
            groups.push(Group {
                by: by.into(),
                key,
                report,
            });
        }
        // Reps who held breached leads they no longer own.
        if by == "rep" {
            for (rep, n) in std::mem::take(&mut breaches) {
                let mut report = Tally::default().finish();
                report.sla_breaches = n;
                groups.push(Group {
                    by: "rep".into(),
                    key: rep.to_string(),
                    report,
                });
            }
        }
    }
    SpeedToLead {
        from,
        to,
        overall: overall.finish(),
        groups,
    }
}

/// Groups in the order of their key.
fn sorted<'a>(
    groups: impl IntoIterator<Item = ((u32, &'a str), Tally)>,
) -> Vec<((u32, &'a str), Tally)> {
    let mut keyed: Vec<_> = groups.into_iter().collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed
}

/// The week (its Monday's day number from the common era) and the hour of week (0 for Monday 00:00) of
/// `at` in `tz`.
fn local_keys(at: DateTime<Utc>, tz: Tz) -> (u32, u32) {
    let local = at.with_timezone(&tz);
    let day = local.date_naive();
    let monday = day - chrono::Duration::days(i64::from(day.weekday().num_days_from_monday()));
    (
        monday.num_days_from_ce().unsigned_abs(),
        day.weekday().num_days_from_monday() * 24 + local.hour(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ContactId, WorkspaceId};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn lead(created: &str, owner: &str, deadline: &str) -> LeadState {
        let mut l = LeadState::arrived(
            &crate::Lead {
                id: LeadId::new(),
                name: None,
                email: None,
                phone: None,
                company: None,
                message: Some("Need a quote".into()),
                source: Some("ads".into()),
                form: None,
                fields: serde_json::Map::new(),
            },
            LeadId::new(),
            WorkspaceId::new(),
            ContactId::new(),
            at(created),
        );
        l.owner = Some(owner.into());
        l.team = Some("sales".into());
        l.sla_deadline = Some(at(deadline));
        l
    }

    #[test]
    fn a_breach_counts_against_whoever_held_the_lead_when_its_clock_ran_out() {
        let history = |rows: &[(&str, &str)]| -> Vec<(DateTime<Utc>, String)> {
            rows.iter().map(|(t, r)| (at(t), r.to_string())).collect()
        };
        // (history, owner now, who the breach counts against)
        let cases = [
            (history(&[("2026-12-01T09:00:00Z", "ann")]), "ann", "ann"),
            (
                history(&[
                    ("2026-12-01T09:00:00Z", "ann"),
                    ("2026-12-01T10:00:00Z", "bo"),
                ]),
                "bo",
                "ann",
            ),
            (
                history(&[
                    ("2026-12-01T09:00:00Z", "ann"),
                    ("2026-12-01T09:03:00Z", "bo"),
                ]),
                "bo",
                "bo",
            ),
            (history(&[]), "cy", "cy"),
        ];
        let now = at("2026-12-02T00:00:00Z");
        for (ownership, owner, want) in cases {
            let l = ReportLead::of(
                &lead("2026-12-01T09:00:00Z", owner, "2026-12-01T09:05:00Z"),
                &ownership,
                None,
            );
            let r = build(&[&l], at("2026-12-01T00:00:00Z"), now, now, chrono_tz::UTC);
            let breaches: Vec<(&str, usize)> = r
                .groups
                .iter()
                .filter(|g| g.by == "rep" && g.report.sla_breaches > 0)
                .map(|g| (g.key.as_str(), g.report.sla_breaches))
                .collect();
            assert_eq!(breaches, vec![(want, 1)], "{ownership:?}, owned by {owner}");
            assert_eq!(r.overall.sla_breaches, 1);
        }
    }

    #[test]
    fn groups_are_keyed_in_the_business_zone_and_ordered_by_their_sort_key() {
        let a = ReportLead::of(
            &lead("2026-12-07T04:30:00Z", "ann", "2026-12-07T04:35:00Z"),
            &[],
            None,
        );
        let b = ReportLead::of(
            &lead("2026-12-08T15:00:00Z", "bo", "2026-12-08T15:05:00Z"),
            &[],
            None,
        );
        let ny: Tz = "America/New_York".parse().unwrap();
        let now = at("2026-12-09T00:00:00Z");
        let r = build(&[&b, &a], at("2026-12-01T00:00:00Z"), now, now, ny);
        let keys = |by: &str| -> Vec<String> {
            r.groups
                .iter()
                .filter(|g| g.by == by)
                .map(|g| g.key.clone())
                .collect()
        };
        // 04:30 UTC on Monday 7 December is 23:30 on Sunday 6 December in New York.
        assert_eq!(keys("week"), ["2026-11-30", "2026-12-07"]);
        assert_eq!(keys("hour_of_week"), ["Tue 10:00", "Sun 23:00"]);
        assert_eq!(keys("rep"), ["ann", "bo"]);
        assert_eq!(r.overall.leads, 2);
    }

    /// Keys are worked out once per quarter hour of arrival: leads a minute apart across a local midnight
    /// still land in their own day, week and hour, in a zone whose offset is not whole hours.
    #[test]
    fn leads_a_minute_apart_across_a_local_midnight_are_keyed_each_by_its_own_day() {
        // Kathmandu is UTC+05:45: 18:14 UTC on Sunday 6 December is 23:59 there, 18:15 is Monday 00:00.
        let cases = [
            (
                vec![
                    "2026-12-06T18:14:00Z",
                    "2026-12-06T18:15:00Z",
                    "2026-12-06T18:16:00Z",
                ],
                vec![("2026-11-30", 1), ("2026-12-07", 2)],
                vec![("Mon 00:00", 2), ("Sun 23:00", 1)],
            ),
            (
                vec![
                    "2026-12-06T18:00:00Z",
                    "2026-12-06T18:14:59Z",
                    "2026-12-06T18:29:00Z",
                ],
                vec![("2026-11-30", 2), ("2026-12-07", 1)],
                vec![("Mon 00:00", 1), ("Sun 23:00", 2)],
            ),
        ];
        let tz: Tz = "Asia/Kathmandu".parse().unwrap();
        let now = at("2026-12-09T00:00:00Z");
        for (arrivals, weeks, hours) in cases {
            let leads: Vec<ReportLead> = arrivals
                .iter()
                .map(|t| ReportLead::of(&lead(t, "ann", "2026-12-08T00:00:00Z"), &[], None))
                .collect();
            let refs: Vec<&ReportLead> = leads.iter().collect();
            let r = build(&refs, at("2026-12-01T00:00:00Z"), now, now, tz);
            let counts = |by: &str| -> Vec<(String, usize)> {
                r.groups
                    .iter()
                    .filter(|g| g.by == by)
                    .map(|g| (g.key.clone(), g.report.leads))
                    .collect()
            };
            let want = |v: &[(&str, usize)]| -> Vec<(String, usize)> {
                v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
            };
            assert_eq!(counts("week"), want(&weeks), "{arrivals:?}");
            assert_eq!(counts("hour_of_week"), want(&hours), "{arrivals:?}");
        }
    }
}
