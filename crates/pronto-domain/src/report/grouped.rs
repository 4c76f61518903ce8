//! The speed-to-lead report over a period, overall and grouped by source, rep, team, week and hour of week:
//! [`build`] from each lead as the report reads it ([`ReportLead`]). Pure, so the same function serves the
//! report read from the store (`pronto report speed-to-lead`) and the one kept in memory by the server.

use super::{holder_at, LeadTiming, SpeedReport, Tally};
use crate::sales::lead::{LeadState, LeadStatus};
use crate::LeadId;
use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

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
    fn breach_holder(&self) -> String {
        self.holder_at_deadline
            .clone()
            .or_else(|| self.owner.clone())
            .unwrap_or_else(|| "(unassigned)".into())
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
    let mut breaches: BTreeMap<String, usize> = BTreeMap::new();
    for l in leads.iter().filter(|l| l.timing.breached(now)) {
        *breaches.entry(l.breach_holder()).or_default() += 1;
    }
    // One pass, in order of response time so that each group's times arrive sorted. Weeks and hours of
    // week are keyed by number and named once per group, below.
    let mut order: Vec<&ReportLead> = leads.to_vec();
    order.sort_by_key(|l| {
        l.timing
            .first_contact
            .map_or(i64::MAX, |t| (t - l.timing.created).num_milliseconds())
    });
    let mut overall = Tally::default();
    let mut tallies: [HashMap<(u32, &str), Tally>; 5] = Default::default();
    for l in order {
        overall.add(&l.timing, now);
        let local = l.timing.created.with_timezone(&tz);
        let day = local.date_naive();
        let monday = day - chrono::Duration::days(i64::from(day.weekday().num_days_from_monday()));
        let keys = [
            (0, l.source.as_deref().unwrap_or("(none)")),
            (0, l.owner.as_deref().unwrap_or("(unassigned)")),
            (0, l.team.as_deref().unwrap_or("(none)")),
            (monday.num_days_from_ce().unsigned_abs(), ""),
            (day.weekday().num_days_from_monday() * 24 + local.hour(), ""),
        ];
        for (tally, key) in tallies.iter_mut().zip(keys) {
            tally.entry(key).or_default().add(&l.timing, now);
        }
    }
    let mut groups = Vec::new();
    for (by, tally) in DIMENSIONS.into_iter().zip(tallies) {
        let mut keyed: Vec<((u32, &str), Tally)> = tally.into_iter().collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
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
                report.sla_breaches = breaches.remove(&key).unwrap_or(0);
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
                    key: rep,
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
}
