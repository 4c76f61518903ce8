//! Pacing email per receiving domain: at most so many messages a minute to, say, gmail.com
//! (`[smtp] per_domain_per_minute`), because large mailbox providers slow down or refuse a sender that
//! arrives in bursts. A message over the limit is not failed and not counted as an attempt: it is held until
//! the next minute, so a burst of recovery mail spreads out and every message still goes.
//!
//! The count is kept per process, in fixed one-minute windows; with several pronto processes sending,
//! each keeps its own (divide the limit by their number).

use chrono::{DateTime, Duration, DurationRound, Utc};
use std::collections::HashMap;

/// The limits and this minute's counts.
#[derive(Debug, Clone, Default)]
pub struct Pace {
    /// Messages a minute, by lower-cased domain.
    limits: HashMap<String, u32>,
    /// The current window's start and count, by domain.
    windows: HashMap<String, (DateTime<Utc>, u32)>,
}

impl Pace {
    /// From `domain → messages per minute` (0 is refused by [`Pace::check`] before this).
    pub fn new(limits: impl IntoIterator<Item = (String, u32)>) -> Self {
        Self {
            limits: limits
                .into_iter()
                .map(|(d, n)| (d.trim().trim_start_matches('@').to_ascii_lowercase(), n))
                .collect(),
            windows: HashMap::new(),
        }
    }

    /// Each configured domain's problem, if any: `(domain, message)`.
    pub fn check(limits: &HashMap<String, u32>) -> Vec<(String, String)> {
        limits
            .iter()
            .filter_map(|(d, n)| {
                let domain = d.trim().trim_start_matches('@');
                if domain.is_empty()
                    || !domain.contains('.')
                    || domain.contains(char::is_whitespace)
                {
                    Some((d.clone(), "is not a domain like gmail.com".to_string()))
                } else if *n == 0 {
                    Some((
                        d.clone(),
                        "must be at least 1 a minute (leave the domain out for no limit)".into(),
                    ))
                } else {
                    None
                }
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Whether a message to `address` may go at `now` (counting it if so); otherwise when it may.
    pub fn admit(&mut self, address: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let domain = address
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('>').trim().to_ascii_lowercase())?;
        let limit = *self.limits.get(&domain)?;
        let minute = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
        let (start, count) = self.windows.entry(domain).or_insert((minute, 0));
        if *start != minute {
            *start = minute;
            *count = 0;
        }
        if *count < limit {
            *count += 1;
            None
        } else {
            Some(minute + Duration::minutes(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_domain_gets_its_limit_each_minute_and_the_rest_wait_for_the_next_one() {
        let mut p = Pace::new([("Gmail.com".to_string(), 2), ("@yahoo.com".to_string(), 1)]);
        let cases = [
            ("ann@gmail.com", "2026-12-07T10:00:05Z", None),
            ("bob@GMAIL.COM", "2026-12-07T10:00:20Z", None),
            (
                "cy@gmail.com",
                "2026-12-07T10:00:59Z",
                Some("2026-12-07T10:01:00Z"),
            ),
            ("dee@yahoo.com", "2026-12-07T10:00:59Z", None),
            (
                "eve@yahoo.com",
                "2026-12-07T10:00:59Z",
                Some("2026-12-07T10:01:00Z"),
            ),
            ("fay@example.com", "2026-12-07T10:00:59Z", None),
            ("Shop <gus@gmail.com>", "2026-12-07T10:01:00Z", None),
            ("cy@gmail.com", "2026-12-07T10:01:00Z", None),
            (
                "hal@gmail.com",
                "2026-12-07T10:01:30Z",
                Some("2026-12-07T10:02:00Z"),
            ),
            ("not an address", "2026-12-07T10:01:30Z", None),
        ];
        for (to, now, want) in cases {
            assert_eq!(p.admit(to, at(now)), want.map(at), "{to} at {now}");
        }
    }

    #[test]
    fn limits_that_are_not_domains_or_are_zero_are_named() {
        let limits: HashMap<String, u32> = [("gmail.com", 600), ("localhost", 5), ("yahoo.com", 0)]
            .into_iter()
            .map(|(d, n)| (d.to_string(), n))
            .collect();
        let mut got: Vec<String> = Pace::check(&limits).into_iter().map(|(d, _)| d).collect();
        got.sort();
        assert_eq!(got, ["localhost", "yahoo.com"]);
    }
}
