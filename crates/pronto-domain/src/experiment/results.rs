//! What an experiment shows: per flow and group, runs entered, messaged and converted, revenue, and the
//! treatment's uplift over the holdout, with intervals that stay valid however often they are looked at.
//!
//! **A conversion** is an `Order Completed` (or `Lead Won`) that meets one of the flow's exit rules (the same key
//! whenever it happened, or the same contact after the run started), within [`WINDOW_DAYS`] of the run's start;
//! its revenue is the event's `revenue`, else `total`, else `value`, kept per currency (no conversion between
//! currencies). The store finds them; this module only counts.
//!
//! **The statistics.**
//! - Each group's conversion rate has a Wilson score interval (95%), which behaves at rates near 0 where the
//!   normal approximation does not.
//! - The uplift (treatment rate − holdout rate, and revenue per run per currency) has a 95% *asymptotic
//!   confidence sequence* (Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas, "Time-uniform central limit theory
//!   and asymptotic confidence sequences", 2021; the method GrowthBook's sequential testing uses): an interval
//!   valid at every sample size at once, so a shop owner may look every day and stop when it excludes zero
//!   without inflating false positives. Its width is tuned to be tightest near [`TUNING_N`] runs; it is wider
//!   than a fixed-horizon interval, which is the price of peeking.
//! - "Probability the treatment beats the holdout" is the normal approximation Φ(d / se), i.e. the posterior
//!   probability under a flat prior; it is not sequentially corrected and is shown as a guide.
//! - **Sample-ratio mismatch**: the observed split is tested against the configured one (chi-square, 1 degree
//!   of freedom); p < 0.001 is flagged, since then assignment or tracking is broken and no comparison holds.
//!
//! Invariant: runs are counted by the group written on them when they started, never re-derived, so a
//! changed holdout share does not move past runs.

use super::Arm;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Days after a run's start in which an order counts as its conversion.
pub const WINDOW_DAYS: i64 = 7;
/// The sample size (both groups) at which the confidence sequence is tightest (GrowthBook's default).
pub const TUNING_N: f64 = 5_000.0;
/// Two-sided error of every interval.
const ALPHA: f64 = 0.05;
/// The z of a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;
/// Below this p-value the observed split is flagged as a sample-ratio mismatch.
pub const SRM_P: f64 = 0.001;

/// One run of an experiment as the store read it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub flow: String,
    pub experiment: String,
    pub arm: Arm,
    /// At least one message was written for it.
    pub messaged: bool,
    /// The converting event's payload (the first within the window), if any.
    pub conversion: Option<Value>,
}

/// One group's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupResult {
    /// `treatment` or `holdout`.
    pub arm: String,
    pub entered: u64,
    pub messaged: u64,
    pub converted: u64,
    pub conversion_rate: f64,
    /// Wilson 95% interval of the rate, `[low, high]`.
    pub conversion_rate_interval: [f64; 2],
    /// Revenue of its conversions, by currency (`""`: the events named none).
    pub revenue: BTreeMap<String, f64>,
    /// Revenue per run entered, by currency.
    pub revenue_per_run: BTreeMap<String, f64>,
}

/// Treatment minus holdout, for one measure.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Uplift {
    pub difference: f64,
    /// 95% asymptotic confidence sequence of the difference, valid at every look: `[low, high]`.
    pub interval: [f64; 2],
    /// Φ(difference / standard error): a guide, not sequentially corrected.
    pub probability_better: f64,
}

/// The observed split against the configured one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SampleRatio {
    pub expected_holdout_share: f64,
    pub observed_holdout_share: f64,
    /// Chi-square goodness of fit, 1 degree of freedom.
    pub p_value: f64,
    /// p < 0.001: assignment or tracking is broken; do not trust the comparison.
    pub mismatch: bool,
}

/// One flow's experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentResult {
    pub flow: String,
    pub experiment: String,
    /// The treatment first, then the holdout.
    pub groups: Vec<GroupResult>,
    /// Conversion rate uplift; absent until both groups have runs.
    pub conversion_uplift: Option<Uplift>,
    /// Revenue per run uplift, by currency: the incremental revenue per run the messages earn.
    pub revenue_per_run_uplift: BTreeMap<String, Uplift>,
    /// Incremental revenue: the revenue-per-run uplift times the treatment's runs, by currency.
    pub incremental_revenue: BTreeMap<String, f64>,
    /// Absent when the flow's experiment is no longer configured (the expected split is unknown).
    pub sample_ratio: Option<SampleRatio>,
}

/// The revenue and currency of a converting event.
fn revenue_of(event: &Value) -> (String, f64) {
    let p = event.get("properties");
    let num = |k: &str| {
        p.and_then(|p| p.get(k)).and_then(|v| match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    };
    let amount = num("revenue")
        .or_else(|| num("total"))
        .or_else(|| num("value"))
        .unwrap_or(0.0);
    let currency = p
        .and_then(|p| p.get("currency"))
        .and_then(Value::as_str)
        .map(|c| c.trim().to_ascii_uppercase())
        .unwrap_or_default();
    (currency, amount)
}

/// Wilson score interval for `k` successes in `n`.
pub fn wilson(k: u64, n: u64) -> [f64; 2] {
    if n == 0 {
        return [0.0, 1.0];
    }
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    [(centre - half).max(0.0), (centre + half).min(1.0)]
}

/// Half-width of the 95% asymptotic confidence sequence for an estimate whose variance is `var` after `n`
/// units (both groups): σ = sqrt(var · n) per unit, ρ tuned for [`TUNING_N`].
pub fn sequence_half_width(var: f64, n: f64) -> f64 {
    if n <= 0.0 || var <= 0.0 {
        return 0.0;
    }
    let sigma = (var * n).sqrt();
    let l = -2.0 * ALPHA.ln();
    let rho2 = (l + (l + 1.0).ln()) / TUNING_N;
    let nr = n * rho2;
    sigma * ((2.0 * (nr + 1.0) / (n * n * rho2)) * ((nr + 1.0).sqrt() / ALPHA).ln()).sqrt()
}

/// Standard normal CDF.
fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

fn uplift(difference: f64, var: f64, n: f64) -> Uplift {
    let half = sequence_half_width(var, n);
    let se = var.sqrt();
    Uplift {
        difference,
        interval: [difference - half, difference + half],
        probability_better: if se > 0.0 {
            phi(difference / se)
        } else if difference > 0.0 {
            1.0
        } else if difference < 0.0 {
            0.0
        } else {
            0.5
        },
    }
}

/// The chi-square test of `holdout` runs out of `total` against a configured share.
pub fn sample_ratio(holdout: u64, total: u64, expected_share: f64) -> SampleRatio {
    let n = total as f64;
    let observed = if total == 0 { 0.0 } else { holdout as f64 / n };
    let (eh, et) = (n * expected_share, n * (1.0 - expected_share));
    let chi2 = if total == 0 || eh <= 0.0 || et <= 0.0 {
        0.0
    } else {
        let (oh, ot) = (holdout as f64, n - holdout as f64);
        (oh - eh).powi(2) / eh + (ot - et).powi(2) / et
    };
    // With one degree of freedom, P(χ² > x) = erfc(sqrt(x / 2)).
    let p_value = libm::erfc((chi2 / 2.0).sqrt());
    SampleRatio {
        expected_holdout_share: expected_share,
        observed_holdout_share: observed,
        p_value,
        mismatch: p_value < SRM_P,
    }
}

#[derive(Default)]
struct Tally {
    entered: u64,
    messaged: u64,
    converted: u64,
    /// Per currency: sum and sum of squares of revenue per run (runs without a conversion count as 0).
    revenue: BTreeMap<String, (f64, f64)>,
}

/// Counts the runs of each flow's experiment; `holdout_share` gives the configured share of a flow's
/// experiment when it is still configured.
pub fn summarize(
    runs: &[RunOutcome],
    holdout_share: impl Fn(&str, &str) -> Option<f64>,
) -> Vec<ExperimentResult> {
    let mut by: BTreeMap<(String, String), [Tally; 2]> = BTreeMap::new();
    for r in runs {
        let t = &mut by
            .entry((r.flow.clone(), r.experiment.clone()))
            .or_default()[match r.arm {
            Arm::Treatment => 0,
            Arm::Holdout => 1,
        }];
        t.entered += 1;
        t.messaged += u64::from(r.messaged);
        if let Some(e) = &r.conversion {
            t.converted += 1;
            let (currency, amount) = revenue_of(e);
            let s = t.revenue.entry(currency).or_default();
            s.0 += amount;
            s.1 += amount * amount;
        }
    }
    by.into_iter()
        .map(|((flow, experiment), [t, h])| {
            let group = |arm: Arm, x: &Tally| GroupResult {
                arm: arm.as_str().into(),
                entered: x.entered,
                messaged: x.messaged,
                converted: x.converted,
                conversion_rate: if x.entered == 0 {
                    0.0
                } else {
                    x.converted as f64 / x.entered as f64
                },
                conversion_rate_interval: wilson(x.converted, x.entered),
                revenue: x
                    .revenue
                    .iter()
                    .map(|(c, (s, _))| (c.clone(), *s))
                    .collect(),
                revenue_per_run: x
                    .revenue
                    .iter()
                    .map(|(c, (s, _))| {
                        (
                            c.clone(),
                            if x.entered == 0 {
                                0.0
                            } else {
                                s / x.entered as f64
                            },
                        )
                    })
                    .collect(),
            };
            let n = (t.entered + h.entered) as f64;
            let both = t.entered > 0 && h.entered > 0;
            let conversion_uplift = both.then(|| {
                let (pt, ph) = (
                    t.converted as f64 / t.entered as f64,
                    h.converted as f64 / h.entered as f64,
                );
                let var = pt * (1.0 - pt) / t.entered as f64 + ph * (1.0 - ph) / h.entered as f64;
                uplift(pt - ph, var, n)
            });
            let mut revenue_per_run_uplift = BTreeMap::new();
            let mut incremental_revenue = BTreeMap::new();
            if both {
                let currencies: std::collections::BTreeSet<&String> =
                    t.revenue.keys().chain(h.revenue.keys()).collect();
                for c in currencies {
                    let moments = |x: &Tally| {
                        let (s, q) = x.revenue.get(c).copied().unwrap_or_default();
                        let m = s / x.entered as f64;
                        // The variance of the mean revenue per run.
                        let var = (q / x.entered as f64 - m * m).max(0.0) / x.entered as f64;
                        (m, var)
                    };
                    let ((mt, vt), (mh, vh)) = (moments(&t), moments(&h));
                    let u = uplift(mt - mh, vt + vh, n);
                    incremental_revenue.insert(c.clone(), u.difference * t.entered as f64);
                    revenue_per_run_uplift.insert(c.clone(), u);
                }
            }
            let sample_ratio = holdout_share(&flow, &experiment)
                .map(|share| sample_ratio(h.entered, t.entered + h.entered, share));
            ExperimentResult {
                groups: vec![group(Arm::Treatment, &t), group(Arm::Holdout, &h)],
                conversion_uplift,
                revenue_per_run_uplift,
                incremental_revenue,
                sample_ratio,
                flow,
                experiment,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
