//! Experiments on flows: who is held out, decided once per run and the same on every node.
//!
//! A flow with `experiment = { id = "…", holdout = "10%" }` holds out that share of its runs: a held-out run
//! enters, waits and exits like any other (so it is tracked, and an order ends it as it ends the others), but
//! its `send` steps send nothing. Comparing what the two groups buy measures what the messages earn beyond
//! what would have happened anyway (the orders Klaviyo's last-touch attribution credits to an email whether
//! or not it changed anything).
//!
//! Assignment is a pure function of the flow id, the experiment id and the run key ([`assign`]): SHA-256 of
//! the three, its first eight bytes as a number, its remainder in 10,000 against the holdout in basis points.
//! So a key lands in the same group on every node, after every restart and reload, and a refreshed run keeps
//! its group; a new experiment id draws everyone again. The group is also written on the run when it starts,
//! so a changed share never moves runs already under way.
//!
//! # Layout
//! - this file: [`ExperimentConfig`] as written, [`Experiment`] checked, [`Arm`], [`assign`].
//! - [`results`]: counting an experiment's runs into groups, rates, revenue and the uplift's intervals.

pub mod results;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// `experiment = { id = "…", holdout = "10%" }` on a flow, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Names the experiment: changing it starts a new one (everyone is drawn again).
    pub id: String,
    /// The share of runs that get no message: `"10%"`, from `"0%"` to `"50%"`, at most two decimals.
    pub holdout: String,
}

/// A flow's experiment, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Experiment {
    pub id: String,
    /// The holdout in basis points (10% = 1,000).
    pub holdout_bp: u32,
}

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
        Ok(Self {
            id: id.to_string(),
            holdout_bp,
        })
    }
}

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arm {
    /// Gets the flow's messages.
    Treatment,
    /// Gets none; tracked for comparison.
    Holdout,
}

impl Arm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Treatment => "treatment",
            Self::Holdout => "holdout",
        }
    }

    /// As stored; anything else (a row written by a later version) is treated as the treatment, so a
    /// message is never lost to an unknown value.
    pub fn parse(s: &str) -> Self {
        match s {
            "holdout" => Self::Holdout,
            _ => Self::Treatment,
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
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    if u64::from_be_bytes(first) % 10_000 < u64::from(experiment.holdout_bp) {
        Arm::Holdout
    } else {
        Arm::Treatment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exp(id: &str, holdout: &str) -> Experiment {
        Experiment::check(&ExperimentConfig {
            id: id.into(),
            holdout: holdout.into(),
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

    #[test]
    fn an_unknown_stored_arm_is_read_as_the_treatment() {
        assert_eq!(Arm::parse("holdout"), Arm::Holdout);
        assert_eq!(Arm::parse("treatment"), Arm::Treatment);
        assert_eq!(Arm::parse("variant-b"), Arm::Treatment);
    }
}
