//! Whose local time, and how to write it: the one place that decides a person's time zone (for SMS quiet
//! hours, local-time waits and the time an acknowledgement promises) and how a time is shown to them.
//!
//! A person's zone is, in order: the zone they gave with the lead or event (`timezone`), the contact's
//! `timezone` trait, the zone their browser reported (Segment's `context.timezone`), the zone of their
//! phone number's country when that country keeps one time, else the caller's fallback (the flow's or the
//! business's). A time shown to them names its zone and uses the clock their country uses (2:00 PM EST in
//! the US, 14:00 CET in Germany).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

/// Where in a template or flow context a person's explicit zone may be: the event's own `timezone`
/// (a lead's field), its `properties.fields.timezone`, the contact's trait, the browser's.
const ZONE_PATHS: [&str; 5] = [
    "/properties/timezone",
    "/properties/fields/timezone",
    "/contact/timezone",
    "/timezone",
    "/context/timezone",
];

/// Where a person's phone may be.
const PHONE_PATHS: [&str; 3] = ["/properties/phone", "/contact/phone", "/phone"];

/// The zone of the person a flow context (`engine::context`) is about; `fallback` when nothing names one.
pub fn person_zone(ctx: &Value, fallback: Tz) -> Tz {
    explicit_zone(ctx)
        .or_else(|| {
            phone_of(ctx)
                .and_then(|p| country_of_phone(&p))
                .and_then(|c| zone_of_country(&c))
        })
        .unwrap_or(fallback)
}

/// A zone the context names outright (an IANA name).
pub fn explicit_zone(ctx: &Value) -> Option<Tz> {
    ZONE_PATHS
        .iter()
        .filter_map(|p| ctx.pointer(p).and_then(Value::as_str))
        .find_map(|s| s.trim().parse().ok())
}

fn phone_of(ctx: &Value) -> Option<String> {
    PHONE_PATHS
        .iter()
        .find_map(|p| ctx.pointer(p).and_then(Value::as_str))
        .map(str::to_string)
}

/// The ISO 3166 country of an E.164 number (`+4930…` → `DE`).
pub fn country_of_phone(e164: &str) -> Option<String> {
    let n = phonenumber::parse(None, e164).ok()?;
    let id = n.country().id()?;
    Some(id.as_ref().to_string())
}

/// The zone of a country that keeps one time (or whose other zones hold a tiny share of its people), from
/// the IANA tz database's `zone1970.tab`. Countries spanning several offsets (US, CA, MX, BR, RU, AU, ID,
/// KZ, …) have none: their numbers say nothing about the hour.
pub fn zone_of_country(cc: &str) -> Option<Tz> {
    let name = match cc {
        "AD" => "Europe/Andorra",
        "AE" => "Asia/Dubai",
        "AT" => "Europe/Vienna",
        "BD" => "Asia/Dhaka",
        "BE" => "Europe/Brussels",
        "BG" => "Europe/Sofia",
        "CH" => "Europe/Zurich",
        "CN" => "Asia/Shanghai",
        "CO" => "America/Bogota",
        "CR" => "America/Costa_Rica",
        "CZ" => "Europe/Prague",
        "DE" => "Europe/Berlin",
        "DK" => "Europe/Copenhagen",
        "EE" => "Europe/Tallinn",
        "EG" => "Africa/Cairo",
        "ES" => "Europe/Madrid",
        "FI" => "Europe/Helsinki",
        "FR" => "Europe/Paris",
        "GB" => "Europe/London",
        "GR" => "Europe/Athens",
        "HK" => "Asia/Hong_Kong",
        "HR" => "Europe/Zagreb",
        "HU" => "Europe/Budapest",
        "IE" => "Europe/Dublin",
        "IL" => "Asia/Jerusalem",
        "IN" => "Asia/Kolkata",
        "IS" => "Atlantic/Reykjavik",
        "IT" => "Europe/Rome",
        "JP" => "Asia/Tokyo",
        "KE" => "Africa/Nairobi",
        "KR" => "Asia/Seoul",
        "LT" => "Europe/Vilnius",
        "LU" => "Europe/Luxembourg",
        "LV" => "Europe/Riga",
        "MA" => "Africa/Casablanca",
        "MT" => "Europe/Malta",
        "NG" => "Africa/Lagos",
        "NL" => "Europe/Amsterdam",
        "NO" => "Europe/Oslo",
        "NZ" => "Pacific/Auckland",
        "PE" => "America/Lima",
        "PH" => "Asia/Manila",
        "PK" => "Asia/Karachi",
        "PL" => "Europe/Warsaw",
        "PT" => "Europe/Lisbon",
        "RO" => "Europe/Bucharest",
        "RS" => "Europe/Belgrade",
        "SA" => "Asia/Riyadh",
        "SE" => "Europe/Stockholm",
        "SG" => "Asia/Singapore",
        "SI" => "Europe/Ljubljana",
        "SK" => "Europe/Bratislava",
        "TH" => "Asia/Bangkok",
        "TR" => "Europe/Istanbul",
        "TW" => "Asia/Taipei",
        "UA" => "Europe/Kyiv",
        "VN" => "Asia/Ho_Chi_Minh",
        "ZA" => "Africa/Johannesburg",
        _ => return None,
    };
    name.parse().ok()
}

/// Countries whose people read times on a 12-hour clock with AM/PM (CLDR's `h` hour format for the
/// country's main locale).
const TWELVE_HOUR: [&str; 19] = [
    "US", "CA", "AU", "NZ", "IN", "PH", "PK", "BD", "EG", "SA", "AE", "JO", "KW", "QA", "BH", "OM",
    "CO", "MX", "MY",
];

/// Zones whose country reads a 12-hour clock, when no country is known.
fn twelve_hour_zone(tz: Tz) -> bool {
    let name = tz.name();
    name.starts_with("US/")
        || name.starts_with("Australia/")
        || name.starts_with("Canada/")
        || [
            "America/New_York",
            "America/Chicago",
            "America/Denver",
            "America/Phoenix",
            "America/Los_Angeles",
            "America/Anchorage",
            "America/Detroit",
            "America/Indiana/Indianapolis",
            "America/Boise",
            "America/Toronto",
            "America/Vancouver",
            "America/Edmonton",
            "America/Winnipeg",
            "America/Halifax",
            "America/St_Johns",
            "America/Regina",
            "America/Mexico_City",
            "America/Bogota",
            "Pacific/Honolulu",
            "Pacific/Auckland",
            "Asia/Kolkata",
            "Asia/Manila",
            "Asia/Karachi",
            "Asia/Dhaka",
            "Africa/Cairo",
            "Asia/Riyadh",
            "Asia/Dubai",
        ]
        .contains(&name)
}

/// How a person reads the time: their country's clock when known (their locale's region, else their
/// phone's country), else the clock of their zone's country.
pub fn twelve_hour(country: Option<&str>, tz: Tz) -> bool {
    match country {
        Some(cc) => TWELVE_HOUR.contains(&cc),
        None => twelve_hour_zone(tz),
    }
}

/// The region of a locale tag (`en-US` → `US`, `de_DE` → `DE`); none for a bare language.
pub fn locale_country(locale: &str) -> Option<String> {
    locale
        .split(['-', '_'])
        .skip(1)
        .find(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_alphabetic()))
        .map(|p| p.to_ascii_uppercase())
}

/// Who reads a time: their zone and their clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reader {
    pub tz: Tz,
    pub twelve_hour: bool,
}

impl Reader {
    /// A reader in `tz` whose country (when known) decides the clock.
    pub fn new(tz: Tz, country: Option<&str>) -> Self {
        Self {
            tz,
            twelve_hour: twelve_hour(country, tz),
        }
    }

    /// The person a context is about (see [`person_zone`]); the country for the clock is their locale's
    /// (`locale` as a lead field or trait), else their phone's.
    pub fn of(ctx: &Value, fallback: Tz) -> Self {
        let tz = person_zone(ctx, fallback);
        let country = [
            "/properties/fields/locale",
            "/properties/locale",
            "/contact/locale",
            "/context/locale",
        ]
        .iter()
        .filter_map(|p| ctx.pointer(p).and_then(Value::as_str))
        .find_map(locale_country)
        .or_else(|| phone_of(ctx).and_then(|p| country_of_phone(&p)));
        Self::new(tz, country.as_deref())
    }

    /// `at` as this reader reads it: `2:00 PM EST`.
    pub fn time(&self, at: DateTime<Utc>) -> String {
        local_time(at, self.tz, self.twelve_hour)
    }
}

/// A time of day as the person reads it, with its zone: `2:00 PM EST` or `14:00 CET`.
pub fn local_time(at: DateTime<Utc>, tz: Tz, twelve_hour: bool) -> String {
    let local = at.with_timezone(&tz);
    if twelve_hour {
        local.format("%-I:%M %p %Z").to_string()
    } else {
        local.format("%H:%M %Z").to_string()
    }
}

/// "today", "tomorrow" or "on Friday": the day of `at` as seen at `now`, in `tz`.
pub fn day_word(at: DateTime<Utc>, now: DateTime<Utc>, tz: Tz) -> String {
    let days =
        (at.with_timezone(&tz).date_naive() - now.with_timezone(&tz).date_naive()).num_days();
    match days {
        ..=0 => "today".into(),
        1 => "tomorrow".into(),
        _ => format!("on {}", at.with_timezone(&tz).format("%A")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_persons_zone_is_theirs_first_then_their_phones_country_then_the_fallback() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let cases: &[(Value, &str)] = &[
            (
                json!({"properties": {"fields": {"timezone": "Europe/Berlin"}, "phone": "+12125550123"}}),
                "Europe/Berlin",
            ),
            (
                json!({"properties": {"timezone": "Asia/Tokyo"}}),
                "Asia/Tokyo",
            ),
            (
                json!({"contact": {"timezone": "Europe/Paris"}}),
                "Europe/Paris",
            ),
            (
                json!({"context": {"timezone": "Europe/Oslo"}}),
                "Europe/Oslo",
            ),
            (
                json!({"properties": {"phone": "+4930123456"}}),
                "Europe/Berlin",
            ),
            (
                json!({"contact": {"phone": "+442071838750"}}),
                "Europe/London",
            ),
            // A country of several zones says nothing: the fallback.
            (
                json!({"properties": {"phone": "+12125550123"}}),
                "America/New_York",
            ),
            (
                json!({"properties": {"fields": {"timezone": "Mars/Base"}}}),
                "America/New_York",
            ),
            (json!({}), "America/New_York"),
        ];
        for (ctx, want) in cases {
            assert_eq!(person_zone(ctx, ny).name(), *want, "{ctx}");
        }
    }

    #[test]
    fn a_time_names_its_zone_on_the_clock_the_person_reads() {
        let at = t("2026-11-25T07:00:00Z");
        let cases: &[(Option<&str>, &str, &str)] = &[
            (None, "America/New_York", "2:00 AM EST"),
            (Some("US"), "America/New_York", "2:00 AM EST"),
            (None, "Europe/Berlin", "08:00 CET"),
            (Some("DE"), "Europe/Berlin", "08:00 CET"),
            (Some("GB"), "Europe/London", "07:00 GMT"),
            (None, "Asia/Kolkata", "12:30 PM IST"),
            (Some("AU"), "Europe/Berlin", "8:00 AM CET"),
        ];
        for (country, zone, want) in cases {
            let tz: Tz = zone.parse().unwrap();
            assert_eq!(
                local_time(at, tz, twelve_hour(*country, tz)),
                *want,
                "{zone} {country:?}"
            );
        }
    }

    #[test]
    fn countries_come_from_phones_and_locales() {
        assert_eq!(country_of_phone("+4930123456").as_deref(), Some("DE"));
        assert_eq!(country_of_phone("+12125550123").as_deref(), Some("US"));
        assert_eq!(country_of_phone("nope"), None);
        assert_eq!(locale_country("en-US").as_deref(), Some("US"));
        assert_eq!(locale_country("de_de").as_deref(), Some("DE"));
        assert_eq!(locale_country("fr"), None);
    }

    #[test]
    fn days_are_named_in_the_persons_zone() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let now = t("2026-11-24T23:00:00Z"); // 18:00 Tuesday in New York
        assert_eq!(day_word(t("2026-11-25T02:00:00Z"), now, ny), "today");
        assert_eq!(day_word(t("2026-11-25T14:00:00Z"), now, ny), "tomorrow");
        assert_eq!(day_word(t("2026-11-27T14:00:00Z"), now, ny), "on Friday");
    }
}
