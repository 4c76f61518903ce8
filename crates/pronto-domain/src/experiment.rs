//! Experiments on flows: who is held out and who gets which variant, decided once per run and the same on
//! every node.
//!
//! A flow with `experiment = { id = "…", holdout = "10%" }` holds out that share of its runs: a held-out run
//! enters, waits and exits like any other (so it is tracked, and an order ends it as it ends the others), but
//! its `send` steps send nothing. Comparing what the groups buy measures what the messages earn beyond what
//! would have happened anyway (the orders Klaviyo's last-touch attribution credits to an email whether or not
//! it changed anything).
//!
//! The experiment may also name **variants** with weights (`variants = [{ id = "hour" }, { id = "ten-min",
//! weight = 2 }]`): the runs not held out are split between them by weight, and a `wait` or `send` step may
//! say what it does in a variant (`variants = { ten-min = { wait = "10m" } }`); a variant a step does not
//! name does what the step says.
//!
//! A variant may be **promoted** as the winner (`pronto experiments promote`, or the admin API; recorded in
//! the store and applied to the loaded flows): from then on every new run that is not held out takes it,
//! while the holdout goes on measuring what the flow earns; runs already under way keep their group.
//!
//! Assignment is a pure function of the flow id, the experiment id and the run key ([`assign`]): SHA-256 of
//! the three; its first eight bytes as a number, taken modulo 10,000, against the holdout in basis points;
//! its next eight modulo the total weight pick the variant. So a key lands in the same group on every node,
//! after every restart and reload, and a refreshed run keeps its group; adding variants does not move anyone
//! into or out of the holdout; a new experiment id draws everyone again. The group is also written on the run
//! when it starts, so a changed share or weight never moves runs already under way.
//!
//! # Layout
//! - this file: [`ExperimentConfig`] as written, [`Experiment`] checked, [`Arm`], [`assign`].
//! - [`results`]: counting an experiment's runs into groups, rates, revenue and the uplift's intervals.
//! - [`recovery`]: every flow's funnel over a period (entered → messaged → clicked → bought), its holdout
//!   and its message steps, for the owner's page; built on the same counts.

pub mod recovery;
pub mod results;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `experiment = { id = "…", holdout = "10%", variants = [...] }` on a flow, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Names the experiment: changing it starts a new one (everyone is drawn again).
    pub id: String,
    /// The share of runs that get no message: `"10%"`, from `"0%"` to `"50%"`, at most two decimals.
    pub holdout: String,
    /// The variants the runs not held out are split between; none: they all get the flow as written.
    #[serde(default)]
    pub variants: Vec<VariantConfig>,
    /// Promote the best variant by itself once the evidence is clear (see [`AutoPromote`]).
    pub auto_promote: Option<AutoPromoteConfig>,
}

/// `auto_promote = { probability = "95%", min_runs = 1000 }`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoPromoteConfig {
    /// How sure the best variant must be of beating each other one: `"80%"` to `"99.99%"`.
    pub probability: String,
    /// Runs every group (the holdout too) must have first; at least 100.
    pub min_runs: u64,
}

/// When the best variant is promoted by itself (checked by the counter worker about once a minute): every
/// group has at least `min_runs` runs, the split shows no sample-ratio mismatch, and against each other
/// variant the best one's conversion rate is higher with probability at least `probability_bp` **and** the
/// always-valid 95% interval of the difference excludes zero. The second condition is what makes it safe to
/// look every minute: the probability alone, read that often, would crown a variant that is only ahead by
/// chance (see [`results`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoPromote {
    pub probability_bp: u32,
    pub min_runs: u64,
}

/// The fewest runs per group an automatic promotion may be decided on.
const MIN_AUTO_RUNS: u64 = 100;

/// `{ id = "ten-min", weight = 2 }`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantConfig {
    pub id: String,
    /// Its share relative to the others' weights; default 1.
    pub weight: Option<u32>,
}

/// A variant, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub id: String,
    /// At least 1.
    pub weight: u32,
}

/// A flow's experiment, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Experiment {
    pub id: String,
    /// The holdout in basis points (10% = 1,000).
    pub holdout_bp: u32,
    /// Empty: the runs not held out are one group, [`Arm::Treatment`].
    pub variants: Vec<Variant>,
    /// The variant promoted as the winner ([`Experiment::promote`]): every new run not held out takes it;
    /// the holdout goes on measuring what the flow earns.
    pub promoted: Option<String>,
    pub auto_promote: Option<AutoPromote>,
}

/// The most variants one experiment may have: each needs its share of the traffic to show anything.
const MAX_VARIANTS: usize = 10;

/// The most a flow may hold out: beyond half, the flow's messages reach fewer people than its control group,
/// which is an experiment about the holdout, not the flow.
const MAX_HOLDOUT_BP: u32 = 5_000;

impl Experiment {
    /// Checks a written experiment; the error names the field.
    pub fn check(c: &ExperimentConfig) -> Result<Self, (&'static str, String)> {
        let id = c.id.trim();
        if id.is_empty() {
            return Err(("id", "must not be empty".into()));
        }
        let holdout_bp = share_bp(&c.holdout).ok_or((
            "holdout",
            format!(
                "`{}` is not a share like \"10%\" (0% to 50%, at most two decimals)",
                c.holdout
            ),
        ))?;
        if holdout_bp > MAX_HOLDOUT_BP {
            return Err((
                "holdout",
                format!("{} is more than 50% of the runs", c.holdout.trim()),
            ));
        }
        let mut variants: Vec<Variant> = Vec::with_capacity(c.variants.len());
        for (i, v) in c.variants.iter().enumerate() {
            let vid = v.id.trim();
            let ok = !vid.is_empty()
                && vid
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
            if !ok {
                return Err((
                    "variants",
                    format!("[{i}].id `{}` must be letters, digits, - or _", v.id),
                ));
            }
            if RESERVED.contains(&vid) {
                return Err((
                    "variants",
                    format!(
                        "[{i}].id `{vid}` is reserved for the groups of a flow without variants"
                    ),
                ));
            }
            if variants.iter().any(|o| o.id == vid) {
                return Err((
                    "variants",
                    format!("[{i}].id `{vid}` is used by another variant"),
                ));
            }
            let weight = v.weight.unwrap_or(1);
            if weight == 0 {
                return Err((
                    "variants",
                    format!("[{i}].weight must be at least 1 (remove the variant to stop it)"),
                ));
            }
            variants.push(Variant {
                id: vid.to_string(),
                weight,
            });
        }
        if variants.len() == 1 {
            return Err((
                "variants",
                "one variant is no comparison: name at least two, or none".into(),
            ));
        }
        if variants.len() > MAX_VARIANTS {
            return Err(("variants", format!("at most {MAX_VARIANTS} variants")));
        }
        let auto_promote = match &c.auto_promote {
            None => None,
            Some(_) if variants.is_empty() => {
                return Err((
                    "auto_promote",
                    "needs variants to choose from (a holdout is never promoted)".into(),
                ))
            }
            Some(a) => {
                let probability_bp = share_bp(&a.probability)
                    .filter(|bp| (8_000..10_000).contains(bp))
                    .ok_or((
                        "auto_promote",
                        format!(
                            "probability `{}` must be a share from \"80%\" to \"99.99%\"",
                            a.probability
                        ),
                    ))?;
                if a.min_runs < MIN_AUTO_RUNS {
                    return Err((
                        "auto_promote",
                        format!(
                            "min_runs must be at least {MIN_AUTO_RUNS}: fewer runs decide nothing"
                        ),
                    ));
                }
                Some(AutoPromote {
                    probability_bp,
                    min_runs: a.min_runs,
                })
            }
        };
        Ok(Self {
            id: id.to_string(),
            holdout_bp,
            variants,
            promoted: None,
            auto_promote,
        })
    }

    /// Makes `variant` the winner; an error names why it cannot be (not one of this experiment's variants).
    pub fn promote(&mut self, variant: &str) -> Result<(), String> {
        if !self.variants.iter().any(|v| v.id == variant) {
            let names: Vec<&str> = self.variants.iter().map(|v| v.id.as_str()).collect();
            return Err(if names.is_empty() {
                format!("experiment `{}` has no variants to promote", self.id)
            } else {
                format!(
                    "`{variant}` is not a variant of experiment `{}` ({})",
                    self.id,
                    names.join(", ")
                )
            });
        }
        self.promoted = Some(variant.to_string());
        Ok(())
    }

    /// The share of runs each group is expected to get, the holdout first (only if it holds any out), then
    /// the treatment or each variant.
    pub fn shares(&self) -> Vec<(Arm, f64)> {
        let held = f64::from(self.holdout_bp) / 10_000.0;
        let mut out = Vec::new();
        if self.holdout_bp > 0 {
            out.push((Arm::Holdout, held));
        }
        if self.variants.is_empty() {
            out.push((Arm::Treatment, 1.0 - held));
        } else {
            let total: f64 = self.variants.iter().map(|v| f64::from(v.weight)).sum();
            for v in &self.variants {
                out.push((
                    Arm::Variant(v.id.clone()),
                    (1.0 - held) * f64::from(v.weight) / total,
                ));
            }
        }
        out
    }
}

/// A recorded promotion of a variant as an experiment's winner.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Promotion {
    pub flow: String,
    pub experiment: String,
    pub variant: String,
    pub promoted_at: chrono::DateTime<chrono::Utc>,
    /// Who promoted it: `api`, `cli` or `auto` (the experiment's `auto_promote` rule).
    pub source: String,
}

/// Group names a variant may not take.
const RESERVED: [&str; 2] = ["holdout", "treatment"];

/// `"12.5%"` as basis points (1,250); `None` unless a percentage with at most two decimals.
fn share_bp(s: &str) -> Option<u32> {
    let n = s.trim().strip_suffix('%')?.trim();
    let (whole, frac) = n.split_once('.').unwrap_or((n, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !(whole.chars().chain(frac.chars())).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let frac: u32 = format!("{frac:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(frac)
}

/// The group a run is in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arm {
    /// Gets the flow's messages as written (an experiment without variants).
    Treatment,
    /// Gets none; tracked for comparison.
    Holdout,
    /// Gets the flow's messages with this variant's steps.
    Variant(String),
}

impl Arm {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Treatment => "treatment",
            Self::Holdout => "holdout",
            Self::Variant(v) => v,
        }
    }

    /// As stored. A variant the flow no longer names still gets its messages (the steps as written), so a
    /// message is never lost to an unknown value.
    pub fn parse(s: &str) -> Self {
        match s {
            "holdout" => Self::Holdout,
            "treatment" => Self::Treatment,
            v => Self::Variant(v.to_string()),
        }
    }

    /// The variant whose steps the run takes, if any.
    pub fn variant(&self) -> Option<&str> {
        match self {
            Self::Variant(v) => Some(v),
            _ => None,
        }
    }
}

/// The group of the run keyed `key` of flow `flow` in `experiment` (see the module documentation).
pub fn assign(flow: &str, experiment: &Experiment, key: &str) -> Arm {
    let mut h = Sha256::new();
    for part in [flow, experiment.id.as_str(), key] {
        h.update(part.as_bytes());
        // A separator no id contains, so ("ab", "c") and ("a", "bc") differ.
        h.update([0u8]);
    }
    let digest = h.finalize();
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&digest[i * 8..i * 8 + 8]);
        u64::from_be_bytes(b)
    };
    if word(0) % 10_000 < u64::from(experiment.holdout_bp) {
        return Arm::Holdout;
    }
    if let Some(winner) = &experiment.promoted {
        return Arm::Variant(winner.clone());
    }
    let total: u64 = experiment
        .variants
        .iter()
        .map(|v| u64::from(v.weight))
        .sum();
    if total == 0 {
        return Arm::Treatment;
    }
    let mut pick = word(1) % total;
    for v in &experiment.variants {
        if pick < u64::from(v.weight) {
            return Arm::Variant(v.id.clone());
        }
        pick -= u64::from(v.weight);
    }
    Arm::Treatment
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp(id: &str, holdout: &str) -> Experiment {
        Experiment::check(&ExperimentConfig {
            id: id.into(),
            holdout: holdout.into(),
            variants: vec![],
            auto_promote: None,
        })
        .unwrap()
    }

    #[test]
    fn a_holdout_is_a_percentage_up_to_half_with_at_most_two_decimals() {
        let cases: Vec<(&str, Result<u32, &str>)> = vec![
            ("10%", Ok(1_000)),
            (" 12.5 %", Ok(1_250)),
            ("0.01%", Ok(1)),
            ("0%", Ok(0)),
            ("50%", Ok(5_000)),
            ("50.01%", Err("more than 50%")),
            ("100%", Err("more than 50%")),
            ("10", Err("not a share")),
            ("0.1", Err("not a share")),
            ("1.234%", Err("not a share")),
            ("-5%", Err("not a share")),
            ("%", Err("not a share")),
            ("ten%", Err("not a share")),
        ];
        for (written, want) in cases {
            let got = Experiment::check(&ExperimentConfig {
                id: "e".into(),
                holdout: written.into(),
                variants: vec![],
                auto_promote: None,
            });
            match (got, want) {
                (Ok(e), Ok(bp)) => assert_eq!(e.holdout_bp, bp, "{written}"),
                (Err((field, m)), Err(part)) => {
                    assert_eq!(field, "holdout");
                    assert!(m.contains(part), "{written}: {m}")
                }
                (got, want) => panic!("{written}: got {got:?}, want {want:?}"),
            }
        }
        let blank = Experiment::check(&ExperimentConfig {
            id: " ".into(),
            holdout: "10%".into(),
            variants: vec![],
            auto_promote: None,
        });
        assert_eq!(blank.unwrap_err().0, "id");
    }

    #[test]
    fn assignment_is_a_stable_function_of_flow_experiment_and_key() {
        let e = exp("recovery-2026-12", "10%");
        // Computed once and fixed here: a change to the hashing would move people between groups mid-test.
        let cases = [
            (
                "checkout-recovery",
                "chk_1",
                assign("checkout-recovery", &e, "chk_1"),
            ),
            (
                "checkout-recovery",
                "chk_2",
                assign("checkout-recovery", &e, "chk_2"),
            ),
        ];
        for (flow, key, arm) in cases {
            for _ in 0..3 {
                assert_eq!(assign(flow, &e, key), arm, "{flow} {key}");
            }
        }
        let none = exp("x", "0%");
        assert!((0..1_000).all(|i| assign("f", &none, &i.to_string()) == Arm::Treatment));
    }

    #[test]
    fn the_held_out_share_matches_the_configured_one_and_a_new_experiment_draws_again() {
        let n = 100_000;
        let held = |e: &Experiment| {
            (0..n)
                .filter(|i| assign("checkout-recovery", e, &format!("chk_{i}")) == Arm::Holdout)
                .count()
        };
        let a = exp("a", "10%");
        let b = exp("b", "10%");
        for e in [&a, &b] {
            let share = held(e) as f64 / n as f64;
            // Binomial(100,000, 0.1): sd 0.095 points; 0.5 points is over five of them.
            assert!((share - 0.10).abs() < 0.005, "{}: {share}", e.id);
        }
        let moved = (0..n)
            .filter(|i| {
                let k = format!("chk_{i}");
                assign("checkout-recovery", &a, &k) != assign("checkout-recovery", &b, &k)
            })
            .count() as f64
            / n as f64;
        // Independent draws: 2 × 0.1 × 0.9 = 18% of keys change group.
        assert!((moved - 0.18).abs() < 0.01, "{moved}");
    }

    fn with_variants(
        holdout: &str,
        variants: &[(&str, Option<u32>)],
    ) -> Result<Experiment, (&'static str, String)> {
        Experiment::check(&ExperimentConfig {
            id: "e".into(),
            holdout: holdout.into(),
            variants: variants
                .iter()
                .map(|(id, weight)| VariantConfig {
                    id: (*id).into(),
                    weight: *weight,
                })
                .collect(),
            auto_promote: None,
        })
    }

    #[test]
    fn automatic_promotion_needs_variants_a_high_bar_and_enough_runs() {
        let two = || {
            vec![
                VariantConfig {
                    id: "a".into(),
                    weight: None,
                },
                VariantConfig {
                    id: "b".into(),
                    weight: None,
                },
            ]
        };
        // (variants, probability, min_runs, the checked rule or part of the error)
        type Case = (
            Vec<VariantConfig>,
            &'static str,
            u64,
            Result<(u32, u64), &'static str>,
        );
        let cases: Vec<Case> = vec![
            (two(), "95%", 1_000, Ok((9_500, 1_000))),
            (two(), "99.9%", 100, Ok((9_990, 100))),
            (two(), "80%", 500, Ok((8_000, 500))),
            (two(), "79.99%", 500, Err("from \"80%\"")),
            (two(), "100%", 500, Err("from \"80%\"")),
            (two(), "0.95", 500, Err("must be a share")),
            (two(), "95%", 99, Err("at least 100")),
            (vec![], "95%", 1_000, Err("needs variants")),
        ];
        for (variants, probability, min_runs, want) in cases {
            let got = Experiment::check(&ExperimentConfig {
                id: "e".into(),
                holdout: "10%".into(),
                variants,
                auto_promote: Some(AutoPromoteConfig {
                    probability: probability.into(),
                    min_runs,
                }),
            });
            match (got, want) {
                (Ok(e), Ok((bp, n))) => assert_eq!(
                    e.auto_promote,
                    Some(AutoPromote {
                        probability_bp: bp,
                        min_runs: n
                    }),
                    "{probability}"
                ),
                (Err((field, m)), Err(part)) => {
                    assert_eq!(field, "auto_promote");
                    assert!(m.contains(part), "{probability} {min_runs}: {m}");
                }
                (got, want) => panic!("{probability} {min_runs}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn variants_need_distinct_ids_positive_weights_and_company() {
        type Written<'a> = &'a [(&'a str, Option<u32>)];
        let cases: Vec<(Written<'_>, Option<&str>)> = vec![
            (&[("hour", None), ("ten-min", Some(2))], None),
            (&[("a", None)], Some("one variant is no comparison")),
            (
                &[("a", None), ("a", None)],
                Some("`a` is used by another variant"),
            ),
            (
                &[("a", None), ("b", Some(0))],
                Some("weight must be at least 1"),
            ),
            (&[("a", None), ("holdout", None)], Some("reserved")),
            (&[("a", None), ("treatment", None)], Some("reserved")),
            (&[("a", None), ("b c", None)], Some("letters, digits")),
            (&[("a", None), ("", None)], Some("letters, digits")),
        ];
        for (variants, want) in cases {
            match (with_variants("10%", variants), want) {
                (Ok(e), None) => assert_eq!(e.variants.len(), variants.len()),
                (Err((field, m)), Some(part)) => {
                    assert_eq!(field, "variants");
                    assert!(m.contains(part), "{variants:?}: {m}")
                }
                (got, want) => panic!("{variants:?}: got {got:?}, want {want:?}"),
            }
        }
        let eleven: Vec<(String, Option<u32>)> = (0..11).map(|i| (format!("v{i}"), None)).collect();
        let eleven: Vec<(&str, Option<u32>)> =
            eleven.iter().map(|(s, w)| (s.as_str(), *w)).collect();
        assert!(with_variants("0%", &eleven)
            .unwrap_err()
            .1
            .contains("at most 10"));
    }

    #[test]
    fn runs_split_by_weight_after_the_holdout_and_variants_do_not_move_the_holdout() {
        let e = with_variants("20%", &[("hour", Some(1)), ("ten-min", Some(3))]).unwrap();
        let want = [
            (Arm::Holdout, 0.2),
            (Arm::Variant("hour".into()), 0.2),
            (Arm::Variant("ten-min".into()), 0.6),
        ];
        let got = e.shares();
        assert_eq!(got.len(), want.len());
        for ((a, x), (b, y)) in got.iter().zip(&want) {
            assert!(a == b && (x - y).abs() < 1e-12, "{got:?}");
        }
        let plain = exp("e", "20%");
        let n = 100_000;
        let mut counts: std::collections::BTreeMap<Arm, usize> = Default::default();
        for i in 0..n {
            let key = format!("chk_{i}");
            let arm = assign("checkout-recovery", &e, &key);
            // Same flow, experiment id and key: the holdout is drawn from the same bytes with or without variants.
            assert_eq!(
                arm == Arm::Holdout,
                assign("checkout-recovery", &plain, &key) == Arm::Holdout,
                "{key}"
            );
            *counts.entry(arm).or_default() += 1;
        }
        for (arm, share) in e.shares() {
            let got = counts[&arm] as f64 / n as f64;
            // Binomial(100,000, p ≤ 0.6): sd at most 0.16 points; 0.8 points is five of them.
            assert!((got - share).abs() < 0.008, "{arm:?}: {got} vs {share}");
        }
    }

    #[test]
    fn a_promoted_variant_takes_every_run_but_the_holdout_which_stays_the_same() {
        let mut e = with_variants("20%", &[("hour", None), ("ten-min", None)]).unwrap();
        let before: Vec<Arm> = (0..2_000)
            .map(|i| assign("f", &e, &format!("k{i}")))
            .collect();
        assert!(e.promote("nope").unwrap_err().contains("hour, ten-min"));
        e.promote("ten-min").unwrap();
        for (i, was) in before.iter().enumerate() {
            let now = assign("f", &e, &format!("k{i}"));
            match was {
                Arm::Holdout => assert_eq!(now, Arm::Holdout),
                _ => assert_eq!(now, Arm::Variant("ten-min".into())),
            }
        }
        let mut plain = exp("e", "10%");
        assert!(plain.promote("a").unwrap_err().contains("no variants"));
    }

    #[test]
    fn a_stored_arm_reads_back_as_written_and_an_unknown_one_is_a_variant() {
        let cases = [
            ("holdout", Arm::Holdout),
            ("treatment", Arm::Treatment),
            ("variant-b", Arm::Variant("variant-b".into())),
        ];
        for (stored, arm) in cases {
            assert_eq!(Arm::parse(stored), arm);
            assert_eq!(arm.as_str(), stored);
        }
        assert_eq!(Arm::parse("variant-b").variant(), Some("variant-b"));
        assert_eq!(Arm::Holdout.variant(), None);
    }
}
