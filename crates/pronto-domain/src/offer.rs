//! Offer pools: unique discount codes, one per message, never shown to two people.
//!
//! `[[offer]] id = "recovery-10"` declares a pool; a `send` step whose `offer` names it gets one unused code
//! of the pool for each message, assigned in the transaction that writes the message (the store claims codes
//! with the batch and marks each used one with the message's key, so a code is never given twice, also with
//! several processes on one PostgreSQL). An `offer` that names no pool is a literal code every message shows
//! (`offer = "FREESHIP"`). Codes come from a file named in the config (`codes_file`, one per line, loaded at
//! start and reload; a code already in the pool is kept as it is) or from `pronto offers generate`, which
//! makes codes from a pattern and prints them for upload to the shop.
//!
//! When a pool runs low (fewer unused codes than `low_at`) the server logs a warning and
//! `pronto_offer_codes_left` shows it; an empty pool follows its `fallback`: `"skip"` (default: the step is
//! skipped, the reason recorded on the run), `"send"` (the message goes without a code) or another offer
//! (a pool, tried in turn, or a literal code).
//!
//! # Layout
//! - this file: [`OfferConfig`] as written, [`Offer`] checked, [`Offers`] (lookup and the fallback chain),
//!   [`generate`] and [`parse_codes`].

use serde::Deserialize;
use std::collections::HashMap;

/// `[[offer]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferConfig {
    pub id: String,
    /// A file of codes, one per line (blank lines and `#` comments ignored), loaded into the pool at start
    /// and reload.
    pub codes_file: Option<String>,
    /// Warn when fewer unused codes than this remain (default 100).
    pub low_at: Option<u32>,
    /// What a step does when the pool is empty: `"skip"` (default), `"send"` (without a code) or another
    /// offer's id or a literal code.
    pub fallback: Option<String>,
}

/// What a step does when its pool is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// Skip the step, with the reason on the run.
    Skip,
    /// Send without a code (`offer.code` is null in the template).
    Send,
    /// Another offer: a pool (tried in turn) or a literal code.
    Offer(String),
}

/// A checked pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub id: String,
    pub codes_file: Option<String>,
    pub low_at: u32,
    pub fallback: Fallback,
}

/// The most codes one pool may hold: a file or generation beyond this is a mistake, not a campaign.
pub const MAX_CODES: usize = 1_000_000;

const DEFAULT_LOW_AT: u32 = 100;

/// The configured pools.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offers(HashMap<String, Offer>);

/// The code a message gets, decided from what its pools had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// A literal code (no pool), or none.
    Literal(Option<String>),
    /// An unused code of this pool.
    Code { pool: String, code: String },
    /// Every pool of the chain is empty and the last fallback says skip.
    Skip(String),
}

impl Offers {
    /// Checks every `[[offer]]`; problems name the field (`offer[0].id`) and what is wrong.
    pub fn check(configs: &[OfferConfig]) -> Result<Self, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut pools = HashMap::new();
        for (i, c) in configs.iter().enumerate() {
            let field = |f: &str| format!("offer[{i}].{f}");
            let ok = !c.id.is_empty()
                && c.id
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
            if !ok {
                errors.push((field("id"), "must be letters, digits, - or _".into()));
                continue;
            }
            if pools.contains_key(&c.id) {
                errors.push((field("id"), format!("`{}` is declared twice", c.id)));
                continue;
            }
            let fallback = match c.fallback.as_deref().map(str::trim) {
                None | Some("skip") => Fallback::Skip,
                Some("send") => Fallback::Send,
                Some("") => {
                    errors.push((field("fallback"), "must be skip, send, or an offer".into()));
                    Fallback::Skip
                }
                Some(other) => Fallback::Offer(other.to_string()),
            };
            pools.insert(
                c.id.clone(),
                Offer {
                    id: c.id.clone(),
                    codes_file: c.codes_file.clone(),
                    low_at: c.low_at.unwrap_or(DEFAULT_LOW_AT),
                    fallback,
                },
            );
        }
        let offers = Offers(pools);
        // A fallback chain must end: a pool falling back to itself through others would never skip.
        for (i, c) in configs.iter().enumerate() {
            if offers.chain(&c.id).is_none() {
                errors.push((
                    format!("offer[{i}].fallback"),
                    format!("`{}` falls back to itself", c.id),
                ));
            }
        }
        if errors.is_empty() {
            Ok(offers)
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, id: &str) -> Option<&Offer> {
        self.0.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Offer> {
        self.0.values()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pools `offer` draws from in order (itself, then its fallbacks'), empty for a literal code;
    /// `None` for a cycle.
    pub fn chain(&self, offer: &str) -> Option<Vec<&str>> {
        let mut out: Vec<&str> = Vec::new();
        let mut at = self.0.get(offer);
        while let Some(o) = at {
            if out.contains(&o.id.as_str()) {
                return None;
            }
            out.push(&o.id);
            at = match &o.fallback {
                Fallback::Offer(next) => self.0.get(next),
                _ => None,
            };
        }
        Some(out)
    }

    /// The code a message of a step with `offer` gets, taking it from `available` (unused codes by pool,
    /// as the store claimed them for the batch): the first pool of the chain with a code, else what the last
    /// pool's fallback says.
    pub fn pick(
        &self,
        offer: Option<&str>,
        mut available: impl FnMut(&str) -> Option<String>,
    ) -> Pick {
        let Some(first) = offer else {
            return Pick::Literal(None);
        };
        let mut at = first;
        loop {
            let Some(pool) = self.0.get(at) else {
                // Not a pool: a literal code (the first offer, or a fallback naming one).
                return Pick::Literal(Some(at.to_string()));
            };
            if let Some(code) = available(&pool.id) {
                return Pick::Code {
                    pool: pool.id.clone(),
                    code,
                };
            }
            match &pool.fallback {
                Fallback::Skip => {
                    return Pick::Skip(format!("offer `{}` has no unused code left", pool.id))
                }
                Fallback::Send => return Pick::Literal(None),
                Fallback::Offer(next) if next == first => {
                    return Pick::Skip(format!("offer `{first}` falls back to itself"))
                }
                Fallback::Offer(next) => at = next,
            }
        }
    }
}

/// Codes from a file's text: one per line, trimmed; blank lines, `#` comments and a `code` header skipped;
/// repeats dropped. An error names the first line that cannot be a code.
pub fn parse_codes(text: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let c = line.split(',').next().unwrap_or("").trim();
        if c.is_empty() || c.starts_with('#') || (n == 0 && c.eq_ignore_ascii_case("code")) {
            continue;
        }
        if c.len() > 64 || c.chars().any(|ch| ch.is_control() || ch.is_whitespace()) {
            return Err(format!(
                "line {}: `{c}` is not a code (at most 64 characters, no spaces)",
                n + 1
            ));
        }
        if seen.insert(c.to_string()) {
            out.push(c.to_string());
        }
        if out.len() > MAX_CODES {
            return Err(format!("more than {MAX_CODES} codes"));
        }
    }
    Ok(out)
}

/// The characters an `X` of a pattern becomes: capitals and digits without the ones people misread
/// (0/O, 1/I).
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// `count` distinct codes from `pattern`, each `X` a random character of [`ALPHABET`] (`SAVE10-XXXXXXXX`);
/// `random` gives uniform bytes. An error when the pattern has too few `X`s for that many codes to be hard to
/// guess (at least 6, and 32^X at least a million times `count`).
pub fn generate(
    pattern: &str,
    count: usize,
    mut random: impl FnMut() -> u8,
) -> Result<Vec<String>, String> {
    let slots = pattern.chars().filter(|c| *c == 'X').count();
    if count == 0 || count > MAX_CODES {
        return Err(format!("count must be 1 to {MAX_CODES}"));
    }
    let space = (ALPHABET.len() as f64).powi(slots as i32);
    if slots < 6 || space < 1e6 * count as f64 {
        return Err(format!(
            "`{pattern}` has {slots} X; {count} codes need at least {} so a code cannot be guessed",
            ((1e6 * count as f64).log(ALPHABET.len() as f64).ceil() as usize).max(6)
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(count);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let code: String = pattern
            .chars()
            .map(|c| {
                if c == 'X' {
                    // 256 is a multiple of 32: the low five bits are uniform.
                    ALPHABET[usize::from(random() & 31)] as char
                } else {
                    c
                }
            })
            .collect();
        if seen.insert(code.clone()) {
            out.push(code);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offers(toml_text: &str) -> Result<Offers, Vec<(String, String)>> {
        #[derive(Deserialize)]
        struct File {
            offer: Vec<OfferConfig>,
        }
        let f: File = toml::from_str(toml_text).unwrap();
        Offers::check(&f.offer)
    }

    #[test]
    fn pools_are_checked_and_a_fallback_cycle_is_refused() {
        let cases: Vec<(&str, Option<&str>)> =
            vec![
            ("[[offer]]\nid = \"a\"", None),
            ("[[offer]]\nid = \"a b\"", Some("offer[0].id")),
            ("[[offer]]\nid = \"a\"\n[[offer]]\nid = \"a\"", Some("offer[1].id")),
            ("[[offer]]\nid = \"a\"\nfallback = \"\"", Some("offer[0].fallback")),
            (
                "[[offer]]\nid = \"a\"\nfallback = \"b\"\n[[offer]]\nid = \"b\"\nfallback = \"a\"",
                Some("offer[0].fallback"),
            ),
            ("[[offer]]\nid = \"a\"\nfallback = \"FREESHIP\"", None),
        ];
        for (text, want) in cases {
            match (offers(text), want) {
                (Ok(_), None) => {}
                (Err(es), Some(field)) => assert_eq!(es[0].0, field, "{text}: {es:?}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_message_takes_the_first_pool_with_a_code_else_what_the_fallback_says() {
        let o = offers(
            "[[offer]]\nid = \"ten\"\nfallback = \"five\"\n[[offer]]\nid = \"five\"\nfallback = \"FREESHIP\"\n\
             [[offer]]\nid = \"vip\"\n[[offer]]\nid = \"soft\"\nfallback = \"send\"",
        )
        .unwrap();
        let pick = |offer: Option<&str>, stocked: &[&str]| {
            o.pick(offer, |pool| {
                stocked.contains(&pool).then(|| format!("{pool}-code"))
            })
        };
        let code = |pool: &str| Pick::Code {
            pool: pool.into(),
            code: format!("{pool}-code"),
        };
        let cases = [
            ("no offer", pick(None, &[]), Pick::Literal(None)),
            (
                "a literal code",
                pick(Some("WELCOME"), &[]),
                Pick::Literal(Some("WELCOME".into())),
            ),
            (
                "its own pool",
                pick(Some("ten"), &["ten", "five"]),
                code("ten"),
            ),
            (
                "empty: the next pool",
                pick(Some("ten"), &["five"]),
                code("five"),
            ),
            (
                "all empty: the last fallback's literal code",
                pick(Some("ten"), &[]),
                Pick::Literal(Some("FREESHIP".into())),
            ),
            (
                "empty, skip",
                pick(Some("vip"), &[]),
                Pick::Skip("offer `vip` has no unused code left".into()),
            ),
            (
                "empty, send without",
                pick(Some("soft"), &[]),
                Pick::Literal(None),
            ),
        ];
        for (name, got, want) in cases {
            assert_eq!(got, want, "{name}");
        }
        assert_eq!(o.chain("ten"), Some(vec!["ten", "five"]));
        assert_eq!(o.chain("WELCOME"), Some(vec![]));
    }

    #[test]
    fn codes_are_read_one_per_line_and_generated_distinct_and_hard_to_guess() {
        assert_eq!(
            parse_codes("code\nAAA-1\n\n# spare\nAAA-2, used in store\nAAA-1\n").unwrap(),
            ["AAA-1", "AAA-2"]
        );
        assert!(parse_codes("ok\nnot ok\n")
            .unwrap_err()
            .starts_with("line 2"));
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let codes = generate("SAVE10-XXXXXXXX", 1_000, || rng.random::<u8>()).unwrap();
        assert_eq!(codes.len(), 1_000);
        assert!(codes
            .iter()
            .all(|c| c.len() == 15 && c.starts_with("SAVE10-")));
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), 1_000);
        let short = generate("SAVE-XXXX", 10, || 1).unwrap_err();
        assert!(short.contains("need at least 6"), "{short}");
    }
}
