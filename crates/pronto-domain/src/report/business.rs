//! Where business comes from, per week: leads by the channel they came through (a web form, a call to the
//! web-only number, the API) beside the shop's checkouts and orders, so a manager sees when calls outgrow cart
//! sales; and the words leads use most in what they write, since enquiries show what the website fails to say.
//! Pure: the store supplies the leads and the hourly counts of checkouts and orders.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The `source` of a lead made from a call to the web-only number.
pub const WEB_PHONE_SOURCE: &str = "web phone";

/// The events counted as checkouts and orders (the Segment e-commerce spec's names, which shop webhooks are
/// mapped to).
pub const CHECKOUT_STARTED: &str = "Checkout Started";
pub const ORDER_COMPLETED: &str = "Order Completed";

/// How a lead came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// An HTML form (`POST /f/{form}`).
    Form,
    /// A call to the web-only number.
    Phone,
    /// `POST /v1/leads` (a website's own code, an ad platform, a partner).
    Api,
}

impl Channel {
    /// A lead's channel from its form and source.
    pub fn of(form: Option<&str>, source: Option<&str>) -> Self {
        match (form, source) {
            (Some(_), _) => Self::Form,
            (None, Some(WEB_PHONE_SOURCE)) => Self::Phone,
            _ => Self::Api,
        }
    }
}

/// One week, keyed by its Monday in the business's time zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Week {
    pub week: NaiveDate,
    pub form: u64,
    pub phone: u64,
    pub api: u64,
    /// `Checkout Started` events.
    pub checkouts: u64,
    /// `Order Completed` events.
    pub orders: u64,
}

/// The Monday of `at`'s week in `tz`.
pub fn monday_of(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    let day = at.with_timezone(&tz).date_naive();
    day - chrono::Duration::days(i64::from(day.weekday().num_days_from_monday()))
}

/// Per week, oldest first: `leads` (when each arrived, and how) and `commerce` (an hour, `Checkout Started` or
/// `Order Completed`, how many in that hour). Every week with something in it has a row.
pub fn by_week(
    leads: &[(DateTime<Utc>, Channel)],
    commerce: &[(DateTime<Utc>, String, u64)],
    tz: Tz,
) -> Vec<Week> {
    let mut weeks: BTreeMap<NaiveDate, Week> = BTreeMap::new();
    fn week(weeks: &mut BTreeMap<NaiveDate, Week>, at: DateTime<Utc>, tz: Tz) -> &mut Week {
        let monday = monday_of(at, tz);
        weeks.entry(monday).or_insert_with(|| Week {
            week: monday,
            ..Week::default()
        })
    }
    // Leads come in arrival order: their week is worked out once per quarter hour (every zone's offset is a
    // whole number of quarter hours), not once per lead.
    let mut quarter: Option<(i64, NaiveDate)> = None;
    for (at, channel) in leads {
        let q = at.timestamp().div_euclid(900);
        let monday = match quarter {
            Some((seen, monday)) if seen == q => monday,
            _ => {
                let monday = monday_of(*at, tz);
                quarter = Some((q, monday));
                monday
            }
        };
        let w = weeks.entry(monday).or_insert_with(|| Week {
            week: monday,
            ..Week::default()
        });
        match channel {
            Channel::Form => w.form += 1,
            Channel::Phone => w.phone += 1,
            Channel::Api => w.api += 1,
        }
    }
    for (hour, name, n) in commerce {
        let w = week(&mut weeks, *hour, tz);
        match name.as_str() {
            CHECKOUT_STARTED => w.checkouts += n,
            ORDER_COMPLETED => w.orders += n,
            _ => {}
        }
    }
    weeks.into_values().collect()
}

/// Words that say nothing about what a lead wants (English; the most common function words and the
/// pleasantries of an enquiry).
const STOP: &[&str] = &[
    "a", "about", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "been", "before", "but", "by", "can", "could", "dear", "did", "do", "does", "for",
    "from", "get", "had", "has", "have", "hello", "her", "here", "hey", "hi", "him", "his", "how",
    "i", "if", "in", "into", "is", "it", "its", "just", "know", "let", "like", "me", "more", "my",
    "need", "no", "not", "now", "of", "on", "one", "or", "our", "out", "please", "regards", "she",
    "should", "so", "some", "than", "thank", "thanks", "that", "the", "their", "them", "then",
    "there", "these", "they", "this", "to", "up", "us", "very", "want", "was", "we", "were",
    "what", "when", "which", "who", "will", "with", "would", "you", "your", "i'd", "i'm", "i've",
    "i'll", "it's", "don't", "we're", "you're", "can't",
];

/// The `n` words most leads used, with how many leads used each (a word counts once per message, so one
/// long message does not outweigh many short ones); ties in alphabetical order. Words are as
/// [`words_of`] finds them.
pub fn common_words<'a>(
    messages: impl IntoIterator<Item = &'a str>,
    n: usize,
) -> Vec<(String, u64)> {
    let sets: Vec<Box<[Box<str>]>> = messages.into_iter().map(words_of).collect();
    top_words(sets.iter().map(|s| &s[..]), n)
}

/// The distinct words of one message, in alphabetical order: lower-cased runs of letters and digits of at
/// least three characters, without [`STOP`] words, numbers and what erasure put in place of a person's
/// details. Worked out once per lead where leads are kept ([`top_words`] counts them).
pub fn words_of(message: &str) -> Box<[Box<str>]> {
    // What erasure left in place of a person's details is not a word they wrote.
    let message = message.replace(crate::erasure::ERASED, " ");
    let words: BTreeSet<Box<str>> = message
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| {
            w.chars().count() >= 3
                && !w.chars().all(|c| c.is_ascii_digit())
                && !STOP.contains(&w.as_str())
        })
        .map(String::into_boxed_str)
        .collect();
    words.into_iter().collect()
}

/// The `n` words in most of `sets` (each one message's [`words_of`]), with how many; ties in alphabetical
/// order.
pub fn top_words<'a>(
    sets: impl IntoIterator<Item = &'a [Box<str>]>,
    n: usize,
) -> Vec<(String, u64)> {
    let mut counts: rustc_hash::FxHashMap<&str, u64> = Default::default();
    for set in sets {
        for w in set {
            *counts.entry(w).or_default() += 1;
        }
    }
    let mut ranked: Vec<(&str, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    ranked.truncate(n);
    ranked
        .into_iter()
        .map(|(w, c)| (w.to_string(), c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_leads_channel_is_its_form_else_the_web_phone_else_the_api() {
        let cases = [
            (Some("contact"), Some("web phone"), Channel::Form),
            (None, Some("web phone"), Channel::Phone),
            (None, Some("ads"), Channel::Api),
            (None, None, Channel::Api),
        ];
        for (form, source, want) in cases {
            assert_eq!(Channel::of(form, source), want, "{form:?} {source:?}");
        }
    }

    #[test]
    fn weeks_start_on_monday_in_the_business_zone_and_count_leads_beside_checkouts_and_orders() {
        let ny = chrono_tz::America::New_York;
        let leads = [
            // Sunday 23:30 in New York (Monday 04:30 UTC): still the week of Monday the 23rd.
            (at("2026-11-30T04:30:00Z"), Channel::Phone),
            (at("2026-11-24T15:00:00Z"), Channel::Form),
            (at("2026-11-25T15:00:00Z"), Channel::Api),
            // Monday 00:30 in New York: the week of the 30th.
            (at("2026-11-30T05:30:00Z"), Channel::Phone),
        ];
        let commerce = [
            (
                at("2026-11-24T10:00:00Z"),
                "Checkout Started".to_string(),
                7,
            ),
            (at("2026-11-24T11:00:00Z"), "Order Completed".to_string(), 2),
            (
                at("2026-12-01T11:00:00Z"),
                "Checkout Started".to_string(),
                3,
            ),
            (at("2026-12-01T11:00:00Z"), "Something Else".to_string(), 9),
        ];
        let got = by_week(&leads, &commerce, ny);
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            got,
            vec![
                Week {
                    week: d("2026-11-23"),
                    form: 1,
                    phone: 1,
                    api: 1,
                    checkouts: 7,
                    orders: 2
                },
                Week {
                    week: d("2026-11-30"),
                    form: 0,
                    phone: 1,
                    api: 0,
                    checkouts: 3,
                    orders: 0
                },
            ]
        );
    }

    #[test]
    fn leads_a_minute_apart_across_a_local_monday_midnight_are_in_their_own_weeks() {
        // Kathmandu is UTC+05:45: 18:14 UTC on Sunday 6 December is 23:59 there, 18:15 is Monday 00:00.
        let tz: Tz = "Asia/Kathmandu".parse().unwrap();
        let leads = [
            (at("2026-12-06T18:14:00Z"), Channel::Api),
            (at("2026-12-06T18:15:00Z"), Channel::Api),
            (at("2026-12-06T18:16:00Z"), Channel::Form),
        ];
        let weeks: Vec<(String, u64, u64)> = by_week(&leads, &[], tz)
            .into_iter()
            .map(|w| (w.week.to_string(), w.api, w.form))
            .collect();
        assert_eq!(
            weeks,
            vec![
                ("2026-11-30".to_string(), 1, 0),
                ("2026-12-07".to_string(), 1, 1)
            ]
        );
    }

    #[test]
    fn the_common_words_are_counted_once_per_message_without_filler_most_first() {
        let messages = [
            "Hi, do you deliver to Leeds? Delivery delivery delivery!",
            "What does delivery cost to Leeds",
            "Price for 2 sofas? I'd like a call",
            "price list please",
        ];
        assert_eq!(
            common_words(messages, 4),
            vec![
                ("delivery".to_string(), 2),
                ("leeds".to_string(), 2),
                ("price".to_string(), 2),
                ("call".to_string(), 1),
            ]
        );
        assert!(common_words(Vec::<&str>::new(), 5).is_empty());
    }

    #[test]
    fn what_erasure_left_in_a_message_is_not_counted_as_a_word() {
        let messages = [
            "[erased] [erased] would like a quote",
            "Erased files: can you recover them?",
        ];
        assert_eq!(
            common_words(messages, 5),
            vec![
                ("erased".to_string(), 1),
                ("files".to_string(), 1),
                ("quote".to_string(), 1),
                ("recover".to_string(), 1),
            ]
        );
    }
}
