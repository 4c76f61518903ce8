//! Speed-to-lead report maths: how fast leads were first contacted by a human, in the buckets the industry
//! studies use (within 5 minutes, 5-60 minutes, 1-24 hours, over 24 hours, never), with mean, median and p90
//! response times, the won-rate and the won revenue (by currency, never converted) per bucket. Pure, so it is tested on a known data set; the store supplies
//! the leads and the API and CLI present the result (groundwork for the speed-to-lead issue).
//!
//! A lead with no contact yet is "never" only once it is older than 24 hours; before that it is `open` and kept
//! apart, so a report run at 10:00 does not count the lead that arrived at 09:58 as a failure.
//!
//! # Layout
//! - this file: the speed-to-lead buckets and their statistics, a report period's bounds.
//! - [`business`]: where business comes from per week (leads by channel beside checkouts and orders) and the
//!   words leads use most.
//! - [`deliverability`]: complaint and bounce rates over a period, overall and per flow, and the warning.
//! - [`grouped`]: the whole report over a period, overall and grouped by source, rep, team, week and hour of
//!   week, from each lead as the report reads it ([`ReportLead`]).

pub mod business;
pub mod deliverability;
pub mod grouped;

pub use grouped::{build, Group, ReportLead, SpeedToLead};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::borrow::Borrow;
use std::collections::BTreeMap;

/// One lead as the report needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadTiming {
    pub created: DateTime<Utc>,
    /// The first logged human contact attempt.
    pub first_contact: Option<DateTime<Utc>>,
    pub won: bool,
    /// What the win was worth, when the rep logged a value with it: `(currency, amount)` (`""`: none named).
    pub won_value: Option<(String, f64)>,
    /// The SLA deadline, when the lead had one.
    pub deadline: Option<DateTime<Utc>>,
    /// What stopped the SLA clock first: a claim or the first contact.
    pub responded: Option<DateTime<Utc>>,
}

impl LeadTiming {
    /// Whether the SLA was missed: answered after its deadline, or not answered and the deadline has passed.
    pub fn breached(&self, now: DateTime<Utc>) -> bool {
        match (self.deadline, self.responded) {
            (Some(d), Some(r)) => r > d,
            (Some(d), None) => now > d,
            (None, _) => false,
        }
    }
}

/// Who held a lead at `at`: the rep of the last ownership change (routed, reassigned, claimed) at or
/// before it, given the changes in time order. An SLA breach counts against whoever held the lead when its
/// clock ran out, not whoever owns it when the report is read.
pub fn holder_at(changes: &[(DateTime<Utc>, String)], at: DateTime<Utc>) -> Option<&str> {
    changes
        .iter()
        .take_while(|(t, _)| *t <= at)
        .last()
        .map(|(_, rep)| rep.as_str())
}

/// A report period's bound as people write it: an RFC 3339 instant, or a date (`2026-12-01`), read in
/// `tz`: a date `from` starts at that day's midnight, a date `to` includes the whole day (it ends at the next
/// midnight).
pub fn period_bound(text: &str, tz: chrono_tz::Tz, is_end: bool) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        format!("`{text}` is not a date (2026-12-01) or an RFC 3339 time (2026-12-01T09:00:00Z)")
    })?;
    let day = if is_end {
        day.succ_opt().unwrap_or(day)
    } else {
        day
    };
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    use chrono::TimeZone;
    match tz.from_local_datetime(&midnight) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            Ok(t.with_timezone(&Utc))
        }
        // Midnight skipped by a clock change: the first instant of that day.
        chrono::LocalResult::None => Ok(tz
            .from_local_datetime(&(midnight + Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    Within5Min,
    Within1Hour,
    Within24Hours,
    Over24Hours,
    Never,
    Open,
}

impl Bucket {
    pub const ALL: [Bucket; 6] = [
        Bucket::Within5Min,
        Bucket::Within1Hour,
        Bucket::Within24Hours,
        Bucket::Over24Hours,
        Bucket::Never,
        Bucket::Open,
    ];

    /// The name reports print, as serialized (`within5_min`, …, `open`).
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Within5Min => "within5_min",
            Bucket::Within1Hour => "within1_hour",
            Bucket::Within24Hours => "within24_hours",
            Bucket::Over24Hours => "over24_hours",
            Bucket::Never => "never",
            Bucket::Open => "open",
        }
    }

    pub fn of(lead: &LeadTiming, now: DateTime<Utc>) -> Bucket {
        match lead.first_contact {
            Some(t) => {
                let wait = t - lead.created;
                if wait <= Duration::minutes(5) {
                    Bucket::Within5Min
                } else if wait <= Duration::hours(1) {
                    Bucket::Within1Hour
                } else if wait <= Duration::hours(24) {
                    Bucket::Within24Hours
                } else {
                    Bucket::Over24Hours
                }
            }
            None if now - lead.created > Duration::hours(24) => Bucket::Never,
            None => Bucket::Open,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BucketRow {
    pub bucket: Bucket,
    pub leads: usize,
    /// Of all leads that are not open.
    pub share: f64,
    /// Won leads / leads in this bucket.
    pub won_rate: f64,
    /// The value of its won leads, by currency.
    pub won_revenue: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SpeedReport {
    pub leads: usize,
    pub buckets: Vec<BucketRow>,
    /// Over contacted leads, in seconds.
    pub mean_response_secs: Option<f64>,
    pub median_response_secs: Option<f64>,
    pub p90_response_secs: Option<f64>,
    /// Leads whose SLA was missed (see [`LeadTiming::breached`]).
    pub sla_breaches: usize,
    /// The value of the won leads, by currency.
    pub won_revenue: BTreeMap<String, f64>,
}

/// A report being summed one lead at a time ([`Tally::add`]), then finished ([`Tally::finish`]): what
/// [`speed_report`] does over a slice, and what the grouped report does for every group in one pass.
#[derive(Debug, Default)]
pub struct Tally {
    leads: usize,
    /// Per bucket (in [`Bucket::ALL`]'s order): leads, won leads, and their value by currency.
    buckets: [(usize, usize, BTreeMap<String, f64>); 6],
    /// Response times in seconds; sorted when finished (added in order, the sort is a single pass).
    waits: Vec<f64>,
    breaches: usize,
    won_revenue: BTreeMap<String, f64>,
}

impl Tally {
    /// Counts `lead` as of `now`.
    pub fn add(&mut self, lead: &LeadTiming, now: DateTime<Utc>) {
        self.leads += 1;
        let bucket = Bucket::of(lead, now);
        let row = &mut self.buckets[bucket as usize];
        row.0 += 1;
        if let Some(t) = lead.first_contact {
            self.waits
                .push((t - lead.created).num_milliseconds() as f64 / 1000.0);
        }
        if lead.breached(now) {
            self.breaches += 1;
        }
        if lead.won {
            row.1 += 1;
            if let Some((currency, amount)) = &lead.won_value {
                *row.2.entry(currency.clone()).or_insert(0.0) += amount;
                *self.won_revenue.entry(currency.clone()).or_insert(0.0) += amount;
            }
        }
    }

    pub fn finish(self) -> SpeedReport {
        let open = Bucket::Open as usize;
        let closed = self.leads - self.buckets[open].0;
        let buckets = Bucket::ALL
            .iter()
            .zip(self.buckets)
            .map(|(&bucket, (leads, won, won_revenue))| BucketRow {
                bucket,
                leads,
                share: if bucket == Bucket::Open || closed == 0 {
                    0.0
                } else {
                    leads as f64 / closed as f64
                },
                won_rate: if leads == 0 {
                    0.0
                } else {
                    won as f64 / leads as f64
                },
                won_revenue,
            })
            .collect();
        let mut waits = self.waits;
        waits.sort_by(f64::total_cmp);
        let mean = (!waits.is_empty()).then(|| waits.iter().sum::<f64>() / waits.len() as f64);
        SpeedReport {
            leads: self.leads,
            buckets,
            mean_response_secs: mean,
            median_response_secs: percentile(&waits, 0.5),
            p90_response_secs: percentile(&waits, 0.9),
            sla_breaches: self.breaches,
            won_revenue: self.won_revenue,
        }
    }
}

/// The nearest-rank percentile of sorted values (`q` in 0..=1).
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// The report over `leads` as of `now` (any slice of leads or references to them).
pub fn speed_report<L: Borrow<LeadTiming>>(leads: &[L], now: DateTime<Utc>) -> SpeedReport {
    let mut tally = Tally::default();
    for l in leads {
        tally.add(l.borrow(), now);
    }
    tally.finish()
}

#[cfg(test)]
mod tests_period {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_period_bound_is_a_time_or_a_whole_day_in_the_business_zone() {
        let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
        let cases = [
            ("2026-12-01", false, Ok(t("2026-12-01T05:00:00Z"))),
            ("2026-12-01", true, Ok(t("2026-12-02T05:00:00Z"))),
            ("2026-12-01T09:00:00Z", false, Ok(t("2026-12-01T09:00:00Z"))),
            (
                "2026-12-01T09:00:00+01:00",
                true,
                Ok(t("2026-12-01T08:00:00Z")),
            ),
            ("yesterday", false, Err(())),
            ("2026-13-01", false, Err(())),
        ];
        for (text, end, want) in cases {
            assert_eq!(
                period_bound(text, ny, end).map_err(|_| ()),
                want,
                "{text} {end}"
            );
        }
    }

    #[test]
    fn the_holder_at_a_time_is_the_last_owner_before_it() {
        let changes = vec![
            (t("2026-12-01T10:00:00Z"), "ann".to_string()),
            (t("2026-12-01T10:10:00Z"), "bo".to_string()),
        ];
        let cases = [
            ("2026-12-01T09:59:00Z", None),
            ("2026-12-01T10:05:00Z", Some("ann")),
            ("2026-12-01T10:10:00Z", Some("bo")),
            ("2026-12-02T00:00:00Z", Some("bo")),
        ];
        for (at, want) in cases {
            assert_eq!(holder_at(&changes, t(at)), want, "{at}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buckets_printed_name_is_its_serialized_name() {
        for b in Bucket::ALL {
            assert_eq!(serde_json::to_value(b).unwrap(), b.as_str());
        }
    }

    #[test]
    fn a_known_data_set_gives_the_expected_buckets_and_statistics() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let created = now - Duration::days(3);
        let lead = |after_secs: Option<i64>, won: bool| LeadTiming {
            created,
            first_contact: after_secs.map(|s| created + Duration::seconds(s)),
            won,
            won_value: won.then(|| ("EUR".to_string(), 100.0 + after_secs.unwrap_or(0) as f64)),
            deadline: Some(created + Duration::minutes(5)),
            responded: after_secs.map(|s| created + Duration::seconds(s)),
        };
        let leads = vec![
            lead(Some(60), true),      // 1 min
            lead(Some(300), true),     // exactly 5 min: still within 5
            lead(Some(301), false),    // 5-60
            lead(Some(3_600), false),  // exactly 1 h: 5-60
            lead(Some(7_200), true),   // 1-24 h
            lead(Some(90_000), false), // 25 h
            lead(None, false),         // never
            LeadTiming {
                created: now - Duration::minutes(2),
                first_contact: None,
                won: false,
                won_value: None,
                deadline: Some(now + Duration::minutes(3)),
                responded: None,
            }, // open, its SLA still running
        ];
        let r = speed_report(&leads, now);
        let counts: Vec<(Bucket, usize)> = r.buckets.iter().map(|b| (b.bucket, b.leads)).collect();
        assert_eq!(
            counts,
            vec![
                (Bucket::Within5Min, 2),
                (Bucket::Within1Hour, 2),
                (Bucket::Within24Hours, 1),
                (Bucket::Over24Hours, 1),
                (Bucket::Never, 1),
                (Bucket::Open, 1)
            ]
        );
        assert!(
            (r.buckets[0].share - 2.0 / 7.0).abs() < 1e-12,
            "open leads are kept apart from the shares"
        );
        assert_eq!(r.buckets[0].won_rate, 1.0);
        assert_eq!(r.buckets[1].won_rate, 0.0);
        // Won values (100 + the wait in seconds, EUR): 160 and 400 within 5 min, 7,300 within 24 h.
        assert_eq!(r.buckets[0].won_revenue["EUR"], 560.0);
        assert!(r.buckets[1].won_revenue.is_empty());
        assert_eq!(r.buckets[2].won_revenue["EUR"], 7_300.0);
        assert_eq!(r.won_revenue["EUR"], 7_860.0);
        assert_eq!(r.buckets[5].share, 0.0);
        // Waits: 60, 300, 301, 3600, 7200, 90000.
        assert_eq!(
            r.mean_response_secs,
            Some((60.0 + 300.0 + 301.0 + 3600.0 + 7200.0 + 90000.0) / 6.0)
        );
        assert_eq!(r.median_response_secs, Some(301.0));
        assert_eq!(r.p90_response_secs, Some(90000.0));
        // Answered after 5 min (301 s, 1 h, 2 h, 25 h) or never: five SLA breaches; the open lead has time.
        assert_eq!(r.sla_breaches, 5);
    }

    #[test]
    fn an_empty_period_reports_zeros_not_nan() {
        let r = speed_report::<LeadTiming>(&[], Utc::now());
        assert_eq!(r.leads, 0);
        assert!(r
            .buckets
            .iter()
            .all(|b| b.share == 0.0 && b.won_rate == 0.0));
        assert_eq!(r.median_response_secs, None);
    }
}
